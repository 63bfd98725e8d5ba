-- position: ARGV[B+1] generation id.
-- Returns {state, position, stage, progress}: position is the approximate
-- number of jobs that start before this one when it is queued, -1 otherwise;
-- stage is the one the latest 'started' or 'progress' event of a running job
-- named, progress the latest its worker's events said (event.lua), else ''.
-- {} when unknown.
local g = ARGV[B + 1]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'u', 't', 'sg', 'pg')
if not f[1] then return {} end
if f[1] == 'running' then return {f[1], -1, f[4] or '', f[5] or ''} end
if f[1] ~= 'queued' then return {f[1], -1, '', ''} end
return {f[1], position(g, job_ut(jk, f[2], f[3])), '', ''}
