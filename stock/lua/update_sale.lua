-- update_sale.lua: change a live sale without touching its orders, atomically.
--
-- Adds or removes units (only units still for sale can be removed: stock
-- never goes below zero, so the total never below reserved + sold), and
-- sets the per-user limit, the price of new orders and the window. Every
-- reservation, payment and buyer count stays as it is. Arguments left
-- empty ("") are not changed. With ARGV[6], the change applies only while
-- the sale's total is that number: an operator retrying a change whose
-- answer was lost (a timeout) does not add the units twice.
--
-- KEYS[1] sale:{sku}
-- ARGV[1] units to add (negative: remove)   ARGV[2] per-user limit   ARGV[3] price in cents
-- ARGV[4] sale starts (Unix ms, 0: at once)   ARGV[5] sale ends (Unix ms, 0: never)
--         (the window's two ends are set together, or neither)
-- ARGV[6] the total the change expects, or ""
--
-- Units of a sale split over warehouses are added to a warehouse
-- (warehouses.lua): here they are refused with {"warehouse_required"}.
--
-- Returns {"updated", stock}, {"unknown_sku"}, {"too_few_units", stock},
-- {"total_changed", total} or {"warehouse_required"}.
--
-- Example: EVALSHA <sha> 1 sale:{tv} 500 "" "" "" "" 1000  -> {"updated", 620}

if #KEYS ~= 1 or #ARGV ~= 6 then
  return redis.error_reply('update_sale.lua takes 1 key and 6 arguments')
end

local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
if not stock then
  return {'unknown_sku'}
end
if ARGV[6] ~= '' then
  local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
  if total ~= tonumber(ARGV[6]) then
    return {'total_changed', total}
  end
end
local add = tonumber(ARGV[1]) or 0
if add ~= 0 and redis.call('HEXISTS', KEYS[1], 'warehouses') == 1 then
  return {'warehouse_required'}
end
if stock + add < 0 then
  return {'too_few_units', stock}
end
if add ~= 0 then
  stock = move_units('add', add)
end
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'per_user_limit', ARGV[2])
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'price_cents', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'starts_ms', ARGV[4], 'ends_ms', ARGV[5])
end
return {'updated', stock}
