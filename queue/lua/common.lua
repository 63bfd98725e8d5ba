-- queue/lua/common.lua - the prelude of every queue script (prepended at build
-- time, so each script stays one self-contained EVALSHA).
--
-- Calling convention of every script:
--   KEYS[1]  the queue's hash tag, e.g. "{farm}"; every key the script
--            touches starts with it, so they all live in one Cluster slot.
--   ARGV     the operation's own arguments, from ARGV[B + 1] (B is 0).
-- The settings are not arguments: queue/script.c compiles them into the
-- text as constants in front of this file, so each process's scripts carry
-- its configuration (a different configuration is a different SHA), and a
-- call sends and parses nothing but its own arguments:
--   LEASE_MS, MAX_RECLAIMS, BASE_MS, CAP_MS, MAX_ATTEMPTS, RETENTION_MS,
--   DEAD_RETENTION_MS, DEAD_MAX, EV_MAX, USER_MAXLEN, USER_AGE_MS, and
--   TIERS = {{name =, weight =, cap =}, ...} in configuration order.
-- Time is Redis's TIME, so leases do not depend on the clients' clocks.
local P = KEYS[1] .. ':'
local B = 0

local NOW
do
    local t = redis.call('TIME')
    NOW = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function tier_of(name)
    for _, t in ipairs(TIERS) do
        if t.name == name then return t end
    end
    return nil
end

local function jkey(g) return P .. 'j:' .. g end       -- job hash
local function ekey(g) return P .. 'e:' .. g end       -- generation events (list)
local function ukey(u) return P .. 'ue:' .. u end      -- user events (stream)
local function akey(u) return P .. 'a:' .. u end       -- user's active generations (set)
local function rkey(t) return P .. 't:' .. t .. ':ring' end          -- users with ready jobs
local function qkey(t, u) return P .. 't:' .. t .. ':u:' .. u end    -- user's ready jobs (zset by seq)

-- Appends one event to the generation's list (its id is the list length:
-- 1, 2, 3 …) and to the user's capped stream, then tells the subscribers.
-- A terminal event starts the retention clock of the generation's events.
local function ev_append(g, u, typ, data, terminal)
    local ek = ekey(g)
    local n = redis.call('RPUSH', ek, typ .. '\n' .. NOW .. '\n' .. data)
    local uk = ukey(u)
    -- Length bound on every append; the age bound (MINID) on each
    -- generation's first, which is enough to keep it and saves an XTRIM.
    local sid
    if n == 1 then
        sid = redis.call('XADD', uk, 'MINID', '~', NOW - USER_AGE_MS, '*',
            'g', g, 'n', n, 't', typ, 'ts', NOW, 'd', data)
    else
        sid = redis.call('XADD', uk, 'MAXLEN', '~', USER_MAXLEN, '*',
            'g', g, 'n', n, 't', typ, 'ts', NOW, 'd', data)
    end
    if terminal then
        -- Every job ends with a terminal event, so the user stream's idle
        -- expiry moves with each generation's end, and the generation's
        -- events start their retention.
        redis.call('PEXPIRE', uk, USER_AGE_MS)
        redis.call('PEXPIRE', ek, RETENTION_MS)
    end
    redis.call('PUBLISH', P .. 'ev', 'e ' .. g .. ' ' .. n .. ' ' .. u .. ' ' .. sid)
    return n
end

-- Per-minute outcome counters live in one hash, so the number of keys stays
-- fixed; fields older than an hour are dropped as new minutes start.
local function stat_bump(kind)
    local m = math.floor(NOW / 60000)
    if redis.call('HINCRBY', P .. 'stats', kind .. ':' .. m, 1) == 1 then
        redis.call('HDEL', P .. 'stats', kind .. ':' .. (m - 61))
    end
end

-- Makes a generation ready: into its user's queue at its original sequence
-- number (so a retry keeps its place), and the user into the tier's ring
-- when the user had nothing ready.
local function ready_push(g, u, tier, seq)
    local qk = qkey(tier, u)
    redis.call('ZADD', qk, seq, g)
    redis.call('HINCRBY', P .. 'depth', tier, 1)
    local n = redis.call('ZCARD', qk)
    if n == 1 then redis.call('RPUSH', rkey(tier), u) end
    return n
end

-- Ready jobs per tier, kept by every push and pop (the 'depth' hash).
local function depths()
    local names = {}
    for i, t in ipairs(TIERS) do names[i] = t.name end
    local v = redis.call('HMGET', P .. 'depth', unpack(names))
    local d = {}
    for i, t in ipairs(TIERS) do d[t.name] = tonumber(v[i]) or 0 end
    return d
end

-- Other tiers' share of the jobs that start before the in-tier position
-- `ahead`: the weights say how many of theirs go per one of ours.
local function other_tiers(tier, ahead, d)
    local w = tier_of(tier).weight
    local total = ahead
    for _, o in ipairs(TIERS) do
        if o.name ~= tier then
            total = total + math.min(d[o.name], math.floor((ahead + 1) * o.weight / w))
        end
    end
    return total
end

-- The position of a job just pushed as its user's `mine`-th (0-based) ready
-- job, in O(1): each other user of the tier takes at most mine+1 turns first.
-- Exact for a user's first job (the usual case); an upper bound otherwise.
-- queue_position (position.lua) gives the exact count in O(users).
local function position_fast(tier, mine)
    local d = depths()
    local others = redis.call('LLEN', rkey(tier)) - 1
    local ahead = mine + math.min(d[tier] - mine - 1, (mine + 1) * others)
    return other_tiers(tier, ahead, d)
end

-- Ends a job for good (done, canceled, expired): no longer active for its
-- user's cap, kept RETENTION_MS so a repeated enqueue still reports it.
local function terminal(g, u, state, data)
    local jk = jkey(g)
    redis.call('HSET', jk, 's', state, 'fin', NOW)
    redis.call('PEXPIRE', jk, RETENTION_MS)
    redis.call('SREM', akey(u), g)
    ev_append(g, u, state, data, true)
end

-- Dead-letters a job: listable and re-drivable for DEAD_RETENTION_MS, at
-- most DEAD_MAX of them (the oldest go first).
local function dead_letter(g, u, reason)
    local jk = jkey(g)
    local dk = P .. 'dead'
    redis.call('HSET', jk, 's', 'dead', 'r', reason, 'fin', NOW)
    redis.call('PEXPIRE', jk, DEAD_RETENTION_MS)
    redis.call('SREM', akey(u), g)
    redis.call('ZADD', dk, NOW, g)
    redis.call('ZREMRANGEBYSCORE', dk, '-inf', NOW - DEAD_RETENTION_MS)
    local over = redis.call('ZCARD', dk) - DEAD_MAX
    if over > 0 then
        local popped = redis.call('ZPOPMIN', dk, over)
        for i = 1, #popped, 2 do
            if popped[i] ~= g then redis.call('DEL', jkey(popped[i]), ekey(popped[i])) end
        end
    end
    ev_append(g, u, 'failed', cjson.encode({reason = reason, dead_letter = true}), true)
    stat_bump('f')
end

-- Jobs that will start before a ready job, in O(users of its tier): the
-- ring serves users in turn, so each other user contributes at most one job
-- per turn of ours (one more when it is ahead in the ring).
local function position(g, u, tier, seq)
    local mine = redis.call('ZCOUNT', qkey(tier, u), '-inf', '(' .. seq)
    local ahead, before = mine, true
    for _, v in ipairs(redis.call('LRANGE', rkey(tier), 0, -1)) do
        if v == u then
            before = false
        else
            local turns = mine + (before and 1 or 0)
            ahead = ahead + math.min(redis.call('ZCARD', qkey(tier, v)), turns)
        end
    end
    return other_tiers(tier, ahead, depths())
end
