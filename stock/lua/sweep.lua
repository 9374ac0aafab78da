-- sweep.lua: cancel the orders of one SKU whose deadline passed.
--
-- Claims up to ARGV[2] expired reservations and, for each, gives the units
-- back, remembers the order as closed and adds a cancellation to the
-- outbox. The reason is "timeout" past the payment deadline, "unconfirmed"
-- past the earlier confirm deadline of an order whose event the broker
-- never acknowledged (see reserve.lua). Atomic, so sweepers running at once never release the same
-- units twice: the second finds the reservation gone.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] outbox:{sku}            (as in cancel.lua)
-- ARGV[1] now (Unix ms, the sweeper reads it from Redis TIME)   ARGV[2] most orders to claim
--
-- Returns {orders cancelled, reservations left}; the sweeper stops
-- visiting a sale with none left and an empty outbox.
--
-- Example: EVALSHA <sha> 6 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv}
--          closed:{tv} outbox:{tv} 1790000900001 500
--   -> {3, 12}

if #KEYS ~= 6 or #ARGV ~= 2 then
  return redis.error_reply('sweep.lua takes 6 keys and 2 arguments')
end

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local cancelled = 0
for i = 1, #expired, 2 do
  local order_id, deadline = expired[i], tonumber(expired[i + 1])
  local reservation = redis.call('HGET', KEYS[3], order_id)
  if reservation then
    -- acknowledge.lua moves the deadline to the payment deadline; an
    -- earlier one is still the confirm deadline (the gateway's config keeps
    -- the confirm window shorter than the payment window).
    local reason = 'timeout'
    if deadline < reservation_pay_by(reservation) then
      reason = 'unconfirmed'
    end
    release_units(order_id, reservation)
    redis.call('HSET', KEYS[5], order_id, reason .. ':' .. reservation)
    redis.call('RPUSH', KEYS[6], order_id .. ':' .. reason .. ':' .. reservation)
    cancelled = cancelled + 1
  else
    redis.call('ZREM', KEYS[4], order_id)
  end
end
return {cancelled, redis.call('ZCARD', KEYS[4])}
