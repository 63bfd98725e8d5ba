-- claim: ARGV[B+1] how many jobs (N), [B+2] worker id, [B+3] the claim's id
-- (optional). A claim whose answer was lost (a timeout, a dropped
-- connection) is asked again under the same id: the answer it had is given
-- again, kept for a lease when it leased or ended anything. Without that its
-- jobs stayed leased to nobody until their leases ended, and each such loss
-- counted toward the poison limit of jobs that never ran.
-- Returns {jobs, expired, lease_until, ended}: jobs is flat, four entries per
-- job: gen, its 'd' field as stored (user, tier, deadline, creation time and
-- payload, one per line: the client splits it, which Redis then need not do),
-- token, attempt; expired lists {gen, user} of jobs whose start deadline
-- passed (terminal now, their credits to be released; at most EXPIRE_MAX
-- per claim, later claims expire the rest); lease_until (unix ms)
-- is every lease's end; ended lists {gen, user, state} of jobs whose holder
-- never came back and that this claim ended instead of leasing them again:
-- 'dead' (a poison job) or 'canceled' (a cancel was asked). The claimer
-- records them in Postgres at once, so a client's GET agrees with the
-- terminal event it was sent (the sweeper would, but only a stale period
-- later).
--
-- Order of service: leases that expired (a crashed or stalled holder) are
-- handed out again first, at once; then retries whose backoff is over go back
-- to the front of their user queues; then ready jobs, tier by smooth weighted
-- round robin and user by round robin within the tier.
local want, wid, cid = tonumber(ARGV[B + 1]), ARGV[B + 2], ARGV[B + 3]
local ck = cid and cid ~= '' and (P .. 'cl:' .. wid .. ':' .. cid) or nil
if ck then
    local kept = redis.call('GET', ck)
    if kept then return cjson.decode(kept) end
end
-- The leases start with a sentinel (score +inf, so no claim ever sees it as
-- expired; its name has spaces, which no generation id has). Longer than
-- 64 bytes, it keeps the sorted set out of Redis's listpack encoding, where
-- every ZADD and ZREM scans all the leases: with a hundred jobs in flight
-- that was the most expensive command of a claim.
local jobs, expired, ended, leases = {}, {}, {}, {'inf', LEASES_SENTINEL}
local got = 0 -- jobs leased (#jobs / 4)
-- Jobs that expire do not count toward `want`, so without a bound one claim
-- behind a backlog past its deadlines would expire all of it: about eight
-- commands each, one line each in the one PUBLISH, and a farm_expire call
-- each that the claimer starts at once. The rest stay queued, in order, for
-- the next claims.
local EXPIRE_MAX = 256
local lk = P .. 'leases'
local until_ms = NOW + LEASE_MS
local until_s = tostring(until_ms)

-- Leases job g (its hash, 'd' field, token and attempts so far) to this
-- worker; the lease itself goes into the leases zset with the others at the
-- end.
local function lease(g, jk, d, tok, att)
    tok, att = (tonumber(tok) or 0) + 1, (tonumber(att) or 0) + 1
    redis.call('HSET', jk, 's', 'running', 'w', wid, 'tok', num(tok), 'att', num(att))
    local k = #leases
    leases[k + 1], leases[k + 2] = until_s, g
    k = got * 4
    jobs[k + 1], jobs[k + 2], jobs[k + 3], jobs[k + 4] = g, d, tok, att
    got = got + 1
end

-- 1. Expired leases.
for _, g in ipairs(redis.call('ZRANGEBYSCORE', lk, '-inf', NOWS, 'LIMIT', 0, want)) do
    local jk = jkey(g)
    local rc = redis.call('HINCRBY', jk, 'rc', 1)
    local f = redis.call('HMGET', jk, 'd', 'tok', 'att', 'cx', 'n', 'u')
    if not f[1] then
        -- No job behind the lease (its hash was deleted by hand): drop the
        -- lease and the hash HINCRBY just made, rather than answer with a
        -- hole in the list.
        redis.call('ZREM', lk, g)
        redis.call('DEL', jk)
    elseif f[4] == '1' then
        -- Its holder died after a cancel: nothing left to run.
        local u = f[6] or (job_ut(jk))
        redis.call('ZREM', lk, g)
        terminal(g, jk, u, tonumber(f[5]), 'canceled', '{}')
        ended[#ended + 1] = {g, u, 'canceled'}
    elseif rc > MAX_RECLAIMS then
        local u = f[6] or (job_ut(jk))
        redis.call('ZREM', lk, g)
        dead_letter(g, jk, u, tonumber(f[5]),
            'lease expired ' .. rc .. ' times without a heartbeat (poison job)')
        ended[#ended + 1] = {g, u, 'dead'}
    else
        redis.call('HSET', jk, 'lx', f[2] or '0')
        lease(g, jk, f[1], f[2], f[3])
    end
end

-- 2. Retries whose backoff is over. An entry whose job is not delayed (its
-- hash deleted by hand or evicted) only leaves the set: making it ready would
-- make a hash without an expiry, or run a job that is queued, running or
-- ended already a second time.
local dk = P .. 'delayed'
for _, g in ipairs(redis.call('ZRANGEBYSCORE', dk, '-inf', NOWS, 'LIMIT', 0, 256)) do
    redis.call('ZREM', dk, g)
    local jk = jkey(g)
    local f = redis.call('HMGET', jk, 's', 'u', 't')
    if f[1] == 'delayed' then
        redis.call('HSET', jk, 's', 'queued')
        ready_again(g, job_ut(jk, f[2], f[3]))
    end
end

-- 3. Ready jobs. The weighted round robin state (nginx's smooth WRR) lives in
-- one hash so every claimer continues the same sequence.
if got < want then
    -- The tiers served: the configured ones, then each other tier that still
    -- has ready jobs (removed from or renamed in FARM_QUEUE_TIERS, or
    -- configured only in other processes), at weight 1, so its jobs are not
    -- stranded. The 'depth' hash has a field for every tier that had ready
    -- jobs, and its counts say which still have some.
    local tl, names = TIERS, TIER_NAMES
    local dh = redis.call('HGETALL', P .. 'depth')
    for k = 1, #dh, 2 do
        if not TIER[dh[k]] and (tonumber(dh[k + 1]) or 0) > 0 then
            if tl == TIERS then tl, names = {unpack(TIERS)}, {unpack(TIER_NAMES)} end
            tl[#tl + 1], names[#names + 1] = {name = dh[k], weight = 1}, dh[k]
        end
    end
    -- Per tier, by its index in tl: the WRR weight, the ring's length,
    -- jobs taken; the ring's key and the prefix of its users' queue keys.
    local wk = P .. 'wrr'
    local nt = #tl
    local cur, len, popped, rks, qps = {}, {}, {}, {}, {}
    -- The rings are read once per claim and turned here, then written back
    -- with at most two commands each, instead of an LMOVE per job: ring[i]
    -- holds tier i's ring from its head, users to serve from index head[i];
    -- users served that still have jobs are appended, drained ones are not.
    -- whole[i]: the copy is the whole ring (else its first fetched[i] users).
    local ring, head, whole, fetched = {}, {}, {}, {}
    local function ring_write(i)
        local r, rk = ring[i], rks[i]
        local from = fetched[i] + 1 -- the users appended
        if head[i] > fetched[i] + 1 then
            -- Served round the whole ring and beyond (whole[i]): the copy
            -- from head on is the ring.
            redis.call('DEL', rk)
            from = head[i]
        elseif head[i] > 1 then
            redis.call('LTRIM', rk, head[i] - 1, -1)
        end
        for k = from, #r, 512 do -- (unpack has a stack limit)
            redis.call('RPUSH', rk, unpack(r, k, math.min(k + 511, #r)))
        end
        ring[i] = nil
    end
    local saved = redis.call('HMGET', wk, unpack(names))
    for i = 1, nt do
        local name = tl[i].name
        cur[i], popped[i] = tonumber(saved[i]) or 0, 0
        rks[i], qps[i] = rkey(name), qkey(name, '')
        len[i] = redis.call('LLEN', rks[i])
    end
    while got < want and #expired < EXPIRE_MAX do
        local best, total = nil, 0
        for i = 1, nt do
            if len[i] > 0 then
                local w = tl[i].weight
                cur[i] = cur[i] + w
                total = total + w
                if not best or cur[i] > cur[best] then best = i end
            end
        end
        if not best then break end
        cur[best] = cur[best] - total
        -- Serve the user at the head of the ring and send it to the back;
        -- take it out only if that was its last ready job. (A partial copy
        -- used up, by picks that found expired jobs, is written back and
        -- read again.)
        if ring[best] and not whole[best] and head[best] > fetched[best] then ring_write(best) end
        local r = ring[best]
        if not r then
            r = redis.call('LRANGE', rks[best], 0, want - got - 1)
            ring[best], head[best], whole[best], fetched[best] = r, 1, #r >= len[best], #r
        end
        local u = r[head[best]]
        head[best] = head[best] + 1
        local qk = qps[best] .. u
        local g = redis.call('LPOP', qk)
        if g and redis.call('EXISTS', qk) == 1 then
            r[#r + 1] = u
        else
            len[best] = len[best] - 1
        end
        if g then popped[best] = popped[best] + 1 end
        local jk = g and jkey(g)
        local f = g and redis.call('HMGET', jk, 'd', 'tok', 'att', 'n')
        local dl = g and f[1] and job_deadline(f[1])
        if not dl then
            -- A user in the ring without a queue (its key deleted by hand;
            -- it leaves the ring above), or a queued job whose hash is gone
            -- (deleted by hand): nothing to run.
        elseif dl > 0 and dl <= NOW and (tonumber(f[2]) or 0) == 0 then
            -- The deadline is a start deadline (API.md): it ends only a job
            -- never leased. The token tells, not the attempts: a hand-back
            -- gives its attempt back but never its token, and a job the
            -- sweeper enqueued again after Postgres saw it start has a token
            -- floor.
            terminal(g, jk, u, tonumber(f[4]), 'expired', cjson.encode({deadline_ms = dl}))
            expired[#expired + 1] = {g, u}
        else
            lease(g, jk, f[1], f[2], f[3])
        end
    end
    local flat = {}
    for i = 1, nt do
        if ring[i] then ring_write(i) end
        local name = tl[i].name
        if popped[i] > 0 then redis.call('HINCRBY', P .. 'depth', name, -popped[i]) end
        flat[2 * i - 1], flat[2 * i] = name, tostring(cur[i])
    end
    redis.call('HSET', wk, unpack(flat))
end

if #leases > 2 then
    for i = 1, #leases, 512 do
        redis.call('ZADD', lk, unpack(leases, i, math.min(i + 511, #leases)))
    end
end
redis.call('ZADD', P .. 'workers', NOWS, wid)
-- Dead letters past their retention leave the index here too (their job
-- hashes expire by themselves), so the index never outgrows the retention.
redis.call('ZREMRANGEBYSCORE', P .. 'dead', '-inf', tostring(NOW - DEAD_RETENTION_MS))
local answer = {jobs, expired, until_ms, ended}
if ck and (got > 0 or #expired > 0 or #ended > 0) then
    redis.call('SET', ck, cjson.encode(answer), 'PX', LEASE_MS_S)
end
return answer
