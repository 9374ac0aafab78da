-- release.lua: give an unqueued order's units back, atomically.
--
-- Used when the OrderCreated event could not be queued: the request failed,
-- so it must not keep stock, and its idempotency record goes too so that the
-- client's retry can place the order afresh. Nobody ever saw the order, so
-- nothing records it as cancelled. A no-op for an order that holds no
-- reservation, so it is safe to repeat. Too late once the in-flight window
-- has passed since the reservation (Redis's clock): a retry on another
-- gateway may be re-sending the order by then, so the units stay until the
-- confirm deadline. Too late, too, once the order is acknowledged (its
-- deadline is its payment deadline): a retry re-sent it and the broker took
-- it, so it is accepted, whatever became of this request's send.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] idem:{sku}:<key>                        (as in reserve.lua)
-- ARGV[1] order id   ARGV[2] confirm window (ms)   ARGV[3] in-flight window (ms)
--
-- Returns {1, stock_after} when units came back, {0, 0} when the order
-- held no reservation, {2, 0} when it was too late to release.
--
-- Example: EVALSHA <sha> 5 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} idem:{tv}:k1 81234 30000 7000
--   -> {1, 100}

if #KEYS ~= 5 or #ARGV ~= 3 then
  return redis.error_reply('release.lua takes 5 keys and 3 arguments')
end

local order_id = ARGV[1]
local reservation = redis.call('HGET', KEYS[3], order_id)
if not reservation then
  return {0, 0}
end
local acknowledged = tonumber(redis.call('ZSCORE', KEYS[4], order_id)) == reservation_pay_by(reservation)
if acknowledged or still_in_flight(order_id, tonumber(ARGV[2]), tonumber(ARGV[3])) == false then
  return {2, 0}
end
local stock = release_units(order_id, reservation)

-- Only drop the idempotency record if it still names this order.
local record = redis.call('GET', KEYS[5])
if record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):') == order_id then
  redis.call('DEL', KEYS[5])
end
return {1, stock}
