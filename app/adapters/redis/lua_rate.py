"""Lua for the shared rate limit: one token bucket per subscription, on Redis' clock.

Every instance reserves from the same bucket, so the cap holds for all of them together.
Redis' ``TIME`` is the clock, so instances with skewed clocks agree. The key lives under
the topic's hash tag (one slot) and expires once the bucket would be full again: an idle
subscription costs nothing.
"""

from __future__ import annotations

from app.adapters.redis.connection import LuaScript

RESERVE = LuaScript(
    "rate_reserve",
    """
-- KEYS: the bucket (hash: tokens, ts)
-- ARGV: per_second, burst
-- Takes a token (the balance may go negative: a reservation) and returns the ms to wait.
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(saved[1]) or burst
local ts = tonumber(saved[2]) or now
if now > ts then
  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
else
  now = ts
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
if tokens >= 0 then
  return 0
end
return math.ceil(-tokens * 1000 / rate)
""",
)
