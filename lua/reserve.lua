-- reserve.lua: take units of one SKU for one order, atomically.
--
-- Does, in order: idempotency check, SKU exists, stock >= qty, per-user
-- limit, then decrements stock, counts the user's units, records the
-- reservation with its payment deadline and stores the idempotency record.
-- Every key shares the SKU's hash tag, so the script runs on Redis Cluster.
--
-- KEYS[1] sale:{sku}        hash: stock, reserved, sold, per_user_limit, price_cents
-- KEYS[2] buyers:{sku}      hash: user id -> units reserved or bought
-- KEYS[3] idem:{sku}:<key>  string: the idempotency record (below)
-- KEYS[4] resv:{sku}        hash: order id -> "<user>:<qty>:<idempotency key>"
-- KEYS[5] deadlines:{sku}   zset: order id scored by its payment deadline (ms)
-- ARGV[1] user id   ARGV[2] qty   ARGV[3] order id   ARGV[4] now (Unix ms)
-- ARGV[5] payment deadline (Unix ms)   ARGV[6] idempotency record TTL (s)
-- ARGV[7] idempotency key
--
-- Idempotency record: "R:<user>:<qty>:<order id>:<amount cents>:<pay by ms>:<created ms>".
-- "R" means reserved; the gateway rewrites it to "A" once the broker has
-- acknowledged the OrderCreated event.
--
-- Returns one of
--   {"ok", amount_cents, stock_left}
--   {"dup", record}                   the key was seen before
--   {"unknown_sku"}
--   {"sold_out", stock_left}          stock_left < qty (0 means sold out)
--   {"limit", units_already_held}
--
-- Example: EVALSHA <sha> 5 sale:{tv} buyers:{tv} idem:{tv}:k1 resv:{tv} deadlines:{tv}
--          42 1 81234 1790000000000 1790000900000 86400 k1
--   -> {"ok", "19900", "99"}

if #KEYS ~= 5 or #ARGV ~= 7 then
  return redis.error_reply('reserve.lua takes 5 keys and 7 arguments')
end

local record = redis.call('GET', KEYS[3])
if record then
  return {'dup', record}
end

local sale = redis.call('HMGET', KEYS[1], 'stock', 'per_user_limit', 'price_cents')
if not sale[1] then
  return {'unknown_sku'}
end

local user, qty, order_id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local stock, limit, price = tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3])
if stock < qty then
  return {'sold_out', tostring(stock)}
end

local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
if held + qty > limit then
  return {'limit', tostring(held)}
end

local amount = price * qty
redis.call('HINCRBY', KEYS[1], 'stock', -qty)
redis.call('HINCRBY', KEYS[1], 'reserved', qty)
redis.call('HINCRBY', KEYS[2], user, qty)
redis.call('HSET', KEYS[4], order_id, user .. ':' .. qty .. ':' .. ARGV[7])
redis.call('ZADD', KEYS[5], ARGV[5], order_id)
redis.call('SET', KEYS[3],
  'R:' .. user .. ':' .. qty .. ':' .. order_id .. ':' .. amount .. ':' .. ARGV[5] .. ':' .. ARGV[4],
  'EX', ARGV[6])
return {'ok', tostring(amount), tostring(stock - qty)}
