-- tcc_cancel.lua: the Cancel of a cart checkout for one SKU, atomically:
-- the order was not accepted (another SKU's Try was refused, or its reply
-- was lost), so every item of this SKU gives its units back.
--
-- Each item is left cancelled as "unconfirmed" in closed:{sku}, whether
-- it held units or not: a Cancel with no Try before it (its Try was
-- delayed or lost) leaves that record too, and tcc_try.lua refuses a Try
-- that finds it. No event is sent: nobody was told of the order. Safe to
-- repeat. Too late once the item was accepted (its deadline moved on to
-- the payment deadline), or once the in-flight window has passed since
-- its Try (Redis's clock): a retry on another gateway may be accepting the
-- order by then, so its units stay until the confirm deadline, where the
-- sweeper cancels them if the order was never accepted.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] payments:{sku}
-- ARGV[1] confirm window (ms)   ARGV[2] in-flight window (ms)   ARGV[3..] item order ids
--
-- Returns one word per item: "released" (its units came back), "empty" (it
-- held none, or was paid for without being held, a payment to refund; the
-- record now refuses its Try), "closed" (cancelled before), "paid", or
-- "too_late" (accepted, or left to the sweeper).
--
-- Example: EVALSHA <sha> 6 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} closed:{tv} payments:{tv}
--          30000 7000 81235 81236
--   -> {"released", "empty"}

if #KEYS ~= 6 or #ARGV < 3 then
  return redis.error_reply('tcc_cancel.lua takes 6 keys, 2 arguments, then the item ids')
end

local confirm_ms, in_flight_ms = tonumber(ARGV[1]), tonumber(ARGV[2])
local outcomes = {}
for i = 3, #ARGV do
  local item = ARGV[i]
  local reservation = redis.call('HGET', KEYS[3], item)
  if reservation then
    -- Accepted (acknowledge.lua moved its deadline to the payment
    -- deadline): its checkout was announced, so only the sweeper or the
    -- buyer's cancellation, both of which send the event, may end it.
    local accepted = tonumber(redis.call('ZSCORE', KEYS[4], item) or '0') >= reservation_pay_by(reservation)
    if accepted or still_in_flight(item, confirm_ms, in_flight_ms) == false then
      outcomes[#outcomes + 1] = 'too_late'
    else
      release_units(item, reservation)
      redis.call('HSET', KEYS[5], item, 'unconfirmed:' .. reservation)
      outcomes[#outcomes + 1] = 'released'
    end
  elseif string.find(redis.call('HGET', KEYS[6], item) or '', '^paid:') then
    outcomes[#outcomes + 1] = 'paid'
  elseif redis.call('HEXISTS', KEYS[5], item) == 1 then
    outcomes[#outcomes + 1] = 'closed'
  else
    redis.call('HSET', KEYS[5], item, 'unconfirmed:0:0:0:0:0:0:')
    outcomes[#outcomes + 1] = 'empty'
  end
end
return outcomes
