"""The Lua scripts that make each Redis store operation atomic.

Redis runs a script to the end before it serves any other command, so a compare-and-set or
a claim reads and writes with no one in between: two claimers never lease the same item.

Documents: KEYS[1] is the hash of documents (key -> "<version> <payload>"); KEYS[2] is the
sorted set of document keys, all at score 0, so Redis keeps them in byte order for listing.

A queue is seven keys, passed in the order of `QUEUE_PARTS`:
  data        hash  item id -> its bytes
  order       hash  item id -> its push sequence number, which fixes its place in line
  deliveries  hash  item id -> how many times it has been claimed
  receipts    hash  item id -> the receipt of its latest delivery
  holders     hash  receipt -> item id, for receipts that are still current
  ready       zset  available item ids, scored by push sequence number
  leased      zset  leased item ids, scored by lease expiry
and one more for pushes, `counter`, the last sequence number handed out. An item is in
exactly one of `ready` and `leased`. A claim first moves every passed lease back to `ready`
(keeping its receipt current until the item is claimed again), then leases the lowest
sequence numbers.

Time: ARGV carries the store's clock reading, or '' to read the Redis server's own clock,
which every client of one server shares. Scores and times travel as '%.17g' text: a Lua
number handed straight to redis.call would be cut to 14 digits.
"""

from __future__ import annotations

QUEUE_PARTS = ("data", "order", "deliveries", "receipts", "holders", "ready", "leased")

_HELPERS = """
local function now(reading)
  local seconds = tonumber(reading)
  if seconds then return seconds end
  local time = redis.call('TIME')
  return tonumber(time[1]) + tonumber(time[2]) / 1000000
end
local function exact(number) return string.format('%.17g', number) end
local function version_of(stored) return tonumber(string.match(stored, '^%d+')) end
"""

PUT = (
    _HELPERS
    + """
-- ARGV: key, payload, expected version ('' for no condition).
-- Returns {1, new version}, or {0, version found (0 for none)} when the condition fails.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
local found = 0
if stored then found = version_of(stored) end
if ARGV[3] ~= '' and tonumber(ARGV[3]) ~= found then return {0, found} end
redis.call('HSET', KEYS[1], ARGV[1], (found + 1) .. ' ' .. ARGV[2])
if found == 0 then redis.call('ZADD', KEYS[2], 0, ARGV[1]) end
return {1, found + 1}
"""
)

PUT_MANY = (
    _HELPERS
    + """
-- ARGV: '1' for create only, else '0'; then key, payload pairs. Returns the keys written.
local written = {}
for i = 2, #ARGV, 2 do
  local stored = redis.call('HGET', KEYS[1], ARGV[i])
  if not stored then
    redis.call('HSET', KEYS[1], ARGV[i], '1 ' .. ARGV[i + 1])
    redis.call('ZADD', KEYS[2], 0, ARGV[i])
    written[#written + 1] = ARGV[i]
  elseif ARGV[1] ~= '1' then
    redis.call('HSET', KEYS[1], ARGV[i], (version_of(stored) + 1) .. ' ' .. ARGV[i + 1])
    written[#written + 1] = ARGV[i]
  end
end
return written
"""
)

DELETE = (
    _HELPERS
    + """
-- ARGV: key, expected version ('' for no condition).
-- Returns {1, version} when deleted, {0, 0} when absent, {-1, version found} on conflict.
local stored = redis.call('HGET', KEYS[1], ARGV[1])
if not stored then return {0, 0} end
local found = version_of(stored)
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= found then return {-1, found} end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, found}
"""
)

LIST = """
-- ARGV: lower and upper bound in ZRANGEBYLEX form, most documents to return.
-- Returns key, stored value, key, stored value, ... in key order.
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
local found = {}
for _, key in ipairs(keys) do
  local stored = redis.call('HGET', KEYS[1], key)
  if stored then
    found[#found + 1] = key
    found[#found + 1] = stored
  end
end
return found
"""

PUSH = """
-- KEYS: data, order, ready, counter. ARGV: item id, data pairs. An id already queued stays.
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    local seq = redis.call('INCR', KEYS[4])
    redis.call('HSET', KEYS[2], ARGV[i], seq)
    redis.call('ZADD', KEYS[3], seq, ARGV[i])
  end
end
return 0
"""

CLAIM = (
    _HELPERS
    + """
-- ARGV: rank of the last item to take (limit - 1), lease seconds, clock reading, receipt
-- prefix unique to this claim. Returns the lease expiry, then id, data, receipt and
-- deliveries of each item taken.
local t = now(ARGV[3])
local passed = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', exact(t))
for _, id in ipairs(passed) do
  redis.call('ZADD', KEYS[6], redis.call('HGET', KEYS[2], id), id)
end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', exact(t))
local expires = exact(t + tonumber(ARGV[2]))
local ids = redis.call('ZRANGE', KEYS[6], 0, ARGV[1])
local claims = {expires}
for index, id in ipairs(ids) do
  local previous = redis.call('HGET', KEYS[4], id)
  if previous then redis.call('HDEL', KEYS[5], previous) end
  local receipt = ARGV[4] .. index
  redis.call('HSET', KEYS[4], id, receipt)
  redis.call('HSET', KEYS[5], receipt, id)
  redis.call('ZADD', KEYS[7], expires, id)
  claims[#claims + 1] = id
  claims[#claims + 1] = redis.call('HGET', KEYS[1], id)
  claims[#claims + 1] = receipt
  claims[#claims + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
end
if #ids > 0 then redis.call('ZREMRANGEBYRANK', KEYS[6], 0, #ids - 1) end
return claims
"""
)

ACK = """
-- KEYS: the queue's seven parts, then its counter. ARGV: receipts.
-- Removes the items whose receipt is current; returns those receipts.
local acked = {}
for _, receipt in ipairs(ARGV) do
  local id = redis.call('HGET', KEYS[5], receipt)
  if id then
    redis.call('HDEL', KEYS[5], receipt)
    for part = 1, 4 do redis.call('HDEL', KEYS[part], id) end
    redis.call('ZREM', KEYS[6], id)
    redis.call('ZREM', KEYS[7], id)
    acked[#acked + 1] = receipt
  end
end
-- An emptied queue leaves nothing behind: its numbering starts again at the next push.
if #acked > 0 and redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[8]) end
return acked
"""

RENEW = (
    _HELPERS
    + """
-- ARGV: lease seconds, clock reading, then receipts. Leases the items whose receipt is
-- current until now + lease seconds; returns those receipts.
local expires = exact(now(ARGV[2]) + tonumber(ARGV[1]))
local renewed = {}
for i = 3, #ARGV do
  local id = redis.call('HGET', KEYS[5], ARGV[i])
  if id then
    redis.call('ZREM', KEYS[6], id)
    redis.call('ZADD', KEYS[7], expires, id)
    renewed[#renewed + 1] = ARGV[i]
  end
end
return renewed
"""
)
