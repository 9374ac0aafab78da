-- acknowledge.lua: the broker acknowledged an order's OrderCreated event.
--
-- Moves the reservation's deadline from its confirm deadline to its payment
-- deadline and marks the idempotency record acknowledged ("R" -> "A",
-- keeping its TTL), atomically. An order the sweeper already cancelled as
-- unconfirmed, or released by another request, stays gone: its buyer must
-- not be told it was accepted.
--
-- KEYS[1] resv:{sku}  KEYS[2] deadlines:{sku}  KEYS[3] idem:{sku}:<key>  KEYS[4] closed:{sku}
-- KEYS[5] payments:{sku}
-- ARGV[1] order id   ARGV[2] payment deadline (Unix ms)   ARGV[3] the acknowledged record
--
-- Returns 1 when the order stands (pending, paid, or cancelled by its buyer),
-- 0 when it was cancelled as unconfirmed or released first.
--
-- Example: EVALSHA <sha> 5 resv:{tv} deadlines:{tv} idem:{tv}:k1 closed:{tv} payments:{tv}
--          81234 1790000900000 A:42:1:81234:19900:1790000900000:1790000000000
--   -> 1

if #KEYS ~= 5 or #ARGV ~= 3 then
  return redis.error_reply('acknowledge.lua takes 5 keys and 3 arguments')
end

local order_id = ARGV[1]
if redis.call('HEXISTS', KEYS[1], order_id) == 1 then
  redis.call('ZADD', KEYS[2], 'XX', ARGV[2], order_id)
elseif redis.call('HEXISTS', KEYS[5], order_id) == 0 then
  local closed = redis.call('HGET', KEYS[4], order_id)
  if not closed or string.find(closed, '^unconfirmed:') then
    return 0
  end
end
local record = redis.call('GET', KEYS[3])
if record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):') == order_id then
  redis.call('SET', KEYS[3], ARGV[3], 'KEEPTTL')
end
return 1
