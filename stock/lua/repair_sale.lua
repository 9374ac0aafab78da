-- repair_sale.lua: set a sale's counters from what is known to be true, atomically.
--
-- Reconciliation's repair after a Redis failover lost acknowledged writes:
-- `sold` comes from MySQL (paid orders of this sale), the units of the
-- reservations Redis holds right now (what the sweeper and the payment
-- scripts will act on) are `reserved`, or `open` for a sale deducting at
-- payment, and `stock` is what is left of the units loaded.
-- One script, so no reservation or payment lands between reading and writing.
-- MySQL's `sold` already leaves out the paid orders cancelled before
-- shipping: each is marked in returned:{sku} here (units in ARGV after the
-- first), so the relay's `return_units.lua` for it, still to come, finds
-- it done instead of taking its units out of `sold` a second time.
--
-- KEYS[1] sale:{sku}  KEYS[2] resv:{sku}  KEYS[3] returned:{sku}
-- ARGV[1] units sold, per MySQL
-- ARGV[2], ARGV[3], ... order id, units, order id, units, ... of this sale's orders cancelled after payment
--
-- A sale split over warehouses is not repaired here (MySQL's sold units
-- are not counted per warehouse): {"regional"}, nothing changed.
--
-- Returns {stock, reserved, open, sold, total} as set, {"unknown_sku"} or {"regional"}.
--
-- Example: EVALSHA <sha> 3 sale:{tv} resv:{tv} returned:{tv} 700 81234 1   -> {1, 299, 0, 700, 1000}

if #KEYS ~= 3 or #ARGV % 2 ~= 1 then
  return redis.error_reply('repair_sale.lua takes 3 keys and 1 + 2n arguments')
end

local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
if not total then
  return {'unknown_sku'}
end
if redis.call('HEXISTS', KEYS[1], 'warehouses') == 1 then
  return {'regional'}
end
local placed = 0
for _, reservation in ipairs(redis.call('HVALS', KEYS[2])) do
  placed = placed + tonumber(string.match(reservation, '^%d+:(%d+):'))
end
local reserved, open = placed, 0
if open_cap_pct() > 0 then
  reserved, open = 0, placed
end
for i = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[3], ARGV[i], ARGV[i + 1])
end
local sold = tonumber(ARGV[1])
local stock = total - reserved - sold
set_units(stock, reserved, sold, total)
redis.call('HSET', KEYS[1], 'open', open)
return {stock, reserved, open, sold, total}
