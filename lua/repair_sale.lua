-- repair_sale.lua: set a sale's counters from what is known to be true, atomically.
--
-- Reconciliation's repair after a Redis failover lost acknowledged writes:
-- `sold` comes from MySQL (paid orders of this sale), `reserved` from the
-- reservations Redis holds right now (what the sweeper and the payment
-- scripts will act on), and `stock` is what is left of the units loaded.
-- One script, so no reservation or payment lands between reading and writing.
--
-- KEYS[1] sale:{sku}  KEYS[2] resv:{sku}
-- ARGV[1] units sold, per MySQL
--
-- Returns {stock, reserved, sold} as set, or {"unknown_sku"}.
--
-- Example: EVALSHA <sha> 2 sale:{tv} resv:{tv} 700   -> {0, 300, 700}

if #KEYS ~= 2 or #ARGV ~= 1 then
  return redis.error_reply('repair_sale.lua takes 2 keys and 1 argument')
end

local total = tonumber(redis.call('HGET', KEYS[1], 'total'))
if not total then
  return {'unknown_sku'}
end
local reserved = 0
for _, reservation in ipairs(redis.call('HVALS', KEYS[2])) do
  reserved = reserved + tonumber(string.match(reservation, '^%d+:(%d+):'))
end
local sold = tonumber(ARGV[1])
local stock = total - reserved - sold
redis.call('HSET', KEYS[1], 'stock', stock, 'reserved', reserved, 'sold', sold)
return {stock, reserved, sold}
