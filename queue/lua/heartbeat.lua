-- heartbeat: ARGV[B+1] generation id, [B+2] fencing token, [B+3] worker id.
-- Returns {0, cancel_requested (0|1), lease_until} and extends the lease when
-- the token is the job's current one and the job is running; {-1, state}
-- when it is not (another worker holds a newer lease, or the job ended: a
-- holder whose lease a claim took away is alive, so that reclaim does not
-- count toward poison);
-- {-2} when the job is unknown.
local g, tok, wid = ARGV[B + 1], ARGV[B + 2], ARGV[B + 3]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'tok', 'cx', 'lx')
if not f[1] then return {-2} end
if f[1] ~= 'running' or f[2] ~= tok then
    holder_back(jk, tok, f[4])
    return {-1, f[1]}
end
local until_ms = NOW + LEASE_MS
redis.call('ZADD', P .. 'leases', tostring(until_ms), g)
redis.call('ZADD', P .. 'workers', NOWS, wid)
-- Workers that stopped heartbeating ten leases ago are forgotten.
redis.call('ZREMRANGEBYSCORE', P .. 'workers', '-inf', tostring(NOW - 10 * LEASE_MS))
return {0, f[3] == '1' and 1 or 0, until_ms}
