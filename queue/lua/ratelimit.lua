-- ratelimit: ARGV is one or more takes of 5 arguments each: the bucket's
-- name, tokens per minute, burst, and a user id and its tier ('' and '':
-- none). The async client sends the takes of one loop iteration together;
-- they are taken in order, so two of one bucket see each other.
-- A token bucket per name: it refills at the rate, holds at most the burst,
-- and each allowed request takes one token.
-- Returns one answer per take, in order: {allowed (1|0), tokens left, ms
-- until the next token, the tier's cap when the user already has that many
-- active generations (enqueue would refuse the next one), else 0}.
-- One take from the bucket `key`: {allowed, tokens left, ms until the next, 0}.
local function take(key, rate, burst)
    local f = redis.call('HMGET', key, 't', 'ts')
    local tokens, ts = tonumber(f[1]), tonumber(f[2])
    if tokens == nil then
        tokens, ts = burst, NOW
    end
    tokens = math.min(burst, tokens + (NOW - ts) * rate / 60000)
    local allowed = 0
    if tokens >= 1 then
        tokens = tokens - 1
        allowed = 1
    end
    local wait = 0
    if tokens < 1 then
        wait = math.ceil((1 - tokens) * 60000 / rate)
    end
    redis.call('HSET', key, 't', tostring(tokens), 'ts', NOWS)
    -- The bucket is full again `full` ms after this take (burst / rate minutes,
    -- and a second): from then on a missing bucket gives the same answers, so
    -- it may as well not exist. It must outlive this take by `full` at least:
    -- its expiry is pushed out (a write, and an AOF entry) only when less than
    -- that is left, to twice that, which a busy bucket needs once per `full`
    -- ms, not once per take. (PTTL is a read; a new bucket has none: -1.)
    local full = math.ceil(burst * 60000 / rate) + 1000
    if redis.call('PTTL', key) < full then redis.call('PEXPIRE', key, 2 * full) end
    return {allowed, math.floor(tokens), wait, 0}
end

local out = {}
for i = 0, #ARGV / 5 - 1 do
    local a = B + i * 5
    local name, rate, burst = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
    local u, t = ARGV[a + 4], TIER[ARGV[a + 5]]
    out[i + 1] = take(P .. 'rl:' .. name, rate, burst)
    if u ~= '' and t and (tonumber(redis.call('GET', P .. 'a:' .. u)) or 0) >= t.cap then
        out[i + 1][4] = t.cap
    end
end
return out
