//! The Lua scripts of writes: each checks the generation (the dataset this replica knows;
//! `empty` when there is none: Redis lost its data and is being restored), compares, writes,
//! appends history and audit, and adds an event to the change stream — one atomic step.
//!
//! This module holds the scripts only; `operations` runs them and reads their replies.

/// How many events the change stream keeps (about; `MAXLEN ~`).
pub(super) const STREAM_MAXLEN: &str = "100000";

pub(super) const COMMIT: &str = r#"
local generation = redis.call('GET', KEYS[1])
if not generation then return {'empty'} end
if generation ~= ARGV[1] then return {'generation'} end
local cur = redis.call('HGET', KEYS[3], ARGV[2])
if ARGV[3] == '' then
  if cur then return {'exists'} end
  local last = redis.call('HGET', KEYS[8], ARGV[2])
  if last and tonumber(ARGV[5]) <= tonumber(string.match(last, '^%d+')) then return {'retired', last} end
else
  if not cur then return {'missing'} end
  if cur ~= ARGV[3] then return {'mismatch', cur} end
end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  redis.call('DEL', KEYS[4], KEYS[6])
  redis.call('HSET', KEYS[8], ARGV[2], ARGV[9])
else
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[4])
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[5])
  redis.call('RPUSH', KEYS[4], ARGV[6])
  redis.call('HDEL', KEYS[8], ARGV[2])
end
redis.call('RPUSH', KEYS[5], ARGV[7])
redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[8], '*', 'kind', 'rollout', 'key', ARGV[2])
return {'ok'}
"#;

pub(super) const ENROLLMENT: &str = r#"
local generation = redis.call('GET', KEYS[1])
if not generation then return 'empty' end
if generation ~= ARGV[1] then return 'generation' end
if not redis.call('HGET', KEYS[2], ARGV[2]) then return 'missing' end
local n
if ARGV[4] == 'enroll' then
  n = redis.call('ZADD', KEYS[3], 0, ARGV[3])
else
  n = redis.call('ZREM', KEYS[3], ARGV[3])
end
if n == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'kind', ARGV[4], 'key', ARGV[2], 'user', ARGV[3])
  return 'changed'
end
return 'same'
"#;
