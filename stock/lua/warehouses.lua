-- warehouses.lua: the operator changes a warehouse of a sale split over
-- warehouses (regional stock), atomically. It may be closed to new orders
-- or opened again (its reservations stay as they are, paid or released
-- there as usual); units for sale may move from it to another of the sale
-- (the sale's counts and total never change); units may be added to it
-- (negative: removed, only from those still for sale).
--
-- KEYS[1] sale:{sku}
-- ARGV[1] "close" | "open" | "move" | "add"   ARGV[2] the warehouse
-- ARGV[3] units ("move", "add"; else "")   ARGV[4] the warehouse to move them to ("move"; else "")
--
-- Returns {"done", the warehouse's stock}, {"unknown_sku"}, {"unknown_warehouse", name}
-- or {"too_few_units", the warehouse's stock}.
--
-- Example: EVALSHA <sha> 1 sale:{tv} move sh 50 gz   -> {"done", 550}

if #KEYS ~= 1 or #ARGV ~= 4 then
  return redis.error_reply('warehouses.lua takes 1 key and 4 arguments')
end

if not redis.call('HGET', KEYS[1], 'stock') then
  return {'unknown_sku'}
end
local op, warehouse, units, to = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
for _, name in ipairs({warehouse, op == 'move' and to or nil}) do
  if not redis.call('HGET', KEYS[1], warehouse_field(name, 'total')) then
    return {'unknown_warehouse', name}
  end
end

local stock = function()
  return count_of('stock', warehouse)
end
if op == 'close' or op == 'open' then
  redis.call('HSET', KEYS[1], warehouse_field(warehouse, 'closed'), op == 'close' and 1 or 0)
elseif op == 'move' then
  if not units or units < 1 then
    return redis.error_reply('warehouses.lua: move takes a positive number of units')
  end
  if not move_between_warehouses(warehouse, to, units) then
    return {'too_few_units', stock()}
  end
elseif op == 'add' then
  if stock() + units < 0 then
    return {'too_few_units', stock()}
  end
  move_units('add', units, warehouse)
else
  return redis.error_reply('warehouses.lua: no operation named ' .. tostring(op))
end
return {'done', stock()}
