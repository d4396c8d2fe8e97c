"""Lua for consumer groups, trimming, consumer hygiene, statistics and the registry.

Group and trim scripts touch one topic's slot; registry scripts touch the ``{_}`` slot.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript

_FIELDS = """
local function fields(flat)
  local f = {}
  for i = 1, #flat, 2 do f[flat[i]] = flat[i + 1] end
  return f
end
local function tolerate(reply, expected)
  if type(reply) == 'table' and reply.err and not string.find(reply.err, expected, 1, true) then
    error(reply)
  end
  return reply
end
"""

ENSURE_GROUPS = LuaScript(
    "ensure_groups",
    _FIELDS
    + """
-- KEYS: stream, queue, subs, origins; ARGV: subscription id, 'create' | 'recover'
-- create: the group starts at the end of the stream (a subscription sees only later
-- messages) and that position is remembered. recover (NOGROUP: the group or the stream was
-- lost): start again from the remembered position, so nothing published since is skipped.
local id = ARGV[1]
local origin = redis.call('HGET', KEYS[4], id)
if ARGV[2] == 'create' then
  local r = tolerate(redis.pcall('XGROUP', 'CREATE', KEYS[1], id, '$', 'MKSTREAM'), 'BUSYGROUP')
  if not (type(r) == 'table' and r.err) or not origin then
    origin = fields(redis.call('XINFO', 'STREAM', KEYS[1]))['last-generated-id']
    redis.call('HSET', KEYS[4], id, origin)
  end
else
  tolerate(redis.pcall('XGROUP', 'CREATE', KEYS[1], id, origin or '0', 'MKSTREAM'), 'BUSYGROUP')
end
tolerate(redis.pcall('XGROUP', 'CREATE', KEYS[2], id, '0', 'MKSTREAM'), 'BUSYGROUP')
redis.call('SADD', KEYS[3], id)
return origin or ''
""",
)

DROP_GROUPS = LuaScript(
    "drop_groups",
    """
-- KEYS: stream, queue, schedule, subs, origins; ARGV: subscription id
redis.call('SREM', KEYS[4], ARGV[1])
redis.pcall('XGROUP', 'DESTROY', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HDEL', KEYS[5], ARGV[1])
if redis.call('SCARD', KEYS[4]) == 0 then
  -- no subscription left: nobody can ever read what the stream holds
  redis.call('DEL', KEYS[1], KEYS[5])
end
return 1
""",
)

TRIM = LuaScript(
    "trim",
    _FIELDS
    + """
-- KEYS: stream, subs. Drops entries below the oldest one some group still needs: its
-- oldest pending entry, or (nothing pending) its last delivered one. Returns entries
-- removed, or -1 when a subscription has lost its group (kept until it is recovered).
local groups = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if type(groups) == 'table' and groups.err then return 0 end
local have, low, low_ms, low_seq = {}, nil, nil, nil
for _, flat in ipairs(groups) do
  local g = fields(flat)
  have[g['name']] = true
  local bound = g['last-delivered-id']
  if tonumber(g['pending']) > 0 then bound = redis.call('XPENDING', KEYS[1], g['name'])[2] end
  local ms, seq = string.match(bound, '^(%d+)-(%d+)$')
  ms, seq = tonumber(ms), tonumber(seq)
  if not low or ms < low_ms or (ms == low_ms and seq < low_seq) then
    low, low_ms, low_seq = bound, ms, seq
  end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not have[id] then return -1 end
end
if not low then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', low)
""",
)

TIDY_CONSUMERS = LuaScript(
    "tidy_consumers",
    _FIELDS
    + """
-- KEYS: stream, queue; ARGV: group, idle ms, only this consumer ('' = any)
-- Removes consumers with nothing pending (each restart of a process adds a new name).
-- Atomic with the check, so no pending entry is ever dropped with its consumer.
local removed = 0
for _, stream in ipairs(KEYS) do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', stream, ARGV[1])
  if not (type(consumers) == 'table' and consumers.err) then
    for _, flat in ipairs(consumers) do
      local c = fields(flat)
      if tonumber(c['pending']) == 0 and tonumber(c['idle']) >= tonumber(ARGV[2])
          and (ARGV[3] == '' or ARGV[3] == c['name']) then
        redis.call('XGROUP', 'DELCONSUMER', stream, ARGV[1], c['name'])
        removed = removed + 1
      end
    end
  end
end
return removed
""",
)

STATS = LuaScript(
    "stats",
    _FIELDS
    + """
-- KEYS: stream, dlq, then (queue, schedule, dlq index) per subscription; ARGV: subscription ids
-- Returns dlq total, then (backlog, in flight, scheduled, dlq) per subscription.
local groups = {}
local reply = redis.pcall('XINFO', 'GROUPS', KEYS[1])
if not (type(reply) == 'table' and reply.err) then
  for _, flat in ipairs(reply) do
    local g = fields(flat)
    groups[g['name']] = g
  end
end
local out = {redis.call('HLEN', KEYS[2])}
for i, id in ipairs(ARGV) do
  local queue, sched, dlq = KEYS[3 * i], KEYS[3 * i + 1], KEYS[3 * i + 2]
  local backlog, in_flight = 0, 0
  local g = groups[id]
  if g then
    in_flight = tonumber(g['pending'])
    if g['lag'] then
      backlog = tonumber(g['lag'])
    else
      -- lag unknown (group recreated at an explicit id): count, capped
      backlog = #redis.call('XRANGE', KEYS[1], '(' .. g['last-delivered-id'], '+', 'COUNT', 10000)
    end
  end
  local qg = redis.pcall('XINFO', 'GROUPS', queue)
  local q_pending = 0
  if not (type(qg) == 'table' and qg.err) and qg[1] then
    q_pending = tonumber(fields(qg[1])['pending'])
  end
  backlog = backlog + redis.call('XLEN', queue) - q_pending
  in_flight = in_flight + q_pending
  out[#out + 1] = backlog
  out[#out + 1] = in_flight
  out[#out + 1] = redis.call('ZCARD', sched)
  out[#out + 1] = redis.call('ZCARD', dlq)
end
return out
""",
)

_BUMP = """
-- The registry's version is a counter (an older random token counts as 0); each change
-- is also logged in a sorted set, trimmed to the newest ones, so an instance can read
-- only what changed since the version it saw (registry_changes).
local function bump(version_key, changes_key, id, keep)
  local version = (tonumber(redis.call('GET', version_key)) or 0) + 1
  redis.call('SET', version_key, version)
  redis.call('ZADD', changes_key, version, version .. ':' .. id)
  redis.call('ZREMRANGEBYSCORE', changes_key, '-inf', '(' .. (version - tonumber(keep)))
end
"""

REGISTER = LuaScript(
    "register",
    _BUMP
    + """
-- KEYS: registry, version, topics, changes; ARGV: id, JSON, topic, 'create' | 'put', keep
-- Returns -1 when 'create' finds the id taken, else 1 if it existed before, 0 if not.
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[4] == 'create' and existed == 1 then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
bump(KEYS[2], KEYS[4], ARGV[1], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[3])
return existed
""",
)

UNREGISTER = LuaScript(
    "unregister",
    _BUMP
    + """
-- KEYS: registry, version, changes; ARGV: id, keep
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
bump(KEYS[2], KEYS[3], ARGV[1], ARGV[2])
return 1
""",
)

REGISTRY_CHANGES = LuaScript(
    "registry_changes",
    """
-- KEYS: version, changes; ARGV: the version the caller saw
-- Returns {version, 1, "<v>:<id>"...} with the changes after it, or {version, 0} when they
-- are not known (an unknown or a trimmed-away version: the caller reads everything).
local version = redis.call('GET', KEYS[1]) or '0'
local now, since = tonumber(version), tonumber(ARGV[1])
if not now or not since or since > now then return {version, 0} end
if since == now then return {version, 1} end
local oldest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if not oldest[2] or tonumber(oldest[2]) > since + 1 then return {version, 0} end
local out = {version, 1}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. since, '+inf')) do
  out[#out + 1] = member
end
return out
""",
)

LIST_REGISTRY = LuaScript(
    "list_registry",
    """
-- KEYS: registry, version; ARGV: the version the caller holds
-- Returns {version} when unchanged, else {version, id, JSON, id, JSON, ...}.
local version = redis.call('GET', KEYS[2]) or ''
if version ~= '' and version == ARGV[1] then return {version} end
local out = {version}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
""",
)
