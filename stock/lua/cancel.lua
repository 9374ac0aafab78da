-- cancel.lua: the buyer cancels a pending order, atomically.
--
-- Only the order's own user, and only while it awaits payment: the units go
-- back to stock, the order is remembered as closed (so a payment arriving
-- later is refunded, not taken), and a cancellation joins the outbox until
-- its OrderCancelled event is acknowledged.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] payments:{sku}  hash: order id -> "<paid|refund>:<payment id>:<reservation>"
-- KEYS[6] closed:{sku}    hash: order id -> "<reason>:<reservation>"
-- KEYS[7] outbox:{sku}    list: "<order id>:<reason>:<reservation>" awaiting their event
-- ARGV[1] order id   ARGV[2] user id
--
-- Returns one of
--   {"cancelled", outbox_entry}
--   {"not_pending", "paid"|"cancelled"}   the user's order, past cancelling
--   {"not_found"}                         no such order of this user
--
-- Example: EVALSHA <sha> 7 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv}
--          payments:{tv} closed:{tv} outbox:{tv} 81234 42
--   -> {"cancelled", "81234:user:42:1:19900:1790000000000:1790000900000:k1"}

if #KEYS ~= 7 or #ARGV ~= 2 then
  return redis.error_reply('cancel.lua takes 7 keys and 2 arguments')
end

local order_id, user = ARGV[1], ARGV[2]
local reservation = redis.call('HGET', KEYS[3], order_id)
if reservation then
  if reservation_user(reservation) ~= user then
    return {'not_found'}
  end
  release_units(order_id, reservation)
  redis.call('HSET', KEYS[6], order_id, 'user:' .. reservation)
  local entry = order_id .. ':user:' .. reservation
  redis.call('RPUSH', KEYS[7], entry)
  return {'cancelled', entry}
end

return ended_reply(order_id, user, KEYS[5], KEYS[6])
