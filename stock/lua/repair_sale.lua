-- repair_sale.lua: set a sale's counters from what is known to be true, atomically.
--
-- Reconciliation's repair after a Redis failover lost acknowledged writes:
-- `sold` comes from MySQL (paid orders of this sale), the units of the
-- reservations Redis holds right now (what the sweeper and the payment
-- scripts will act on) are `reserved`, or `open` for a sale deducting at
-- payment, and `stock` is what is left of the units loaded. A sale split
-- over warehouses is repaired warehouse by warehouse the same way (MySQL
-- records each order's warehouse, and each reservation names its own),
-- and its counts are then their sums.
-- One script, so no reservation or payment lands between reading and writing.
-- MySQL's `sold` already leaves out the paid orders cancelled before
-- shipping: each is marked in returned:{sku} here (units in ARGV after the
-- second), so the relay's `return_units.lua` for it, still to come, finds
-- it done instead of taking its units out of `sold` a second time.
--
-- KEYS[1] sale:{sku}  KEYS[2] resv:{sku}  KEYS[3] returned:{sku}
-- ARGV[1] units sold, per MySQL
-- ARGV[2] units sold per warehouse, per MySQL: "<warehouse>=<units>,..." ("" for a sale in one pool)
-- ARGV[3], ARGV[4], ... order id, units, order id, units, ... of this sale's orders cancelled after payment
--
-- Returns {stock, reserved, open, sold, total} as set, or {"unknown_sku"}.
--
-- Example: EVALSHA <sha> 3 sale:{tv} resv:{tv} returned:{tv} 700 "" 81234 1   -> {1, 299, 0, 700, 1000}

if #KEYS ~= 3 or #ARGV < 2 or #ARGV % 2 ~= 0 then
  return redis.error_reply('repair_sale.lua takes 3 keys and 2 + 2n arguments')
end

local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
if not total then
  return {'unknown_sku'}
end
local held = open_cap_pct() > 0 and 'open' or 'reserved'

-- Units placed per warehouse ('' for a sale in one pool), from the reservations.
local placed = {}
for _, reservation in ipairs(redis.call('HVALS', KEYS[2])) do
  local qty = tonumber(string.match(reservation, '^%d+:(%d+):'))
  local warehouse = string.match(reservation, '^[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:([^:]+)$') or ''
  placed[warehouse] = (placed[warehouse] or 0) + qty
end
for i = 3, #ARGV, 2 do
  redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1])
end

local sold = tonumber(ARGV[1])
local own = redis.call('HGET', KEYS[1], 'warehouses')
if own then
  local sold_in = {}
  for warehouse, units in string.gmatch(ARGV[2], '([^,=]+)=(%d+)') do
    sold_in[warehouse] = tonumber(units)
  end
  for _, warehouse in ipairs(names(own)) do
    local its_total = count_of('total', warehouse)
    local its_sold, its_placed = sold_in[warehouse] or 0, placed[warehouse] or 0
    local its_reserved = held == 'reserved' and its_placed or 0
    set_units(its_total - its_reserved - its_sold, its_reserved, its_sold, its_total, warehouse)
    redis.call('HSET', KEYS[1], warehouse_field(warehouse, 'open'), held == 'open' and its_placed or 0)
  end
end

local all = 0
for _, units in pairs(placed) do
  all = all + units
end
local reserved, open = all, 0
if held == 'open' then
  reserved, open = 0, all
end
local stock = total - reserved - sold
set_units(stock, reserved, sold, total)
redis.call('HSET', KEYS[1], 'open', open)
return {stock, reserved, open, sold, total}
