-- The unit ledger: the one place a sale's units move between `stock`,
-- `reserved` and `sold`, or into and out of its `total`, all four fields
-- of sale:{sku}, KEYS[1] of every script the store loads this in front of.
-- Every move keeps
--
--     stock + reserved + sold = total
--
-- and is checked to here, before anything is written: a move whose changes
-- do not balance is refused with an error. Whether a move may be made
-- (enough stock, the buyer's limit, the sale's window) is the caller's to
-- decide.
--
-- The sale's deduction strategy, fixed when it is loaded (load_sale.lua),
-- decides which move an order makes; the scripts only say what happened
-- to the order (placed, ended unpaid, paid), here:
--   at order (`open_cap_pct` 0 or absent): a placed order takes its units
--     into `reserved` until it is paid (sold) or ends (released);
--   at payment (`open_cap_pct` above 0): a placed order takes no unit; it
--     counts in `open` (units of orders awaiting payment), which may reach
--     `open_cap_pct` % of the stock, and its payment buys units from stock
--     while any are left. A payment that finds too few is refunded; stock
--     never goes below zero.

-- What each move adds to each count, per unit.
local MOVES = {
  -- An order reserves units for sale.
  take = {stock = -1, reserved = 1},
  -- A reservation ends unpaid (cancelled, timed out, released).
  release = {reserved = -1, stock = 1},
  -- A reservation is paid.
  sell = {reserved = -1, sold = 1},
  -- An order of a sale deducting at payment is paid.
  buy = {stock = -1, sold = 1},
  -- A paid order's units come back on sale.
  restock = {sold = -1, stock = 1},
  -- A paid order's units leave the sale (it has ended).
  unsell = {sold = -1, total = -1},
  -- The operator adds units for sale (negative: removes some).
  add = {stock = 1, total = 1},
}

local COUNTS = {'stock', 'reserved', 'sold', 'total'}

-- Where the ledger says a sale's stock went up (the message is the sale's
-- key, KEYS[1]): a gateway that answers a sold-out SKU's retries from a
-- snapshot of its used idempotency keys drops the snapshot, since units on
-- sale again may be reserved by keys the snapshot does not hold. Said once
-- per script call (every script moves one sale's units, and no snapshot is
-- read before the call ends), however many orders it moves.
local UNITS_BACK = 'units_back'
local units_back_said = false

local function say_units_back()
  if not units_back_said then
    redis.call('PUBLISH', UNITS_BACK, KEYS[1])
    units_back_said = true
  end
end

local function balanced(stock, reserved, sold, total)
  return stock + reserved + sold == total
end

-- Makes `move` of `units` units; returns the stock after.
local function move_units(move, units)
  local per_unit = MOVES[move]
  if not per_unit then
    error('unit ledger: no move named ' .. tostring(move))
  end
  if not balanced(per_unit.stock or 0, per_unit.reserved or 0, per_unit.sold or 0, per_unit.total or 0) then
    error('unit ledger: move ' .. move .. ' does not keep stock + reserved + sold = total')
  end
  if (per_unit.stock or 0) * units > 0 then
    say_units_back()
  end
  local stock
  for _, count in ipairs(COUNTS) do
    local by = (per_unit[count] or 0) * units
    if by ~= 0 then
      local after = redis.call('HINCRBY', KEYS[1], count, by)
      if count == 'stock' then
        stock = after
      end
    end
  end
  return stock or tonumber(redis.call('HGET', KEYS[1], 'stock'))
end

-- Sets all four counts of a sale being loaded or repaired.
local function set_units(stock, reserved, sold, total)
  if not balanced(stock, reserved, sold, total) then
    error('unit ledger: ' .. stock .. ' + ' .. reserved .. ' + ' .. sold .. ' is not ' .. total)
  end
  redis.call('HSET', KEYS[1], 'stock', stock, 'reserved', reserved, 'sold', sold, 'total', total)
  say_units_back()
end

-- The sale's open-order cap, in % of its stock; 0 when it deducts at order.
-- Read once per script call: no script changes it.
local cap_pct

local function open_cap_pct()
  if not cap_pct then
    cap_pct = tonumber(redis.call('HGET', KEYS[1], 'open_cap_pct') or '0')
  end
  return cap_pct
end

-- Why an order of `qty` units may not be placed with `stock` left:
-- {"sold_out", stock}, {"capped", stock, open} (deducting at payment,
-- orders awaiting payment already count for all the cap allows), or nil.
local function placement_refusal(stock, qty)
  if stock < qty then
    return {'sold_out', tostring(stock)}
  end
  local cap = open_cap_pct()
  if cap > 0 then
    local open = tonumber(redis.call('HGET', KEYS[1], 'open') or '0')
    if (open + qty) * 100 > stock * cap then
      return {'capped', tostring(stock), tostring(open)}
    end
  end
  return nil
end

-- An order of `qty` units is placed.
local function place_units(qty)
  if open_cap_pct() > 0 then
    redis.call('HINCRBY', KEYS[1], 'open', qty)
  else
    move_units('take', qty)
  end
end

-- An order of `qty` units ends unpaid (cancelled, timed out, released);
-- returns the stock after.
local function unplace_units(qty)
  if open_cap_pct() > 0 then
    redis.call('HINCRBY', KEYS[1], 'open', -qty)
    return tonumber(redis.call('HGET', KEYS[1], 'stock'))
  end
  return move_units('release', qty)
end

-- An order of `qty` units is paid: true when its units are sold; false
-- when the sale deducts at payment and fewer are left (the order ends
-- unpaid and the payment is the caller's to refund).
local function pay_units(qty)
  if open_cap_pct() == 0 then
    move_units('sell', qty)
    return true
  end
  redis.call('HINCRBY', KEYS[1], 'open', -qty)
  if tonumber(redis.call('HGET', KEYS[1], 'stock')) < qty then
    return false
  end
  move_units('buy', qty)
  return true
end
