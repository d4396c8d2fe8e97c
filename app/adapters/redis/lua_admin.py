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

REGISTER = LuaScript(
    "register",
    """
-- KEYS: registry, version, topics; ARGV: id, JSON, new version, topic, 'create' | 'put'
-- Returns -1 when 'create' finds the id taken, else 1 if it existed before, 0 if not.
local existed = redis.call('HEXISTS', KEYS[1], ARGV[1])
if ARGV[5] == 'create' and existed == 1 then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
return existed
""",
)

UNREGISTER = LuaScript(
    "unregister",
    """
-- KEYS: registry, version; ARGV: id, new version
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
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
