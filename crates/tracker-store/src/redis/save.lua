-- One save of a conversation: atomic, one round trip. See `crate::redis` for the protocol.
-- KEYS: 1 tracker key, 2 its metadata hash, 3 the store's outbox stream.
-- ARGV: 1 expected stored count, 2 number of new events, 3 the new events (Rasa JSON, ", "-separated),
--       4 the value's suffix (`], "name": <sender_id>}`), 5 expiry in ms (0: none), 6 "1" to record the events
--       in the outbox, 7 sender_id, 8 the new events' ids (space-separated), 9 "" or, to adopt a value someone
--       else wrote, that value as the caller read it, 10 its event count, 11 the whole new value to write.
-- Returns {status, number, text}: {"ok", new length, outbox entry id}, {"conflict", stored count, ""},
-- {"unknown", 0, ""} (read the value and adopt it), {"changed", 0, ""} (the adopted value changed meanwhile),
-- {"wrongtype", 0, Redis type}.
local key, meta, outbox = KEYS[1], KEYS[2], KEYS[3]
local suffix = ARGV[4]
local adopting = ARGV[9] ~= ''
local kind = redis.call('TYPE', key)['ok']
local stored, len = 0, 0
if kind == 'string' then
  len = redis.call('STRLEN', key)
  if adopting then
    if redis.call('GET', key) ~= ARGV[9] then return {'changed', 0, ''} end
    stored = tonumber(ARGV[10])
  else
    -- Our own last write, if the length we recorded is still the value's and it ends as ours do.
    local m = redis.call('HMGET', meta, 'n', 'len')
    if not m[1] or tonumber(m[2]) ~= len or len <= #suffix
      or redis.call('GETRANGE', key, len - #suffix, len - 1) ~= suffix then
      return {'unknown', 0, ''}
    end
    stored = tonumber(m[1])
  end
elseif kind ~= 'none' then
  return {'wrongtype', 0, kind}
end
if stored ~= tonumber(ARGV[1]) then return {'conflict', stored, ''} end

local new_len
if adopting then
  redis.call('SET', key, ARGV[11])
  new_len = #ARGV[11]
elseif kind == 'none' then
  local value = '{"events": [' .. ARGV[3] .. suffix
  redis.call('SET', key, value)
  new_len = #value
else
  -- Splice the new events in before the suffix: only what changed is written.
  new_len = redis.call('SETRANGE', key, len - #suffix, ', ' .. ARGV[3] .. suffix)
end
redis.call('HSET', meta, 'n', stored + tonumber(ARGV[2]), 'len', new_len)
local ttl = tonumber(ARGV[5])
if ttl > 0 then
  redis.call('PEXPIRE', key, ttl)
  redis.call('PEXPIRE', meta, ttl)
else
  redis.call('PERSIST', key)
  redis.call('PERSIST', meta)
end
local entry = ''
if ARGV[6] == '1' then
  entry = redis.call('XADD', outbox, '*', 'sender', ARGV[7], 'seq', ARGV[1], 'ids', ARGV[8],
    'events', '[' .. ARGV[3] .. ']')
end
return {'ok', new_len, entry}
