-- tcc_try.lua: the Try of a cart checkout for one SKU, atomically: reserve
-- the units of every item of the cart that is of this SKU (a cart's items
-- are its lines split into packages; one SKU may lie in several).
--
-- A cart spans SKUs, and each SKU has its own cluster slot, so no one
-- script can take a whole cart: the gateway calls this once per SKU, then
-- either the order is accepted (acknowledge.lua moves the deadlines on) or
-- it calls tcc_cancel.lua for every SKU it tried. The records per (item,
-- SKU) are the reservation (resv:{sku}) and, once cancelled, closed:{sku};
-- they make the three TCC anomalies safe:
-- - a repeated Try (a retry, a re-drive on another gateway) finds its
--   items held and changes nothing;
-- - a Try arriving after its Cancel (a "hanging" Try) finds the
--   cancellation and is refused, so nothing is held for a dead order;
-- - an empty Cancel (no Try before it) leaves the record a Try then finds.
--
-- A sale split over warehouses (regional stock) holds every item of the
-- SKU in the one warehouse the checkout chose for the buyer's region
-- (ARGV[6]): the cart is split into packages by it before the Try, so the
-- Try takes the units there or is refused; it does not pick another. Each item is a reservation like a single order's, so the sweeper cancels
-- it at its confirm deadline ("unconfirmed") if the order was never
-- accepted (a gateway killed midway), and confirm.lua sells it on payment.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] closed:{sku}  KEYS[6] payments:{sku}                   (as in reserve.lua, confirm.lua)
-- ARGV[1] user id   ARGV[2] unit price the cart was priced at (cents)   ARGV[3] now (Unix ms)
-- ARGV[4] payment deadline (Unix ms)   ARGV[5] confirm window (ms)
-- ARGV[6] the warehouse the checkout chose, for a sale split over warehouses ("" else)
-- ARGV[7] the storefront channel ("" none)   ARGV[8] its cap on the sale's units (0: none),
--         as in reserve.lua
-- then per item i, at 6 + 4 * (i - 1): item order id, qty, amount (cents), its key
--   (recorded as the reservation's idempotency key: "cart.<parent id>.<package>")
--
-- Returns one of
--   {"held", sale generation, first}      every item holds its units (first: "1" when the
--                                         sale held no other reservation before)
--   {"cancelled", item id}                an item was cancelled (or paid for unheld) first:
--                                         refused, nothing taken
--   {"unknown_sku"}
--   {"not_started", starts_ms, ends_ms} / {"ended", starts_ms, ends_ms}
--   {"price_changed", price_cents}        the sale's price is no longer the cart's
--   {"sold_out", stock_left} / {"capped", stock_left, open}
--   {"regional"}                          the sale is split over warehouses and the
--                                         checkout chose none (it was priced before)
--   {"no_warehouse"} / {"region_sold_out", stock_left}   the warehouse chosen is closed,
--                                         not the sale's, or short of units
--   {"limit", units_already_held}
--   {"channel_share", units_the_channel_holds}
--
-- Example: EVALSHA <sha> 6 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} closed:{tv} payments:{tv}
--          42 19900 1790000000000 1790000900000 30000 "" "" 0 81235 2 37810 cart.81234.1
--   -> {"held", "1789999000000", "1"}

local items = (#ARGV - 8) / 4
if #KEYS ~= 6 or items < 1 or items ~= math.floor(items) then
  return redis.error_reply('tcc_try.lua takes 6 keys, 8 arguments, then 4 per item')
end

local user, price, now, pay_by, confirm_ms = ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4], tonumber(ARGV[5])
local missing, wanted = {}, 0
for i = 1, items do
  local item = ARGV[8 + 4 * (i - 1) + 1]
  -- A payment recorded to refund (it came before the item was held) ends
  -- the item as surely as a cancellation.
  local payment = redis.call('HGET', KEYS[6], item)
  if redis.call('HEXISTS', KEYS[5], item) == 1 or (payment and not string.find(payment, '^paid:')) then
    return {'cancelled', item}
  end
  if redis.call('HEXISTS', KEYS[3], item) == 0 and not payment then
    missing[#missing + 1] = 8 + 4 * (i - 1)
    wanted = wanted + tonumber(ARGV[8 + 4 * (i - 1) + 2])
  end
end

local sale = sale_terms()
if not sale then
  return {'unknown_sku'}
end
local generation = sale[6] or '0'
if #missing == 0 then
  return {'held', generation, '0'}
end

local stock, limit = tonumber(sale[1]), tonumber(sale[2])
local outside = window_refusal(sale, now)
if outside then
  return outside
end
if tonumber(sale[3]) ~= price then
  return {'price_changed', sale[3]}
end
local chosen = ARGV[6]
if chosen == '' and redis.call('HEXISTS', KEYS[1], 'warehouses') == 1 then
  return {'regional'}
end
local refused, warehouse = units_refusal(stock, user, wanted, limit, chosen == '' and '*' or chosen)
if refused then
  return refused
end
local channel, cap = ARGV[7], tonumber(ARGV[8])
refused = channel_refusal(channel, cap, wanted)
if refused then
  return refused
end

local first = redis.call('HLEN', KEYS[3]) == 0
local deadline = now_ms() + confirm_ms
take_units(user, wanted, warehouse)
for _, at in ipairs(missing) do
  local item, qty, amount, key = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4]
  local reservation = {user, qty, amount, now, pay_by, generation, key}
  if warehouse then
    reservation[#reservation + 1] = warehouse
  end
  redis.call('HSET', KEYS[3], item, table.concat(reservation, ':'))
  redis.call('ZADD', KEYS[4], deadline, item)
  claim_channel_units(channel, cap, item, tonumber(qty))
end
return {'held', generation, first and '1' or '0'}
