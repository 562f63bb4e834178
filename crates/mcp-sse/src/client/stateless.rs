//! The 2026-07-28 era of [`super::McpClient`]: no handshake and no session; every request is
//! one POST that carries the client's version, info and capabilities in `params._meta`, the
//! `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers, and `Mcp-Param-*` headers for
//! tool arguments marked `x-mcp-header`.
//!
//! A result with `resultType: "input_required"` is answered through the client's input
//! handler (elicitation, sampling, roots) and the request is sent again, under a new id, with
//! `inputResponses` and the server's `requestState` echoed exactly; a result without
//! `resultType` is complete. A `-32022` answer naming versions we speak is retried once with
//! one of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use http::header::{ACCEPT, CONTENT_TYPE};
use mcp_proto::http_headers;
use mcp_proto::jsonrpc::{ErrorObject, code};
use mcp_proto::stateless::DiscoverResult;
use mcp_proto::stateless::{self, client_meta};
use mcp_proto::types::{ClientCapabilities, JsonObject, ProgressParams, method};
use mcp_proto::{BoxFuture, Implementation, Message, Notification, ProtocolVersion, Tool};
use serde_json::{Map, Value, json};

use super::sse_parser::SseParser;
use super::streamable::PROTOCOL_VERSION_HEADER;
use super::{HttpClient, connect_error, http_error, is_media_type, read_body};
use crate::Error;

/// Most input rounds one request may take.
pub const MAX_INPUT_ROUNDS: usize = 16;

/// Answers the server's questions (`elicitation/create`, `sampling/createMessage`,
/// `roots/list`): gets the method and params, returns the result or a JSON-RPC error.
pub type InputHandler =
    Arc<dyn Fn(String, Value) -> BoxFuture<'static, Result<Value, ErrorObject>> + Send + Sync>;

pub(crate) type ProgressCallback = Arc<dyn Fn(ProgressParams) + Send + Sync>;
pub(crate) type NotificationCallback = Arc<dyn Fn(Notification) + Send + Sync>;

/// The stateless-era state of a client.
pub(crate) struct StatelessClient {
    http: HttpClient,
    url: reqwest::Url,
    version: Mutex<ProtocolVersion>,
    info: Implementation,
    pub(super) capabilities: ClientCapabilities,
    request_timeout: Duration,
    max_message_bytes: usize,
    next_id: AtomicU64,
    input: Option<InputHandler>,
    on_notification: Option<NotificationCallback>,
    /// Tools seen in `tools/list`, for their `x-mcp-header` annotations.
    tools: Mutex<HashMap<String, Tool>>,
    pub(crate) discovered: Mutex<Option<DiscoverResult>>,
}

impl std::fmt::Debug for StatelessClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatelessClient")
            .field("url", &self.url.as_str())
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How one POST ended.
type Round = Result<Value, ErrorObject>;

impl StatelessClient {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        http: HttpClient,
        url: reqwest::Url,
        version: ProtocolVersion,
        info: Implementation,
        capabilities: ClientCapabilities,
        request_timeout: Duration,
        max_message_bytes: usize,
        input: Option<InputHandler>,
        on_notification: Option<NotificationCallback>,
    ) -> Self {
        Self {
            http,
            url,
            version: Mutex::new(version),
            info,
            capabilities,
            request_timeout,
            max_message_bytes,
            next_id: AtomicU64::new(1),
            input,
            on_notification,
            tools: Mutex::new(HashMap::new()),
            discovered: Mutex::new(None),
        }
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        *lock(&self.version)
    }

    /// `server/discover`; remembers the answer.
    pub(crate) async fn discover(&self) -> Result<DiscoverResult, Error> {
        let value = self.request(method::SERVER_DISCOVER, None, None).await?;
        let result: DiscoverResult = mcp_proto::parse_result(Ok(value)).map_err(Error::Protocol)?;
        *lock(&self.discovered) = Some(result.clone());
        Ok(result)
    }

    /// Remembers listed tools (their `x-mcp-header` annotations) and leaves out the ones
    /// whose annotations are invalid, as the specification requires.
    pub(crate) fn accept_tools(&self, tools: Vec<Tool>) -> Vec<Tool> {
        let mut known = lock(&self.tools);
        tools
            .into_iter()
            .filter(|t| match http_headers::tool_header_params(t) {
                Ok(_) => {
                    known.insert(t.name.clone(), t.clone());
                    true
                }
                Err(why) => {
                    tracing::warn!(tool = %t.name, %why, "leaving out a tool with invalid x-mcp-header");
                    false
                }
            })
            .collect()
    }

    /// Sends a request: the version retry, then as many input rounds as the server asks.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        progress: Option<ProgressCallback>,
    ) -> Result<Value, Error> {
        let mut params = match params {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(other) => return Err(Error::InvalidArguments(other.to_string())),
        };
        let mut version_retried = false;
        let mut rounds = 0;
        loop {
            let round = self.post(method, &params, progress.as_ref()).await?;
            let value = match round {
                Ok(v) => v,
                Err(e) if e.code == code::UNSUPPORTED_PROTOCOL_VERSION && !version_retried => {
                    version_retried = true;
                    let supported = e
                        .data
                        .as_ref()
                        .and_then(|d| d.get("supported"))
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    let choice = supported
                        .iter()
                        .filter_map(Value::as_str)
                        .filter_map(|v| v.parse::<ProtocolVersion>().ok())
                        .filter(|v| v.is_stateless())
                        .max();
                    match choice {
                        Some(v) => {
                            tracing::debug!(
                                version = v.as_str(),
                                "retrying with a version the server speaks"
                            );
                            *lock(&self.version) = v;
                            continue;
                        }
                        None => return Err(Error::Protocol(mcp_proto::Error::Rpc(e))),
                    }
                }
                Err(e) => return Err(Error::Protocol(mcp_proto::Error::Rpc(e))),
            };
            if value.get("resultType").and_then(Value::as_str)
                != Some(stateless::RESULT_INPUT_REQUIRED)
            {
                return Ok(value);
            }
            rounds += 1;
            if rounds > MAX_INPUT_ROUNDS {
                return Err(Error::Transport(format!(
                    "{method}: the server asked for input more than {MAX_INPUT_ROUNDS} times"
                )));
            }
            let responses = self.answer_inputs(&value).await?;
            params.insert("inputResponses".into(), Value::Object(responses));
            match value.get("requestState") {
                Some(state) => params.insert("requestState".into(), state.clone()),
                None => params.remove("requestState"),
            };
        }
    }

    pub(super) async fn answer_inputs(&self, result: &Value) -> Result<JsonObject, Error> {
        let handler = self.input.as_ref().ok_or_else(|| {
            Error::Transport("the server asks for input and no input handler is set".into())
        })?;
        let mut responses = Map::new();
        if let Some(requests) = result.get("inputRequests").and_then(Value::as_object) {
            for (key, request) in requests {
                let method = request
                    .get("method")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let params = request.get("params").cloned().unwrap_or_else(|| json!({}));
                let answer = handler(method, params)
                    .await
                    .map_err(|e| Error::Protocol(mcp_proto::Error::Rpc(e)))?;
                responses.insert(key.clone(), answer);
            }
        }
        Ok(responses)
    }

    /// One POST: the answer, a JSON-RPC error (whatever the HTTP status), or why none came.
    async fn post(
        &self,
        method: &str,
        params: &JsonObject,
        progress: Option<&ProgressCallback>,
    ) -> Result<Round, Error> {
        let (id, post) = self.prepare(method, params);
        let wait = self.request_timeout;
        let mut response = self
            .http
            .send(post, &self.url, wait, "the answer to a POST")
            .await?;
        let exchange = async {
            let status = response.status();
            let content_type = response.headers().get(CONTENT_TYPE).cloned();
            if is_media_type(content_type.as_ref(), "text/event-stream") && status.is_success() {
                return self.read_stream(response, id, progress).await;
            }
            if is_media_type(content_type.as_ref(), "application/json") {
                let body = read_body(&mut response, &self.url, self.max_message_bytes).await?;
                if let Ok(Message::Response(r)) = serde_json::from_slice::<Message>(&body) {
                    return Ok(r.outcome);
                }
                if !status.is_success() {
                    return Err(Error::Http {
                        status,
                        reason: status.canonical_reason().unwrap_or_default().to_owned(),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    });
                }
                return Err(Error::Transport(format!(
                    "{method}: the answer is not a JSON-RPC response"
                )));
            }
            if !status.is_success() {
                return Err(http_error(response, wait).await);
            }
            Err(Error::Transport(format!(
                "{method}: answered {status} with content type {content_type:?}"
            )))
        };
        tokio::time::timeout(wait, exchange)
            .await
            .map_err(|_| Error::Timeout(wait, "the answer to a request"))?
    }

    /// Opens a long-lived request (`subscriptions/listen`): the response, its body unread,
    /// once its headers arrived (a JSON-RPC error or an HTTP error is an `Err`).
    pub(crate) async fn open_stream(
        &self,
        method: &str,
        params: &JsonObject,
    ) -> Result<reqwest::Response, Error> {
        let (_, post) = self.prepare(method, params);
        let wait = self.request_timeout;
        let mut response = self
            .http
            .send(post, &self.url, wait, "the start of a stream")
            .await?;
        let content_type = response.headers().get(CONTENT_TYPE).cloned();
        if response.status().is_success()
            && is_media_type(content_type.as_ref(), "text/event-stream")
        {
            return Ok(response);
        }
        let status = response.status();
        let body = read_body(&mut response, &self.url, self.max_message_bytes).await?;
        if let Ok(Message::Response(r)) = serde_json::from_slice::<Message>(&body)
            && let Err(e) = r.outcome
        {
            return Err(Error::Protocol(mcp_proto::Error::Rpc(e)));
        }
        Err(Error::Http {
            status,
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// Bounds of one message read from a stream.
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The server's URL.
    pub(crate) fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// The POST of one request (its id, and the request ready to send): `_meta` with this
    /// client's version, info and capabilities, and the standard headers.
    fn prepare(&self, method: &str, params: &JsonObject) -> (i64, reqwest::RequestBuilder) {
        let version = self.version();
        let mut params = params.clone();
        let mut meta = match params.remove("_meta") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for (k, v) in client_meta(version, &self.info, &self.capabilities) {
            meta.entry(k).or_insert(v);
        }
        params.insert("_meta".into(), Value::Object(meta));
        let params = Value::Object(params);
        let id = i64::try_from(self.next_id.fetch_add(1, Ordering::Relaxed)).unwrap_or(i64::MAX);
        let message = Message::request(id, method, Some(params.clone()));
        let mut post = self
            .http
            .post(self.url.clone())
            .header(ACCEPT, "application/json, text/event-stream")
            .header(CONTENT_TYPE, "application/json")
            .header(PROTOCOL_VERSION_HEADER, version.as_str())
            .body(message.to_vec());
        for (name, value) in http_headers::standard_headers(method, Some(&params)) {
            post = post.header(name, value);
        }
        if method == method::TOOLS_CALL {
            let tool = params
                .get("name")
                .and_then(Value::as_str)
                .and_then(|n| lock(&self.tools).get(n).cloned());
            if let Some(tool) = tool {
                let args = params.get("arguments").cloned().unwrap_or(Value::Null);
                for (name, value) in http_headers::param_headers(&tool, &args) {
                    post = post.header(name, value);
                }
            }
        }
        (id, post)
    }

    async fn read_stream(
        &self,
        response: reqwest::Response,
        id: i64,
        progress: Option<&ProgressCallback>,
    ) -> Result<Round, Error> {
        let mut parser = SseParser::new(self.max_message_bytes);
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| connect_error(&self.url, e))?;
            parser.feed(&chunk).map_err(|_| Error::MessageTooLarge {
                limit: self.max_message_bytes,
            })?;
            while let Some(event) = parser.next_event() {
                if event.data.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Message>(&event.data) {
                    Ok(Message::Response(r)) if r.id == Some(id.into()) => return Ok(r.outcome),
                    Ok(Message::Notification(n)) => self.notification(n, progress),
                    Ok(Message::Request(r)) => tracing::warn!(
                        method = %r.method,
                        "ignoring a server request on a 2026-07-28 stream (input comes as InputRequiredResult)"
                    ),
                    Ok(other) => {
                        tracing::debug!(message = %other.to_json(), "ignoring an unrelated message")
                    }
                    Err(e) => tracing::warn!(error = %e, "ignoring a malformed event"),
                }
            }
        }
        Err(Error::Transport(
            "the response stream ended before the answer".into(),
        ))
    }

    fn notification(&self, n: Notification, progress: Option<&ProgressCallback>) {
        if n.method == method::PROGRESS
            && let (Some(callback), Some(params)) = (
                progress,
                n.params
                    .clone()
                    .and_then(|p| serde_json::from_value::<ProgressParams>(p).ok()),
            )
        {
            callback(params);
            return;
        }
        if let Some(callback) = &self.on_notification {
            callback(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use mcp_proto::client_features::ElicitParams;
    use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};

    use super::*;
    use crate::McpHttpServer;
    use crate::client::McpClient;

    async fn greet(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let Value::Object(schema) =
            json!({"type":"object","properties":{"name":{"type":"string"}}})
        else {
            return Err(ToolError::new("schema"));
        };
        let r = ctx
            .elicit_as("user_name", ElicitParams::form("Name?", schema))
            .await?;
        let name = r.content.and_then(|c| c.get("name").cloned());
        Ok(format!(
            "Hello, {}!",
            name.unwrap_or_default().as_str().unwrap_or_default()
        ))
    }

    async fn start() -> crate::RunningServer {
        let server = McpServer::builder("stateless-client-test")
            .version("2.0.0")
            .tool("greet", "Asks for a name.", greet)
            .build()
            .unwrap();
        McpHttpServer::new(server)
            .spawn("127.0.0.1:0")
            .await
            .unwrap()
    }

    fn elicitation_caps() -> ClientCapabilities {
        ClientCapabilities {
            elicitation: Some(Map::new()),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn the_same_tool_and_the_same_callback_work_in_both_eras() {
        let server = start().await;
        for (version, discover_first, expected) in [
            (
                ProtocolVersion::V2026_07_28,
                false,
                ProtocolVersion::V2026_07_28,
            ),
            (
                ProtocolVersion::V2025_11_25,
                false,
                ProtocolVersion::V2025_11_25,
            ),
            (
                ProtocolVersion::V2025_11_25,
                true,
                ProtocolVersion::V2026_07_28,
            ),
        ] {
            let client = McpClient::builder(server.url("/mcp"))
                .protocol_version(version)
                .discover_first(discover_first)
                .capabilities(elicitation_caps())
                .on_input(|method, params| async move {
                    assert_eq!(method, "elicitation/create");
                    assert_eq!(params["message"], "Name?");
                    Ok(json!({"action": "accept", "content": {"name": "Ada"}}))
                })
                .connect()
                .await
                .unwrap();
            assert_eq!(
                client.protocol_version(),
                expected,
                "{version} {discover_first}"
            );
            assert_eq!(client.server_info().unwrap().name, "stateless-client-test");
            assert_eq!(client.list_tools().await.unwrap()[0].name, "greet");
            let r = client.call_tool("greet", json!({})).await.unwrap();
            assert_eq!(r.content[0].as_text(), Some("Hello, Ada!"), "{version}");
            client.close().await.unwrap();
        }
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_stateless_call_without_an_input_handler_fails_with_a_clear_error() {
        let server = start().await;
        let client = McpClient::builder(server.url("/mcp"))
            .protocol_version(ProtocolVersion::V2026_07_28)
            .capabilities(elicitation_caps())
            .connect()
            .await
            .unwrap();
        let e = client.call_tool("greet", json!({})).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "transport protocol violation: the server asks for input and no input handler is set"
        );
        // An unknown method is a JSON-RPC error from a 404 answer.
        let e = client.request("no/such", None).await.unwrap_err();
        assert!(
            matches!(e, Error::Protocol(mcp_proto::Error::Rpc(ref o)) if o.code == -32601),
            "{e}"
        );
        server.shutdown().await.unwrap();
    }
}
