-- claim: ARGV[B+1] how many jobs (N), [B+2] worker id.
-- Returns {jobs, expired}: jobs is a list of {gen, user, tier, payload, token,
-- attempt, deadline, lease_until}; expired lists {gen, user} of jobs whose
-- start deadline passed (terminal now, their credits to be released).
--
-- Order of service: leases that expired (a crashed or stalled holder) are
-- handed out again first, at once; then retries whose backoff is over go back
-- to the front of their user queues; then ready jobs, tier by smooth weighted
-- round robin and user by round robin within the tier.
local want, wid = tonumber(ARGV[B + 1]), ARGV[B + 2]
local jobs, expired, leases = {}, {}, {}
local lk = P .. 'leases'
local until_ms = NOW + LEASE_MS
local until_s = tostring(until_ms)

-- Leases job g (its 'd' field unpacked, its token and attempts so far) to
-- this worker; the lease itself goes into the leases zset with the others at
-- the end.
local function lease(g, u, tier, dl, payload, tok, att)
    tok, att = (tonumber(tok) or 0) + 1, (tonumber(att) or 0) + 1
    redis.call('HSET', jkey(g), 's', 'running', 'w', wid, 'tok', tostring(tok), 'att', tostring(att))
    leases[#leases + 1] = until_s
    leases[#leases + 1] = g
    jobs[#jobs + 1] = {g, u, tier, payload, tok, att, dl, until_ms}
end

-- 1. Expired leases.
for _, g in ipairs(redis.call('ZRANGEBYSCORE', lk, '-inf', NOWS, 'LIMIT', 0, want)) do
    local jk = jkey(g)
    local rc = redis.call('HINCRBY', jk, 'rc', 1)
    local f = redis.call('HMGET', jk, 'd', 'tok', 'att', 'cx', 'n')
    local u, tier, dl, payload = job_unpack(f[1])
    if f[4] == '1' then
        -- Its holder died after a cancel: nothing left to run.
        redis.call('ZREM', lk, g)
        terminal(g, u, tonumber(f[5]), 'canceled', '{}')
    elseif rc > MAX_RECLAIMS then
        redis.call('ZREM', lk, g)
        dead_letter(g, u, tonumber(f[5]),
            'lease expired ' .. rc .. ' times without a heartbeat (poison job)')
    else
        lease(g, u, tier, dl, payload, f[2], f[3])
    end
end

-- 2. Retries whose backoff is over.
local dk = P .. 'delayed'
for _, g in ipairs(redis.call('ZRANGEBYSCORE', dk, '-inf', NOWS, 'LIMIT', 0, 256)) do
    redis.call('ZREM', dk, g)
    local jk = jkey(g)
    local u, tier = job_unpack(redis.call('HGET', jk, 'd'))
    redis.call('HSET', jk, 's', 'queued')
    ready_again(g, u, tier)
end

-- 3. Ready jobs. The weighted round robin state (nginx's smooth WRR) lives in
-- one hash so every claimer continues the same sequence.
if #jobs < want then
    local wk = P .. 'wrr'
    local cur, len, popped = {}, {}, {}
    local saved = redis.call('HMGET', wk, unpack(TIER_NAMES))
    for i, t in ipairs(TIERS) do
        cur[t.name] = tonumber(saved[i]) or 0
        len[t.name] = redis.call('LLEN', rkey(t.name))
    end
    while #jobs < want do
        local best, total = nil, 0
        for _, t in ipairs(TIERS) do
            if len[t.name] > 0 then
                cur[t.name] = cur[t.name] + t.weight
                total = total + t.weight
                if not best or cur[t.name] > cur[best] then best = t.name end
            end
        end
        if not best then break end
        cur[best] = cur[best] - total
        local rk = rkey(best)
        -- Serve the user at the head of the ring and send it to the back;
        -- take it out only if that was its last ready job.
        local u = redis.call('LMOVE', rk, rk, 'LEFT', 'RIGHT')
        local qk = qkey(best, u)
        local g = redis.call('LPOP', qk)
        if redis.call('EXISTS', qk) == 0 then
            redis.call('RPOP', rk)
            len[best] = len[best] - 1
        end
        popped[best] = (popped[best] or 0) + 1
        local f = redis.call('HMGET', jkey(g), 'd', 'tok', 'att', 'n')
        local _, tier, dl, payload = job_unpack(f[1])
        if dl > 0 and dl <= NOW and (tonumber(f[3]) or 0) == 0 then
            terminal(g, u, tonumber(f[4]), 'expired', cjson.encode({deadline_ms = dl}))
            expired[#expired + 1] = {g, u}
        else
            lease(g, u, tier, dl, payload, f[2], f[3])
        end
    end
    for name, k in pairs(popped) do redis.call('HINCRBY', P .. 'depth', name, -k) end
    local flat = {}
    for k, v in pairs(cur) do
        flat[#flat + 1] = k
        flat[#flat + 1] = tostring(v)
    end
    redis.call('HSET', wk, unpack(flat))
end

for i = 1, #leases, 512 do
    redis.call('ZADD', lk, unpack(leases, i, math.min(i + 511, #leases)))
end
redis.call('ZADD', P .. 'workers', NOWS, wid)
-- Dead letters past their retention leave the index here too (their job
-- hashes expire by themselves), so the index never outgrows the retention.
redis.call('ZREMRANGEBYSCORE', P .. 'dead', '-inf', tostring(NOW - DEAD_RETENTION_MS))
return {jobs, expired}
