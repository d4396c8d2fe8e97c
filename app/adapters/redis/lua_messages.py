"""Lua for the message path: publish, lease, and the four ways a lease ends.

Each script touches the keys of one topic only (one cluster slot) and does its whole
step atomically: an outcome is recorded in the same step that acknowledges the lease, so
a crash leaves either the lease (redelivered later) or the outcome, never neither.

Entries: the topic stream holds ``e`` (envelope JSON); a subscription's own stream holds
``e`` and ``a`` (attempt). Scheduled copies are zset members ``<token>|<attempt>|<json>``
scored by due time (ms); ``<token>`` keeps members unique.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript

WAITING_TTL_MS = 900_000
"""How long a receiver's mark in a topic's ``waiting`` set lasts: longer than any wait
for work (the dispatcher's idle wait is 5 minutes), renewed by every empty lease."""

NOTIFY = """
-- Wakes receive loops in every instance (see wakeups.py): one PUBLISH on '<prefix>:wake'
-- of the topic (all its subscriptions) or 'topic sub' (one), both read back from KEYS[1];
-- only when a receiver of it waits (in the set 'waiting', which the receive script fills
-- when it finds nothing), and the wake-up empties the set (or takes the one out).
local function notify(waiting, sub)
  if sub then
    if redis.call('SREM', waiting, sub) == 0 then return end
  elseif redis.call('DEL', waiting) == 0 then
    return
  end
  local prefix, topic = string.match(KEYS[1], '^(.-):{(.-)}:')
  if not prefix then return end
  redis.call('PUBLISH', prefix .. ':wake', sub and (topic .. ' ' .. sub) or topic)
end
"""

_PROMOTE = """
-- Moves due scheduled copies into the subscription's own stream. Best effort: when Redis
-- is out of memory (noeviction) the XADD is refused, the copies stay scheduled, and the
-- rest of the calling script (reading, acknowledging: what frees memory) still runs.
local function promote(sched, queue, now, limit)
  local due = redis.call('ZRANGEBYSCORE', sched, '-inf', now, 'LIMIT', 0, limit)
  local moved = {}
  for _, member in ipairs(due) do
    local a = string.find(member, '|', 1, true)
    local b = string.find(member, '|', a + 1, true)
    local attempt, envelope = string.sub(member, a + 1, b - 1), string.sub(member, b + 1)
    local added = redis.pcall('XADD', queue, '*', 'e', envelope, 'a', attempt)
    if type(added) == 'table' and added.err then break end
    moved[#moved + 1] = member
  end
  if #moved > 0 then redis.call('ZREM', sched, unpack(moved)) end
  local nxt = redis.call('ZRANGE', sched, 0, 0, 'WITHSCORES')
  return nxt[2] or '', #moved
end
"""

PUBLISH = LuaScript(
    "publish",
    NOTIFY
    + """
-- KEYS: stream, subs, waiting, schedule of each expected subscription
-- ARGV: n, sub ids (n), n_now, envelopes (n_now), n_later, (due, member) pairs
local n = tonumber(ARGV[1])
local pos = n + 2
local n_now = tonumber(ARGV[pos])
local first_now = pos + 1
pos = first_now + n_now
local n_later = tonumber(ARGV[pos])
local first_later = pos + 1
if n_later > 0 then
  -- delayed copies go to the subscriptions existing now; the caller must name them all
  if redis.call('SCARD', KEYS[2]) ~= n then return {'stale'} end
  for i = 1, n do
    if redis.call('SISMEMBER', KEYS[2], ARGV[1 + i]) == 0 then return {'stale'} end
  end
end
local stored = 0
-- a topic without subscriptions delivers to nobody: nothing to keep
if n_now > 0 and redis.call('EXISTS', KEYS[2]) == 1 then
  for i = first_now, first_now + n_now - 1 do
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i])
  end
  stored = n_now
  notify(KEYS[3], nil)
end
for k = 1, n do
  for i = first_later, first_later + 2 * n_later - 1, 2 do
    redis.call('ZADD', KEYS[3 + k], ARGV[i], ARGV[i + 1])
  end
end
return {'ok', stored}
""",
)

RECEIVE = LuaScript(
    "receive",
    (
        _PROMOTE
        + """
-- KEYS: stream, queue (the subscription's own stream), schedule, waiting
-- ARGV: group, consumer, want, now, claim?, min idle, stream cursor, queue cursor, promote limit,
--       read new? ('0': only claim)
-- Returns status ('ok' | 'wait' | 'nogroup'), next due, both claim cursors, claimed count,
-- then one string per lease: kind, id, attempt, envelope joined by newlines ('wait' adds
-- the number of leases other consumers hold instead).
local stream, queue, sched = KEYS[1], KEYS[2], KEYS[3]
local group, consumer = ARGV[1], ARGV[2]
local want = tonumber(ARGV[3])
local out = {'ok', '', ARGV[7], ARGV[8], 0}

local function add(kind, id, fields)
  local e, a = nil, '1'
  for i = 1, #fields, 2 do
    if fields[i] == 'e' then e = fields[i + 1] elseif fields[i] == 'a' then a = fields[i + 1] end
  end
  if e then
    -- one string per lease: a quarter of the reply parsing a client does per message
    out[#out + 1] = kind .. '\\n' .. id .. '\\n' .. a .. '\\n' .. e
    want = want - 1
  else
    -- not ours to interpret: end it so it cannot loop forever
    redis.call('XACK', kind == 't' and stream or queue, group, id)
  end
end

local function lost_group(reply)
  if type(reply) == 'table' and reply.err then
    if string.find(reply.err, 'NOGROUP', 1, true) then return true end
    error(reply)
  end
  return false
end

-- due retries and delayed copies join the subscription's own stream
out[2] = promote(sched, queue, ARGV[4], tonumber(ARGV[9]))

-- leases left silent longer than the visibility timeout (their consumer died)
if ARGV[5] == '1' then
  -- show this process in XINFO CONSUMERS even while idle (7.0 adds it only on a read)
  redis.pcall('XGROUP', 'CREATECONSUMER', stream, group, consumer)
  for _, spec in ipairs({{queue, 'q', 4}, {stream, 't', 3}}) do
    if want > 0 then
      local r = redis.pcall('XAUTOCLAIM', spec[1], group, consumer, ARGV[6], out[spec[3]],
                            'COUNT', want)
      if lost_group(r) then out[1] = 'nogroup'; return out end
      out[spec[3]] = r[1]
      for _, entry in ipairs(r[2]) do
        if type(entry[2]) == 'table' then
          add(spec[2], entry[1], entry[2])
          out[5] = out[5] + 1
        end
      end
    end
  end
end

-- new copies: the subscription's own stream first (released, retried, redriven), then the topic
-- (not while an ordered subscription's new owner is still taking over: ARGV[10] = '0')
for _, spec in ipairs({{queue, 'q'}, {stream, 't'}}) do
  if want > 0 and ARGV[10] ~= '0' then
    local r = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', want,
                          'STREAMS', spec[1], '>')
    if lost_group(r) then out[1] = 'nogroup'; return out end
    if r then
      for _, entry in ipairs(r[1][2]) do add(spec[2], entry[1], entry[2]) end
    end
  end
end

if #out == 5 then
  -- nothing now: the next copy for this subscription wakes it (notify), and tell the
  -- caller how many leases other consumers hold, so it keeps checking for ones to take
  -- over (their consumer may die) instead of sleeping long
  out[1] = 'wait'
  redis.call('SADD', KEYS[4], group)
  redis.call('PEXPIRE', KEYS[4], WAITING_TTL_MS)
  local others = 0
  for _, s in ipairs({stream, queue}) do
    local p = redis.pcall('XPENDING', s, group)
    if type(p) == 'table' and not p.err and p[4] then
      for _, c in ipairs(p[4]) do
        if c[1] ~= consumer then others = others + tonumber(c[2]) end
      end
    end
  end
  out[6] = others
end
return out
"""
    ).replace("WAITING_TTL_MS", str(WAITING_TTL_MS)),
)

PROMOTE = LuaScript(
    "promote",
    _PROMOTE
    + NOTIFY
    + """
-- KEYS: schedule, queue, waiting; ARGV: now, limit, subscription.
-- Returns {next due time or '', copies moved}.
local next_due, moved = promote(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
if moved > 0 and ARGV[3] then notify(KEYS[3], ARGV[3]) end
return {next_due, moved}
""",
)

ACK = LuaScript(
    "ack",
    """
-- KEYS: stream, queue; ARGV: group, n stream ids, stream ids, queue ids
local n = tonumber(ARGV[2])
local acked = 0
if n > 0 then
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, 3, 2 + n))
end
if #ARGV > 2 + n then
  acked = acked + redis.call('XACK', KEYS[2], ARGV[1], unpack(ARGV, 3 + n, #ARGV))
  redis.call('XDEL', KEYS[2], unpack(ARGV, 3 + n, #ARGV))
end
return acked
""",
)

_END_LEASE = """
-- Ends a lease only while it is still ours: once another consumer has claimed it (we were
-- silent past the visibility timeout), our late outcome is dropped and theirs decides.
local function end_lease(kind, group, consumer, id)
  local source = kind == 't' and KEYS[1] or KEYS[2]
  local mine = redis.pcall('XPENDING', source, group, id, id, 1, consumer)
  if type(mine) ~= 'table' or mine.err or not mine[1] then return false end
  redis.call('XACK', source, group, id)
  if kind == 'q' then redis.call('XDEL', source, id) end
  return true
end
"""

RETRY = LuaScript(
    "retry",
    _END_LEASE
    + NOTIFY
    + """
-- KEYS: stream, queue, schedule, waiting
-- ARGV: group, consumer, kind, id, due, now, attempt, envelope
if not end_lease(ARGV[3], ARGV[1], ARGV[2], ARGV[4]) then return 0 end
if tonumber(ARGV[5]) <= tonumber(ARGV[6]) then
  redis.call('XADD', KEYS[2], '*', 'e', ARGV[8], 'a', ARGV[7])
  notify(KEYS[4], ARGV[1])
else
  redis.call('ZADD', KEYS[3], ARGV[5], ARGV[3] .. ARGV[4] .. '|' .. ARGV[7] .. '|' .. ARGV[8])
end
return 1
""",
)

DEAD_LETTER = LuaScript(
    "dead_letter",
    _END_LEASE
    + """
-- KEYS: stream, queue, dlq, dlq index, dlq index of the subscription
-- ARGV: group, consumer, kind, id, entry id, entry JSON
if not end_lease(ARGV[3], ARGV[1], ARGV[2], ARGV[4]) then return 0 end
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6])
redis.call('ZADD', KEYS[4], 0, ARGV[5])
redis.call('ZADD', KEYS[5], 0, ARGV[5])
return 1
""",
)

RELEASE = LuaScript(
    "release",
    _END_LEASE
    + NOTIFY
    + """
-- KEYS: stream, queue, waiting; ARGV: group, consumer, then (kind, id, attempt, envelope) per lease
local moved = 0
for i = 3, #ARGV, 4 do
  if end_lease(ARGV[i], ARGV[1], ARGV[2], ARGV[i + 1]) then
    redis.call('XADD', KEYS[2], '*', 'e', ARGV[i + 3], 'a', ARGV[i + 2])
    moved = moved + 1
  end
end
if moved > 0 then notify(KEYS[3], ARGV[1]) end
return moved
""",
)
