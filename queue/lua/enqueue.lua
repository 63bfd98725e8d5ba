-- enqueue: ARGV[B+1] generation id, [B+2] user id, [B+3] tier, [B+4] payload,
-- [B+5] start deadline (unix ms, 0 for none).
-- Returns {1, 'queued', position} for a new job (position_fast: O(1)),
-- {0, state, position} when the generation is already known (idempotent:
-- nothing changes; the exact position), {-1, 'too_many_active', cap} when
-- the user already has `cap` active generations, or an error for a bad tier.
local g, u, tier, payload, dl = ARGV[B + 1], ARGV[B + 2], ARGV[B + 3], ARGV[B + 4], ARGV[B + 5]
local jk = jkey(g)
local old = redis.call('HMGET', jk, 's', 'u', 't')
if old[1] then
    local pos = -1
    if old[1] == 'queued' then pos = position(g, old[2], old[3]) end
    return {0, old[1], pos}
end
local t = TIER[tier]
if not t then return redis.error_reply('EINVAL unknown tier ' .. tier) end
local ak = akey(u)
if redis.call('SCARD', ak) >= t.cap then return {-1, 'too_many_active', t.cap} end
redis.call('SADD', ak, g)
local mine, depth = ready_push(g, u, tier, false)
ev_append(g, u, 1, 'queued', '{}', false, 'u', u, 't', tier, 'p', payload, 's', 'queued',
    'tok', '0', 'att', '0', 'rc', '0', 'dl', dl, 'ct', NOWS)
return {1, 'queued', position_fast(tier, mine - 1, depth)}
