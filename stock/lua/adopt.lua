-- adopt.lua: hand Redis an order the database fallback took while Redis
-- could not be reached (an ordinary sale's order, from the database's
-- share of its units). From here on the order lives in Redis as if
-- reserve.lua had placed it: its reservation, deadline, idempotency record
-- and the buyer's count; its units join the sale's total already reserved
-- (the ledger's `adopt` move), so the sale's counts stay balanced and no
-- unit is counted by both stores. Each order is decided once, and the
-- decision kept in adopted:{sku}: adopted, or a duplicate of the order its
-- key placed in Redis (the buyer's retry reached both stores).
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] used_keys:{sku}  KEYS[7] adopted:{sku}  KEYS[8] idem:{sku}:<key>
-- ARGV[1] order id  ARGV[2] user id  ARGV[3] qty  ARGV[4] amount cents  ARGV[5] created (Unix ms)
-- ARGV[6] payment deadline (Unix ms)  ARGV[7] sale generation  ARGV[8] idempotency key
-- ARGV[9] idempotency record TTL (s)  ARGV[10] "1" when the broker acknowledged its
--         OrderCreated (accepted), "0" when not yet (its deadline is then a confirm
--         deadline, ARGV[11] ms from now, as reserve.lua gives)
--
-- Returns one of
--   {"adopted"}                  Redis holds it (now, or since an earlier call)
--   {"duplicate", order id}      its key placed this other order in Redis, acknowledged or
--                                settled: the database's order is the caller's to cancel
--   {"wait"}                     its key placed another order in Redis that is not
--                                acknowledged yet and still reserved: call again once
--                                that one is settled
--   {"other_sale"}               the sale was replaced since the order was taken
--   {"unknown_sku"} / {"id_taken"} (an order of Redis has this id)
--
-- Example: EVALSHA <sha> 8 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} closed:{tv}
--          used_keys:{tv} adopted:{tv} idem:{tv}:k1 9123 42 1 19900 1790000000000
--          1790000900000 1789999000000 k1 86400 1 30000
--   -> {"adopted"}

if #KEYS ~= 8 or #ARGV ~= 11 then
  return redis.error_reply('adopt.lua takes 8 keys and 11 arguments')
end
local order_id, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])

local decided = redis.call('HGET', KEYS[7], order_id)
if decided == 'adopted' then
  return {'adopted'}
elseif decided then
  return {'duplicate', string.match(decided, '^duplicate:(.*)$') or ''}
end
local sale = sale_terms()
if not sale then
  return {'unknown_sku'}
end
if (sale[6] or '0') ~= ARGV[7] then
  return {'other_sale'}
end
local record = redis.call('GET', KEYS[8])
local first = record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):')
if first == order_id then
  -- Its record is this order's own: adopted before (the decision was lost).
  redis.call('HSET', KEYS[7], order_id, 'adopted')
  return {'adopted'}
end
if redis.call('HEXISTS', KEYS[3], order_id) == 1 then
  return {'id_taken'}
end
if first then
  local closed = redis.call('HGET', KEYS[5], first)
  -- An order cancelled unconfirmed frees its key (as in reserve.lua).
  if not (closed and string.find(closed, '^unconfirmed:')) then
    -- Unacknowledged and still reserved, it may yet be cancelled as
    -- unconfirmed, freeing the key: wait. Acknowledged, or settled some
    -- other way (paid, cancelled by its buyer), it is the key's order.
    if string.sub(record, 1, 1) ~= 'A' and redis.call('HEXISTS', KEYS[3], first) == 1 then
      return {'wait'}
    end
    redis.call('HSET', KEYS[7], order_id, 'duplicate:' .. first)
    return {'duplicate', first}
  end
end

local acknowledged = ARGV[10] == '1'
redis.call('HINCRBY', KEYS[2], user, qty)
move_units('adopt', qty)
local order = {id = order_id, user = user, qty = qty, amount = ARGV[4], created = ARGV[5], pay_by = ARGV[6],
  generation = ARGV[7], key = ARGV[8]}
local deadline = acknowledged and ARGV[6] or (now_ms() + tonumber(ARGV[11]))
record_placed(order, acknowledged and 'A' or 'R', deadline, KEYS[8], KEYS[6], ARGV[9])
redis.call('HSET', KEYS[7], order_id, 'adopted')
return {'adopted'}
