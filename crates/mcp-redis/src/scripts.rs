//! The Lua scripts behind every operation: each operation is one `EVALSHA`, so one round trip,
//! and atomic on the Redis server.
//!
//! Times come from the Redis server's clock (`TIME`), so replicas with skewed clocks agree on
//! expiry. Every session key carries a `PEXPIRE` of `min(idle timeout, deadline - now)`, so
//! Redis itself removes sessions nobody touches and sessions past their lifetime, whichever
//! replica created them and whether or not it is still alive.
//!
//! The delivery and event keys are built inside the scripts from a prefix passed as an
//! argument: fine on a standalone Redis (or a primary with replicas), not on Redis Cluster.

/// A script and its SHA-1, for `EVALSHA`.
#[derive(Debug)]
pub(crate) struct LuaScript {
    pub(crate) name: &'static str,
    pub(crate) source: &'static str,
    pub(crate) sha: String,
}

impl LuaScript {
    fn new(name: &'static str, source: &'static str) -> Self {
        let sha = redis::Script::new(source).get_hash().to_owned();
        Self { name, source, sha }
    }
}

/// Every script, loaded once per store.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) create: LuaScript,
    pub(crate) load: LuaScript,
    pub(crate) save_state: LuaScript,
    pub(crate) touch: LuaScript,
    pub(crate) delete: LuaScript,
    pub(crate) deliver: LuaScript,
    pub(crate) append: LuaScript,
    pub(crate) read_after: LuaScript,
    pub(crate) forward: LuaScript,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            create: LuaScript::new("create", CREATE),
            load: LuaScript::new("load", LOAD),
            save_state: LuaScript::new("save_state", SAVE_STATE),
            touch: LuaScript::new("touch", TOUCH),
            delete: LuaScript::new("delete", DELETE),
            deliver: LuaScript::new("deliver", DELIVER),
            append: LuaScript::new("append", APPEND),
            read_after: LuaScript::new("read_after", READ_AFTER),
            forward: LuaScript::new("forward", FORWARD),
        }
    }

    pub(crate) fn all(&self) -> [&LuaScript; 9] {
        [
            &self.create,
            &self.load,
            &self.save_state,
            &self.touch,
            &self.delete,
            &self.deliver,
            &self.append,
            &self.read_after,
            &self.forward,
        ]
    }
}

/// Shared prologue: the server time in milliseconds, and integer formatting.
macro_rules! with_now {
    ($body:expr) => {
        concat!(
            "local t = redis.call('TIME')\n",
            "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            "local function int(x) return string.format('%.0f', x) end\n",
            $body
        )
    };
}

/// KEYS[1] session key. ARGV: kind, state, subject, has subject (1/0), owner, idle ms, max ms.
/// Returns the creation time, or nil if the id is taken.
const CREATE: &str = with_now!(
    r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local idle = tonumber(ARGV[6])
local max = tonumber(ARGV[7])
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'state', ARGV[2], 'owner', ARGV[5],
  'created', int(now), 'seen', int(now), 'deadline', int(now + max), 'idle', ARGV[6], 'max', ARGV[7])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'subject', ARGV[3]) end
redis.call('PEXPIRE', KEYS[1], int(math.max(1, math.min(idle, max))))
return int(now)
"
);

/// KEYS[1] session key. ARGV: subject, has subject (1/0), new owner ('' to keep the owner).
/// Returns {kind, state, owner, created, seen, idle ms, max ms}, or nil when the session does
/// not exist or another subject created it. Restarts the idle timeout.
const LOAD: &str = with_now!(
    r"
local v = redis.call('HMGET', KEYS[1], 'kind', 'state', 'subject', 'owner', 'created', 'deadline', 'idle', 'max')
if not v[1] then return false end
if ARGV[2] == '1' then
  if v[3] ~= ARGV[1] then return false end
elseif v[3] then
  return false
end
local deadline = tonumber(v[6])
if now >= deadline then
  redis.call('DEL', KEYS[1])
  return false
end
local owner = v[4]
if ARGV[3] ~= '' then
  owner = ARGV[3]
  redis.call('HSET', KEYS[1], 'seen', int(now), 'owner', owner)
else
  redis.call('HSET', KEYS[1], 'seen', int(now))
end
redis.call('PEXPIRE', KEYS[1], int(math.max(1, math.min(tonumber(v[7]), deadline - now))))
return {v[1], v[2], owner, v[5], int(now), v[7], v[8]}
"
);

/// KEYS[1] session key. ARGV: state. Returns 1, or 0 when the session does not exist.
const SAVE_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
";

/// KEYS: session keys. Restarts the idle timeout of each; returns 1/0 per key (exists).
const TOUCH: &str = with_now!(
    r"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'deadline', 'idle')
  if v[1] and now < tonumber(v[1]) then
    redis.call('HSET', k, 'seen', int(now))
    redis.call('PEXPIRE', k, int(math.max(1, math.min(tonumber(v[2]), tonumber(v[1]) - now))))
    out[i] = 1
  else
    if v[1] then redis.call('DEL', k) end
    out[i] = 0
  end
end
return out
"
);

/// KEYS[1] session key. ARGV: subject, has subject (1/0), delivery key prefix, session id,
/// delivery stream bound, delivery stream ttl ms. Deletes the session and queues `SessionEnded`
/// for its owner; returns 1, or 0 when there was no such session for this subject.
const DELETE: &str = r"
local v = redis.call('HMGET', KEYS[1], 'subject', 'owner')
if not v[2] then return 0 end
if ARGV[2] == '1' then
  if v[1] ~= ARGV[1] then return 0 end
elseif v[1] then
  return 0
end
redis.call('DEL', KEYS[1])
local dk = ARGV[3] .. v[2]
redis.call('XADD', dk, 'MAXLEN', '~', ARGV[5], '*', 's', ARGV[4], 'e', 'end')
redis.call('PEXPIRE', dk, ARGV[6])
return 1
";

/// KEYS[1] session key. ARGV: delivery key prefix, session id, payload, delivery stream bound,
/// delivery stream ttl ms. Appends the payload to the owner's delivery stream; returns 1, or
/// 0 when the session does not exist.
const DELIVER: &str = r"
local owner = redis.call('HGET', KEYS[1], 'owner')
if not owner then return 0 end
local dk = ARGV[1] .. owner
redis.call('XADD', dk, 'MAXLEN', '~', ARGV[4], '*', 's', ARGV[2], 'm', ARGV[3])
redis.call('PEXPIRE', dk, ARGV[5])
return 1
";

/// KEYS[1] delivery stream of the target replica. ARGV: session id, payload, delivery stream
/// bound, delivery stream ttl ms. Appends a client message for a call running there.
const FORWARD: &str = r"
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 's', ARGV[1], 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// KEYS[1] event key (a sorted set scored by seq, members `seq:payload`). ARGV: seq, payload,
/// most events kept, ttl ms. Returns 1, or 0 when `seq` is already stored.
const APPEND: &str = r"
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then return 0 end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[3]) + 1))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
";

/// KEYS[1] event key. ARGV: seq. Returns {0} unknown stream, {1} lagged (the event after seq
/// was dropped), or {2, members after seq in order}.
const READ_AFTER: &str = r"
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #first == 0 then return {0} end
if tonumber(first[2]) > tonumber(ARGV[1]) + 1 then return {1} end
return {2, redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')}
";
