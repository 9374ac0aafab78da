-- return_units.lua: the units of a paid order cancelled before it shipped
-- leave `sold`, once per order, atomically.
--
-- While the sale is still running (its window has not ended, Redis's clock)
-- and the operator wants it (ARGV[5] = 1), they go back on sale (`stock`);
-- otherwise they leave the sale (`total`), as if withdrawn. Either way the
-- buyer's count drops by them (and its channel's share count, if any), and
-- `stock + reserved + sold = total` holds.
-- An order of an earlier sale of the SKU (its generation is not the sale's
-- `loaded_ms`) is left alone: that sale's counters are gone.
--
-- KEYS[1] sale:{sku}  KEYS[2] buyers:{sku}  KEYS[3] returned:{sku}
-- ARGV[1] order id   ARGV[2] user id   ARGV[3] units   ARGV[4] the order's sale generation
-- ARGV[5] 1: back on sale while the sale runs, 0: never
-- ARGV[6] the warehouse the order's units came from ("" for a sale in one pool)
--
-- Returns {"restocked", stock}, {"withdrawn", stock}, {"already", stock}
-- or {"other_sale", 0}.
--
-- Example: EVALSHA <sha> 3 sale:{tv} buyers:{tv} returned:{tv} 81234 42 1 1764500000000 1 ""
--   -> {"restocked", 12}

if #KEYS ~= 3 or #ARGV ~= 6 then
  return redis.error_reply('return_units.lua takes 3 keys and 6 arguments')
end

local loaded_ms = redis.call('HGET', KEYS[1], 'loaded_ms')
if not loaded_ms or loaded_ms ~= ARGV[4] then
  return {'other_sale', 0}
end
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3]) == 0 then
  return {'already', tonumber(redis.call('HGET', KEYS[1], 'stock'))}
end
local units = tonumber(ARGV[3])
local warehouse = ARGV[6] ~= '' and ARGV[6] or nil
if redis.call('HINCRBY', KEYS[2], ARGV[2], -units) <= 0 then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
-- And to its storefront channel's share, if it counted in one (see lib/reservation.lua).
local channel = redis.call('HGET', KEYS[2], 'cho:' .. ARGV[1])
if channel then
  redis.call('HDEL', KEYS[2], 'cho:' .. ARGV[1])
  if redis.call('HINCRBY', KEYS[2], 'ch:' .. channel, -units) <= 0 then
    redis.call('HDEL', KEYS[2], 'ch:' .. channel)
  end
end
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ends_ms = tonumber(redis.call('HGET', KEYS[1], 'ends_ms') or '0')
if ARGV[5] == '1' and (ends_ms == 0 or now_ms < ends_ms) then
  return {'restocked', move_units('restock', units, warehouse)}
end
return {'withdrawn', move_units('unsell', units, warehouse)}
