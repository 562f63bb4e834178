//! Client session logic, with no I/O: request ids, matching responses to pending requests,
//! the `initialize` handshake's version check, and pagination walks.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;
use crate::jsonrpc::{Message, Notification, Request, RequestId, Response};
use crate::types::{
    CancelledParams, ClientCapabilities, Implementation, InitializeParams, InitializeResult,
    ServerCapabilities, method,
};
use crate::version::ProtocolVersion;

/// Default bound on requests waiting for an answer.
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// What an incoming message means to the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The answer to a pending request.
    Response {
        /// The request id.
        id: RequestId,
        /// The method that was called.
        method: String,
        /// Its result or error.
        outcome: Result<Value, crate::jsonrpc::ErrorObject>,
    },
    /// A notification from the server (progress, log, list_changed, ...).
    Notification(Notification),
    /// A request from the server (sampling, elicitation, roots, ping).
    ServerRequest(Request),
}

/// The client side of one MCP session.
///
/// ```
/// use mcp_proto::{ClientSession, Implementation, ProtocolVersion, Message, Response};
/// use serde_json::json;
///
/// let mut client = ClientSession::new(Implementation::new("my-client", "1.0.0"));
/// let init = client.initialize_request(ProtocolVersion::V2025_06_18).unwrap();
/// let Message::Request(req) = &init else { unreachable!() };
/// let reply = Message::Response(Response::result(req.id.clone(), json!({
///     "protocolVersion": "2025-06-18", "capabilities": {},
///     "serverInfo": {"name": "s", "version": "1"}})));
/// let event = client.handle_message(reply).unwrap();
/// let result = client.complete_initialize(event).unwrap();
/// assert_eq!(client.protocol_version(), Some(ProtocolVersion::V2025_06_18));
/// assert_eq!(result.server_info.name, "s");
/// ```
#[derive(Debug)]
pub struct ClientSession {
    info: Implementation,
    capabilities: ClientCapabilities,
    next_id: i64,
    pending: HashMap<RequestId, String>,
    max_pending: usize,
    version: Option<ProtocolVersion>,
    server_info: Option<Implementation>,
    server_capabilities: Option<ServerCapabilities>,
}

impl ClientSession {
    /// A session for a client named by `info`.
    pub fn new(info: Implementation) -> Self {
        Self {
            info,
            capabilities: ClientCapabilities::default(),
            next_id: 0,
            pending: HashMap::new(),
            max_pending: DEFAULT_MAX_PENDING,
            version: None,
            server_info: None,
            server_capabilities: None,
        }
    }

    /// Declares client capabilities.
    pub fn with_capabilities(mut self, capabilities: ClientCapabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Bounds the number of requests waiting for answers.
    pub fn with_max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self
    }

    /// The negotiated version, once `initialize` completed.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the version without a handshake (stateless servers, or a resumed session).
    pub fn set_protocol_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The server's name and version, once known.
    pub fn server_info(&self) -> Option<&Implementation> {
        self.server_info.as_ref()
    }

    /// The server's capabilities, once known.
    pub fn server_capabilities(&self) -> Option<&ServerCapabilities> {
        self.server_capabilities.as_ref()
    }

    /// How many requests wait for answers.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Builds a request with a fresh id and records it as pending.
    pub fn request(&mut self, method: &str, params: Option<Value>) -> Result<Message, Error> {
        if self.pending.len() >= self.max_pending {
            return Err(Error::TooManyPendingRequests {
                limit: self.max_pending,
            });
        }
        self.next_id += 1;
        let id = RequestId::from(self.next_id);
        self.pending.insert(id.clone(), method.to_owned());
        Ok(Message::request(id, method, params))
    }

    /// Builds a request whose params are a typed value.
    pub fn typed_request(
        &mut self,
        method: &str,
        params: &impl Serialize,
    ) -> Result<Message, Error> {
        let params = serde_json::to_value(params).map_err(|e| Error::malformed("params", e))?;
        self.request(method, Some(params))
    }

    /// Builds the `initialize` request offering `version`.
    pub fn initialize_request(&mut self, version: ProtocolVersion) -> Result<Message, Error> {
        let params = InitializeParams {
            protocol_version: version.as_str().to_owned(),
            capabilities: self.capabilities.clone(),
            client_info: self.info.clone(),
        };
        self.typed_request(method::INITIALIZE, &params)
    }

    /// Reads the answer to `initialize`: checks the version is one we speak and records what
    /// the server said. Returns the `notifications/initialized` message to send next through
    /// [`ClientSession::initialized_notification`].
    pub fn complete_initialize(&mut self, event: ClientEvent) -> Result<InitializeResult, Error> {
        let ClientEvent::Response { outcome, .. } = event else {
            return Err(Error::malformed("initialize response", "not a response"));
        };
        let result: InitializeResult = parse_result(outcome)?;
        let version = result
            .protocol_version
            .parse::<ProtocolVersion>()
            .ok()
            .filter(|v| !v.is_stateless())
            .ok_or_else(|| Error::UnsupportedVersion(result.protocol_version.clone()))?;
        self.version = Some(version);
        self.server_info = Some(result.server_info.clone());
        self.server_capabilities = Some(result.capabilities.clone());
        Ok(result)
    }

    /// `notifications/initialized`.
    pub fn initialized_notification(&self) -> Message {
        Message::notification(method::INITIALIZED, None)
    }

    /// Cancels a pending request: forgets it and returns the `notifications/cancelled` to send.
    pub fn cancel(&mut self, id: &RequestId, reason: Option<&str>) -> Option<Message> {
        self.pending.remove(id)?;
        let params = CancelledParams {
            request_id: Some(id.clone()),
            reason: reason.map(str::to_owned),
        };
        Some(Message::notification(
            method::CANCELLED,
            serde_json::to_value(params).ok(),
        ))
    }

    /// Forgets a pending request without telling the server (e.g. its transport failed).
    pub fn forget(&mut self, id: &RequestId) {
        self.pending.remove(id);
    }

    /// Classifies an incoming message; responses are matched to pending requests.
    pub fn handle_message(&mut self, message: Message) -> Result<ClientEvent, Error> {
        match message {
            Message::Response(Response {
                id: Some(id),
                outcome,
            }) => match self.pending.remove(&id) {
                Some(method) => Ok(ClientEvent::Response {
                    id,
                    method,
                    outcome,
                }),
                None => Err(Error::UnknownResponse(id)),
            },
            Message::Response(Response { id: None, outcome }) => Err(match outcome {
                Err(e) => Error::Rpc(e),
                Ok(_) => Error::malformed("response", "result without id"),
            }),
            Message::Notification(n) => Ok(ClientEvent::Notification(n)),
            Message::Request(r) => Ok(ClientEvent::ServerRequest(r)),
        }
    }
}

/// Reads a typed result out of a response outcome; a JSON-RPC error becomes [`Error::Rpc`].
pub fn parse_result<T: DeserializeOwned>(
    outcome: Result<Value, crate::jsonrpc::ErrorObject>,
) -> Result<T, Error> {
    let value = outcome.map_err(Error::Rpc)?;
    serde_json::from_value(value).map_err(|e| Error::malformed("result", e))
}

/// Walks a paginated list: remembers cursors so a server that loops is caught, and stops
/// after a bounded number of pages.
#[derive(Debug)]
pub struct Pagination {
    seen: HashSet<String>,
    pages: usize,
    max_pages: usize,
}

/// Default bound on pages in one walk.
pub const DEFAULT_MAX_PAGES: usize = 1000;

impl Default for Pagination {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_PAGES)
    }
}

impl Pagination {
    /// A walk of at most `max_pages` pages.
    pub fn new(max_pages: usize) -> Self {
        Self {
            seen: HashSet::new(),
            pages: 0,
            max_pages: max_pages.max(1),
        }
    }

    /// Records a page's `nextCursor`; returns the cursor to request next, or `None` at the end.
    pub fn next(&mut self, next_cursor: Option<String>) -> Result<Option<String>, Error> {
        self.pages += 1;
        let Some(cursor) = next_cursor else {
            return Ok(None);
        };
        if self.pages >= self.max_pages {
            return Err(Error::TooManyPages(self.pages));
        }
        if !self.seen.insert(cursor.clone()) {
            return Err(Error::PaginationLoop(cursor));
        }
        Ok(Some(cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client() -> ClientSession {
        ClientSession::new(Implementation::new("c", "1"))
    }

    #[test]
    fn ids_are_fresh_and_responses_match() {
        let mut c = client();
        let a = c.request("ping", None).unwrap();
        let b = c.request("tools/list", None).unwrap();
        let (Message::Request(a), Message::Request(b)) = (a, b) else {
            panic!()
        };
        assert_ne!(a.id, b.id);
        let ev = c
            .handle_message(Message::Response(Response::result(b.id.clone(), json!({}))))
            .unwrap();
        assert!(matches!(ev, ClientEvent::Response { ref method, .. } if method == "tools/list"));
        assert_eq!(c.pending(), 1);
        let again = c.handle_message(Message::Response(Response::result(b.id.clone(), json!({}))));
        assert!(matches!(again, Err(Error::UnknownResponse(id)) if id == b.id));
    }

    #[test]
    fn pending_is_bounded() {
        let mut c = client().with_max_pending(2);
        c.request("a", None).unwrap();
        c.request("b", None).unwrap();
        assert!(matches!(
            c.request("c", None),
            Err(Error::TooManyPendingRequests { limit: 2 })
        ));
    }

    #[test]
    fn initialize_rejects_unknown_versions() {
        let mut c = client();
        let Message::Request(r) = c.initialize_request(ProtocolVersion::V2025_11_25).unwrap()
        else {
            panic!()
        };
        let ev = c
            .handle_message(Message::Response(Response::result(
                r.id,
                json!({"protocolVersion":"1999-01-01","capabilities":{},"serverInfo":{"name":"s","version":"1"}}),
            )))
            .unwrap();
        assert!(matches!(
            c.complete_initialize(ev),
            Err(Error::UnsupportedVersion(v)) if v == "1999-01-01"
        ));
        assert_eq!(c.protocol_version(), None);
    }

    #[test]
    fn cancel_forgets_and_builds_notification() {
        let mut c = client();
        let Message::Request(r) = c.request("tools/call", None).unwrap() else {
            panic!()
        };
        let n = c.cancel(&r.id, Some("user")).unwrap();
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1,"reason":"user"}})
        );
        assert_eq!(c.pending(), 0);
        assert!(c.cancel(&r.id, None).is_none());
    }

    #[test]
    fn pagination_detects_loops_and_bounds_pages() {
        let mut p = Pagination::default();
        assert_eq!(p.next(Some("a".into())).unwrap(), Some("a".into()));
        assert_eq!(p.next(Some("b".into())).unwrap(), Some("b".into()));
        assert!(matches!(
            p.next(Some("a".into())),
            Err(Error::PaginationLoop(c)) if c == "a"
        ));
        let mut p = Pagination::new(2);
        assert!(p.next(Some("x".into())).is_ok());
        assert!(matches!(
            p.next(Some("y".into())),
            Err(Error::TooManyPages(2))
        ));
        let mut p = Pagination::default();
        assert_eq!(p.next(None).unwrap(), None);
    }
}
