-- Shared by the scripts that end a reservation; the store loads it in front
-- of each of them. Those scripts pass these keys first, in this order:
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
--
-- A reservation (a field of resv:{sku}, keyed by order id) reads
-- "<user>:<qty>:<amount cents>:<created ms>:<pay by ms>:<sale generation>:<idempotency key>".

local function reservation_user(value)
  return string.match(value, '^(%d+):')
end

local function reservation_qty(value)
  return tonumber(string.match(value, '^%d+:(%d+):'))
end

local function reservation_amount(value)
  return string.match(value, '^%d+:%d+:(%-?%d+):')
end

local function reservation_pay_by(value)
  return tonumber(string.match(value, '^%d+:%d+:%-?%d+:%d+:(%d+):'))
end

-- Forgets a reservation and its deadline; the units are the caller's to place.
local function end_reservation(order_id, value)
  redis.call('HDEL', KEYS[3], order_id)
  redis.call('ZREM', KEYS[4], order_id)
  redis.call('HINCRBY', KEYS[1], 'reserved', -reservation_qty(value))
end

-- Ends a reservation and gives its units back to stock and to the buyer's
-- per-user allowance. Returns the stock after.
local function release_units(order_id, value)
  end_reservation(order_id, value)
  local user, qty = reservation_user(value), reservation_qty(value)
  if redis.call('HINCRBY', KEYS[2], user, -qty) <= 0 then
    redis.call('HDEL', KEYS[2], user)
  end
  return redis.call('HINCRBY', KEYS[1], 'stock', qty)
end
