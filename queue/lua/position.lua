-- position: ARGV[B+1] generation id.
-- Returns {state, position}: position is the approximate number of jobs that
-- start before this one when it is queued, -1 otherwise; {} when unknown.
local g = ARGV[B + 1]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'u', 't')
if not f[1] then return {} end
if f[1] ~= 'queued' then return {f[1], -1} end
return {f[1], position(g, job_ut(jk, f[2], f[3]))}
