-- node_lease.lua: claim, renew or give up a gateway's node id, atomically.
--
-- Order ids carry the minting gateway's node id; two live gateways with one
-- node id would mint the same ids. Each gateway holds its node id under a
-- lease with a random token: it claims the lease if it is free or already
-- its own, renews it well before it expires, and gives it up on shutdown.
--
-- KEYS[1] gateway_node:<id>   string: the holder's token, with a TTL
-- ARGV[1] token   ARGV[2] lease length (ms); 0 gives the lease up
--
-- Returns {1, 0} when this token holds (or gave up) the lease, or
-- {0, ms until the other holder's lease ends}.
--
-- Example: EVALSHA <sha> 1 gateway_node:3 9f3a... 15000   -> {1, 0}

if #KEYS ~= 1 or #ARGV ~= 2 then
  return redis.error_reply('node_lease.lua takes 1 key and 2 arguments')
end

local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
  return {0, redis.call('PTTL', KEYS[1])}
end
if ARGV[2] == '0' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
return {1, 0}
