-- load_sale.lua: load or replace the sale of one SKU, atomically.
--
-- Replacing a sale starts it afresh: stock, limit, price and window are set, the
-- reserved and sold counters reset, and the per-user counts, reservations,
-- deadlines, payments and closed orders of the previous sale are dropped.
-- Cancellations still in the outbox are kept: their events must still go
-- out. Idempotency records of the previous sale expire on their own TTL.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] payments:{sku}  KEYS[6] closed:{sku}  KEYS[7] payment_events:{sku}
-- ARGV[1] stock   ARGV[2] per-user limit   ARGV[3] price in cents
-- ARGV[4] sale starts (Unix ms, 0: at once)   ARGV[5] sale ends (Unix ms, 0: never)
--
-- Returns the stock loaded.
--
-- Example: EVALSHA <sha> 7 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv}
--          payments:{tv} closed:{tv} payment_events:{tv} 1000 2 19900 0 0  -> 1000

if #KEYS ~= 7 or #ARGV ~= 5 then
  return redis.error_reply('load_sale.lua takes 7 keys and 5 arguments')
end

redis.call('DEL', unpack(KEYS))
redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'total', ARGV[1], 'reserved', 0, 'sold', 0,
  'per_user_limit', ARGV[2], 'price_cents', ARGV[3], 'starts_ms', ARGV[4], 'ends_ms', ARGV[5])
return tonumber(ARGV[1])
