-- cancel: ARGV[B+1] generation id, [B+2] (optional) 'expired'.
-- A queued or delayed job ends at once ({1, 'canceled'}); a running one gets
-- its cancel flag set and its holder is told on the cancel channel
-- ({1, 'canceling'}; the holder also learns it from its next heartbeat and
-- then finishes with outcome 'canceled'). {0, state} for a job already
-- ended, {-2} for an unknown one.
-- With 'expired' (Postgres expired the generation: its start deadline
-- passed while it waited) a queued or delayed job ends 'expired' instead
-- ({1, 'expired'}), and a running one, which started in time, is left alone
-- ({0, 'running'}).
local g, why = ARGV[B + 1], ARGV[B + 2]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'u', 'n', 't')
if not f[1] then return {-2} end
local s = f[1]
local u, tier = job_ut(jk, f[2], f[4])
if s == 'queued' then
    local qk = qkey(tier, u)
    redis.call('LREM', qk, 1, g)
    redis.call('HINCRBY', P .. 'depth', tier, -1)
    if redis.call('EXISTS', qk) == 0 then redis.call('LREM', rkey(tier), 1, u) end
elseif s == 'delayed' then
    redis.call('ZREM', P .. 'delayed', g)
elseif s == 'running' and why == 'expired' then
    return {0, s}
elseif s == 'running' then
    redis.call('HSET', jk, 'cx', '1')
    redis.call('PUBLISH', P .. 'cx', 'c ' .. g)
    return {1, 'canceling'}
else
    return {0, s}
end
if why == 'expired' then
    terminal(g, jk, u, tonumber(f[3]), 'expired', '{}')
    return {1, 'expired'}
end
terminal(g, jk, u, tonumber(f[3]), 'canceled', '{}')
return {1, 'canceled'}
