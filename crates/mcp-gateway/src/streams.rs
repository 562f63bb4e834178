//! The open streams of the gateway's client sessions, for messages of the child that belong
//! to no request (list changes, resource updates, logs outside calls).

use std::sync::{Arc, Mutex, Weak};

use mcp_proto::types::LoggingLevel;
use mcp_proto::{Message, Outbound, SendError, Session};

use crate::lock;

/// Most streams kept; a stream opened beyond it gets no notifications of the child.
pub const MAX_STREAMS: usize = 4096;

struct Entry {
    session: Weak<Session>,
    outbound: Arc<dyn Outbound>,
}

/// The session streams, each kept while its session lives and its sends succeed.
#[derive(Default)]
pub(crate) struct Streams {
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Streams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Streams")
            .field("open", &lock(&self.entries).len())
            .finish()
    }
}

/// Which sessions a message goes to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Audience<'a> {
    /// Every session (of `scope`, when the child serves one session).
    All,
    /// Sessions that asked for log messages at `level` or below it.
    LogLevel(LoggingLevel),
    /// Sessions subscribed to this resource.
    Subscribers(&'a str),
}

impl Streams {
    /// Remembers a session's stream; `false` when [`MAX_STREAMS`] are open.
    pub(crate) fn add(&self, session: &Arc<Session>, outbound: Arc<dyn Outbound>) -> bool {
        let mut entries = lock(&self.entries);
        entries.retain(|e| e.session.strong_count() > 0);
        if entries.len() >= MAX_STREAMS {
            return false;
        }
        entries.push(Entry {
            session: Arc::downgrade(session),
            outbound,
        });
        true
    }

    /// Forgets a session's streams.
    pub(crate) fn remove(&self, session: &Session) {
        lock(&self.entries).retain(|e| {
            e.session
                .upgrade()
                .is_some_and(|s| !std::ptr::eq(Arc::as_ptr(&s), session))
        });
    }

    /// The streams of the sessions `audience` selects, within `scope` (a session id) if given.
    fn targets(
        &self,
        scope: Option<&str>,
        audience: Audience<'_>,
    ) -> Vec<(Arc<Session>, Arc<dyn Outbound>)> {
        lock(&self.entries)
            .iter()
            .filter_map(|e| Some((e.session.upgrade()?, Arc::clone(&e.outbound))))
            .filter(|(s, _)| scope.is_none_or(|id| s.id() == Some(id)))
            .filter(|(s, _)| wants(s, audience))
            .collect()
    }

    /// The one session stream within `scope`, when there is exactly one.
    pub(crate) fn only(&self, scope: Option<&str>) -> Option<(Arc<Session>, Arc<dyn Outbound>)> {
        let mut all = self.targets(scope, Audience::All);
        match all.len() {
            1 => all.pop(),
            _ => None,
        }
    }

    /// Sends `message` to every selected stream; streams whose send fails as closed are
    /// forgotten.
    pub(crate) async fn broadcast(
        &self,
        scope: Option<&str>,
        audience: Audience<'_>,
        message: &Message,
    ) {
        for (session, outbound) in self.targets(scope, audience) {
            match outbound.send(message.clone()).await {
                Ok(()) => {}
                Err(SendError::Closed) => {
                    lock(&self.entries).retain(|e| !Arc::ptr_eq(&e.outbound, &outbound));
                }
                Err(error) => {
                    tracing::debug!(session = ?session.id(), %error, "notification not delivered")
                }
            }
        }
    }
}

/// Whether a session wants a message meant for `audience`.
pub(crate) fn wants(session: &Session, audience: Audience<'_>) -> bool {
    match audience {
        Audience::All => true,
        Audience::LogLevel(level) => session.state().log_level.is_none_or(|min| level >= min),
        Audience::Subscribers(uri) => session.state().subscriptions.iter().any(|u| u == uri),
    }
}
