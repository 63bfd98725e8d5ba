-- finish: ARGV[B+1] generation id, [B+2] fencing token, [B+3] outcome
-- ('done' | 'retry' | 'fatal' | 'canceled'), [B+4] reason / result JSON,
-- [B+5] a random fraction in [0, 1) for the backoff's full jitter.
-- Returns {0, state, retry_in_ms}: state is 'done', 'canceled', 'dead' or
-- 'delayed' (then retry_in_ms is the backoff chosen); {-1, state} when the
-- token is not the current one (the caller lost its lease: it must not
-- report or charge anything); {-2} when the job is unknown.
local g, tok, outcome, reason, rnd = ARGV[B + 1], ARGV[B + 2], ARGV[B + 3], ARGV[B + 4], ARGV[B + 5]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'tok', 'u', 'att', 'n')
if not f[1] then return {-2} end
if f[1] ~= 'running' or f[2] ~= tok then return {-1, f[1]} end
local u, att, n = f[3], tonumber(f[4]), tonumber(f[5])
redis.call('ZREM', P .. 'leases', g)
if outcome == 'done' then
    terminal(g, u, n, 'done', reason)
    stat_bump('d')
    return {0, 'done', 0}
elseif outcome == 'canceled' then
    terminal(g, u, n, 'canceled', '{}')
    return {0, 'canceled', 0}
elseif outcome == 'retry' and att < MAX_ATTEMPTS then
    -- Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(n-1))).
    local d = math.floor(tonumber(rnd) * math.min(CAP_MS, BASE_MS * 2 ^ (att - 1)))
    redis.call('ZADD', P .. 'delayed', NOW + d, g)
    ev_append(g, u, n + 1, 'retrying', cjson.encode({reason = reason, attempt = att, in_ms = d}),
        false, 's', 'delayed', 'r', reason)
    return {0, 'delayed', d}
end
if outcome == 'retry' then reason = reason .. ' (after ' .. att .. ' attempts)' end
dead_letter(g, u, n, reason)
return {0, 'dead', 0}
