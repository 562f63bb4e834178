//! A bounded cache of verified tokens, so a client that sends the same token on every request
//! pays for signature verification once. A hit is one SHA-256 of the token and one map lookup
//! (the digest is its own hash: no second hash of the key), and hands out the identity as
//! reference counts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::Identity;

/// What an entry costs besides its claims: the key, the identity's fields, the map's slot.
const ENTRY_OVERHEAD_BYTES: usize = 256;

/// Verified identities keyed by the SHA-256 of their token (the token itself is not stored).
///
/// An entry lives until the token's `exp` (never later) or `max_ttl`, whichever comes first.
/// The cache holds at most `capacity` entries and about `max_bytes` bytes (an entry counts
/// [`ENTRY_OVERHEAD_BYTES`] plus twice its claims' JSON size); to make room, expired entries
/// are dropped first, then the ones that expire soonest.
#[derive(Debug)]
pub(crate) struct VerifiedTokenCache {
    entries: Mutex<Entries>,
    capacity: usize,
    max_bytes: usize,
    max_ttl: Duration,
    hits: AtomicU64,
}

#[derive(Debug, Default)]
struct Entries {
    by_token: HashMap<TokenDigest, CachedIdentity, BuildHasherDefault<DigestHasher>>,
    bytes: usize,
}

#[derive(Debug)]
struct CachedIdentity {
    identity: Identity,
    expires_at: Instant,
    bytes: usize,
}

/// The SHA-256 of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl Hash for TokenDigest {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // A SHA-256 digest is already uniformly spread: its first 8 bytes are the hash.
        let mut first = [0; 8];
        first.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(first));
    }
}

/// The hasher of [`TokenDigest`] keys: passes the digest's first 8 bytes through.
#[derive(Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `TokenDigest`; fold anything else in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Entries {
    fn remove(&mut self, key: &TokenDigest) {
        if let Some(old) = self.by_token.remove(key) {
            self.bytes -= old.bytes;
        }
    }

    /// Drops expired entries, then the soonest-expiring ones, until one more entry of `bytes`
    /// fits under `capacity` entries and `max_bytes`.
    fn make_room(&mut self, bytes: usize, capacity: usize, max_bytes: usize, now: Instant) {
        let full =
            |e: &Self| e.by_token.len() >= capacity || e.bytes.saturating_add(bytes) > max_bytes;
        if !full(self) {
            return;
        }
        self.by_token.retain(|_, entry| now < entry.expires_at);
        self.bytes = self.by_token.values().map(|entry| entry.bytes).sum();
        while full(self) {
            let soonest = self
                .by_token
                .iter()
                .min_by_key(|(_, entry)| entry.expires_at)
                .map(|(key, _)| *key);
            match soonest {
                Some(key) => self.remove(&key),
                None => break,
            }
        }
    }
}

/// What an entry for `identity` counts against the byte bound.
fn entry_bytes(identity: &Identity) -> usize {
    let claims = serde_json::to_vec(&*identity.claims).map_or(0, |json| json.len());
    ENTRY_OVERHEAD_BYTES + 2 * claims
}

impl VerifiedTokenCache {
    pub(crate) fn new(capacity: usize, max_bytes: usize, max_ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(Entries::default()),
            capacity,
            max_bytes,
            max_ttl,
            hits: AtomicU64::new(0),
        }
    }

    /// How many lookups were answered from the cache.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The identity `token` was verified as, if it is cached and not expired.
    pub(crate) fn get(&self, token: &str) -> Option<Identity> {
        let key = TokenDigest::of(token);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.by_token.get(&key) {
            Some(entry) if now < entry.expires_at => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(entry.identity.clone())
            }
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Remembers that `token` was verified as `identity` (unless it expires now or does not
    /// fit at all).
    pub(crate) fn insert(&self, token: &str, identity: &Identity) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let mut lifetime = self.max_ttl;
        if let Some(exp) = identity.expires_at {
            let now_unix = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            let until_exp = Duration::from_secs(exp).saturating_sub(now_unix);
            lifetime = lifetime.min(until_exp);
        }
        let bytes = entry_bytes(identity);
        if lifetime.is_zero() || bytes > self.max_bytes {
            return;
        }
        let key = TokenDigest::of(token);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&key);
        entries.make_room(bytes, self.capacity, self.max_bytes, now);
        entries.bytes += bytes;
        entries.by_token.insert(
            key,
            CachedIdentity {
                identity: identity.clone(),
                expires_at: now + lifetime,
                bytes,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.by_token.len()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(subject: &str, expires_in: i64) -> Identity {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        Identity {
            subject: Some(subject.into()),
            expires_at: Some((now + expires_in) as u64),
            ..Identity::default()
        }
    }

    #[test]
    fn hit_miss_and_expired_tokens_are_not_cached() {
        let cache = VerifiedTokenCache::new(4, usize::MAX, Duration::from_secs(300));
        cache.insert("t1", &identity("a", 3600));
        cache.insert("t-expired", &identity("b", -5));
        assert_eq!(cache.get("t1").and_then(|i| i.subject), Some("a".into()));
        assert_eq!(cache.get("t-expired"), None);
        assert_eq!(cache.get("t2"), None);
        assert_eq!(cache.hits(), 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn entry_expires_with_the_token() {
        let cache = VerifiedTokenCache::new(4, usize::MAX, Duration::from_secs(300));
        // exp is 1 to 2 s away (whole seconds): the entry must be gone after 2 s, long before
        // max_ttl.
        cache.insert("t", &identity("a", 2));
        assert!(cache.get("t").is_some());
        std::thread::sleep(Duration::from_millis(2100));
        assert_eq!(cache.get("t"), None);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn capacity_is_bounded_and_soonest_expiring_is_evicted() {
        let cache = VerifiedTokenCache::new(3, usize::MAX, Duration::from_secs(3600));
        cache.insert("long", &identity("long", 3000));
        cache.insert("short", &identity("short", 100));
        cache.insert("mid", &identity("mid", 2000));
        cache.insert("new", &identity("new", 2500));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("short"), None);
        for kept in ["long", "mid", "new"] {
            assert_eq!(cache.get(kept).and_then(|i| i.subject), Some(kept.into()));
        }
        let disabled = VerifiedTokenCache::new(0, usize::MAX, Duration::from_secs(60));
        disabled.insert("t", &identity("a", 60));
        assert_eq!(disabled.get("t"), None);
    }

    #[test]
    fn bytes_are_bounded_and_accounted() {
        // An identity without claims counts the overhead plus `{}`.
        let each = ENTRY_OVERHEAD_BYTES + 2 * 2;
        let cache = VerifiedTokenCache::new(100, 3 * each, Duration::from_secs(3600));
        cache.insert("short", &identity("short", 100));
        cache.insert("long", &identity("long", 3000));
        cache.insert("mid", &identity("mid", 2000));
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * each));
        cache.insert("new", &identity("new", 2500));
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * each));
        assert_eq!(cache.get("short"), None);
        // The same token again replaces its entry.
        cache.insert("new", &identity("new", 2600));
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * each));
        let mut big = identity("big", 3000);
        big.claims = std::sync::Arc::new(serde_json::Map::from_iter([(
            "pad".to_owned(),
            serde_json::Value::String("x".repeat(3 * each)),
        )]));
        cache.insert("big", &big);
        assert_eq!(cache.get("big"), None);
        assert_eq!(cache.len(), 3);
    }
}
