-- adopt.lua: hand Redis an order the database fallback took while Redis
-- could not be reached (an ordinary sale's order, from the database's
-- share of its units). From here on the order lives in Redis as if
-- reserve.lua had placed it: its reservation, deadline, idempotency record
-- and the buyer's count; its units join the sale's total already reserved
-- (the ledger's `adopt` move), so the sale's counts stay balanced and no
-- unit is counted by both stores. An order is adopted once: adopted:{sku}
-- keeps every adopted order id.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] used_keys:{sku}  KEYS[7] adopted:{sku}  KEYS[8] idem:{sku}:<key>
-- ARGV[1] order id  ARGV[2] user id  ARGV[3] qty  ARGV[4] amount cents  ARGV[5] created (Unix ms)
-- ARGV[6] payment deadline (Unix ms)  ARGV[7] sale generation  ARGV[8] idempotency key
-- ARGV[9] idempotency record TTL (s)  ARGV[10] "1" when the broker acknowledged its
--         OrderCreated (accepted), "0" when not yet (its deadline is then a confirm
--         deadline, ARGV[11] ms from now, as reserve.lua gives)
--
-- Returns {"adopted"} (now or before), {"conflict", order id} when the key
-- placed another order in Redis (a retry that reached Redis): the
-- database's order is then the caller's to cancel, or {"unknown_sku"}.

if #KEYS ~= 8 or #ARGV ~= 11 then
  return redis.error_reply('adopt.lua takes 8 keys and 11 arguments')
end
local order_id, user, qty = ARGV[1], ARGV[2], tonumber(ARGV[3])

if redis.call('SISMEMBER', KEYS[7], order_id) == 1 then
  return {'adopted'}
end
if not sale_terms() then
  return {'unknown_sku'}
end
local record = redis.call('GET', KEYS[8])
if record then
  local first = string.match(record, '^%a:[^:]+:[^:]+:([^:]+):')
  local closed = first and redis.call('HGET', KEYS[5], first)
  -- An order cancelled unconfirmed frees its key (as in reserve.lua).
  if first ~= order_id and not (closed and string.find(closed, '^unconfirmed:')) then
    return {'conflict', first or ''}
  end
end

local acknowledged = ARGV[10] == '1'
redis.call('HINCRBY', KEYS[2], user, qty)
move_units('adopt', qty)
local reservation = {user, qty, ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]}
redis.call('HSET', KEYS[3], order_id, table.concat(reservation, ':'))
redis.call('ZADD', KEYS[4], acknowledged and ARGV[6] or (now_ms() + tonumber(ARGV[11])), order_id)
local state = acknowledged and 'A' or 'R'
local idempotency = {state, user, qty, order_id, ARGV[4], ARGV[6], ARGV[5], ARGV[7]}
redis.call('SET', KEYS[8], table.concat(idempotency, ':'), 'EX', ARGV[9])
redis.call('SADD', KEYS[6], ARGV[8])
local keep = tonumber(ARGV[9])
if redis.call('TTL', KEYS[6]) < keep then
  redis.call('EXPIRE', KEYS[6], 2 * keep)
end
redis.call('SADD', KEYS[7], order_id)
return {'adopted'}
