-- release.lua: give a reserved order's units back to stock, atomically.
--
-- Used when the OrderCreated event could not be queued: the request failed,
-- so it must not keep stock, and its idempotency record goes too so that the
-- client's retry can place the order afresh. A no-op for an order that holds
-- no reservation (already released, paid or timed out), so it is safe to repeat.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] idem:{sku}:<key>
-- KEYS[4] resv:{sku}  KEYS[5] deadlines:{sku}      (as in reserve.lua)
-- ARGV[1] order id
--
-- Returns {1, stock_after} when units came back, {0, stock} otherwise.
--
-- Example: EVALSHA <sha> 5 sale:{tv} buyers:{tv} idem:{tv}:k1 resv:{tv} deadlines:{tv} 81234
--   -> {1, 100}

if #KEYS ~= 5 or #ARGV ~= 1 then
  return redis.error_reply('release.lua takes 5 keys and 1 argument')
end

local order_id = ARGV[1]
local reservation = redis.call('HGET', KEYS[4], order_id)
if not reservation then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'stock') or '0')}
end

local user, qty = string.match(reservation, '^([^:]+):(%d+):')
qty = tonumber(qty)
redis.call('HDEL', KEYS[4], order_id)
redis.call('ZREM', KEYS[5], order_id)
redis.call('HINCRBY', KEYS[1], 'reserved', -qty)
local stock = redis.call('HINCRBY', KEYS[1], 'stock', qty)
if redis.call('HINCRBY', KEYS[2], user, -qty) <= 0 then
  redis.call('HDEL', KEYS[2], user)
end

-- Only drop the idempotency record if it still names this order.
local record = redis.call('GET', KEYS[3])
if record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):') == order_id then
  redis.call('DEL', KEYS[3])
end
return {1, stock}
