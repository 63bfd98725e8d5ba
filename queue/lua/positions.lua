-- positions: ARGV[B+1] generation ids, each followed by '\n' (at most 100).
-- Returns, flat and in the order asked, {state, position, stage, progress}
-- for each id as position.lua answers for one, and {'', -1, '', ''} for an id
-- the queue does not know.
-- The queued jobs of one user and tier share one walk of the tier's ring.
local ids, out, groups = {}, {}, {}
for g in string.gmatch(ARGV[B + 1], '([^\n]+)\n') do ids[#ids + 1] = g end
if #ids > 100 then return redis.error_reply('EINVAL positions: more than 100 ids') end
for i, g in ipairs(ids) do
    local jk = jkey(g)
    local f = redis.call('HMGET', jk, 's', 'u', 't', 'sg', 'pg')
    local s = f[1]
    out[4 * i - 3], out[4 * i - 2], out[4 * i - 1], out[4 * i] = s or '', -1, '', ''
    if s == 'running' then
        out[4 * i - 1], out[4 * i] = f[4] or '', f[5] or ''
    elseif s == 'queued' then
        local u, t = job_ut(jk, f[2], f[3])
        local key = t .. '\n' .. u
        local grp = groups[key]
        if not grp then
            grp = {u = u, t = t, at = {}}
            groups[key] = grp
        end
        grp.at[#grp.at + 1] = i
    end
end
local d
for _, grp in pairs(groups) do
    local qk, mine, kmax = qkey(grp.t, grp.u), {}, 0
    for _, i in ipairs(grp.at) do
        mine[i] = redis.call('LPOS', qk, ids[i]) or 0
        kmax = math.max(kmax, mine[i])
    end
    local ahead = ahead_in_tier(grp.u, grp.t, kmax)
    d = d or depths()
    for _, i in ipairs(grp.at) do out[4 * i - 2] = other_tiers(grp.t, ahead(mine[i]), d) end
end
return out
