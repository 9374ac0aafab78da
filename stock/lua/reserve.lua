-- reserve.lua: take units of one SKU for one or more orders, atomically,
-- one order after the other in the order given (the gateway groups the
-- requests that arrive together for one SKU into one call).
--
-- Does, per order: idempotency check, SKU exists, sale window open, stock >= qty, per-user
-- limit, then decrements stock, counts the user's units, records the
-- reservation and stores the idempotency record.
-- Every key shares the SKU's hash tag, so the script runs on Redis Cluster.
--
-- The reservation's deadline starts as its confirm deadline (Redis TIME +
-- the confirm window): until the broker acknowledges the OrderCreated event
-- (acknowledge.lua moves it to the payment deadline) the order may never
-- reach anyone, so it must not hold units for the whole payment window.
-- Past it the sweeper cancels the order as "unconfirmed" — and a retry of
-- its key then places a fresh order (the client never got a 202).
--
-- KEYS[1] sale:{sku}        hash: stock, reserved, sold, total, per_user_limit, price_cents,
--                           starts_ms, ends_ms (0: open end)
-- KEYS[2] buyers:{sku}      hash: user id -> units reserved or bought
-- KEYS[3] resv:{sku}        hash: order id -> reservation (see lib/reservation.lua)
-- KEYS[4] deadlines:{sku}   zset: order id scored by its confirm, then payment, deadline (ms)
-- KEYS[5] closed:{sku}      hash: order id -> "<reason>:<reservation>" (see cancel.lua)
-- KEYS[6] used_keys:{sku}  set: every idempotency key that reserved, kept as long as
--                           the newest record (see used_keys.lua)
-- KEYS[7] idem:{sku}:<key>  string: the idempotency record (below); order i's is KEYS[6 + i]
-- ARGV per order i, at 10 * (i - 1):
--   1 user id   2 qty   3 order id   4 now (Unix ms)   5 payment deadline (Unix ms)
--   6 idempotency record TTL (s)   7 idempotency key   8 confirm window (ms)
--   9 in-flight window (ms): how long the request that reserved may still
--     be waiting for the broker
--  10 the warehouses serving the buyer, best first, comma-separated ("*":
--     any of the sale's); only a sale split over warehouses reads it
--  11 the storefront channel ("" none)   12 the most units of the sale that
--     channel may hold or have bought (0: no cap; see lib/reservation.lua)
--
-- Idempotency record: "R:<user>:<qty>:<order id>:<amount cents>:<pay by ms>:<created ms>:<sale generation>",
-- then ":<warehouse>" for a sale split over warehouses (as its reservation).
-- The sale generation is the sale's `loaded_ms`: the orders carry it, so
-- one sale's orders are told from an earlier sale's of the same SKU.
-- "R" means reserved; the gateway rewrites it to "A" once the broker has
-- acknowledged the OrderCreated event.
--
-- Returns one reply per order, each one of
--   {"ok", amount_cents, stock_left, sale generation, first, warehouse}
--                                     first is "1" when the sale held no other reservation:
--                                     the caller then adds it to the sweeper's active sales;
--                                     warehouse is "" for a sale not split over warehouses
--   {"dup", record}                   the key was seen before (an unacknowledged
--                                     one is past its in-flight window: re-send it)
--   {"in_progress", record}           the key's first request may still be in flight
--   {"id_taken"}                      the order id is in use (mint another)
--   {"unknown_sku"}
--   {"not_started", starts_ms, ends_ms} / {"ended", starts_ms, ends_ms}   outside the sale window
--   {"sold_out", stock_left}          stock_left < qty (0 means sold out)
--   {"capped", stock_left, open}      deducting at payment: open orders at the cap
--   {"region_sold_out", stock_left}   no warehouse serving the buyer has the units
--   {"no_warehouse"}                  no warehouse of the sale serves the buyer
--   {"limit", units_already_held}
--   {"channel_share", units_the_channel_holds}   the channel's share is taken
--
-- Example: EVALSHA <sha> 7 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv} closed:{tv} used_keys:{tv} idem:{tv}:k1
--          42 1 81234 1790000000000 1790000900000 86400 k1 30000 7000 * "" 0
--   -> {{"ok", "19900", "99", "1789999000000", "1", ""}}

local orders = #KEYS - 6
if orders < 1 or #ARGV ~= 12 * orders then
  return redis.error_reply('reserve.lua takes 6 keys, then one key and 12 arguments per order')
end

local function reserve(idempotency, arg)
  local confirm_ms, in_flight_ms = tonumber(ARGV[arg + 8]), tonumber(ARGV[arg + 9])

  local record = redis.call('GET', idempotency)
  if record then
    local first_order = string.match(record, '^R:[^:]+:[^:]+:([^:]+):')
    if not first_order then
      return {'dup', record}
    end
    -- An unacknowledged order cancelled at its confirm deadline frees its key.
    local closed = redis.call('HGET', KEYS[5], first_order)
    if not (closed and string.find(closed, '^unconfirmed:')) then
      -- Unacknowledged, and its request may still be waiting for the broker.
      if still_in_flight(first_order, confirm_ms, in_flight_ms) then
        return {'in_progress', record}
      end
      return {'dup', record}
    end
  end

  local sale = sale_terms()
  if not sale then
    return {'unknown_sku'}
  end

  local user, qty, order_id, now, pay_by = ARGV[arg + 1], tonumber(ARGV[arg + 2]), ARGV[arg + 3], ARGV[arg + 4], ARGV[arg + 5]
  if redis.call('HEXISTS', KEYS[3], order_id) == 1 then
    return {'id_taken'}
  end
  local stock, limit, price = tonumber(sale[1]), tonumber(sale[2]), tonumber(sale[3])
  local outside = window_refusal(sale, now)
  if outside then
    return outside
  end
  local refused, warehouse = units_refusal(stock, user, qty, limit, ARGV[arg + 10])
  if refused then
    return refused
  end
  local channel, cap = ARGV[arg + 11], tonumber(ARGV[arg + 12])
  refused = channel_refusal(channel, cap, qty)
  if refused then
    return refused
  end

  local amount = price * qty
  local first = redis.call('HLEN', KEYS[3]) == 0
  local stock_left = take_units(user, qty, warehouse)
  claim_channel_units(channel, cap, order_id, qty)
  local generation = sale[6] or '0'
  local order = {id = order_id, user = user, qty = qty, amount = amount, created = now, pay_by = pay_by,
    generation = generation, key = ARGV[arg + 7], warehouse = warehouse}
  record_placed(order, 'R', now_ms() + confirm_ms, idempotency, KEYS[6], ARGV[arg + 6])
  return {'ok', tostring(amount), tostring(stock_left), generation, first and '1' or '0', warehouse or ''}
end

local replies = {}
for i = 1, orders do
  replies[i] = reserve(KEYS[6 + i], 12 * (i - 1))
end
return replies
