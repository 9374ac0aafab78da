-- The unit ledger: the one place a sale's units move between `stock`,
-- `reserved` and `sold`, or into and out of its `total`, all four fields
-- of sale:{sku}, KEYS[1] of every script the store loads this in front of.
-- Every move keeps
--
--     stock + reserved + sold = total
--
-- for the sale and, for a sale split over warehouses (regional stock), for
-- the warehouse the order's units are in, whose counts are fields
-- `wh:<id>:<count>` of the same hash (`warehouses` lists the ids, in the
-- sale's order; the sale's counts are their sums). Each move is checked to
-- balance here, before anything is written: a move whose changes
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
  -- An order the database fallback took while Redis was down is handed
  -- to Redis (adopt.lua): its units, taken from the database's share of
  -- the sale, join the sale already reserved.
  adopt = {reserved = 1, total = 1},
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

-- A warehouse's field for `count` (stock, reserved, sold, total, open, closed).
local function warehouse_field(warehouse, count)
  return 'wh:' .. warehouse .. ':' .. count
end

-- Makes `move` of `units` units, in `warehouse` too when the sale is split
-- over warehouses; returns the sale's stock after.
local function move_units(move, units, warehouse)
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
      if warehouse then
        redis.call('HINCRBY', KEYS[1], warehouse_field(warehouse, count), by)
      end
    end
  end
  return stock or tonumber(redis.call('HGET', KEYS[1], 'stock'))
end

-- Sets all four counts of a sale (or, named, of one of its warehouses)
-- being loaded or repaired.
local function set_units(stock, reserved, sold, total, warehouse)
  if not balanced(stock, reserved, sold, total) then
    error('unit ledger: ' .. stock .. ' + ' .. reserved .. ' + ' .. sold .. ' is not ' .. total)
  end
  local field = function(count)
    return warehouse and warehouse_field(warehouse, count) or count
  end
  redis.call('HSET', KEYS[1], field('stock'), stock, field('reserved'), reserved, field('sold'), sold,
    field('total'), total)
  say_units_back()
end

-- Moves `units` (a positive whole number) for sale from one warehouse to
-- another; the sale's counts and total stay as they are. False when `from`
-- has fewer for sale.
local function move_between_warehouses(from, to, units)
  if not units or units < 1 or units ~= math.floor(units) then
    error('unit ledger: a move between warehouses takes a positive whole number of units')
  end
  if tonumber(redis.call('HGET', KEYS[1], warehouse_field(from, 'stock')) or '0') < units then
    return false
  end
  for _, count in ipairs({'stock', 'total'}) do
    redis.call('HINCRBY', KEYS[1], warehouse_field(from, count), -units)
    redis.call('HINCRBY', KEYS[1], warehouse_field(to, count), units)
  end
  say_units_back()
  return true
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

-- A count of the sale, or of `warehouse` when named.
local function count_of(count, warehouse)
  local field = warehouse and warehouse_field(warehouse, count) or count
  return tonumber(redis.call('HGET', KEYS[1], field) or '0')
end

-- Adds `by` to the units of open orders (deducting at payment), of the
-- sale and of `warehouse` when named.
local function add_open(by, warehouse)
  redis.call('HINCRBY', KEYS[1], 'open', by)
  if warehouse then
    redis.call('HINCRBY', KEYS[1], warehouse_field(warehouse, 'open'), by)
  end
end

-- Why an order of `qty` units may not be placed in the sale (or in one of
-- its warehouses) with `stock` left there: {"sold_out", stock},
-- {"capped", stock, open} (deducting at payment, orders awaiting payment
-- already count for all the cap allows), or nil.
local function placement_refusal(stock, qty, warehouse)
  if stock < qty then
    return {'sold_out', tostring(stock)}
  end
  local cap = open_cap_pct()
  if cap > 0 then
    local open = count_of('open', warehouse)
    if (open + qty) * 100 > stock * cap then
      return {'capped', tostring(stock), tostring(open)}
    end
  end
  return nil
end

-- Splits "a,b,c" into its names.
local function names(list)
  local found = {}
  for name in string.gmatch(list, '[^,]+') do
    found[#found + 1] = name
  end
  return found
end

-- Where an order of `qty` units is placed, for a sale with `stock` left:
-- returns the warehouse (nil for a sale not split over warehouses) and
-- the refusal, if any. A regional sale's order takes the first of the
-- `ranked` warehouses (comma-separated, best first; "*": the sale's own,
-- in its order) that is the sale's, open to new orders and able to take
-- it (see placement_refusal). The sale must be able to take it too (a
-- sold-out sale is sold out for every region). None serving:
-- {"no_warehouse"}; none able: {"region_sold_out", stock}.
local function placement(stock, qty, ranked)
  local refused = placement_refusal(stock, qty)
  local own = redis.call('HGET', KEYS[1], 'warehouses')
  if refused or not own then
    return nil, refused
  end
  local serving, capped = 0, nil
  for _, warehouse in ipairs(names(ranked == '*' and own or ranked)) do
    local total = redis.call('HGET', KEYS[1], warehouse_field(warehouse, 'total'))
    if total and redis.call('HGET', KEYS[1], warehouse_field(warehouse, 'closed')) ~= '1' then
      serving = serving + 1
      local refused = placement_refusal(count_of('stock', warehouse), qty, warehouse)
      if not refused then
        return warehouse, nil
      end
      if refused[1] == 'capped' then
        capped = refused
      end
    end
  end
  if serving == 0 then
    return nil, {'no_warehouse'}
  end
  return nil, capped or {'region_sold_out', tostring(stock)}
end

-- An order of `qty` units is placed (in `warehouse`, regional stock);
-- returns the sale's stock after.
local function place_units(qty, warehouse)
  if open_cap_pct() > 0 then
    add_open(qty, warehouse)
    return count_of('stock')
  end
  return move_units('take', qty, warehouse)
end

-- An order of `qty` units ends unpaid (cancelled, timed out, released);
-- returns the sale's stock after.
local function unplace_units(qty, warehouse)
  if open_cap_pct() > 0 then
    add_open(-qty, warehouse)
    return count_of('stock')
  end
  return move_units('release', qty, warehouse)
end

-- An order of `qty` units is paid: true when its units are sold; false
-- when the sale deducts at payment and fewer are left (in its warehouse,
-- regional stock): the order ends unpaid and the payment is the caller's
-- to refund.
local function pay_units(qty, warehouse)
  if open_cap_pct() == 0 then
    move_units('sell', qty, warehouse)
    return true
  end
  add_open(-qty, warehouse)
  if count_of('stock') < qty or (warehouse and count_of('stock', warehouse) < qty) then
    return false
  end
  move_units('buy', qty, warehouse)
  return true
end

-- An order of `qty` units awaiting payment moves from one warehouse to
-- another (its buyer changed the delivery region): its reserved units, or
-- its open count, move with it. The sale's counts stay as they are.
local function rehome_units(qty, from, to)
  if not qty or qty < 1 or qty ~= math.floor(qty) or from == to
    or not redis.call('HGET', KEYS[1], warehouse_field(to, 'total')) then
    error('unit ledger: an order moves a positive whole number of units to another warehouse of its sale')
  end
  local held = open_cap_pct() > 0 and 'open' or 'reserved'
  redis.call('HINCRBY', KEYS[1], warehouse_field(from, held), -qty)
  redis.call('HINCRBY', KEYS[1], warehouse_field(to, held), qty)
  if held == 'reserved' then
    redis.call('HINCRBY', KEYS[1], warehouse_field(from, 'stock'), qty)
    redis.call('HINCRBY', KEYS[1], warehouse_field(to, 'stock'), -qty)
  end
end
