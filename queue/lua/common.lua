-- queue/lua/common.lua - the shared part of the queue's Redis function
-- library. queue/script.c builds the library once per process:
--
--   #!lua name=<lib>             (lib = "farm_" .. a hash of the text)
--   the settings, as constants:  LEASE_MS, MAX_RECLAIMS, BASE_MS, CAP_MS,
--                                MAX_ATTEMPTS, RETENTION_MS, DEAD_RETENTION_MS,
--                                DEAD_MAX, EV_MAX, USER_MAXLEN, USER_AGE_MS (and
--                                *_S: the same as strings, for redis.call),
--                                TIERS = {{name =, weight =, cap =}, ...} in
--                                order, TIER by name, TIER_NAMES
--   (load-time code may only define things: Redis runs it without even the
--   standard library, so the settings come as literals)
--   this file
--   each operation's file as    redis.register_function('<lib>_<op>',
--                                   function(KEYS, ARGV) begin(KEYS) ... end)
--
-- Everything here runs once, when the library is loaded; a call only runs its
-- operation's body. A process's settings are part of the text, so a different
-- configuration is a different library, side by side with the others.
--
-- Calling convention of every function:
--   KEYS[1]  the queue's hash tag, e.g. "{farm}"; every key a function
--            touches starts with it, so they all live in one Cluster slot.
--   ARGV     the operation's own arguments, from ARGV[B + 1] (B is 0).
-- Time is Redis's TIME, so leases do not depend on the clients' clocks.
--
-- Numbers are written as strings where that is free (NOWS, '0'): Lua 5.1
-- turns every number argument of redis.call into text with sprintf, which
-- cost Redis more than some of the commands themselves.
local B = 0
local P, NOW, NOWS -- set by begin() at the start of every call

local function begin(keys)
    P = keys[1] .. ':'
    local t = redis.call('TIME')
    -- Milliseconds: seconds, then the first three digits of the microseconds.
    NOWS = t[1] .. string.sub(tostring(1000000 + tonumber(t[2])), 2, 4)
    NOW = tonumber(NOWS)
end

local function jkey(g) return P .. 'j:' .. g end       -- job hash (and its events)
local function ukey(u) return P .. 'ue:' .. u end      -- user events (stream)
local function akey(u) return P .. 'a:' .. u end       -- user's active generations (set)
local function rkey(t) return P .. 't:' .. t .. ':ring' end          -- users with ready jobs
local function qkey(t, u) return P .. 't:' .. t .. ':u:' .. u end    -- user's ready jobs (list)

-- Appends event `n` (the job's event count + 1, which the caller read) to the
-- job hash - field 'n' is the count, field '<n>' the event - in the same HSET
-- as the caller's own fields (`...`), then to the user's capped stream, and
-- tells the subscribers. A terminal event restarts the user stream's idle
-- expiry; the caller sets the job hash's own expiry.
local function ev_append(g, u, n, typ, data, terminal, ...)
    local ns = tostring(n)
    redis.call('HSET', jkey(g), 'n', ns, ns, typ .. '\n' .. NOWS .. '\n' .. data, ...)
    local uk = ukey(u)
    -- Length bound on every append; the age bound (MINID) on each
    -- generation's first, which is enough to keep it and saves an XTRIM.
    local sid
    if n == 1 then
        sid = redis.call('XADD', uk, 'MINID', '~', tostring(NOW - USER_AGE_MS), '*',
            'g', g, 'n', ns, 't', typ, 'ts', NOWS, 'd', data)
    else
        sid = redis.call('XADD', uk, 'MAXLEN', '~', USER_MAXLEN_S, '*',
            'g', g, 'n', ns, 't', typ, 'ts', NOWS, 'd', data)
    end
    if terminal then redis.call('PEXPIRE', uk, USER_AGE_MS_S) end
    redis.call('PUBLISH', P .. 'ev', 'e ' .. g .. ' ' .. ns .. ' ' .. u .. ' ' .. sid)
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

-- Makes a generation ready: at the back of its user's queue, or at the front
-- (a retry, a re-drive: it was the user's oldest), and the user into the
-- tier's ring when the user had nothing ready. Returns the user's count.
local function ready_push(g, u, tier, front)
    local qk = qkey(tier, u)
    local n = redis.call(front and 'LPUSH' or 'RPUSH', qk, g)
    if n == 1 then redis.call('RPUSH', rkey(tier), u) end
    return n, redis.call('HINCRBY', P .. 'depth', tier, 1)
end

-- Ready jobs per tier, kept by every push and pop (the 'depth' hash).
local function depths()
    local v = redis.call('HMGET', P .. 'depth', unpack(TIER_NAMES))
    local d = {}
    for i, t in ipairs(TIERS) do d[t.name] = tonumber(v[i]) or 0 end
    return d
end

-- Other tiers' share of the jobs that start before the in-tier position
-- `ahead`: the weights say how many of theirs go per one of ours.
local function other_tiers(tier, ahead, d)
    local w = TIER[tier].weight
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
-- `depth` is the tier's depth including this job. position() (position.lua)
-- gives the exact count in O(users).
local function position_fast(tier, mine, depth)
    local others = redis.call('LLEN', rkey(tier)) - 1
    local ahead = mine + math.min(depth - mine - 1, (mine + 1) * others)
    if #TIERS == 1 then return ahead end
    return other_tiers(tier, ahead, depths())
end

-- Ends a job for good (done, canceled, expired) whose event count is `n`: no
-- longer active for its user's cap, kept RETENTION_MS so a repeated enqueue
-- still reports it and its events can be read.
local function terminal(g, u, n, state, data)
    local jk = jkey(g)
    redis.call('SREM', akey(u), g)
    ev_append(g, u, n + 1, state, data, true, 's', state, 'fin', NOWS)
    redis.call('PEXPIRE', jk, RETENTION_MS_S)
end

-- Dead-letters a job whose event count is `n`: listable and re-drivable for
-- DEAD_RETENTION_MS, at most DEAD_MAX of them (the oldest go first).
local function dead_letter(g, u, n, reason)
    local jk = jkey(g)
    local dk = P .. 'dead'
    redis.call('SREM', akey(u), g)
    ev_append(g, u, n + 1, 'failed', cjson.encode({reason = reason, dead_letter = true}), true,
        's', 'dead', 'r', reason, 'fin', NOWS)
    redis.call('PEXPIRE', jk, DEAD_RETENTION_MS_S)
    redis.call('ZADD', dk, NOWS, g)
    redis.call('ZREMRANGEBYSCORE', dk, '-inf', tostring(NOW - DEAD_RETENTION_MS))
    local over = redis.call('ZCARD', dk) - DEAD_MAX
    if over > 0 then
        local popped = redis.call('ZPOPMIN', dk, over)
        for i = 1, #popped, 2 do
            if popped[i] ~= g then redis.call('DEL', jkey(popped[i])) end
        end
    end
    stat_bump('f')
end

-- Jobs that will start before a ready job, in O(users of its tier + its
-- user's ready jobs): the ring serves users in turn, so each other user
-- contributes at most one job per turn of ours (one more when it is ahead of
-- us in the ring).
local function position(g, u, tier)
    local mine = redis.call('LPOS', qkey(tier, u), g) or 0
    local ahead, before = mine, true
    for _, v in ipairs(redis.call('LRANGE', rkey(tier), 0, -1)) do
        if v == u then
            before = false
        else
            local turns = mine + (before and 1 or 0)
            ahead = ahead + math.min(redis.call('LLEN', qkey(tier, v)), turns)
        end
    end
    return other_tiers(tier, ahead, depths())
end
