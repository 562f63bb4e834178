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
    pub(crate) fn new(name: &'static str, source: &'static str) -> Self {
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
    pub(crate) acquire_calls: LuaScript,
    pub(crate) release_calls: LuaScript,
    pub(crate) heartbeat: LuaScript,
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
            acquire_calls: LuaScript::new("acquire_calls", ACQUIRE_CALLS),
            release_calls: LuaScript::new("release_calls", RELEASE_CALLS),
            heartbeat: LuaScript::new("heartbeat", HEARTBEAT),
        }
    }

    pub(crate) fn all(&self) -> [&LuaScript; 12] {
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
            &self.acquire_calls,
            &self.release_calls,
            &self.heartbeat,
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
            "local function extend(k, ms) local t = redis.call('PTTL', k) if t == -1 or (t >= 0 and t < ms) then redis.call('PEXPIRE', k, int(ms)) end end\n",
            "local function quota(all, q, member, ttl) redis.call('ZADD', all, 'XX', int(now + ttl), member) extend(all, ttl) if q then redis.call('ZADD', q, 'XX', int(now + ttl), member) extend(q, ttl) end end\n",
            $body
        )
    };
}

/// KEYS[1] session key. ARGV: kind, state, subject, has subject (1/0), owner, idle ms, max ms,
/// quota set of all sessions, quota set of the client, most sessions (0: no cap), most per
/// client (0: no cap). The quota sets hold session keys scored by when they expire.
/// Returns the creation time, nil if the id is taken, -1 when the store is full, -2 when the
/// client holds its quota.
const CREATE: &str = with_now!(
    r"
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local idle = tonumber(ARGV[6])
local max = tonumber(ARGV[7])
local all, mine = ARGV[8], ARGV[9]
redis.call('ZREMRANGEBYSCORE', all, '-inf', now)
if tonumber(ARGV[10]) > 0 and redis.call('ZCARD', all) >= tonumber(ARGV[10]) then return -1 end
redis.call('ZREMRANGEBYSCORE', mine, '-inf', now)
if tonumber(ARGV[11]) > 0 and redis.call('ZCARD', mine) >= tonumber(ARGV[11]) then return -2 end
redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'state', ARGV[2], 'owner', ARGV[5],
  'created', int(now), 'seen', int(now), 'deadline', int(now + max), 'idle', ARGV[6], 'max', ARGV[7],
  'quota', mine)
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'subject', ARGV[3]) end
local ttl = math.max(1, math.min(idle, max))
redis.call('PEXPIRE', KEYS[1], int(ttl))
redis.call('ZADD', all, int(now + ttl), KEYS[1])
redis.call('ZADD', mine, int(now + ttl), KEYS[1])
extend(all, ttl)
extend(mine, ttl)
return int(now)
"
);

/// KEYS[1] session key. ARGV: subject, has subject (1/0), new owner ('' to keep the owner),
/// quota set of all sessions, in-flight counter key, slots wanted (0: none), most slots,
/// slots ttl ms. KEYS[2..] in-flight counters whose slots this replica gives back first, and
/// ARGV[9..] how many each (releases riding on this round trip).
/// Returns {kind, state, owner, created, seen, idle ms, max ms, slots taken (1/0)}, or nil
/// when the session does not exist or another subject created it. Restarts the idle timeout
/// (in the quota sets too).
const LOAD: &str = with_now!(
    r"
for i = 2, #KEYS do
  if redis.call('DECRBY', KEYS[i], ARGV[7 + i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
local v = redis.call('HMGET', KEYS[1], 'kind', 'state', 'subject', 'owner', 'created', 'deadline', 'idle', 'max', 'quota')
if not v[1] then return false end
if ARGV[2] == '1' then
  if v[3] ~= ARGV[1] then return false end
elseif v[3] then
  return false
end
local deadline = tonumber(v[6])
if now >= deadline then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', ARGV[4], KEYS[1])
  if v[9] then redis.call('ZREM', v[9], KEYS[1]) end
  return false
end
local owner = v[4]
if ARGV[3] ~= '' then
  owner = ARGV[3]
  redis.call('HSET', KEYS[1], 'seen', int(now), 'owner', owner)
else
  redis.call('HSET', KEYS[1], 'seen', int(now))
end
local ttl = math.max(1, math.min(tonumber(v[7]), deadline - now))
redis.call('PEXPIRE', KEYS[1], int(ttl))
quota(ARGV[4], v[9], KEYS[1], ttl)
local taken = 1
local n = tonumber(ARGV[6])
if n > 0 then
  local held = tonumber(redis.call('GET', ARGV[5]) or '0')
  if held + n > tonumber(ARGV[7]) then
    taken = 0
  else
    redis.call('INCRBY', ARGV[5], n)
    redis.call('PEXPIRE', ARGV[5], ARGV[8])
  end
end
return {v[1], v[2], owner, v[5], int(now), v[7], v[8], taken}
"
);

/// KEYS[1] session key. ARGV: state. Returns 1, or 0 when the session does not exist.
const SAVE_STATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
return 1
";

/// KEYS: session keys. ARGV: quota set of all sessions. Restarts the idle timeout of each
/// (in the quota sets too); returns 1/0 per key (exists).
const TOUCH: &str = with_now!(
    r"
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('HMGET', k, 'deadline', 'idle', 'quota')
  if v[1] and now < tonumber(v[1]) then
    redis.call('HSET', k, 'seen', int(now))
    local ttl = math.max(1, math.min(tonumber(v[2]), tonumber(v[1]) - now))
    redis.call('PEXPIRE', k, int(ttl))
    quota(ARGV[1], v[3], k, ttl)
    out[i] = 1
  else
    if v[1] then redis.call('DEL', k) end
    redis.call('ZREM', ARGV[1], k)
    if v[3] then redis.call('ZREM', v[3], k) end
    out[i] = 0
  end
end
return out
"
);

/// KEYS[1] session key. ARGV: subject, has subject (1/0), delivery key prefix, session id,
/// delivery stream bound, delivery stream ttl ms, quota set of all sessions. Deletes the
/// session (and its quota entries) and queues `SessionEnded` for its owner; returns 1, or 0
/// when there was no such session for this subject.
const DELETE: &str = r"
local v = redis.call('HMGET', KEYS[1], 'subject', 'owner', 'quota')
if not v[2] then return 0 end
if ARGV[2] == '1' then
  if v[1] ~= ARGV[1] then return 0 end
elseif v[1] then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', ARGV[7], KEYS[1])
if v[3] then redis.call('ZREM', v[3], KEYS[1]) end
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

/// KEYS[1] delivery stream of the target replica (or the broadcast stream), KEYS[2] (when
/// forwarding to one replica) the set of live replicas. ARGV: session id, payload, delivery
/// stream bound, delivery stream ttl ms, the target replica. Appends a client message for a
/// call running there; returns 1, or 0 when the target replica is not alive.
const FORWARD: &str = with_now!(
    r"
if KEYS[2] then
  local alive = redis.call('ZSCORE', KEYS[2], ARGV[5])
  if not alive or tonumber(alive) < now then return 0 end
end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 's', ARGV[1], 'c', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
"
);

/// KEYS[1] in-flight counter of a session. ARGV: slots wanted, most slots, ttl ms. Returns 1
/// when taken, 0 when fewer are free. The counter expires `ttl` after the last call started,
/// so slots a dead replica held come back.
const ACQUIRE_CALLS: &str = r"
local n = tonumber(ARGV[1])
local held = tonumber(redis.call('GET', KEYS[1]) or '0')
if held + n > tonumber(ARGV[2]) then return 0 end
redis.call('INCRBY', KEYS[1], n)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
";

/// KEYS: in-flight counters of sessions. ARGV: the slots given back to each, in order.
const RELEASE_CALLS: &str = r"
for i = 1, #KEYS do
  if redis.call('DECRBY', KEYS[i], ARGV[i]) <= 0 then redis.call('DEL', KEYS[i]) end
end
return 1
";

/// KEYS[1] the set of live replicas (scored by when each stops counting as alive). ARGV:
/// replica id, ttl ms.
const HEARTBEAT: &str = with_now!(
    r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], int(now + tonumber(ARGV[2])), ARGV[1])
extend(KEYS[1], tonumber(ARGV[2]))
return 1
"
);

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
