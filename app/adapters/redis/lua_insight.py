"""Lua for the delivery insight log: one call per flush of the recorder (issue 13).

Written command by command, one delivered message cost seven commands (hash field, list
push and trim, flag, mark, two expiries) plus a stream entry; one script call per message
and one per log still cost redis-py a command each (packing, reply parsing) and Redis a
script invocation each: 41 % of drain throughput. :data:`WRITE` takes a whole flush (up
to ``CHUNK`` messages or logs per call) and keeps one delivered message's facts in the
message's own hash: its attempts of one subscription are one field, JSON lines oldest
first (``a:<sub>``), appended and trimmed to the cap here; a mark is stored (``s:<sub>``)
only when no attempt implies it, and an attempt deletes its copy's stored mark.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript

CHUNK = 256
"""Messages (or logs) per call at most: a backlog of facts written after an outage must
not become one script that blocks Redis for long."""

SEPARATOR = b"\x1f"
"""Between the tokens of a call's facts: JSON never holds a raw control character (it
must escape them), and ids are letters, digits and ``._:-`` (the API's ``ID_PATTERN``)."""

WRITE = LuaScript(
    "insight_write",
    """
-- KEYS: message hashes (ARGV[5] of them), then subscription logs (streams)
-- ARGV: ttl_ms, cap, maxlen, minid, n_messages, facts
-- facts: tokens separated by \\x1f (one argument: redis-py packs an argument in Python,
--   so a flush of 500 attempts as 2,500 arguments cost more than all the rest); per message:
--   n_subs, (sub, lines) per sub attempted, n_fields, (field, value) per field;
--   then per log: lines
-- lines: JSON attempts joined by newlines (JSON never holds a raw newline), oldest first
local ttl = ARGV[1]
local cap = tonumber(ARGV[2])
local maxlen = ARGV[3]
local minid = ARGV[4]
local n = tonumber(ARGV[5])
local t = {}
for token in string.gmatch(ARGV[6], '[^\\31]+') do t[#t + 1] = token end
local i = 1

local function trimmed(lines)
  local count = 1
  for _ in string.gmatch(lines, '\\n') do count = count + 1 end
  local start = 1
  while count > cap do
    start = string.find(lines, '\\n', start, true) + 1
    count = count - 1
  end
  if start > 1 then return string.sub(lines, start) end
  return lines
end

for k = 1, n do
  local key = KEYS[k]
  local subs = tonumber(t[i])
  i = i + 1
  for _ = 1, subs do
    local sub = t[i]
    local lines = t[i + 1]
    i = i + 2
    local field = 'a:' .. sub
    local old = redis.call('HGET', key, field)
    if old and old ~= '1' then lines = old .. '\\n' .. lines end
    redis.call('HSET', key, field, trimmed(lines))
    redis.call('HDEL', key, 's:' .. sub)
  end
  local fields = tonumber(t[i])
  i = i + 1
  if fields > 0 then
    redis.call('HSET', key, unpack(t, i, i + 2 * fields - 1))
    i = i + 2 * fields
  end
  redis.call('PEXPIRE', key, ttl)
end
for k = n + 1, #KEYS do
  for raw in string.gmatch(t[i], '[^\\n]+') do
    redis.call('XADD', KEYS[k], 'MAXLEN', '~', maxlen, '*', 'r', raw)
  end
  i = i + 1
  redis.call('XTRIM', KEYS[k], 'MINID', '~', minid)
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return 1
""",
)
