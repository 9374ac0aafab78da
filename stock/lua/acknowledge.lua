-- acknowledge.lua: the broker acknowledged orders' OrderCreated events.
--
-- For each order, atomically: moves the reservation's deadline from its
-- confirm deadline to its payment deadline and marks the idempotency
-- record acknowledged ("R" -> "A", keeping its TTL and the rest of it as it
-- is now: a late acknowledgement must not undo a change made since, such
-- as the warehouse an address change moved the order to). An order the sweeper
-- already cancelled as unconfirmed, or released by another request, stays
-- gone: its buyer must not be told it was accepted. One call takes the
-- orders of one SKU acknowledged at about the same time (a group commit).
--
-- KEYS[1] resv:{sku}  KEYS[2] deadlines:{sku}  KEYS[3] closed:{sku}  KEYS[4] payments:{sku}
-- KEYS[5] idem:{sku}:<key>   order i's idempotency record is KEYS[4 + i]
-- ARGV per order i, at 2 * (i - 1): order id, payment deadline (Unix ms)
--
-- Returns one number per order: 1 when it stands (pending, paid, or
-- cancelled by its buyer), 0 when it was cancelled as unconfirmed or
-- released first.
--
-- Example: EVALSHA <sha> 5 resv:{tv} deadlines:{tv} closed:{tv} payments:{tv} idem:{tv}:k1
--          81234 1790000900000
--   -> {1}

local orders = #KEYS - 4
if orders < 1 or #ARGV ~= 2 * orders then
  return redis.error_reply('acknowledge.lua takes 4 keys, then one key and 2 arguments per order')
end

local function acknowledge(idempotency, order_id, pay_by)
  if redis.call('HEXISTS', KEYS[1], order_id) == 1 then
    redis.call('ZADD', KEYS[2], 'XX', pay_by, order_id)
  elseif redis.call('HEXISTS', KEYS[4], order_id) == 0 then
    local closed = redis.call('HGET', KEYS[3], order_id)
    if not closed or string.find(closed, '^unconfirmed:') then
      return 0
    end
  end
  local record = redis.call('GET', idempotency)
  if record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):') == order_id then
    redis.call('SET', idempotency, 'A' .. string.sub(record, 2), 'KEEPTTL')
  end
  return 1
end

local stands = {}
for i = 1, orders do
  local arg = 2 * (i - 1)
  stands[i] = acknowledge(KEYS[4 + i], ARGV[arg + 1], ARGV[arg + 2])
end
return stands
