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
-- One command per slice of `values` instead of one per value: far fewer calls into Redis,
-- while each unpack stays well under Lua's limit of a few thousand values. Slices hold an
-- even number of values, so field/value and score/member pairs are never split.
local function call_with(command, key, values)
  for first = 1, #values, 1000 do
    redis.call(command, key, unpack(values, first, math.min(first + 999, #values)))
  end
end
local function hmget(key, fields)
  local found, count = {}, 0
  for first = 1, #fields, 1000 do
    local slice = redis.call('HMGET', key, unpack(fields, first, math.min(first + 999, #fields)))
    for i = 1, #slice do found[count + i] = slice[i] end
    count = count + #slice
  end
  return found
end
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

LIST = (
    _HELPERS
    + """
-- ARGV: lower and upper bound in ZRANGEBYLEX form, most documents to return.
-- Returns key, stored value, key, stored value, ... in key order.
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[1], ARGV[2], 'LIMIT', 0, ARGV[3])
local stored = hmget(KEYS[1], keys)
local found = {}
for i, key in ipairs(keys) do
  found[2 * i - 1], found[2 * i] = key, stored[i]
end
return found
"""
)

PUSH = (
    _HELPERS
    + """
-- KEYS: data, order, ready, counter. ARGV: item id, data pairs. An id already queued stays.
local added = {}
for i = 1, #ARGV, 2 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then added[#added + 1] = ARGV[i] end
end
if #added == 0 then return 0 end
local last = redis.call('INCRBY', KEYS[4], #added)
local places, line = {}, {}
for i, id in ipairs(added) do
  local seq = last - #added + i
  places[2 * i - 1], places[2 * i] = id, seq
  line[2 * i - 1], line[2 * i] = seq, id
end
call_with('HSET', KEYS[2], places)
call_with('ZADD', KEYS[3], line)
return #added
"""
)

CLAIM = (
    _HELPERS
    + """
-- ARGV: rank of the last item to take (limit - 1), lease seconds, clock reading, receipt
-- prefix unique to this claim. Returns the lease expiry, then id, data, receipt and
-- deliveries of each item taken.
local t = now(ARGV[3])
local passed = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', exact(t))
if #passed > 0 then
  local places, line = hmget(KEYS[2], passed), {}
  for i, id in ipairs(passed) do line[2 * i - 1], line[2 * i] = places[i], id end
  call_with('ZADD', KEYS[6], line)
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', exact(t))
end
local expires = exact(t + tonumber(ARGV[2]))
local ids = redis.call('ZRANGE', KEYS[6], 0, ARGV[1])
if #ids == 0 then return {expires} end
redis.call('ZREMRANGEBYRANK', KEYS[6], 0, #ids - 1)
local previous = hmget(KEYS[4], ids)
local stale, receipts, holders, leases = {}, {}, {}, {}
for i, id in ipairs(ids) do
  if previous[i] then stale[#stale + 1] = previous[i] end
  local receipt = ARGV[4] .. i
  receipts[2 * i - 1], receipts[2 * i] = id, receipt
  holders[2 * i - 1], holders[2 * i] = receipt, id
  leases[2 * i - 1], leases[2 * i] = expires, id
end
call_with('HDEL', KEYS[5], stale)
call_with('HSET', KEYS[4], receipts)
call_with('HSET', KEYS[5], holders)
call_with('ZADD', KEYS[7], leases)
local data = hmget(KEYS[1], ids)
local claims = {expires}
for i, id in ipairs(ids) do
  claims[4 * i - 2], claims[4 * i - 1], claims[4 * i] = id, data[i], receipts[2 * i]
  claims[4 * i + 1] = redis.call('HINCRBY', KEYS[3], id, 1)
end
return claims
"""
)

ACK = (
    _HELPERS
    + """
-- KEYS: the queue's seven parts, then its counter. ARGV: receipts.
-- Removes the items whose receipt is current; returns those receipts.
local ids = hmget(KEYS[5], ARGV)
local acked, gone = {}, {}
for i = 1, #ARGV do
  if ids[i] then
    acked[#acked + 1] = ARGV[i]
    gone[#gone + 1] = ids[i]
  end
end
if #acked == 0 then return acked end
call_with('HDEL', KEYS[5], acked)
for part = 1, 4 do call_with('HDEL', KEYS[part], gone) end
call_with('ZREM', KEYS[6], gone)
call_with('ZREM', KEYS[7], gone)
-- An emptied queue leaves nothing behind: its numbering starts again at the next push.
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[8]) end
return acked
"""
)

RENEW = (
    _HELPERS
    + """
-- ARGV: lease seconds, clock reading, then receipts. Leases the items whose receipt is
-- current until now + lease seconds; returns those receipts. Lease seconds 0 hands the
-- items back: ready again at their place in line, and their receipts no longer current.
local expires = exact(now(ARGV[2]) + tonumber(ARGV[1]))
local receipts = {}
for i = 3, #ARGV do receipts[i - 2] = ARGV[i] end
local ids = hmget(KEYS[5], receipts)
local renewed, held, leases = {}, {}, {}
for i = 1, #receipts do
  if ids[i] then
    renewed[#renewed + 1] = receipts[i]
    held[#held + 1] = ids[i]
    leases[#leases + 1] = expires
    leases[#leases + 1] = ids[i]
  end
end
if #held == 0 then return renewed end
if tonumber(ARGV[1]) == 0 then
  local places, line = hmget(KEYS[2], held), {}
  for i, id in ipairs(held) do line[2 * i - 1], line[2 * i] = places[i], id end
  call_with('HDEL', KEYS[5], renewed)
  call_with('HDEL', KEYS[4], held)
  call_with('ZREM', KEYS[7], held)
  call_with('ZADD', KEYS[6], line)
  return renewed
end
call_with('ZREM', KEYS[6], held)
call_with('ZADD', KEYS[7], leases)
return renewed
"""
)
