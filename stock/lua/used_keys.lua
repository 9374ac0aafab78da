-- used_keys.lua: a sold-out SKU's used idempotency keys, for a gateway to
-- answer its sold-out requests from memory: a request whose key is not
-- among them cannot be a retry of an order (every key that reserved is
-- added to the set by reserve.lua, in the reservation's own call), so it
-- is sold out; one whose key is among them asks Redis as before.
--
-- Read in one call with the stock, so the snapshot is taken while the SKU
-- is sold out: a key that reserves after it needs units back on sale
-- first, and the unit ledger publishes that (lib/units.lua), which drops
-- the snapshot.
--
-- KEYS[1] sale:{sku}  KEYS[2] used_keys:{sku}
-- ARGV[1] most keys worth holding in memory
--
-- Returns {"sold_out", key...}, or {"in_stock"} (stock left, or no such
-- sale), or {"untracked"} (loaded before its keys were kept, see
-- load_sale.lua), or {"too_many"} (more keys than ARGV[1]).
--
-- Example: EVALSHA <sha> 2 sale:{tv} used_keys:{tv} 100000
--   -> {"sold_out", "k1", "k2"}

if #KEYS ~= 2 or #ARGV ~= 1 then
  return redis.error_reply('used_keys.lua takes 2 keys and 1 argument')
end

local sale = redis.call('HMGET', KEYS[1], 'stock', 'keys_tracked')
local stock = tonumber(sale[1])
if not stock or stock > 0 then
  return {'in_stock'}
end
if sale[2] ~= '1' then
  return {'untracked'}
end
if redis.call('SCARD', KEYS[2]) > tonumber(ARGV[1]) then
  return {'too_many'}
end
local reply = redis.call('SMEMBERS', KEYS[2])
table.insert(reply, 1, 'sold_out')
return reply
