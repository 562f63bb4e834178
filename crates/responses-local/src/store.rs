//! Stored responses (`store: true`), bounded by count, by bytes and by age.
//!
//! Each stored response keeps its JSON body and its [`Link`] of the chain's history. The store's
//! [`ByteMeter`] counts the bodies and every live link (an evicted response's link stays charged
//! while a stored descendant still refers to it). After every insert, responses older than the
//! TTL are dropped, then the oldest ones until both the count and the byte limit hold. A response
//! that is expired or evicted is answered as unknown (`GET` 404, `previous_response_id` 400).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::history::{ByteMeter, Charge, HistoryItem, Link};

/// The store's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreLimits {
    /// The most responses kept.
    pub max_responses: usize,
    /// The most bytes kept (bodies and history).
    pub max_bytes: usize,
    /// How long a response is kept.
    pub ttl: Duration,
}

/// One stored response.
#[derive(Debug)]
pub(crate) struct StoredResponse {
    /// The response body as served, JSON text.
    pub body: String,
    /// The chain's history up to and including this response.
    pub history: Arc<Link>,
    _charge: Charge,
}

#[derive(Debug)]
struct Entry {
    response: Arc<StoredResponse>,
    stored_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Entry>,
    order: VecDeque<String>,
}

/// How much the store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreUsage {
    /// Stored responses.
    pub responses: usize,
    /// Bytes charged: stored bodies and the history they (and requests in flight) refer to.
    pub bytes: usize,
}

/// The bounded response store.
#[derive(Debug)]
pub(crate) struct ResponseStore {
    limits: StoreLimits,
    meter: Arc<ByteMeter>,
    inner: Mutex<Inner>,
}

impl ResponseStore {
    pub fn new(limits: StoreLimits) -> Self {
        Self {
            limits: StoreLimits {
                max_responses: limits.max_responses.max(1),
                ..limits
            },
            meter: Arc::new(ByteMeter::default()),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The response, unless unknown or older than the TTL.
    pub fn get(&self, id: &str) -> Option<Arc<StoredResponse>> {
        self.get_at(id, Instant::now())
    }

    fn get_at(&self, id: &str, now: Instant) -> Option<Arc<StoredResponse>> {
        let mut inner = self.lock();
        let entry = inner.by_id.get(id)?;
        if now.saturating_duration_since(entry.stored_at) < self.limits.ttl {
            return Some(entry.response.clone());
        }
        drop(inner.remove(id));
        None
    }

    /// Stores a response: its body and the items it added after `parent`.
    pub fn insert(
        &self,
        id: String,
        body: String,
        parent: Option<Arc<Link>>,
        items: Vec<HistoryItem>,
    ) {
        self.insert_at(id, body, parent, items, Instant::now());
    }

    fn insert_at(
        &self,
        id: String,
        body: String,
        parent: Option<Arc<Link>>,
        items: Vec<HistoryItem>,
        now: Instant,
    ) {
        let response = Arc::new(StoredResponse {
            _charge: Charge::new(&self.meter, body.len() + id.len()),
            body,
            history: Arc::new(Link::new(parent, items, &self.meter)),
        });
        let mut inner = self.lock();
        let entry = Entry {
            response,
            stored_at: now,
        };
        if inner.by_id.insert(id.clone(), entry).is_none() {
            inner.order.push_back(id);
        }
        self.evict(&mut inner, now);
    }

    /// Drops expired responses, then the oldest until the limits hold.
    fn evict(&self, inner: &mut Inner, now: Instant) {
        while let Some(oldest) = inner.order.front() {
            let expired = inner.by_id.get(oldest).is_none_or(|entry| {
                now.saturating_duration_since(entry.stored_at) >= self.limits.ttl
            });
            let over = inner.by_id.len() > self.limits.max_responses
                || self.meter.bytes() > self.limits.max_bytes;
            if !expired && !over {
                break;
            }
            if let Some(oldest) = inner.order.pop_front() {
                inner.by_id.remove(&oldest);
            }
        }
    }

    /// Removes a response; false when it was not stored.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// How much the store holds now.
    pub fn usage(&self) -> StoreUsage {
        let responses = self.lock().by_id.len();
        StoreUsage {
            responses,
            bytes: self.meter.bytes(),
        }
    }
}

impl Inner {
    fn remove(&mut self, id: &str) -> Option<Entry> {
        let entry = self.by_id.remove(id)?;
        self.order.retain(|k| k != id);
        Some(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ChatMessage;

    const DAY: Duration = Duration::from_secs(86_400);

    fn store(max_responses: usize, max_bytes: usize, ttl: Duration) -> ResponseStore {
        ResponseStore::new(StoreLimits {
            max_responses,
            max_bytes,
            ttl,
        })
    }

    fn user(text: &str) -> Vec<HistoryItem> {
        vec![HistoryItem::Message(ChatMessage {
            role: "user".to_owned(),
            text: text.to_owned(),
        })]
    }

    #[test]
    fn the_oldest_response_is_evicted_at_capacity() {
        let store = store(2, usize::MAX, DAY);
        for id in ["a", "b", "c"] {
            store.insert(id.to_owned(), "{}".to_owned(), None, Vec::new());
        }
        assert_eq!(store.usage().responses, 2);
        assert!(store.get("a").is_none());
        assert!(store.get("b").is_some() && store.get("c").is_some());
        assert!(store.remove("b"));
        assert!(!store.remove("b"));
        assert_eq!(store.usage().responses, 1);
    }

    #[test]
    fn the_oldest_responses_are_evicted_beyond_the_byte_limit() {
        let store = store(1_000, 10_000, DAY);
        for i in 0..10 {
            store.insert(format!("r{i}"), "x".repeat(3_000), None, user("hi"));
            assert!(
                store.usage().bytes <= 10_000,
                "after r{i}: {:?}",
                store.usage()
            );
        }
        assert_eq!(store.usage().responses, 3);
        assert!(store.get("r6").is_none());
        assert!(store.get("r7").is_some() && store.get("r9").is_some());
        for i in 7..10 {
            assert!(store.remove(&format!("r{i}")));
        }
        assert_eq!(store.usage().bytes, 0, "everything removed is uncharged");
    }

    #[test]
    fn responses_expire_after_the_ttl() {
        let store = store(1_000, usize::MAX, Duration::from_secs(60));
        let start = Instant::now();
        store.insert_at("old".to_owned(), "{}".to_owned(), None, Vec::new(), start);
        let later = start + Duration::from_secs(30);
        store.insert_at("new".to_owned(), "{}".to_owned(), None, Vec::new(), later);
        assert!(store.get_at("old", later).is_some());
        let expired = start + Duration::from_secs(61);
        assert!(store.get_at("old", expired).is_none());
        assert!(store.get_at("new", expired).is_some());
        let much_later = start + Duration::from_secs(100);
        store.insert_at(
            "newest".to_owned(),
            "{}".to_owned(),
            None,
            Vec::new(),
            much_later,
        );
        assert_eq!(
            store.usage().responses,
            1,
            "inserting sweeps expired responses"
        );
    }

    #[test]
    fn a_chain_costs_its_new_items_per_link_and_stays_charged_while_referenced() {
        let store = store(1_000_000, usize::MAX, DAY);
        let text = "m".repeat(1_000);
        let mut parent = None;
        let mut sizes = Vec::new();
        for i in 0..400 {
            store.insert(format!("r{i}"), "{}".to_owned(), parent.take(), user(&text));
            parent = store.get(&format!("r{i}")).map(|r| r.history.clone());
            sizes.push(store.usage().bytes);
        }
        let first_half = sizes[199];
        let all = sizes[399];
        assert!(
            all < first_half * 21 / 10,
            "linear growth expected: {first_half} bytes after 200 links, {all} after 400"
        );
        // Evicting the chain's first response keeps its link (a descendant refers to it).
        let before = store.usage().bytes;
        assert!(store.remove("r0"));
        assert!(store.usage().bytes >= before - 10, "only the body is freed");
        drop(parent);
    }
}
