//! A bounded cache of verified tokens, so a client that sends the same token on every request
//! pays for signature verification once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::Identity;

/// Verified identities keyed by the SHA-256 of their token (the token itself is not stored).
///
/// An entry lives until the token's `exp` (never later) or `max_ttl`, whichever comes first.
/// When full, expired entries are dropped first, then the entry that expires soonest.
#[derive(Debug)]
pub(crate) struct VerifiedTokenCache {
    entries: Mutex<HashMap<[u8; 32], CachedIdentity>>,
    capacity: usize,
    max_ttl: Duration,
    hits: AtomicU64,
}

#[derive(Debug)]
struct CachedIdentity {
    identity: Identity,
    expires_at: Instant,
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokenCache {
    pub(crate) fn new(capacity: usize, max_ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
            max_ttl,
            hits: AtomicU64::new(0),
        }
    }

    /// How many lookups were answered from the cache.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub(crate) fn get(&self, token: &str) -> Option<Identity> {
        let key = token_key(token);
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
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
        if lifetime.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.capacity {
            entries.retain(|_, entry| now < entry.expires_at);
        }
        if entries.len() >= self.capacity {
            let soonest = entries
                .iter()
                .min_by_key(|(_, entry)| entry.expires_at)
                .map(|(key, _)| *key);
            if let Some(soonest) = soonest {
                entries.remove(&soonest);
            }
        }
        entries.insert(
            token_key(token),
            CachedIdentity {
                identity: identity.clone(),
                expires_at: now + lifetime,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
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
            subject: Some(subject.to_owned()),
            expires_at: Some((now + expires_in) as u64),
            ..Identity::default()
        }
    }

    #[test]
    fn hit_miss_and_expired_tokens_are_not_cached() {
        let cache = VerifiedTokenCache::new(4, Duration::from_secs(300));
        cache.insert("t1", &identity("a", 3600));
        cache.insert("t-expired", &identity("b", -5));
        assert_eq!(
            cache.get("t1").and_then(|i| i.subject),
            Some("a".to_owned())
        );
        assert_eq!(cache.get("t-expired"), None);
        assert_eq!(cache.get("t2"), None);
        assert_eq!(cache.hits(), 1);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn entry_expires_with_the_token() {
        let cache = VerifiedTokenCache::new(4, Duration::from_secs(300));
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
        let cache = VerifiedTokenCache::new(3, Duration::from_secs(3600));
        cache.insert("long", &identity("long", 3000));
        cache.insert("short", &identity("short", 100));
        cache.insert("mid", &identity("mid", 2000));
        cache.insert("new", &identity("new", 2500));
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.get("short"), None);
        for kept in ["long", "mid", "new"] {
            assert_eq!(
                cache.get(kept).and_then(|i| i.subject),
                Some(kept.to_owned())
            );
        }
        let disabled = VerifiedTokenCache::new(0, Duration::from_secs(60));
        disabled.insert("t", &identity("a", 60));
        assert_eq!(disabled.get("t"), None);
    }
}
