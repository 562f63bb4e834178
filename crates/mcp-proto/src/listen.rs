//! Change notifications: the 2026-07-28 `subscriptions/listen` streams and the list-changed
//! and resource-updated notifications of stateful sessions' streams, fanned out by
//! [`Listeners`].

use serde::{Deserialize, Serialize};
use serde_json::json;

/// `_meta` key tagging notifications of a `subscriptions/listen` stream.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// The 2026-07-28 method that opens a stream of change notifications.
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
/// First message of a `subscriptions/listen` stream.
pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
/// Most `subscriptions/listen` streams one server keeps open.
pub const MAX_LISTENERS: usize = 1024;
/// A task's status on a `subscriptions/listen` stream that asked for it (`taskIds`, the
/// `io.modelcontextprotocol/tasks` extension): its `DetailedTask`, as `tasks/get` answers.
pub const TASKS_NOTIFICATION: &str = "notifications/tasks";
/// Most tasks one `subscriptions/listen` stream may follow.
pub const MAX_LISTEN_TASKS: usize = 64;

/// A change clients may listen for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// The tool list changed (`notifications/tools/list_changed`).
    Tools,
    /// The prompt list changed (`notifications/prompts/list_changed`).
    Prompts,
    /// The resource list changed (`notifications/resources/list_changed`).
    Resources,
    /// A resource's contents changed (`notifications/resources/updated`).
    ResourceUpdated(String),
}

/// What one `subscriptions/listen` stream asked for (its `notifications` param).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resources_list_changed: bool,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subscriptions: Option<Vec<String>>,
    /// `notifications/tasks` for these tasks (the tasks extension): each task's state once
    /// the stream is acknowledged, then at each change until it ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_ids: Option<Vec<String>>,
}

impl ListenFilter {
    fn wants(&self, change: &Change) -> bool {
        match change {
            Change::Tools => self.tools_list_changed,
            Change::Prompts => self.prompts_list_changed,
            Change::Resources => self.resources_list_changed,
            Change::ResourceUpdated(uri) => self
                .resource_subscriptions
                .as_ref()
                .is_some_and(|u| u.iter().any(|x| x == uri)),
        }
    }
}

struct Listener {
    key: u64,
    subscription_id: String,
    filter: ListenFilter,
    outbound: std::sync::Arc<dyn crate::service::Outbound>,
    /// A stateful session's stream: every list change, and updates of the resources the
    /// session subscribed to (`resources/subscribe`), without a subscription id.
    session: Option<std::sync::Arc<crate::service::Session>>,
}

/// The open `subscriptions/listen` streams of a server, and the fan-out of changes to them.
#[derive(Default)]
pub struct Listeners {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("open", &self.len())
            .finish()
    }
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a stream; `None` when [`MAX_LISTENERS`] are open.
    pub(crate) fn add(
        &self,
        subscription_id: String,
        filter: ListenFilter,
        outbound: std::sync::Arc<dyn crate::service::Outbound>,
    ) -> Option<u64> {
        let mut open = self.lock();
        if open.len() >= MAX_LISTENERS {
            return None;
        }
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(Listener {
            key,
            subscription_id,
            filter,
            outbound,
            session: None,
        });
        Some(key)
    }

    /// Registers a stateful session's stream, replacing the session's earlier one; `false`
    /// when [`MAX_LISTENERS`] are open.
    pub(crate) fn add_session(
        &self,
        session: std::sync::Arc<crate::service::Session>,
        outbound: std::sync::Arc<dyn crate::service::Outbound>,
    ) -> bool {
        let mut open = self.lock();
        open.retain(|l| {
            !l.session
                .as_ref()
                .is_some_and(|s| std::sync::Arc::ptr_eq(s, &session))
        });
        if open.len() >= MAX_LISTENERS {
            return false;
        }
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(Listener {
            key,
            subscription_id: String::new(),
            filter: ListenFilter {
                tools_list_changed: true,
                prompts_list_changed: true,
                resources_list_changed: true,
                resource_subscriptions: None,
                task_ids: None,
            },
            outbound,
            session: Some(session),
        });
        true
    }

    /// Forgets a stateful session's stream.
    pub(crate) fn remove_session(&self, session: &crate::service::Session) {
        self.lock().retain(|l| {
            !l.session
                .as_ref()
                .is_some_and(|s| std::ptr::eq(std::sync::Arc::as_ptr(s), session))
        });
    }

    /// Forgets a stream.
    pub(crate) fn remove(&self, key: u64) {
        self.lock().retain(|l| l.key != key);
    }

    /// Sends the change to every open stream that asked for it; streams that cannot take it
    /// any more are forgotten.
    pub async fn notify(&self, change: Change) {
        let targets: Vec<_> = self
            .lock()
            .iter()
            .filter(|l| match (&l.session, &change) {
                (Some(s), Change::ResourceUpdated(uri)) => {
                    s.state().subscriptions.iter().any(|u| u == uri)
                }
                _ => l.filter.wants(&change),
            })
            .map(|l| {
                (
                    l.key,
                    l.session.is_some(),
                    l.subscription_id.clone(),
                    std::sync::Arc::clone(&l.outbound),
                )
            })
            .collect();
        let method = match &change {
            Change::Tools => crate::types::method::TOOLS_LIST_CHANGED,
            Change::Prompts => crate::types::method::PROMPTS_LIST_CHANGED,
            Change::Resources => crate::types::method::RESOURCES_LIST_CHANGED,
            Change::ResourceUpdated(_) => crate::types::method::RESOURCES_UPDATED,
        };
        for (key, stateful, id, outbound) in targets {
            let params = match (&change, stateful) {
                (Change::ResourceUpdated(uri), true) => Some(json!({ "uri": uri })),
                (Change::ResourceUpdated(uri), false) => {
                    Some(json!({"_meta": {META_SUBSCRIPTION_ID: id}, "uri": uri}))
                }
                (_, true) => None,
                (_, false) => Some(json!({"_meta": {META_SUBSCRIPTION_ID: id}})),
            };
            let message = crate::jsonrpc::Message::notification(method, params);
            if outbound.send(message).await.is_err() {
                self.remove(key);
            }
        }
    }
}
