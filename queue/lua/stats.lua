-- stats: no arguments of its own.
-- Returns {tiers, delayed, in_flight, dead, workers, done_last_minute,
-- failed_last_minute, done_this_minute, failed_this_minute, live} where tiers
-- is {name, depth, ...} and live is {worker id, last claim or heartbeat (unix
-- ms), jobs it holds, ...}. Workers are live when they claimed or heartbeat
-- within two lease periods. O(tiers + workers + jobs in flight): meant for
-- an operator's occasional look, not for a tight loop.
-- The configured tiers, in their order, then every other tier the 'depth'
-- hash has a count for (removed from or renamed in FARM_QUEUE_TIERS while it
-- had ready jobs: the claim still serves them, at weight 1), zero included,
-- so the gauges and the autoscaler see those jobs and see them drain.
local tiers = {}
local d = depths()
for _, t in ipairs(TIERS) do
    tiers[#tiers + 1] = t.name
    tiers[#tiers + 1] = d[t.name]
end
local dh = redis.call('HGETALL', P .. 'depth')
for k = 1, #dh, 2 do
    if not TIER[dh[k]] then
        tiers[#tiers + 1] = dh[k]
        tiers[#tiers + 1] = tonumber(dh[k + 1]) or 0
    end
end
local m = math.floor(NOW / 60000)
local sk = P .. 'stats'
local c = redis.call('HMGET', sk, 'd:' .. (m - 1), 'f:' .. (m - 1), 'd:' .. m, 'f:' .. m)
-- Who holds what: the worker of each running job.
local held = {}
for _, g in ipairs(redis.call('ZRANGEBYSCORE', P .. 'leases', '-inf', '(inf')) do
    local w = redis.call('HGET', jkey(g), 'w')
    if w then held[w] = (held[w] or 0) + 1 end
end
local live = {}
local ws = redis.call('ZRANGEBYSCORE', P .. 'workers', tostring(NOW - 2 * LEASE_MS), '+inf', 'WITHSCORES')
for i = 1, #ws, 2 do
    live[#live + 1] = ws[i]
    live[#live + 1] = tonumber(ws[i + 1])
    live[#live + 1] = held[ws[i]] or 0
end
return {tiers, redis.call('ZCARD', P .. 'delayed'), redis.call('ZCOUNT', P .. 'leases', '-inf', '(inf'),
    redis.call('ZCARD', P .. 'dead'),
    redis.call('ZCOUNT', P .. 'workers', NOW - 2 * LEASE_MS, '+inf'),
    tonumber(c[1]) or 0, tonumber(c[2]) or 0, tonumber(c[3]) or 0, tonumber(c[4]) or 0, live}
