-- position: ARGV[B+1] generation id.
-- Returns {state, position}: position is the approximate number of jobs that
-- start before this one when it is queued, -1 otherwise; {} when unknown.
local g = ARGV[B + 1]
local f = redis.call('HMGET', jkey(g), 's', 'd')
if not f[1] then return {} end
if f[1] ~= 'queued' then return {f[1], -1} end
local u, tier = job_unpack(f[2])
return {f[1], position(g, u, tier)}
