-- Shared by the scripts that make or end a reservation; the store loads it
-- in front of each of them, after the unit ledger (lib/units.lua). Those scripts pass these keys first, in this order:
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
--
-- A reservation (a field of resv:{sku}, keyed by order id) reads
-- "<user>:<qty>:<amount cents>:<created ms>:<pay by ms>:<sale generation>:<idempotency key>",
-- then ":<warehouse>" for a sale split over warehouses.

-- Redis's clock, Unix ms: the one clock every gateway and sweeper shares.
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

-- Whether the request that reserved an unacknowledged order may still be
-- waiting for the broker: the order was reserved (its confirm deadline
-- less the confirm window) less than the in-flight window ago. nil when
-- the order has no deadline.
local function still_in_flight(order_id, confirm_ms, in_flight_ms)
  local confirm_by = redis.call('ZSCORE', KEYS[4], order_id)
  if not confirm_by then
    return nil
  end
  return now_ms() - (tonumber(confirm_by) - confirm_ms) < in_flight_ms
end

local function reservation_user(value)
  return string.match(value, '^(%d+):')
end

local function reservation_qty(value)
  return tonumber(string.match(value, '^%d+:(%d+):'))
end

local function reservation_amount(value)
  return string.match(value, '^%d+:%d+:(%-?%d+):')
end

-- The warehouse its units are in; nil for a sale not split over warehouses.
local function reservation_warehouse(value)
  return string.match(value, '^[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:[^:]*:([^:]+)$')
end

local function reservation_pay_by(value)
  return tonumber(string.match(value, '^%d+:%d+:%-?%d+:%d+:(%d+):'))
end

-- The sale's terms: stock, per_user_limit, price_cents, starts_ms,
-- ends_ms, loaded_ms (the sale's generation), in that order; nil for a SKU
-- with no sale loaded.
local function sale_terms()
  local sale = redis.call('HMGET', KEYS[1], 'stock', 'per_user_limit', 'price_cents', 'starts_ms', 'ends_ms', 'loaded_ms')
  if sale[1] then
    return sale
  end
  return nil
end

-- Why `user`'s order holds no reservation, as the buyer's scripts answer
-- it: {"not_pending", "cancelled"} (closed first: an order cancelled and
-- then paid for, its payment refunded, or cancelled as sold out by its
-- payment, is cancelled), {"not_pending", "paid"}, or {"not_found"} (no
-- such order of this user in the sale).
local function ended_reply(order_id, user, payments_key, closed_key)
  local closed = redis.call('HGET', closed_key, order_id)
  if closed and reservation_user(string.match(closed, '^[%a_]+:(.*)$')) == user then
    return {'not_pending', 'cancelled'}
  end
  local payment = redis.call('HGET', payments_key, order_id)
  if payment and reservation_user(string.match(payment, '^%a+:[^:]+:(.*)$')) == user then
    return {'not_pending', 'paid'}
  end
  return {'not_found'}
end

-- Why a sale (its terms, starts_ms and ends_ms at 4 and 5) takes no
-- reservation at `now` (Unix ms): the reply to give, or nil while it is open.
local function window_refusal(sale, now)
  local starts, ends = tonumber(sale[4] or '0'), tonumber(sale[5] or '0')
  if starts > 0 and tonumber(now) < starts then
    return {'not_started', tostring(starts), tostring(ends)}
  end
  if ends > 0 and tonumber(now) >= ends then
    return {'ended', tostring(starts), tostring(ends)}
  end
  return nil
end

-- Where `qty` units for `user` are placed, from the `ranked` warehouses
-- (see the ledger's placement), and the reply refusing them: too few in
-- `stock`, or past the per-user `limit`; nil if they may be ordered.
local function units_refusal(stock, user, qty, limit, ranked)
  local warehouse, refused = placement(stock, qty, ranked)
  if refused then
    return refused
  end
  local held = tonumber(redis.call('HGET', KEYS[2], user) or '0')
  if held + qty > limit then
    return {'limit', tostring(held)}
  end
  return nil, warehouse
end

-- Places an order of `qty` units (the ledger takes them, or counts them
-- open) and adds them to the buyer's count; the reservation's records are
-- the caller's to write. Returns the sale's stock after.
local function take_units(user, qty, warehouse)
  redis.call('HINCRBY', KEYS[2], user, qty)
  return place_units(qty, warehouse)
end

-- Records a placed order (`order`: id, user, qty, amount, created, pay_by,
-- generation, key, warehouse (nil for a sale in one pool)): its
-- reservation and `deadline` (ms), its idempotency record in `record_key`
-- for `ttl` seconds, "<state>:<user>:<qty>:<order id>:<amount cents>:<pay by
-- ms>:<created ms>:<sale generation>" then ":<warehouse>" as the
-- reservation, and its key in the set `used_keys` (used_keys.lua), which
-- outlives every record in it: at least a record's TTL left after each
-- add, renewed to twice that about once per TTL.
local function record_placed(order, state, deadline, record_key, used_keys, ttl)
  local reservation = {order.user, order.qty, order.amount, order.created, order.pay_by, order.generation, order.key}
  local record = {state, order.user, order.qty, order.id, order.amount, order.pay_by, order.created, order.generation}
  if order.warehouse then
    reservation[#reservation + 1] = order.warehouse
    record[#record + 1] = order.warehouse
  end
  redis.call('HSET', KEYS[3], order.id, table.concat(reservation, ':'))
  redis.call('ZADD', KEYS[4], deadline, order.id)
  redis.call('SET', record_key, table.concat(record, ':'), 'EX', ttl)
  redis.call('SADD', used_keys, order.key)
  local keep = tonumber(ttl)
  if redis.call('TTL', used_keys) < keep then
    redis.call('EXPIRE', used_keys, 2 * keep)
  end
end

-- Forgets a reservation and its deadline; its units are the caller's to
-- move (released or paid).
local function end_reservation(order_id)
  redis.call('HDEL', KEYS[3], order_id)
  redis.call('ZREM', KEYS[4], order_id)
end

-- A storefront channel's share of the sale: a channel with a cap (a
-- partner gets at most `cap` units) counts its units held or bought in
-- buyers:{sku} under "ch:<channel>", and each of its orders names it there
-- under "cho:<order id>", so the units come back to the share when the
-- order's come back to the sale. Field names never clash with a user id.
-- The reply refusing `qty` more units to `channel` (nil: no cap, or room).
local function channel_refusal(channel, cap, qty)
  if channel == '' or cap <= 0 then
    return nil
  end
  local held = tonumber(redis.call('HGET', KEYS[2], 'ch:' .. channel) or '0')
  if held + qty > cap then
    return {'channel_share', tostring(held)}
  end
  return nil
end

-- Counts order `order_id`'s `qty` units against `channel`'s share, if capped.
local function claim_channel_units(channel, cap, order_id, qty)
  if channel == '' or cap <= 0 then
    return
  end
  redis.call('HINCRBY', KEYS[2], 'ch:' .. channel, qty)
  redis.call('HSET', KEYS[2], 'cho:' .. order_id, channel)
end

-- Gives order `order_id`'s `qty` units back to its channel's share, if it counted in one.
local function unclaim_channel_units(order_id, qty)
  local channel = redis.call('HGET', KEYS[2], 'cho:' .. order_id)
  if not channel then
    return
  end
  redis.call('HDEL', KEYS[2], 'cho:' .. order_id)
  if redis.call('HINCRBY', KEYS[2], 'ch:' .. channel, -qty) <= 0 then
    redis.call('HDEL', KEYS[2], 'ch:' .. channel)
  end
end

-- Gives a reservation's units back to the buyer's per-user allowance, and
-- to its channel's share.
local function unclaim_buyer_units(order_id, value)
  local user = reservation_user(value)
  if redis.call('HINCRBY', KEYS[2], user, -reservation_qty(value)) <= 0 then
    redis.call('HDEL', KEYS[2], user)
  end
  unclaim_channel_units(order_id, reservation_qty(value))
end

-- Ends a reservation unpaid: its units go back to the sale (see the
-- ledger's unplace_units) and to the buyer's per-user allowance. Returns
-- the stock after.
local function release_units(order_id, value)
  end_reservation(order_id)
  unclaim_buyer_units(order_id, value)
  return unplace_units(reservation_qty(value), reservation_warehouse(value))
end
