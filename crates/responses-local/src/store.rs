//! Stored responses (`store: true`), bounded: the oldest is evicted when full.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;

use crate::connector::ListedTool;
use crate::model::{ChatMessage, ToolActivity};

/// An approval request the caller has not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PendingApproval {
    pub server_label: String,
    pub name: String,
    pub arguments: String,
}

/// What a later response in the chain inherits.
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainState {
    pub messages: Vec<ChatMessage>,
    pub activity: Vec<ToolActivity>,
    /// Full (unfiltered) tool lists by server label.
    pub listed: HashMap<String, Vec<ListedTool>>,
    pub approvals: HashMap<String, PendingApproval>,
}

/// One stored response.
#[derive(Debug, Clone)]
pub(crate) struct StoredResponse {
    pub body: Value,
    pub state: ChainState,
}

#[derive(Debug, Default)]
struct Inner {
    by_id: HashMap<String, Arc<StoredResponse>>,
    order: VecDeque<String>,
}

/// The bounded response store.
#[derive(Debug)]
pub(crate) struct ResponseStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

impl ResponseStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<StoredResponse>> {
        self.lock().by_id.get(id).cloned()
    }

    pub fn insert(&self, id: String, response: StoredResponse) {
        let mut inner = self.lock();
        if inner.by_id.insert(id.clone(), Arc::new(response)).is_none() {
            inner.order.push_back(id);
        }
        while inner.order.len() > self.capacity {
            if let Some(oldest) = inner.order.pop_front() {
                inner.by_id.remove(&oldest);
            }
        }
    }

    pub fn remove(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let removed = inner.by_id.remove(id).is_some();
        if removed {
            inner.order.retain(|k| k != id);
        }
        removed
    }

    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_response_is_evicted_at_capacity() {
        let store = ResponseStore::new(2);
        for id in ["a", "b", "c"] {
            store.insert(
                id.to_owned(),
                StoredResponse {
                    body: Value::Null,
                    state: ChainState::default(),
                },
            );
        }
        assert_eq!(store.len(), 2);
        assert!(store.get("a").is_none());
        assert!(store.get("b").is_some() && store.get("c").is_some());
        assert!(store.remove("b"));
        assert!(!store.remove("b"));
        assert_eq!(store.len(), 1);
    }
}
