-- events: ARGV[B+1] generation id, [B+2] after id, [B+3] max.
-- Returns up to max events of the generation with ids after+1, after+2, …,
-- each as "type\nts\ndata" (the job hash's fields '1', '2', …); {} when
-- there are none (or the generation is unknown).
-- A job that has ended with no more events than `after` answers {id, event}:
-- its terminal event under its own id, at or below the reader's cursor. That
-- is a reader at the end already, a cursor past it, or a history that went
-- back (Redis lost writes, or the whole job, which the sweeper enqueued
-- again, counting from 1): nothing after the cursor will ever come, and a
-- reader waiting for it must end.
local g, after, max = ARGV[B + 1], tonumber(ARGV[B + 2]), tonumber(ARGV[B + 3])
-- Only whole ids in 0..2^53: beyond, Lua's doubles cannot count up by one and
-- the loop below would never end (Redis busy for good).
if not after or after < 0 or after ~= math.floor(after) or after > 9007199254740991 then
    return {}
end
local jk = jkey(g)
local n = tonumber(redis.call('HGET', jk, 'n')) or 0
local last = math.min(n, after + max)
if last <= after then
    if n > 0 and n <= after then
        local s = redis.call('HGET', jk, 's')
        if s == 'done' or s == 'dead' or s == 'canceled' or s == 'expired' then
            return {n, redis.call('HGET', jk, tostring(n))}
        end
    end
    return {}
end
local ids = {}
for i = after + 1, last do ids[#ids + 1] = tostring(i) end
return redis.call('HMGET', jk, unpack(ids))
