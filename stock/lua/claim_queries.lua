-- claim_queries.lua: claim the payment queries that are due, atomically.
--
-- Each claimed member is pushed to its next due time, so pollers running at
-- once never ask the channel about the same payment in the same round.
--
-- KEYS[1] payment_queries  zset: "<sku>:<order id>:<started ms>" by due time (ms)
-- ARGV[1] now (Unix ms)   ARGV[2] next due time for the claimed (Unix ms)
-- ARGV[3] most members to claim
--
-- Returns the claimed members.
--
-- Example: EVALSHA <sha> 1 payment_queries 1790000060000 1790000120000 100
--   -> {"tv:81234:1790000000000"}

if #KEYS ~= 1 or #ARGV ~= 3 then
  return redis.error_reply('claim_queries.lua takes 1 key and 3 arguments')
end

local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
