//! The Redis backend of [`Store`](super::store::Store) (`--store redis://HOST:PORT/DB`), and
//! the job's lease that lets a standby orchestrator take over from a dead active one.
//!
//! Keys, for a job whose id is `J` (docs/orchestrator.md, "Redis"):
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `gym:J:log` | list | the decision log, one JSON entry per element, index = `seq` |
//! | `gym:J:obj:<sha3>` | string | an object's bytes, under its content address |
//! | `gym:J:lease` | string, with a TTL | `"<token> <holder URL>"`: the active orchestrator |
//! | `gym:J:fence` | integer | the last fencing token handed out (never expires) |
//!
//! Every state change is one Lua script, so it is atomic as the SQLite backend's transactions
//! are: an append checks the fencing token and the log's length and pushes in one step; taking
//! the lease sets it and increments the fence in one step. Once `gym:J:fence` exists, a write
//! whose token is not the current one is refused ([`StoreError::Fenced`]): an active
//! orchestrator that was paused past its lease and replaced cannot write after waking up.

use std::sync::Mutex;
use std::time::Duration;

use super::log::LogEntry;
use super::store::{Store, StoreError, check_address};

/// How long a Redis command may take before the store reports a failure.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// KEYS: log, fence. ARGV: seq, entry, token ("" without a lease).
/// Returns {0, n}: appended; {-1, current}: fenced; {-2, n}: `seq` is not the log's length.
const APPEND: &str = r"
local f = redis.call('GET', KEYS[2])
if f and f ~= ARGV[3] then return {-1, tonumber(f)} end
local n = redis.call('LLEN', KEYS[1])
if n ~= tonumber(ARGV[1]) then return {-2, n} end
redis.call('RPUSH', KEYS[1], ARGV[2])
return {0, n + 1}
";

/// KEYS: object, fence. ARGV: bytes, token. Returns 1 stored, 0 present, {-1, current} fenced.
const PUT: &str = r"
local f = redis.call('GET', KEYS[2])
if f and f ~= ARGV[2] then return {-1, tonumber(f)} end
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then return {1, 0} end
return {0, 0}
";

/// KEYS: lease, fence. ARGV: holder, ttl ms. Returns the new token, or 0 if the lease is held.
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local t = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], t .. ' ' .. ARGV[1], 'PX', ARGV[2])
return t
";

/// KEYS: lease, fence. ARGV: lease value, ttl ms, token. Extends the lease if it is still
/// ours, or takes it again if it expired and nobody took it since (the fence is still ours).
const RENEW: &str = r"
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if (not v) and redis.call('GET', KEYS[2]) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS: lease. ARGV: lease value. Deletes the lease if it is still ours.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// A job's state in one Redis database.
pub struct RedisStore {
    conn: Mutex<redis::Connection>,
    url: String,
    prefix: String,
    /// The lease this handle holds: (token, the lease key's value).
    lease: Option<(u64, String)>,
}

impl RedisStore {
    /// Connects to `url` (`redis://HOST:PORT/DB`) for the job `namespace`.
    pub fn open(url: &str, namespace: &str) -> Result<Self, StoreError> {
        let fail = |e: redis::RedisError| StoreError::Backend {
            url: url.into(),
            reason: e.to_string(),
        };
        let client = redis::Client::open(url).map_err(|e| match e.kind() {
            redis::ErrorKind::InvalidClientConfig => StoreError::Url(url.into()),
            _ => fail(e),
        })?;
        let conn = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(fail)?;
        conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
        conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(fail)?;
        Ok(RedisStore {
            conn: Mutex::new(conn),
            url: url.into(),
            prefix: format!("gym:{namespace}:"),
            lease: None,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut c = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut c).map_err(|e| self.err(e))
    }

    fn token_arg(&self) -> String {
        self.lease
            .as_ref()
            .map(|(t, _)| t.to_string())
            .unwrap_or_default()
    }

    fn fenced(&self, current: i64) -> StoreError {
        StoreError::Fenced {
            url: self.url.clone(),
            token: self.lease.as_ref().map_or(0, |(t, _)| *t),
            current: current.max(0) as u64,
        }
    }

    /// Deletes every key of this namespace (tests clean up after themselves with it).
    pub fn delete_all(&mut self) -> Result<(), StoreError> {
        let pattern = format!("{}*", self.prefix);
        self.with(|c| {
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(c)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(c)?;
            }
            Ok(())
        })
    }
}

impl Store for RedisStore {
    fn append(&mut self, entry: &LogEntry) -> Result<(), StoreError> {
        let text = serde_json::to_string(entry).expect("a log entry serialises");
        let (log, fence, token) = (self.key("log"), self.key("fence"), self.token_arg());
        let (code, n): (i64, i64) = self.with(|c| {
            redis::Script::new(APPEND)
                .key(log)
                .key(fence)
                .arg(entry.seq)
                .arg(text)
                .arg(token)
                .invoke(c)
        })?;
        match code {
            0 => Ok(()),
            -1 => Err(self.fenced(n)),
            _ => Err(StoreError::Conflict {
                seq: entry.seq,
                expected: n.max(0) as u64,
            }),
        }
    }

    fn entries(&self) -> Result<Vec<LogEntry>, StoreError> {
        let log = self.key("log");
        let texts: Vec<String> =
            self.with(|c| redis::cmd("LRANGE").arg(log).arg(0).arg(-1).query(c))?;
        texts
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| self.err(e)))
            .collect()
    }

    fn put_object(&mut self, addr: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        check_address(addr, bytes)?;
        let (obj, fence, token) = (
            self.key(&format!("obj:{addr}")),
            self.key("fence"),
            self.token_arg(),
        );
        let (code, n): (i64, i64) = self.with(|c| {
            redis::Script::new(PUT)
                .key(obj)
                .key(fence)
                .arg(bytes)
                .arg(token)
                .invoke(c)
        })?;
        match code {
            -1 => Err(self.fenced(n)),
            c => Ok(c == 1),
        }
    }

    fn get_object(&self, addr: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let obj = self.key(&format!("obj:{addr}"));
        self.with(|c| redis::cmd("GET").arg(obj).query(c))
    }

    fn has_object(&self, addr: &str) -> Result<bool, StoreError> {
        let obj = self.key(&format!("obj:{addr}"));
        self.with(|c| redis::cmd("EXISTS").arg(obj).query(c))
    }

    fn shared(&self) -> bool {
        true
    }

    fn acquire_lease(&mut self, holder: &str, ttl_ms: u64) -> Result<Option<u64>, StoreError> {
        let (lease, fence) = (self.key("lease"), self.key("fence"));
        let token: u64 = self.with(|c| {
            redis::Script::new(ACQUIRE)
                .key(lease)
                .key(fence)
                .arg(holder)
                .arg(ttl_ms.max(1))
                .invoke(c)
        })?;
        if token == 0 {
            return Ok(None);
        }
        self.lease = Some((token, format!("{token} {holder}")));
        Ok(Some(token))
    }

    fn renew_lease(&mut self, ttl_ms: u64) -> Result<bool, StoreError> {
        let Some((token, value)) = self.lease.clone() else {
            return Ok(false);
        };
        let (lease, fence) = (self.key("lease"), self.key("fence"));
        let kept: i64 = self.with(|c| {
            redis::Script::new(RENEW)
                .key(lease)
                .key(fence)
                .arg(value)
                .arg(ttl_ms.max(1))
                .arg(token)
                .invoke(c)
        })?;
        Ok(kept == 1)
    }

    fn lease_holder(&self) -> Result<Option<String>, StoreError> {
        let lease = self.key("lease");
        let v: Option<String> = self.with(|c| redis::cmd("GET").arg(lease).query(c))?;
        Ok(v.map(|v| v.split_once(' ').map_or(v.clone(), |(_, h)| h.to_string())))
    }

    fn release_lease(&mut self) -> Result<(), StoreError> {
        let Some((_, value)) = self.lease.take() else {
            return Ok(());
        };
        let lease = self.key("lease");
        self.with(|c| {
            redis::Script::new(RELEASE)
                .key(lease)
                .arg(value)
                .invoke::<i64>(c)
        })?;
        Ok(())
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for RedisStore {
    /// A clean exit gives the lease up at once, so a standby need not wait for it to expire.
    fn drop(&mut self) {
        let _ = self.release_lease();
    }
}
