"""Lua for moving DLQ entries: redrive and purge, each atomic per batch.

The caller reads the entries first (by id, or a page of an index) to learn which
subscription each belongs to, so every key a script touches is declared; the script then
re-checks each entry still exists, so two concurrent redrives never move one entry twice.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript
from app.adapters.redis.lua_messages import NOTIFY

REDRIVE = LuaScript(
    "dlq_redrive",
    NOTIFY
    + """
-- KEYS: dlq, dlq index, subs, then (dlq index of sub k, queue of sub k) for k = 1..n, waiting
-- ARGV: n, sub ids (n), then (entry id, k, envelope JSON) per entry
-- An entry whose subscription is gone stays in the DLQ.
local n = tonumber(ARGV[1])
local moved = 0
local woken = {}
for i = n + 2, #ARGV, 3 do
  local id, k = ARGV[i], tonumber(ARGV[i + 1])
  local live = redis.call('SISMEMBER', KEYS[3], ARGV[1 + k]) == 1
  if live and redis.call('HDEL', KEYS[1], id) == 1 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[2 + 2 * k], id)
    redis.call('XADD', KEYS[3 + 2 * k], '*', 'e', ARGV[i + 2], 'a', '1')
    if not woken[k] then woken[k] = true; notify(KEYS[#KEYS], ARGV[1 + k]) end
    moved = moved + 1
  end
end
return moved
""",
)

PURGE = LuaScript(
    "dlq_purge",
    """
-- KEYS: dlq, dlq index, then the dlq index of sub k for k = 1..n
-- ARGV: (entry id, k) per entry
local purged = 0
for i = 1, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HDEL', KEYS[1], id) == 1 then
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[2 + tonumber(ARGV[i + 1])], id)
    purged = purged + 1
  end
end
return purged
""",
)
