-- load_sale.lua: load or replace the sale of one SKU, atomically.
--
-- Replacing a sale starts it afresh: stock, limits and price are set, the
-- reserved and sold counters reset, and the per-user counts, reservations
-- and deadlines of the previous sale are dropped. Idempotency records of the
-- previous sale expire on their own TTL.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- ARGV[1] stock   ARGV[2] per-user limit   ARGV[3] price in cents
--
-- Returns the stock loaded.
--
-- Example: EVALSHA <sha> 4 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} 1000 2 19900  -> 1000

if #KEYS ~= 4 or #ARGV ~= 3 then
  return redis.error_reply('load_sale.lua takes 4 keys and 3 arguments')
end

redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call('HSET', KEYS[1],
  'stock', ARGV[1], 'reserved', 0, 'sold', 0, 'per_user_limit', ARGV[2], 'price_cents', ARGV[3])
return tonumber(ARGV[1])
