-- load_sale.lua: load or replace the sale of one SKU, atomically.
--
-- Replacing a sale starts it afresh: stock, limit, price and window are set, the
-- reserved and sold counters reset, and the per-user counts and deadlines of
-- the previous sale are dropped. Its payments and closed orders are kept
-- (order ids never repeat): a late copy of a payment notification, or a
-- retry of an order cancelled as unconfirmed, is still recognised. A sale
-- is only replaced when nothing of it is still moving: no reservation
-- (an order awaiting payment), no cancellation in the outbox, no payment
-- whose event is unacknowledged. Otherwise nothing changes and the answer
-- says what is outstanding (change a live sale with update_sale.lua).
-- Idempotency records of the previous sale expire on their own TTL.
--
-- The sale hash records when it was loaded (`loaded_ms`): reconciliation
-- counts only the orders created since, not those of earlier sales of the SKU.
-- `keys_tracked` says its keys are kept in used_keys:{sku} (reserve.lua
-- adds each): a sale loaded before that was so is never answered from a
-- snapshot of them (used_keys.lua).
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] resv:{sku}  KEYS[4] deadlines:{sku}
-- KEYS[5] payments:{sku}  KEYS[6] closed:{sku}  KEYS[7] payment_events:{sku}
-- KEYS[8] outbox:{sku}
-- ARGV[1] stock   ARGV[2] per-user limit   ARGV[3] price in cents
-- ARGV[4] sale starts (Unix ms, 0: at once)   ARGV[5] sale ends (Unix ms, 0: never)
-- ARGV[6] the deduction strategy (see lib/units.lua): 0 deducts at order, above 0 at
--         payment, with orders awaiting payment capped at this % of the stock
-- ARGV[7] regional stock: "<warehouse>=<units>,..." adding up to the stock, in the
--         order buyers with no region are served; "" for a sale in one pool
-- ARGV[8] an ordinary sale's database share (see order::fallback): units kept in
--         the inventory database besides ARGV[1], Redis's share; 0 for a flash sale
--
-- Returns {"loaded", stock} or {"busy", reservations, outbox entries, unsettled payments}.
--
-- Example: EVALSHA <sha> 8 sale:{tv} buyers:{tv} resv:{tv} deadlines:{tv}
--          payments:{tv} closed:{tv} payment_events:{tv} outbox:{tv} 1000 2 19900 0 0 0 sh=600,gz=400 0
--   -> {"loaded", 1000}

if #KEYS ~= 8 or #ARGV ~= 8 then
  return redis.error_reply('load_sale.lua takes 8 keys and 8 arguments')
end

local warehouses, units, split, named = {}, {}, 0, {}
for warehouse, count in string.gmatch(ARGV[7], '([^,=]+)=(%d+)') do
  if named[warehouse] then
    return redis.error_reply('load_sale.lua: warehouse ' .. warehouse .. ' named twice')
  end
  named[warehouse] = true
  warehouses[#warehouses + 1] = warehouse
  units[#units + 1] = tonumber(count)
  split = split + tonumber(count)
end
if #warehouses > 0 and split ~= tonumber(ARGV[1]) then
  return redis.error_reply('load_sale.lua: the warehouses hold ' .. split .. ' units of ' .. ARGV[1])
end

local reservations = redis.call('HLEN', KEYS[3])
local outbox = redis.call('LLEN', KEYS[8])
local unsettled = 0
local payments = redis.call('HGETALL', KEYS[5])
for i = 1, #payments, 2 do
  local field, payment_id = payments[i], string.match(payments[i + 1], '^%a+:([^:]+):')
  local event_key = string.find(field, ':') and field or (field .. ':' .. payment_id)
  if redis.call('HEXISTS', KEYS[7], event_key) == 0 then
    unsettled = unsettled + 1
  end
end
if reservations + outbox + unsettled > 0 then
  return {'busy', reservations, outbox, unsettled}
end

redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
-- When this sale began (Redis TIME): its generation, carried by its orders.
local loaded_ms = now_ms()
set_units(tonumber(ARGV[1]), 0, 0, tonumber(ARGV[1]))
if #warehouses > 0 then
  for i, warehouse in ipairs(warehouses) do
    set_units(units[i], 0, 0, units[i], warehouse)
  end
  redis.call('HSET', KEYS[1], 'warehouses', table.concat(warehouses, ','))
end
redis.call('HSET', KEYS[1], 'per_user_limit', ARGV[2], 'price_cents', ARGV[3], 'starts_ms', ARGV[4], 'ends_ms', ARGV[5],
  'loaded_ms', loaded_ms, 'keys_tracked', 1, 'open_cap_pct', ARGV[6], 'open', 0, 'database_units', ARGV[8])
return {'loaded', tonumber(ARGV[1])}
