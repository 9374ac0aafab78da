-- readdress.lua: the buyer changes the delivery region of an order
-- awaiting payment, atomically (seed 001's "modification" before payment).
--
-- The scheduling rules run again for the new region (ARGV[3], as the
-- gateway ranks them): the order stays in its warehouse when that comes
-- first among those serving the region and able to take it, else it moves
-- to the first that is open and has the units. Its reserved units (its
-- open count, deducting at payment) move with it; the sale's counts stay.
-- Refused when no warehouse serving the region can take it. A sale in one
-- pool has nothing to move. A payment or cancellation runs before or after
-- this, never inside it: the order is paid from, or released to, the
-- warehouse its reservation names then.
--
-- Only an acknowledged order (its deadline is its payment deadline) moves:
-- before that its OrderCreated may be sent again, with the warehouse the
-- order had. The warehouse is rewritten in the reservation and in the
-- idempotency record, so a repeat of the key answers the new one.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] payments:{sku}  KEYS[6] closed:{sku}                    (as in cancel.lua)
-- KEYS[7] idem:{sku}:<key>   the order's idempotency record (the reservation names the key)
-- ARGV[1] order id   ARGV[2] user id   ARGV[3] the warehouses serving the new region,
--         best first, comma-separated
--
-- Returns {"kept", warehouse}, {"moved", warehouse} (warehouse "" for a sale in one
-- pool), {"not_pending", "paid"|"cancelled"}, {"not_found"} (no such order of this
-- user), {"unacknowledged"}, {"no_warehouse"} or {"cart_item"} (an item of a cart
-- ships in its package, from the warehouse chosen at checkout: it does not move alone).
--
-- Example: EVALSHA <sha> 7 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} payments:{tv} closed:{tv}
--          idem:{tv}:k1 81234 42 wh2,wh1
--   -> {"moved", "wh2"}

if #KEYS ~= 7 or #ARGV ~= 3 then
  return redis.error_reply('readdress.lua takes 7 keys and 3 arguments')
end

local order_id, user = ARGV[1], ARGV[2]
local reservation = redis.call('HGET', KEYS[3], order_id)
if not reservation then
  return ended_reply(order_id, user, KEYS[5], KEYS[6])
end
if reservation_user(reservation) ~= user then
  return {'not_found'}
end
if string.find(reservation, '^[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:cart%.') then
  return {'cart_item'}
end
if tonumber(redis.call('ZSCORE', KEYS[4], order_id)) ~= reservation_pay_by(reservation) then
  return {'unacknowledged'}
end
local current = reservation_warehouse(reservation)
if not current then
  return {'kept', ''}
end

local qty = reservation_qty(reservation)
local to
for _, warehouse in ipairs(names(ARGV[3])) do
  if warehouse == current then
    to = current
    break
  end
  if redis.call('HGET', KEYS[1], warehouse_field(warehouse, 'total'))
    and redis.call('HGET', KEYS[1], warehouse_field(warehouse, 'closed')) ~= '1'
    and not placement_refusal(count_of('stock', warehouse), qty, warehouse) then
    to = warehouse
    break
  end
end
if not to then
  return {'no_warehouse'}
end
if to == current then
  return {'kept', current}
end

rehome_units(qty, current, to)
local moved = string.gsub(reservation, ':[^:]+$', ':' .. to)
redis.call('HSET', KEYS[3], order_id, moved)
local record = redis.call('GET', KEYS[7])
if record and string.match(record, '^%a:[^:]+:[^:]+:([^:]+):') == order_id
  and string.match(record, ':([^:]+)$') == current then
  redis.call('SET', KEYS[7], (string.gsub(record, ':[^:]+$', ':' .. to)), 'KEEPTTL')
end
return {'moved', to}
