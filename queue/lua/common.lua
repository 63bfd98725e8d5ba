-- queue/lua/common.lua - the shared part of the queue's Redis function
-- library. queue/script.c builds the library once per process:
--
--   #!lua name=<lib>             (lib = "farm_" .. a hash of the text)
--   the settings, as constants:  LEASE_MS, MAX_RECLAIMS, BASE_MS,
--                                RETENTION_MS, DEAD_RETENTION_MS,
--                                DEAD_MAX, EV_MAX, USER_MAXLEN, USER_AGE_MS (and
--                                *_S: some as strings, for redis.call;
--                                USER_AGE_MS2_S is twice USER_AGE_MS),
--                                TIERS = {{name =, weight =, cap =}, ...} in
--                                order, TIER by name, TIER_NAMES
--   (load-time code may only define things: Redis runs it without even the
--   standard library, so the settings come as literals)
--   this file
--   each operation's file as    local function op_<op>(ARGV) ... end
--   and its entry point          redis.register_function('<lib>_<op>',
--                                   function(KEYS, ARGV) begin(KEYS)
--                                   local r = op_<op>(ARGV) done() return r end)
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
-- Set by begin() at the start of every call: the key prefix, the time, and
-- what the call sends once at its end (done()): the event notifications,
-- joined into one PUBLISH, and the per-minute outcome counts; and the users
-- whose event stream's expiry this call already moved.
local P, NOW, NOWS, PUBS, NPUBS, DONE, FAILED, TOUCHED, MINID_S

-- Whole numbers (event numbers, tokens, attempts, queue positions) as text.
-- tostring and '..' format a number with sprintf("%.14g"), which costs more
-- than a Redis command inside a function; so small ones are formatted once
-- per library load, and bigger ones are joined from three-digit groups.
local NUMS, DIGITS3 = {}, {}
local function num(n)
    local s = NUMS[n]
    if s then return s end
    if n >= 1000 and n < 1e15 and n % 1 == 0 then
        local r = n % 1000
        local g = DIGITS3[r]
        if not g then
            g = string.sub(tostring(1000 + r), 2)
            DIGITS3[r] = g
        end
        s = num((n - r) / 1000) .. g
    else
        s = tostring(n)
    end
    if n >= 0 and n < 4096 then NUMS[n] = s end
    return s
end

local function begin(keys)
    P = keys[1] .. ':'
    local t = redis.call('TIME')
    -- Milliseconds: seconds, then the first three digits of the microseconds.
    NOWS = t[1] .. string.sub(tostring(1000000 + tonumber(t[2])), 2, 4)
    NOW = tonumber(NOWS)
    PUBS, NPUBS, DONE, FAILED, TOUCHED, MINID_S = {}, 0, 0, 0, {}, nil
end

-- Per-minute outcome counters live in one hash, so the number of keys stays
-- fixed. A minute's first count of a kind ('d' or 'f') drops the fields of
-- both kinds older than 61 minutes, however long ago they were written (a
-- kind may go without outcomes for hours): a pass over the hash at most
-- once a minute per kind, and the hash holds about the last hour's fields.
local function stat_add(kind, k)
    local m = math.floor(NOW / 60000)
    local sk = P .. 'stats'
    if redis.call('HINCRBY', sk, kind .. ':' .. m, k) == k then
        local old = {}
        for _, f in ipairs(redis.call('HKEYS', sk)) do
            local fm = tonumber(string.match(f, ':(%d+)$'))
            if fm and fm <= m - 61 then old[#old + 1] = f end
        end
        for i = 1, #old, 512 do -- (unpack has a stack limit)
            redis.call('HDEL', sk, unpack(old, i, math.min(i + 511, #old)))
        end
    end
end

local function done()
    if NPUBS > 0 then redis.call('PUBLISH', P .. 'ev', table.concat(PUBS)) end
    if DONE > 0 then stat_add('d', DONE) end
    if FAILED > 0 then stat_add('f', FAILED) end
end

-- finish's answers for a lease that ended done, canceled or dead.
local R_DONE, R_CANCELED, R_DEAD = {0, 'done', 0}, {0, 'canceled', 0}, {0, 'dead', 0}

-- A member of the leases set that is not a job (claim.lua says why).
local LEASES_SENTINEL = 'not a job: keeps this sorted set a skiplist, never a listpack (claim.lua)'

local function jkey(g) return P .. 'j:' .. g end       -- job hash (and its events)
local function ukey(u) return P .. 'ue:' .. u end      -- user events (stream)
local function rkey(t) return P .. 't:' .. t .. ':ring' end          -- users with ready jobs
local function qkey(t, u) return P .. 't:' .. t .. ':u:' .. u end    -- user's ready jobs (list)

-- A job's fixed data is one field, 'd': user, tier, start deadline,
-- creation time (the enqueuing client's clock; nothing reads it) and
-- payload, one per line (ids and numbers hold no newline; the payload comes
-- last, so it may). The client packs it (queue/script.c) and the claim hands
-- it back as it is: the payload is never copied into a Lua string of its
-- own, which would cost Redis a pass over every byte (Redis's Lua hashes the
-- whole of each new string). User and tier are also fields of their own, 'u'
-- and 't', for every other call.

-- User and tier of the job `jk` from its fields `u` and `t`, read by the
-- caller; for a job enqueued by an earlier version, which had them in 'd'
-- only, from 'd' (job_ut(jk) then, for the user alone). Versions side by
-- side share the jobs during a rolling deploy.
local function job_ut(jk, u, t)
    if u and t then return u, t end
    local d = redis.call('HGET', jk, 'd')
    local a = string.find(d, '\n', 1, true)
    local b = string.find(d, '\n', a + 1, true)
    return string.sub(d, 1, a - 1), string.sub(d, a + 1, b - 1)
end

-- Just the start deadline of a 'd' field, as a number; without making a
-- string when it is 0 (none), the usual case.
local function job_deadline(d)
    local b = string.find(d, '\n', string.find(d, '\n', 1, true) + 1, true)
    if string.byte(d, b + 1) == 48 then return 0 end -- '0': no deadline
    return tonumber(string.sub(d, b + 1, string.find(d, '\n', b + 1, true) - 1))
end

-- Appends event `n` (the job's event count + 1, which the caller read) to the
-- job hash `jk` - field 'n' is the count, field '<n>' the event - in the same HSET
-- as the caller's own fields (`...`), then to the user's capped stream, and
-- queues the notification for done(). A terminal event restarts the user
-- stream's idle expiry; the caller sets the job hash's own expiry.
local function ev_append(g, jk, u, n, typ, data, terminal, ...)
    local ns = num(n)
    redis.call('HSET', jk, 'n', ns, ns, typ .. '\n' .. NOWS .. '\n' .. data, ...)
    local uk = ukey(u)
    -- Length bound on every append; the age bound (MINID) on each
    -- generation's first, which is enough to keep it and saves an XTRIM.
    local sid
    if n == 1 then
        MINID_S = MINID_S or tostring(NOW - USER_AGE_MS)
        sid = redis.call('XADD', uk, 'MINID', '~', MINID_S, '*',
            'g', g, 'n', ns, 't', typ, 'd', data)
    else
        sid = redis.call('XADD', uk, 'MAXLEN', '~', USER_MAXLEN_S, '*',
            'g', g, 'n', ns, 't', typ, 'd', data)
    end
    -- The stream outlives the user's last terminal event by at least
    -- USER_AGE_MS and at most twice that: its expiry is pushed out (a write,
    -- and an AOF entry) only when less than USER_AGE_MS is left, which an
    -- active user's stream needs once per USER_AGE_MS, not once per job.
    if terminal and not TOUCHED[u] then
        TOUCHED[u] = true
        if redis.call('PTTL', uk) < USER_AGE_MS then redis.call('PEXPIRE', uk, USER_AGE_MS2_S) end
    end
    -- The line's parts, joined with the others' once, in done().
    local k = NPUBS
    PUBS[k + 1], PUBS[k + 2], PUBS[k + 3], PUBS[k + 4] = k > 0 and '\ne ' or 'e ', g, ' ', ns
    PUBS[k + 5], PUBS[k + 6], PUBS[k + 7], PUBS[k + 8] = ' ', u, ' ', sid
    NPUBS = k + 8
    return n
end

-- The user's count of active (queued, delayed, running) generations; a user
-- with none has no key. (One key per user, not one hash for all: a small
-- hash is a list that Redis searches field by field.) `k` is text: '1', '-1'.
local function active_add(u, k)
    local ak = P .. 'a:' .. u
    local n = redis.call('INCRBY', ak, k)
    if n <= 0 then redis.call('DEL', ak) end
    return n
end

-- Makes a generation ready again (a retry, a re-drive): at the front of its
-- user's queue, as it was the user's oldest, and the user into the tier's
-- ring when the user had nothing ready. (enqueue does the same for new jobs,
-- at the back.)
local function ready_again(g, u, tier)
    if redis.call('LPUSH', qkey(tier, u), g) == 1 then redis.call('RPUSH', rkey(tier), u) end
    redis.call('HINCRBY', P .. 'depth', tier, 1)
end

-- Ready jobs per tier, kept by every push and pop (the 'depth' hash).
local function depths()
    local v = redis.call('HMGET', P .. 'depth', unpack(TIER_NAMES))
    local d = {}
    for i, t in ipairs(TIERS) do d[t.name] = tonumber(v[i]) or 0 end
    return d
end

-- Other tiers' share of the jobs that start before the in-tier position
-- `ahead`: the weights say how many of theirs go per one of ours. A tier that
-- is not configured (removed from or renamed in FARM_QUEUE_TIERS while it
-- still had jobs) counts as weight 1, the weight the claim serves it at.
local function other_tiers(tier, ahead, d)
    local t = TIER[tier]
    local w = t and t.weight or 1
    local total = ahead
    for i = 1, #TIERS do
        local o = TIERS[i]
        if o.name ~= tier then
            local share = (ahead + 1) * o.weight / w
            share = share - share % 1
            local depth = d[o.name]
            total = total + (depth < share and depth or share)
        end
    end
    return total
end

-- Ends a job for good (done, canceled, expired) whose hash is `jk` and event
-- count `n`: no longer active for its user's cap, kept RETENTION_MS so a
-- repeated enqueue still reports it and its events can be read.
local function terminal(g, jk, u, n, state, data)
    active_add(u, '-1')
    ev_append(g, jk, u, n + 1, state, data, true, 's', state)
    redis.call('PEXPIRE', jk, RETENTION_MS_S)
end

-- Dead-letters a job whose hash is `jk` and event count `n`: listable and
-- re-drivable for DEAD_RETENTION_MS, at most DEAD_MAX of them (the oldest go
-- first).
-- A holder that answers (heartbeat or finish) with the token whose lease
-- expired was alive all along: stalled, paused or overloaded, not crashed by
-- the job. That reclaim is taken back (`lx` is the token the last expiry took
-- away), so only holders that never come back count toward poison.
local function holder_back(jk, tok, lx)
    if lx == tok then
        redis.call('HINCRBY', jk, 'rc', -1)
        redis.call('HDEL', jk, 'lx')
    end
end

local function dead_letter(g, jk, u, n, reason)
    local dk = P .. 'dead'
    active_add(u, '-1')
    ev_append(g, jk, u, n + 1, 'failed', cjson.encode({reason = reason, dead_letter = true}), true,
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
    FAILED = FAILED + 1
end

-- How many jobs start before the k-th ready job (k from 0) of user `u` in
-- `tier`, counted in the tier: the ring serves users in turn, so each other
-- user contributes at most one job per turn of ours, one more when it is
-- ahead of us in the ring:
--   ahead(k) = k + sum over users v ahead of u of min(ready of v, k + 1)
--                + sum over users v behind u of min(ready of v, k).
-- Returns ahead as a function of k for k = 0 .. kmax, from one walk of the
-- ring: O(users of the tier + kmax), however many k are asked.
-- For kmax = 0 (each asked job is its user's first ready one: the usual
-- case) every user in the ring has a job ready, so ahead(0) is the number of
-- users ahead of u: one LPOS, which Redis answers without a command per
-- user (a walk with LLEN per user cost a GET of a queued generation one
-- command per user of the tier in a backlog).
local function ahead_in_tier(u, tier, kmax)
    if kmax == 0 then
        local at = redis.call('LPOS', rkey(tier), u)
        if at then return function() return at end end
    end
    local hist = {{}, {}} -- [1] users ahead, [2] behind: how many have n ready (n capped)
    local side, top = 1, 0
    for _, v in ipairs(redis.call('LRANGE', rkey(tier), 0, -1)) do
        if v == u then
            side = 2
        else
            local n = math.min(redis.call('LLEN', qkey(tier, v)), kmax + 1)
            hist[side][n] = (hist[side][n] or 0) + 1
            if n > top then top = n end
        end
    end
    -- sum[t] = sum over the side's users of min(ready, t) = sum over j = 1..t
    -- of how many have at least j ready; constant from t = top on (no other
    -- user has more), so the tables stop there, whatever kmax is.
    local sums = {}
    for i = 1, 2 do
        local h, at_least, sum = hist[i], {}, {[0] = 0}
        local c = 0
        for j = top, 1, -1 do
            c = c + (h[j] or 0)
            at_least[j] = c
        end
        for j = 1, top do sum[j] = sum[j - 1] + at_least[j] end
        sums[i] = sum
    end
    return function(k)
        return k + sums[1][math.min(k + 1, top)] + sums[2][math.min(k, top)]
    end
end

-- Jobs that will start before the ready job `g` of user `u` in `tier`.
local function position(g, u, tier)
    local mine = redis.call('LPOS', qkey(tier, u), g) or 0
    return other_tiers(tier, ahead_in_tier(u, tier, mine)(mine), depths())
end
