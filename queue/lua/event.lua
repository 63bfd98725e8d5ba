-- event: ARGV[B+1] generation id, [B+2] fencing token (0: not checked), [B+3] type,
-- [B+4] data JSON.
-- Appends an event and returns {0, id}; {-1, state} when a token is given and
-- is not the current one (a stale worker cannot report progress) or when the
-- job has ended; {-2} for an unknown job; {-3} when the generation already has
-- EV_MAX events.
-- A 'started' or 'progress' event names the stage the generation entered
-- (core/include/vocab.h); it is kept in the job's field 'sg' too, where position
-- reads it for GET, and so is its progress, in 'pg' (below).
local g, tok, typ, data = ARGV[B + 1], ARGV[B + 2], ARGV[B + 3], ARGV[B + 4]
local jk = jkey(g)
local f = redis.call('HMGET', jk, 's', 'tok', 'u', 'n', 'pg')
if not f[1] then return {-2} end
if tok ~= '0' and (f[1] ~= 'running' or f[2] ~= tok) then return {-1, f[1]} end
-- Nothing follows a terminal event: readers stop there.
local s = f[1]
if s == 'done' or s == 'dead' or s == 'canceled' or s == 'expired' then return {-1, s} end
local n = tonumber(f[4])
if n >= EV_MAX then return {-3} end
local u = f[3] or (job_ut(jk))
local sg = (typ == 'started' or typ == 'progress') and string.match(data, '"stage":"(%l+)"')
-- The progress of those and of an 'image' event, which the worker writes
-- first (a nested object's cannot match), kept only when it is larger: GET
-- never shows less than it did, when a job claimed again starts over.
local pg = (sg or typ == 'image') and string.match(data, '^{[^{}]*"progress":(%d+)')
if pg and f[5] and tonumber(f[5]) >= tonumber(pg) then pg = nil end
local kept = {}
if sg then kept = {'sg', sg} end
if pg then kept[#kept + 1] = 'pg'; kept[#kept + 1] = pg end
return {0, ev_append(g, jk, u, n + 1, typ, data, false, unpack(kept))}
