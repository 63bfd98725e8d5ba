-- dead: ARGV[B+1] action ('list' | 'retry' | 'purge'), [B+2] generation id or
-- '*' for all (retry, purge) / the maximum count (list).
-- list  returns {{gen, user, tier, reason, attempts, dead_at_ms}, ...}, newest first.
-- retry re-drives dead jobs to the front of their user queues with fresh attempt and
--       reclaim counts (the cap is not checked: an operator decided) and
--       returns how many; their events continue after a 'requeued' event.
-- purge deletes dead jobs and their events; returns how many.
local action, arg = ARGV[B + 1], ARGV[B + 2]
local dk = P .. 'dead'
redis.call('ZREMRANGEBYSCORE', dk, '-inf', tostring(NOW - DEAD_RETENTION_MS))
if action == 'list' then
    local out = {}
    for _, g in ipairs(redis.call('ZREVRANGE', dk, 0, tonumber(arg) - 1)) do
        local jk = jkey(g)
        local f = redis.call('HMGET', jk, 's', 'r', 'att', 'fin', 'u', 't')
        if f[1] then
            local u, tier = job_ut(jk, f[5], f[6])
            out[#out + 1] = {g, u, tier, f[2] or '', tonumber(f[3]) or 0, tonumber(f[4]) or 0}
        end
    end
    return out
end
local ids = {arg}
if arg == '*' then ids = redis.call('ZRANGE', dk, 0, -1) end
local n = 0
for _, g in ipairs(ids) do
    if redis.call('ZREM', dk, g) == 1 then
        local jk = jkey(g)
        local f = redis.call('HMGET', jk, 's', 'u', 'n', 't')
        if action == 'purge' then
            redis.call('DEL', jk)
            n = n + 1
        elseif f[1] == 'dead' then
            local u, tier = job_ut(jk, f[2], f[4])
            redis.call('PERSIST', jk)
            redis.call('HDEL', jk, 'lx')
            active_add(u, '1')
            ready_again(g, u, tier)
            ev_append(g, jk, u, tonumber(f[3]) + 1, 'requeued', '{}', false,
                's', 'queued', 'att', '0', 'rc', '0', 'hb', '0', 'cx', '0')
            n = n + 1
        end
    end
end
return n
