"""Lua for the delivery insight log: one call per message and one per log per flush.

Written command by command, one delivered message cost seven commands (hash field, list
push and trim, flag, mark, two expiries) plus a stream entry, and redis-py spends more CPU
packing commands and parsing replies than the rest of a delivery's bookkeeping. A script
takes every fact of one message in one call (its keys share the message's hash tag, so it
stays on one slot), and every attempt of one subscription's log in one more (the topic's
tag): two calls per message and flush whatever the number of facts.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript

MESSAGE = LuaScript(
    "insight_message",
    """
-- KEYS[1]: the message hash; KEYS[2..]: attempt lists of the subscriptions attempted
-- ARGV: ttl_ms, cap, n (hash field pairs), field, value, ... then per attempt list:
--       count, raw, raw, ...
local ttl = ARGV[1]
local cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local i = 4
if n > 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV, i, i + 2 * n - 1))
  i = i + 2 * n
end
redis.call('PEXPIRE', KEYS[1], ttl)
for k = 2, #KEYS do
  local count = tonumber(ARGV[i])
  redis.call('RPUSH', KEYS[k], unpack(ARGV, i + 1, i + count))
  i = i + count + 1
  redis.call('LTRIM', KEYS[k], -cap, -1)
  redis.call('PEXPIRE', KEYS[k], ttl)
end
return 1
""",
)

LOG = LuaScript(
    "insight_log",
    """
-- KEYS[1]: a subscription's attempt log (stream)
-- ARGV: maxlen, minid, ttl_ms, raw, raw, ...
for j = 4, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'r', ARGV[j])
end
redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
""",
)
