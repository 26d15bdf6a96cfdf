//! Durable state: the decision log and the content-addressed objects (deltas, aggregates).
//! One [`Store`] trait, three backends ([`MemoryStore`] for tests and simulations, [`SqliteStore`]
//! the embedded default, [`RedisStore`] the shared one an active and a standby orchestrator
//! use), one conformance suite ([`conformance`]) run against each.
//!
//! Store URLs (`gym orchestrate --store`): `sqlite:PATH` or a plain path (SQLite), `memory:`,
//! `redis://HOST:PORT/DB` (Redis; keys in docs/orchestrator.md).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::log::LogEntry;
use crate::core::error::{Classify, ErrorClass};

pub use super::store_redis::RedisStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {url}: {reason}")]
    Backend { url: String, reason: String },
    #[error("store: log entry {seq} appended where entry {expected} was due")]
    Conflict { seq: u64, expected: u64 },
    #[error("store: object {addr} does not match its content address")]
    Address { addr: String },
    #[error("store URL {0:?}: use sqlite:PATH, a path, memory: or redis://HOST:PORT/DB")]
    Url(String),
    /// Another orchestrator took the job's lease: this one may no longer write.
    #[error(
        "store {url}: fenced: this orchestrator's lease (token {token}) was taken over by token {current}"
    )]
    Fenced {
        url: String,
        token: u64,
        current: u64,
    },
    /// This orchestrator's lease renewal failed: another one holds the lease now.
    #[error("store {url}: this orchestrator lost the job's lease to another one")]
    LeaseLost { url: String },
    /// The lease is held by a live orchestrator.
    #[error("store {url}: the job's lease is held by {holder} (start this one with --standby)")]
    LeaseHeld { url: String, holder: String },
    #[error("store {url}: has no lease (only a shared store, redis://, has one)")]
    NoLease { url: String },
}

impl Classify for StoreError {
    fn class(&self) -> ErrorClass {
        match self {
            StoreError::Backend { .. } => ErrorClass::Io,
            StoreError::Conflict { .. } | StoreError::Address { .. } => ErrorClass::Malformed,
            StoreError::Url(_) | StoreError::LeaseHeld { .. } | StoreError::NoLease { .. } => {
                ErrorClass::Usage
            }
            StoreError::Fenced { .. } | StoreError::LeaseLost { .. } => ErrorClass::Policy,
        }
    }
}

/// The content address of an object: hex SHA3-256 of its bytes.
pub fn content_address(bytes: &[u8]) -> String {
    hex::encode(crate::core::hash::sha3_256(bytes))
}

/// What an orchestrator keeps across restarts.
pub trait Store: Send {
    /// Appends `entry`; its `seq` must equal the number of entries already stored.
    fn append(&mut self, entry: &LogEntry) -> Result<(), StoreError>;
    /// Every entry, in order.
    fn entries(&self) -> Result<Vec<LogEntry>, StoreError>;
    /// Stores `bytes` under `addr` (which must be their content address); false if present.
    fn put_object(&mut self, addr: &str, bytes: &[u8]) -> Result<bool, StoreError>;
    fn get_object(&self, addr: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn has_object(&self, addr: &str) -> Result<bool, StoreError>;

    /// Whether other processes can open the same storage (and so need a lease).
    fn shared(&self) -> bool {
        false
    }
    /// Takes the job's lease for `holder` (the orchestrator's URL) for `ttl_ms` if nobody holds
    /// it, and returns the fencing token: from then on every write through this handle is
    /// refused ([`StoreError::Fenced`]) once another handle has taken the lease. None: held.
    fn acquire_lease(&mut self, holder: &str, ttl_ms: u64) -> Result<Option<u64>, StoreError> {
        let _ = (holder, ttl_ms);
        Err(StoreError::NoLease { url: self.url() })
    }
    /// Extends the lease this handle holds; false when it has lost it.
    fn renew_lease(&mut self, ttl_ms: u64) -> Result<bool, StoreError> {
        let _ = ttl_ms;
        Err(StoreError::NoLease { url: self.url() })
    }
    /// Who holds the lease now (the holder string given to `acquire_lease`).
    fn lease_holder(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    /// Gives the lease up (a clean exit), if this handle still holds it.
    fn release_lease(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
    /// The URL this store was opened from (for messages).
    fn url(&self) -> String;
}

pub(super) fn check_address(addr: &str, bytes: &[u8]) -> Result<(), StoreError> {
    if content_address(bytes) != addr {
        return Err(StoreError::Address { addr: addr.into() });
    }
    Ok(())
}

/// Keeps everything in memory (lost on exit).
#[derive(Debug, Default)]
pub struct MemoryStore {
    log: Vec<LogEntry>,
    objects: BTreeMap<String, Vec<u8>>,
}

impl Store for MemoryStore {
    fn append(&mut self, entry: &LogEntry) -> Result<(), StoreError> {
        let expected = self.log.len() as u64;
        if entry.seq != expected {
            return Err(StoreError::Conflict {
                seq: entry.seq,
                expected,
            });
        }
        self.log.push(entry.clone());
        Ok(())
    }
    fn entries(&self) -> Result<Vec<LogEntry>, StoreError> {
        Ok(self.log.clone())
    }
    fn put_object(&mut self, addr: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        check_address(addr, bytes)?;
        Ok(self.objects.insert(addr.into(), bytes.to_vec()).is_none())
    }
    fn get_object(&self, addr: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.objects.get(addr).cloned())
    }
    fn has_object(&self, addr: &str) -> Result<bool, StoreError> {
        Ok(self.objects.contains_key(addr))
    }
    fn url(&self) -> String {
        "memory:".into()
    }
}

/// SQLite through rusqlite (bundled): two tables, written in WAL mode, each append one
/// transaction, so a kill -9 loses at most the entry being written.
pub struct SqliteStore {
    conn: rusqlite::Connection,
    url: String,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let url = format!("sqlite:{}", path.display());
        let err = |e: rusqlite::Error| StoreError::Backend {
            url: url.clone(),
            reason: e.to_string(),
        };
        let conn = rusqlite::Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, entry TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS objects (addr TEXT PRIMARY KEY, bytes BLOB NOT NULL);",
        )
        .map_err(err)?;
        Ok(SqliteStore { conn, url })
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Backend {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }
}

impl Store for SqliteStore {
    fn append(&mut self, entry: &LogEntry) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(|e| StoreError::Backend {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let n: i64 = tx
            .query_row("SELECT COUNT(*) FROM log", [], |r| r.get(0))
            .map_err(|e| StoreError::Backend {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        if entry.seq != n as u64 {
            return Err(StoreError::Conflict {
                seq: entry.seq,
                expected: n as u64,
            });
        }
        let text = serde_json::to_string(entry).expect("a log entry serialises");
        let res = tx
            .execute(
                "INSERT INTO log (seq, entry) VALUES (?1, ?2)",
                rusqlite::params![entry.seq as i64, text],
            )
            .and_then(|_| tx.commit());
        res.map_err(|e| self.err(e))
    }

    fn entries(&self) -> Result<Vec<LogEntry>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT entry FROM log ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for r in rows {
            let text = r.map_err(|e| self.err(e))?;
            out.push(serde_json::from_str(&text).map_err(|e| self.err(e))?);
        }
        Ok(out)
    }

    fn put_object(&mut self, addr: &str, bytes: &[u8]) -> Result<bool, StoreError> {
        check_address(addr, bytes)?;
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO objects (addr, bytes) VALUES (?1, ?2)",
                rusqlite::params![addr, bytes],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    fn get_object(&self, addr: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::OptionalExtension as _;
        self.conn
            .query_row(
                "SELECT bytes FROM objects WHERE addr = ?1",
                rusqlite::params![addr],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    fn has_object(&self, addr: &str) -> Result<bool, StoreError> {
        use rusqlite::OptionalExtension as _;
        let found = self
            .conn
            .query_row(
                "SELECT 1 FROM objects WHERE addr = ?1",
                rusqlite::params![addr],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        Ok(found.is_some())
    }

    fn url(&self) -> String {
        self.url.clone()
    }
}

/// Opens the store a URL names (Redis keys under the namespace `default`).
pub fn open(url: &str) -> Result<Box<dyn Store>, StoreError> {
    open_for(url, "default")
}

/// Opens the store a URL names for one job: a Redis store keeps its keys under
/// `gym:<namespace>:` (the job id), so one Redis database can hold many jobs.
pub fn open_for(url: &str, namespace: &str) -> Result<Box<dyn Store>, StoreError> {
    if url.starts_with("redis://") {
        return Ok(Box::new(RedisStore::open(url, namespace)?));
    }
    if url == "memory:" {
        return Ok(Box::new(MemoryStore::default()));
    }
    if let Some(p) = url.strip_prefix("sqlite:") {
        return Ok(Box::new(SqliteStore::open(&PathBuf::from(p))?));
    }
    if url.contains("://") {
        return Err(StoreError::Url(url.into()));
    }
    Ok(Box::new(SqliteStore::open(Path::new(url))?))
}

/// The conformance suite every backend must pass; `reopen` gives a second handle on the same
/// storage (a restart), or None for a backend that does not persist.
pub mod conformance {
    use super::*;
    use crate::core::keys::Identity;
    use crate::core::orchestrator::log::{GENESIS, LogEntry};
    use crate::core::orchestrator::machine::Decision;

    fn entry(seq: u64) -> LogEntry {
        let key = Identity::from_seeds(&[3; 32], None);
        LogEntry::sign(
            &key,
            "job",
            seq,
            seq,
            GENESIS.into(),
            Decision::Evict {
                worker: format!("w{seq}"),
                reason: "conformance".into(),
            },
        )
    }

    /// Log: appends in order, refuses gaps and duplicates, reads back what was written.
    pub fn log_append_and_read(s: &mut dyn Store) {
        assert!(s.entries().unwrap().is_empty());
        for i in 0..3 {
            s.append(&entry(i)).unwrap();
        }
        assert!(matches!(
            s.append(&entry(5)),
            Err(StoreError::Conflict {
                seq: 5,
                expected: 3
            })
        ));
        assert!(matches!(
            s.append(&entry(1)),
            Err(StoreError::Conflict { .. })
        ));
        let got = s.entries().unwrap();
        assert_eq!(got, (0..3).map(entry).collect::<Vec<_>>());
    }

    /// Objects: stored by content address only, idempotent, absent ones are None.
    pub fn objects_put_get(s: &mut dyn Store) {
        let b = b"delta bytes".to_vec();
        let a = content_address(&b);
        assert!(!s.has_object(&a).unwrap());
        assert_eq!(s.get_object(&a).unwrap(), None);
        assert!(s.put_object(&a, &b).unwrap());
        assert!(!s.put_object(&a, &b).unwrap());
        assert!(s.has_object(&a).unwrap());
        assert_eq!(s.get_object(&a).unwrap(), Some(b.clone()));
        assert!(matches!(
            s.put_object(&a, b"other"),
            Err(StoreError::Address { .. })
        ));
        let big = vec![7u8; 3 << 20];
        let ba = content_address(&big);
        s.put_object(&ba, &big).unwrap();
        assert_eq!(s.get_object(&ba).unwrap().unwrap(), big);
    }

    /// Everything written is there after a restart, and appending continues the sequence.
    pub fn survives_reopen(s: &mut dyn Store, reopen: &dyn Fn() -> Box<dyn Store>) {
        s.append(&entry(0)).unwrap();
        let b = b"kept".to_vec();
        s.put_object(&content_address(&b), &b).unwrap();
        let mut again = reopen();
        assert_eq!(again.entries().unwrap(), vec![entry(0)]);
        assert_eq!(again.get_object(&content_address(&b)).unwrap(), Some(b));
        again.append(&entry(1)).unwrap();
        assert_eq!(again.entries().unwrap().len(), 2);
    }

    /// The lease of a shared store: one holder at a time, a fencing token that refuses every
    /// write of a replaced holder, renewal, re-taking an expired lease nobody took, release.
    /// `open` gives a fresh handle on the same (empty) storage each call.
    pub fn lease_and_fencing(open: &dyn Fn() -> Box<dyn Store>) {
        let (mut a, mut b) = (open(), open());
        assert!(a.shared());
        let ta = a
            .acquire_lease("http://a", 150)
            .unwrap()
            .expect("a free lease");
        assert_eq!(b.acquire_lease("http://b", 150).unwrap(), None);
        assert_eq!(b.lease_holder().unwrap().as_deref(), Some("http://a"));
        a.append(&entry(0)).unwrap();
        assert!(a.renew_lease(150).unwrap());
        // a handle without the lease may not write once leases are in use
        assert!(matches!(
            b.append(&entry(1)),
            Err(StoreError::Fenced { .. })
        ));
        // a pauses past its lease; b takes over; a wakes up and can no longer write
        std::thread::sleep(std::time::Duration::from_millis(250));
        let tb = b
            .acquire_lease("http://b", 5000)
            .unwrap()
            .expect("an expired lease");
        assert!(tb > ta);
        assert!(matches!(
            a.append(&entry(1)),
            Err(StoreError::Fenced { token, current, .. }) if token == ta && current == tb
        ));
        let obj = b"late".to_vec();
        assert!(matches!(
            a.put_object(&content_address(&obj), &obj),
            Err(StoreError::Fenced { .. })
        ));
        assert!(!a.renew_lease(150).unwrap());
        assert!(a.acquire_lease("http://a", 150).unwrap().is_none());
        b.append(&entry(1)).unwrap();
        assert_eq!(b.entries().unwrap(), vec![entry(0), entry(1)]);
        assert!(!b.has_object(&content_address(&obj)).unwrap());
        // an expired lease that nobody took is taken again by its holder's renewal
        let mut c = open();
        b.release_lease().unwrap();
        assert_eq!(c.lease_holder().unwrap(), None);
        let tc = c.acquire_lease("http://c", 100).unwrap().unwrap();
        assert!(tc > tb);
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(c.lease_holder().unwrap(), None);
        assert!(c.renew_lease(5000).unwrap());
        assert_eq!(c.lease_holder().unwrap().as_deref(), Some("http://c"));
        c.append(&entry(2)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_conforms() {
        conformance::log_append_and_read(&mut MemoryStore::default());
        conformance::objects_put_get(&mut MemoryStore::default());
    }

    #[test]
    fn sqlite_conforms() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.sqlite");
        conformance::log_append_and_read(&mut *open(&format!("sqlite:{}", p.display())).unwrap());
        conformance::objects_put_get(
            &mut *open(d.path().join("b.sqlite").to_str().unwrap()).unwrap(),
        );
        let p = d.path().join("c.sqlite");
        let mut s = SqliteStore::open(&p).unwrap();
        conformance::survives_reopen(&mut s, &|| Box::new(SqliteStore::open(&p).unwrap()));
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(open("http://x"), Err(StoreError::Url(_))));
        assert!(matches!(open("redis://"), Err(StoreError::Url(_))));
        assert!(matches!(
            MemoryStore::default().acquire_lease("x", 1),
            Err(StoreError::NoLease { .. })
        ));
    }

    /// The test server (GYM_TEST_REDIS_URL); None skips, unless GYM_REQUIRE_REDIS=1.
    pub(crate) fn redis_url() -> Option<String> {
        match std::env::var("GYM_TEST_REDIS_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ if std::env::var("GYM_REQUIRE_REDIS").as_deref() == Ok("1") => {
                panic!("GYM_REQUIRE_REDIS=1 but GYM_TEST_REDIS_URL is not set")
            }
            _ => None,
        }
    }

    #[test]
    fn redis_conforms() {
        let Some(url) = redis_url() else {
            eprintln!("skipped: GYM_TEST_REDIS_URL is not set");
            return;
        };
        let ns = || hex::encode(crate::core::hash::sha3_256(&rand::random::<[u8; 16]>()));
        let (n1, n2, n3, n4) = (ns(), ns(), ns(), ns());
        let handle = |n: &str| RedisStore::open(&url, n).unwrap();
        conformance::log_append_and_read(&mut handle(&n1));
        conformance::objects_put_get(&mut handle(&n2));
        conformance::survives_reopen(&mut handle(&n3), &|| Box::new(handle(&n3)));
        conformance::lease_and_fencing(&|| Box::new(handle(&n4)));
        for n in [n1, n2, n3, n4] {
            handle(&n).delete_all().unwrap();
        }
        // the URL form `--store` takes
        assert!(open_for(&url, "x").unwrap().shared());
    }
}
