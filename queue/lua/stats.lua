-- stats: no arguments of its own.
-- Returns {tiers, delayed, in_flight, dead, workers, done_last_minute,
-- failed_last_minute, done_this_minute, failed_this_minute} where tiers is
-- {name, depth, ...}; O(tiers). Workers are those that claimed or
-- heartbeat within two lease periods.
local tiers = {}
local d = depths()
for _, t in ipairs(TIERS) do
    tiers[#tiers + 1] = t.name
    tiers[#tiers + 1] = d[t.name]
end
local m = math.floor(NOW / 60000)
local sk = P .. 'stats'
local c = redis.call('HMGET', sk, 'd:' .. (m - 1), 'f:' .. (m - 1), 'd:' .. m, 'f:' .. m)
return {tiers, redis.call('ZCARD', P .. 'delayed'), redis.call('ZCARD', P .. 'leases'),
    redis.call('ZCARD', P .. 'dead'),
    redis.call('ZCOUNT', P .. 'workers', NOW - 2 * LEASE_MS, '+inf'),
    tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0}
