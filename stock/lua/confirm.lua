-- confirm.lua: a payment arrived for an order, atomically.
--
-- If the order still holds its reservation, its units are paid (the unit
-- ledger sells the reserved units, or buys them from stock for a sale
-- deducting at payment) and the reservation leaves the deadline set, so no
-- sweeper can cancel it any more. A sale deducting at payment may have
-- sold its last units to faster payers: then the order is cancelled as
-- `sold_out` (closed, and its cancellation joins the outbox) and the
-- payment is recorded as one to refund. If the order was cancelled first, the payment is recorded as one
-- to refund and the units are not taken again. No verified payment is ever
-- dropped: a second payment id for an order already paid, and a payment
-- for an order this sale does not know (released before anyone saw it, the
-- sale replaced, the record lost in a failover), are recorded as refunds
-- too. A repeat of the same payment changes nothing and says whether its
-- event was acknowledged.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] payments:{sku}  hash: order id -> "<paid|refund>:<payment id>:<reservation>" for
--                         the order's first payment, "<order id>:<payment id>" -> the same
--                         for any other
-- KEYS[6] closed:{sku}           (as in cancel.lua)
-- KEYS[7] payment_events:{sku}  hash: "<order id>:<payment id>" -> 1 once the payment's
--                               event is acknowledged
-- KEYS[8] outbox:{sku}          (as in cancel.lua)
-- ARGV[1] order id   ARGV[2] payment id   ARGV[3] amount paid (cents)
--
-- Returns one of
--   {"paid", reservation}
--   {"refund", "<reason>:<reservation>"}     the order was cancelled first
--   {"sold_out", outbox entry}               the units were gone (a sale deducting at
--                                            payment): the order is cancelled now, refund
--   {"second_payment", reservation}          the order was paid by another payment: refund
--   {"orphan"}                               no such order in this sale: refund (recorded with
--                                            the reservation "0:0:<amount>:0:0:0:")
--   {"dup", "<paid|refund>:<payment id>:<reservation>", acknowledged 0|1}
--   {"amount_mismatch", expected_amount}     nothing changed
--
-- Example: EVALSHA <sha> 8 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv}
--          payments:{tv} closed:{tv} payment_events:{tv} outbox:{tv} 81234 pay_9 19900
--   -> {"paid", "42:1:19900:1790000000000:1790000900000:k1"}

if #KEYS ~= 8 or #ARGV ~= 3 then
  return redis.error_reply('confirm.lua takes 8 keys and 3 arguments')
end

local order_id, payment_id, paid = ARGV[1], ARGV[2], ARGV[3]
local event_key = order_id .. ':' .. payment_id
local first = redis.call('HGET', KEYS[5], order_id)
if first then
  local other = redis.call('HGET', KEYS[5], event_key)
  if string.match(first, '^%a+:([^:]+):') == payment_id or other then
    return {'dup', other or first, redis.call('HEXISTS', KEYS[7], event_key)}
  end
  local reservation = string.match(first, '^%a+:[^:]+:(.*)$')
  redis.call('HSET', KEYS[5], event_key, 'refund:' .. payment_id .. ':' .. reservation)
  return {'second_payment', reservation}
end

local reservation = redis.call('HGET', KEYS[3], order_id)
if reservation then
  local expected = reservation_amount(reservation)
  if expected ~= paid then
    return {'amount_mismatch', expected}
  end
  end_reservation(order_id)
  if pay_units(reservation_qty(reservation), reservation_warehouse(reservation)) then
    redis.call('HSET', KEYS[5], order_id, 'paid:' .. payment_id .. ':' .. reservation)
    return {'paid', reservation}
  end
  unclaim_buyer_units(order_id, reservation)
  local closed = 'sold_out:' .. reservation
  local entry = order_id .. ':' .. closed
  redis.call('HSET', KEYS[6], order_id, closed)
  redis.call('RPUSH', KEYS[8], entry)
  redis.call('HSET', KEYS[5], order_id, 'refund:' .. payment_id .. ':' .. reservation)
  return {'sold_out', entry}
end

local closed = redis.call('HGET', KEYS[6], order_id)
if closed then
  redis.call('HSET', KEYS[5], order_id, 'refund:' .. payment_id .. ':' .. string.match(closed, '^[%a_]+:(.*)$'))
  return {'refund', closed}
end
redis.call('HSET', KEYS[5], order_id, 'refund:' .. payment_id .. ':0:0:' .. paid .. ':0:0:0:')
return {'orphan'}
