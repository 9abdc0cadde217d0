"""The Lua scripts the sink runs (EVALSHA, loaded again on NOSCRIPT by redis-py).

A script runs atomically on the server, so the version rule and the writer tokens of
the fenced contract cannot be raced by a concurrent writer, and a whole batch is one
round trip. Versions are compared as
decimal strings (length, then digits): Lua numbers are doubles and would lose
integers above 2**53.
"""

from __future__ import annotations

_COMPARE = """
local function compare(a, b)
  if #a ~= #b then
    if #a > #b then return 1 end
    return -1
  end
  if a == b then return 0 end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      if x > y then return 1 end
      return -1
    end
  end
  return 0
end
"""

#: KEYS: record keys. ARGV[1]: TTL in ms (0: none); ARGV[2]: the writer token ('' for
#: none); then per key, in order, the values of `entries.FIELDS`: version, deleted,
#: fingerprint, content hash, record JSON.
#: A winner is written with `c` (changed_by) and `t` (touched_by) set to the token; a key
#: holding the identical record or a newer one only gets `t`. Returns, for every key whose
#: content changed, its index (1-based) and the `r` it held before ('' if absent).
#: The TTL is refreshed on every key the batch touches.
WRITE = (
    _COMPARE
    + """
local ttl = tonumber(ARGV[1])
local writer = ARGV[2]
local changed = {}
for i, key in ipairs(KEYS) do
  local at = 2 + (i - 1) * 5
  local v, d, f, h, r = ARGV[at + 1], ARGV[at + 2], ARGV[at + 3], ARGV[at + 4], ARGV[at + 5]
  local old = redis.call('HMGET', key, 'v', 'd', 'f', 'r', 't')
  local take
  if not old[1] then
    take = true
  else
    local c = compare(v, old[1])
    if c ~= 0 then
      take = c > 0
    elseif old[2] == '1' then
      take = false
    else
      take = d == '1' or f ~= old[3]
    end
  end
  if take then
    if writer == '' then
      redis.call('HSET', key, 'v', v, 'd', d, 'f', f, 'h', h, 'r', r)
      redis.call('HDEL', key, 'c', 't')
    else
      redis.call('HSET', key, 'v', v, 'd', d, 'f', f, 'h', h, 'r', r, 'c', writer, 't', writer)
    end
    table.insert(changed, i)
    table.insert(changed, old[4] or '')
  elseif writer ~= '' and old[5] ~= writer then
    -- identical or older: the key keeps its record, and this write counts as a writer
    redis.call('HSET', key, 't', writer)
  end
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
  else
    redis.call('PERSIST', key)
  end
end
return changed
"""
)

#: KEYS: record keys. ARGV[1]: TTL in ms (0: none); ARGV[2]: the writer token; then per
#: key a mode ('0': remove the key, '1': put back the entry that follows) and, for '1',
#: the values of `entries.FIELDS`. A key is touched only while `c` and `t` are both the
#: token (the store still holds that writer's change); returns how many were undone.
UNDO = """
local ttl = tonumber(ARGV[1])
local writer = ARGV[2]
local at = 3
local undone = 0
for _, key in ipairs(KEYS) do
  local mode = ARGV[at]
  local mine = false
  local tokens = redis.call('HMGET', key, 'c', 't')
  if tokens[1] == writer and tokens[2] == writer then mine = true end
  if mode == '0' then
    if mine then redis.call('DEL', key); undone = undone + 1 end
    at = at + 1
  else
    if mine then
      redis.call('DEL', key)
      redis.call('HSET', key, 'v', ARGV[at + 1], 'd', ARGV[at + 2], 'f', ARGV[at + 3], 'h', ARGV[at + 4],
                 'r', ARGV[at + 5])
      if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
      undone = undone + 1
    end
    at = at + 6
  end
end
return undone
"""

#: KEYS: lock keys, sorted. ARGV[1]: token, ARGV[2]: TTL in ms.
#: Takes the locks in order and stops at the first one another holder has; returns how
#: many of KEYS (a prefix) this token now holds. Holding a prefix while waiting for the
#: rest is deadlock-free because every holder takes its keys in the same order.
ACQUIRE = """
for i, key in ipairs(KEYS) do
  if not redis.call('SET', key, ARGV[1], 'NX', 'PX', ARGV[2]) then
    if redis.call('GET', key) ~= ARGV[1] then
      return i - 1
    end
    redis.call('PEXPIRE', key, ARGV[2])
  end
end
return #KEYS
"""

#: KEYS: lock keys. ARGV[1]: token, ARGV[2]: TTL in ms.
#: Extends the locks this token still holds; returns how many.
EXTEND = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    n = n + 1
  end
end
return n
"""

#: KEYS: lock keys. ARGV[1]: token. Deletes the locks this token still holds (compare
#: and delete: a lock that expired and was taken by another holder is left alone).
RELEASE = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""

#: KEYS: the batch's lock keys, then the ledger keys. ARGV[1]: the lock token, ARGV[2]: how
#: many of KEYS are locks, ARGV[3]: the ledger TTL in seconds. Writes the ledger only if
#: every lock still holds the token; returns -1 otherwise (a Redis that restarted empty,
#: or locks that expired: what the batch wrote may be gone, so it must not be marked).
COMMIT = """
local locks = tonumber(ARGV[2])
for i = 1, locks do
  if redis.call('GET', KEYS[i]) ~= ARGV[1] then return -1 end
end
for i = locks + 1, #KEYS do
  redis.call('SET', KEYS[i], '1', 'EX', ARGV[3])
end
return #KEYS - locks
"""
