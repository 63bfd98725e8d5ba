-- finish: ARGV is one or more leases to end, 5 arguments each: generation id,
-- fencing token, outcome ('done' | 'fatal' | 'canceled' | 'handback'), reason /
-- result JSON, a random fraction in [0, 1) for the hand-back's jitter. The
-- async client sends the finishes of one loop iteration together.
-- Returns one answer per lease, in order: {0, state, retry_in_ms}: state is
-- 'done', 'canceled', 'dead' or 'delayed' (then retry_in_ms is the wait
-- chosen); 'handback' is a retry that is not the job's fault (Redis, Postgres
-- or storage unavailable, its worker stopping): the attempt is given back and
-- the wait is between half and all of min(HANDBACK_CAP_MS, BASE_MS *
-- 2^(hand-backs - 1)), so waits grow past an outage; only after HANDBACK_MAX
-- hand-backs is it dead-lettered.
-- {-1, state} when the token is not the current one (the caller lost
-- its lease: it must not report or charge anything; being alive, its lost
-- lease no longer counts toward poison); {-2} when the job is
-- unknown.
-- The usual answers are the same tables each time: Redis turns every
-- element of `out` into its reply, so one table may stand in many places.
local out, ended = {}, {}
for i = 0, #ARGV / 5 - 1 do
    local a = B + i * 5
    local g, tok, outcome, reason = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4]
    local jk = jkey(g)
    local f = redis.call('HMGET', jk, 's', 'tok', 'u', 'att', 'n', 'lx')
    if not f[1] then
        out[i + 1] = {-2}
    elseif f[1] ~= 'running' or f[2] ~= tok then
        holder_back(jk, tok, f[6])
        out[i + 1] = {-1, f[1]}
    else
        local u, att, n = f[3] or (job_ut(jk)), tonumber(f[4]), tonumber(f[5])
        ended[#ended + 1] = g
        if outcome == 'done' then
            terminal(g, jk, u, n, 'done', reason)
            DONE = DONE + 1
            out[i + 1] = R_DONE
        elseif outcome == 'canceled' then
            terminal(g, jk, u, n, 'canceled', '{}')
            out[i + 1] = R_CANCELED
        elseif outcome == 'handback' and redis.call('HINCRBY', jk, 'hb', 1) <= HANDBACK_MAX then
            local hb = tonumber(redis.call('HGET', jk, 'hb'))
            local w = math.min(HANDBACK_CAP_MS, BASE_MS * 2 ^ (hb - 1))
            local d = math.floor(w / 2 + tonumber(ARGV[a + 5]) * w / 2)
            redis.call('ZADD', P .. 'delayed', NOW + d, g)
            ev_append(g, jk, u, n + 1, 'retrying',
                cjson.encode({reason = reason, attempt = att, in_ms = d, handed_back = hb}), false,
                's', 'delayed', 'r', reason, 'att', num(att - 1))
            out[i + 1] = {0, 'delayed', d}
        else
            if outcome == 'handback' then
                reason = reason .. ' (handed back ' .. HANDBACK_MAX .. ' times)'
            end
            dead_letter(g, jk, u, n, reason)
            out[i + 1] = R_DEAD
        end
    end
end
if #ended > 0 then redis.call('ZREM', P .. 'leases', unpack(ended)) end
return out
