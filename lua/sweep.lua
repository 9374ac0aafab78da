-- sweep.lua: cancel the orders of one SKU whose payment deadline passed.
--
-- Claims up to ARGV[2] expired reservations and, for each, gives the units
-- back, remembers the order as closed by timeout and adds a cancellation to
-- the outbox. Atomic, so sweepers running at once never release the same
-- units twice: the second finds the reservation gone.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] outbox:{sku}            (as in cancel.lua)
-- ARGV[1] now (Unix ms)   ARGV[2] most orders to claim
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

local expired = redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local cancelled = 0
for _, order_id in ipairs(expired) do
  local reservation = redis.call('HGET', KEYS[3], order_id)
  if reservation then
    release_units(order_id, reservation)
    redis.call('HSET', KEYS[5], order_id, 'timeout:' .. reservation)
    redis.call('RPUSH', KEYS[6], order_id .. ':timeout:' .. reservation)
    cancelled = cancelled + 1
  else
    redis.call('ZREM', KEYS[4], order_id)
  end
end
return {cancelled, redis.call('ZCARD', KEYS[4])}
