-- enqueue: ARGV is one or more jobs of 5 arguments each: generation id, user
-- id, tier, the job's 'd' field (user, tier, start deadline in unix ms or
-- 0 for none, creation time, payload; see common.lua) and its token floor (a
-- new job's first lease gets a token above it: the fence Postgres holds when
-- the sweeper enqueues a job the queue lost; 0 for a new generation). The
-- async client sends the enqueues of one loop iteration together.
-- Returns one answer per job, in order: {1, 'queued', position} for a new
-- job (O(1)), {0, state, position} when the generation is
-- already known (idempotent: nothing changes; the exact position),
-- {-1, 'too_many_active', cap} when the user already has `cap` active
-- generations, {-9, 'EINVAL …'} for an unknown tier. A new job's event 1 is
-- 'queued' with {"status":"queued","queue_position":N}.
--
-- The tiers' depths and ring lengths are read once per call and kept here as
-- the jobs go in; the depths are written back once at the end.
local out, d, ring, added = {}, nil, {}, {}
for i = 0, #ARGV / 5 - 1 do
    local a = B + i * 5
    local g, u, tier, jd, floor = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
    local jk = jkey(g)
    local t = TIER[tier]
    -- EXISTS first: a new job, the usual case, then costs no reply table.
    if redis.call('EXISTS', jk) == 1 then
        local old = redis.call('HMGET', jk, 's', 'u', 't')
        local pos = -1
        if old[1] == 'queued' then pos = position(g, job_ut(jk, old[2], old[3])) end
        out[i + 1] = {0, old[1], pos}
    elseif not t then
        out[i + 1] = {-9, 'EINVAL unknown tier ' .. tier}
    elseif active_add(u, '1') > t.cap then
        active_add(u, '-1')
        out[i + 1] = {-1, 'too_many_active', t.cap}
    else
        d = d or depths()
        local rk = rkey(tier)
        ring[tier] = ring[tier] or redis.call('LLEN', rk)
        local mine = redis.call('RPUSH', qkey(tier, u), g) - 1
        if mine == 0 then
            redis.call('RPUSH', rk, u)
            ring[tier] = ring[tier] + 1
        end
        d[tier] = d[tier] + 1
        added[tier] = (added[tier] or 0) + 1
        -- Each other user in the ring takes at most mine+1 turns first: exact
        -- for a user's first queued job (the usual case), an upper bound
        -- otherwise; other tiers by their weight share.
        local ahead = mine + math.min(d[tier] - mine - 1, (mine + 1) * (ring[tier] - 1))
        local pos = other_tiers(tier, ahead, d)
        -- API.md: the 'queued' event carries the queue position. (jd begins
        -- with the same u and tier: queue/script.c packs all three.)
        ev_append(g, jk, u, 1, 'queued', '{"status":"queued","queue_position":' .. num(pos) .. '}', false,
            's', 'queued', 'u', u, 't', tier, 'd', jd)
        if floor ~= '0' then redis.call('HSET', jk, 'tok', floor) end
        out[i + 1] = {1, 'queued', pos}
    end
end
for tier, k in pairs(added) do redis.call('HINCRBY', P .. 'depth', tier, k) end
return out
