//! Small axum servers for the client tests: a legacy SSE server and a streamable HTTP server
//! that speak just enough MCP (initialize, paginated tools/list, an echo tool with progress,
//! a failing tool, a silent tool, a tool that makes the server ping the client).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;

/// Serves `router` on 127.0.0.1 port 0 and returns the address.
pub(crate) async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    addr
}

/// Headers the fixtures report back in tool results.
fn seen_headers(headers: &HeaderMap) -> Value {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map_or(Value::Null, |v| Value::String(v.to_owned()))
    };
    json!({
        "authorization": get("authorization"),
        "x-custom": get("x-custom"),
        "mcp-protocol-version": get("mcp-protocol-version"),
        "mcp-session-id": get("mcp-session-id"),
    })
}

/// The fixtures' MCP logic: the messages to send back for one client message, in order.
fn answer(message: &Value, headers: &HeaderMap) -> Vec<Value> {
    let (Some(id), Some(method)) = (message.get("id"), message["method"].as_str()) else {
        return Vec::new();
    };
    let params = &message["params"];
    let result = |r: Value| json!({"jsonrpc": "2.0", "id": id, "result": r});
    let tool = |name: &str| json!({"name": name, "inputSchema": {"type": "object"}});
    match method {
        "initialize" => vec![result(json!({
            "protocolVersion": params["protocolVersion"],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "fixture", "version": "1.2.3"},
        }))],
        "tools/list" => match params["cursor"].as_str() {
            None => vec![result(
                json!({"tools": [tool("echo"), tool("fail")], "nextCursor": "page2"}),
            )],
            Some("page2") => vec![result(
                json!({"tools": [tool("silent")], "nextCursor": "page3"}),
            )],
            Some("page3") => vec![result(json!({"tools": [tool("ping_me")]}))],
            // A server whose cursors loop.
            Some(_) => vec![result(json!({"tools": [], "nextCursor": "page2"}))],
        },
        "tools/call" => match params["name"].as_str() {
            Some("echo") => {
                let mut out = Vec::new();
                if let Some(token) = params.pointer("/_meta/progressToken") {
                    for (i, msg) in ["half", "done"].iter().enumerate() {
                        out.push(json!({"jsonrpc": "2.0", "method": "notifications/progress",
                            "params": {"progressToken": token, "progress": i + 1, "total": 2, "message": msg}}));
                    }
                }
                out.push(result(json!({
                    "content": [{"type": "text", "text": params["arguments"].to_string()}],
                    "structuredContent": {"arguments": params["arguments"], "headers": seen_headers(headers)},
                    "isError": false,
                })));
                out
            }
            Some("ping_me") => vec![
                json!({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"}),
                json!({"jsonrpc": "2.0", "id": "srv-sample", "method": "sampling/createMessage", "params": {}}),
                result(json!({"content": []})),
            ],
            Some("silent") => Vec::new(),
            Some(other) => vec![json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32602, "message": format!("Unknown tool: {other}")}})],
            None => Vec::new(),
        },
        "echo_headers" => vec![result(seen_headers(headers))],
        _ => vec![json!({"jsonrpc": "2.0", "id": id,
            "error": {"code": -32601, "message": format!("Method not found: {method}")}})],
    }
}

/// Frames one JSON value as an SSE `message` event the way sse-starlette does (CRLF), with
/// the JSON pretty-printed over several `data:` lines, an `id:` and a comment before it.
fn frame(value: &Value, event_id: usize) -> Bytes {
    let pretty = serde_json::to_string_pretty(value).unwrap();
    let mut out =
        format!(": ping - 2026-11-25 17:00:00\r\n\r\nid: {event_id}\r\nevent: message\r\n");
    for line in pretty.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Bytes::from(out)
}

fn sse_response(rx: mpsc::Receiver<Bytes>) -> Response {
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// What a fixture received, for assertions.
#[derive(Debug, Default)]
pub(crate) struct Recorded {
    /// Every JSON message posted, in order.
    pub(crate) messages: Mutex<Vec<Value>>,
    /// Session ids deleted with DELETE.
    pub(crate) deleted: Mutex<Vec<String>>,
    /// `Last-Event-ID` headers of resuming GETs.
    pub(crate) last_event_ids: Mutex<Vec<String>>,
}

impl Recorded {
    pub(crate) fn messages(&self) -> Vec<Value> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits (up to 5 s) until a posted message satisfies `pred`.
    pub(crate) async fn wait_for(&self, pred: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..500 {
            if let Some(v) = self.messages().into_iter().find(|m| pred(m)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no matching message; got {:?}", self.messages());
    }
}

#[derive(Default)]
struct LegacyState {
    sessions: Mutex<HashMap<String, mpsc::Sender<Bytes>>>,
    next: Mutex<usize>,
    recorded: Arc<Recorded>,
}

/// A legacy HTTP+SSE server: `GET /sse`, `POST /messages/?session_id=`, plus broken
/// variants: `/silent/sse` (never sends the endpoint), `/evil/sse` (cross-origin endpoint),
/// `/locked/sse` (401), `/html/sse` (not an event stream), `/bad/sse` (garbage messages).
pub(crate) fn legacy_router(recorded: Arc<Recorded>) -> Router {
    let state = Arc::new(LegacyState {
        recorded,
        ..LegacyState::default()
    });
    Router::new()
        .route("/sse", get(legacy_get))
        .route("/messages/", post(legacy_post))
        .route("/silent/sse", get(|| async {
            let (tx, rx) = mpsc::channel(4);
            tokio::spawn(async move {
                // Comments only, forever (until the client goes away).
                while tx.send(Bytes::from_static(b": waiting\r\n\r\n")).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            });
            sse_response(rx)
        }))
        .route("/evil/sse", get(|| async {
            let (tx, rx) = mpsc::channel(4);
            tx.send(Bytes::from_static(b"event: endpoint\ndata: http://evil.example/messages/?session_id=x\n\n")).await.unwrap();
            tokio::spawn(async move { tx.closed().await });
            sse_response(rx)
        }))
        .route("/locked/sse", get(|| async {
            (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "{\"error\":\"invalid_token\"}")
        }))
        .route("/html/sse", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html></html>") }))
        .route("/bad/sse", get(|| async {
            let (tx, rx) = mpsc::channel(4);
            tx.send(Bytes::from_static(b"event: endpoint\ndata: /messages/?sessionId=bad\n\ndata: {not json\n\nevent: other\ndata: {}\n\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{}}\n\n")).await.unwrap();
            // Then the stream ends.
            sse_response(rx)
        }))
        .with_state(state)
}

async fn legacy_get(State(state): State<Arc<LegacyState>>) -> Response {
    let id = {
        let mut n = state.next.lock().unwrap();
        *n += 1;
        format!("{:032x}", *n)
    };
    let (tx, rx) = mpsc::channel(64);
    let hello = format!(
        ": hello\r\nretry: 1000\r\n\r\nevent: endpoint\r\ndata: /messages/?session_id={id}\r\n\r\n"
    );
    tx.send(Bytes::from(hello)).await.unwrap();
    state.sessions.lock().unwrap().insert(id, tx);
    sse_response(rx)
}

#[derive(serde::Deserialize)]
struct SessionQuery {
    session_id: Option<String>,
}

async fn legacy_post(
    State(state): State<Arc<LegacyState>>,
    Query(q): Query<SessionQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(id) = q.session_id else {
        return (StatusCode::BAD_REQUEST, "session_id is required").into_response();
    };
    let Some(tx) = state.sessions.lock().unwrap().get(&id).cloned() else {
        return (StatusCode::NOT_FOUND, "Could not find session").into_response();
    };
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "Could not parse message").into_response();
    };
    state
        .recorded
        .messages
        .lock()
        .unwrap()
        .push(message.clone());
    if message["params"]["name"] == "hangup" {
        // Dropping the only sender ends the event stream.
        state.sessions.lock().unwrap().remove(&id);
        return (StatusCode::ACCEPTED, "Accepted").into_response();
    }
    for (i, reply) in answer(&message, &headers).iter().enumerate() {
        if tx.send(frame(reply, i)).await.is_err() {
            state.sessions.lock().unwrap().remove(&id);
            return (StatusCode::NOT_FOUND, "Could not find session").into_response();
        }
    }
    (StatusCode::ACCEPTED, "Accepted").into_response()
}

struct StreamableState {
    sessions: Mutex<HashSet<String>>,
    /// Per session, the messages a resuming GET replays.
    replay: Mutex<HashMap<String, Vec<Value>>>,
    next: Mutex<usize>,
    delete_allowed: bool,
    recorded: Arc<Recorded>,
}

/// A streamable HTTP server at `/mcp` (tools/call answers with an event stream, everything
/// else with JSON; the tool `drop` gets a stream that ends before its answer), and
/// `/locked/mcp` answering 401. With `delete_allowed == false`, DELETE answers 405.
pub(crate) fn streamable_router(recorded: Arc<Recorded>, delete_allowed: bool) -> Router {
    let state = Arc::new(StreamableState {
        sessions: Mutex::new(HashSet::new()),
        replay: Mutex::new(HashMap::new()),
        next: Mutex::new(0),
        delete_allowed,
        recorded,
    });
    Router::new()
        .route(
            "/mcp",
            post(streamable_post)
                .delete(streamable_delete)
                .get(streamable_get),
        )
        .route(
            "/locked/mcp",
            post(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer")],
                    "{\"error\":\"invalid_token\"}",
                )
            }),
        )
        .with_state(state)
}

async fn streamable_post(
    State(state): State<Arc<StreamableState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(status) = check_post_headers(&headers) {
        return status.into_response();
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    state
        .recorded
        .messages
        .lock()
        .unwrap()
        .push(message.clone());
    let session_header = match post_session(&state, &message, &headers) {
        Ok(new_session) => new_session,
        Err(refused) => return refused.into_response(),
    };
    if message.get("method").is_none() || message.get("id").is_none() {
        return StatusCode::ACCEPTED.into_response();
    }
    let mut response = if message["method"] == "tools/call" {
        tool_call_stream(&state, &message, &headers)
    } else {
        let replies = answer(&message, &headers);
        match replies.as_slice() {
            [one] => axum::Json(one.clone()).into_response(),
            _ => StatusCode::ACCEPTED.into_response(),
        }
    };
    if let Some(id) = session_header {
        response
            .headers_mut()
            .insert("mcp-session-id", id.parse().unwrap());
    }
    response
}

/// 406 unless the POST accepts both JSON and SSE, 415 unless its body is JSON.
fn check_post_headers(headers: &HeaderMap) -> Result<(), StatusCode> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !(accept.contains("application/json") && accept.contains("text/event-stream")) {
        return Err(StatusCode::NOT_ACCEPTABLE);
    }
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/json")
    {
        return Err(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
    Ok(())
}

/// `initialize` opens a session (its id, for the response header); anything else must name a
/// live session and carry `MCP-Protocol-Version`.
fn post_session(
    state: &StreamableState,
    message: &Value,
    headers: &HeaderMap,
) -> Result<Option<String>, (StatusCode, &'static str)> {
    if message["method"] == "initialize" {
        let id = {
            let mut n = state.next.lock().unwrap();
            *n += 1;
            format!("sess-{}", *n)
        };
        state.sessions.lock().unwrap().insert(id.clone());
        return Ok(Some(id));
    }
    let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
        return Err((StatusCode::BAD_REQUEST, "Bad Request: Missing session ID"));
    };
    if !state.sessions.lock().unwrap().contains(id) {
        return Err((
            StatusCode::NOT_FOUND,
            "Not Found: Invalid or expired session ID",
        ));
    }
    if headers.get("mcp-protocol-version").is_none() {
        return Err((StatusCode::BAD_REQUEST, "missing MCP-Protocol-Version"));
    }
    Ok(None)
}

/// A `tools/call` answered as an event stream: a priming event, then the replies. Tool
/// `drop` ends the stream before the answer; `resume` ends it after the progress and leaves
/// the answer for a resuming GET; `silent` keeps the stream open after its replies.
fn tool_call_stream(state: &StreamableState, message: &Value, headers: &HeaderMap) -> Response {
    let (tx, rx) = mpsc::channel(16);
    let bye = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "info", "data": "bye"}});
    let replies = match message["params"]["name"].as_str() {
        Some("drop") => vec![bye],
        Some("resume") => {
            let mut all = answer(
                &json!({"jsonrpc": "2.0", "id": message["id"], "method": "tools/call",
                "params": {"name": "echo", "arguments": {"resumed": true},
                    "_meta": {"progressToken": message.pointer("/params/_meta/progressToken")}}}),
                headers,
            );
            let result = all.pop().unwrap();
            let session = headers
                .get("mcp-session-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            state.replay.lock().unwrap().insert(session, vec![result]);
            all
        }
        _ => answer(message, headers),
    };
    let silent = message["params"]["name"] == "silent";
    tokio::spawn(async move {
        // Priming event: an id and empty data.
        let _ = tx
            .send(Bytes::from_static(b"id: 0\r\nretry: 500\r\ndata:\r\n\r\n"))
            .await;
        for (i, reply) in replies.iter().enumerate() {
            let _ = tx.send(frame(reply, i + 1)).await;
        }
        if silent {
            tx.closed().await;
        }
    });
    sse_response(rx)
}

/// `GET /mcp`: resumption (with `Last-Event-ID`) of a stream that has something to replay;
/// without it, the standalone stream (405 when `delete_allowed` is off).
async fn streamable_get(State(state): State<Arc<StreamableState>>, headers: HeaderMap) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let Some(session) = header("mcp-session-id") else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    assert_eq!(header("accept").as_deref(), Some("text/event-stream"));
    let Some(last) = header("last-event-id") else {
        if !state.delete_allowed {
            return StatusCode::METHOD_NOT_ALLOWED.into_response();
        }
        // The standalone stream: a list_changed notification and a ping, then it stays open.
        let (tx, rx) = mpsc::channel(16);
        let changed = json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"});
        let ping = json!({"jsonrpc": "2.0", "id": "get-ping", "method": "ping"});
        tx.try_send(frame(&changed, 100)).unwrap();
        tx.try_send(frame(&ping, 101)).unwrap();
        tokio::spawn(async move { tx.closed().await });
        return sse_response(rx);
    };
    state
        .recorded
        .last_event_ids
        .lock()
        .unwrap()
        .push(last.clone());
    let Some(replay) = state.replay.lock().unwrap().remove(&session) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let (tx, rx) = mpsc::channel(16);
    let first: usize = last.parse().unwrap();
    for (i, message) in replay.iter().enumerate() {
        tx.try_send(frame(message, first + 1 + i)).unwrap();
    }
    sse_response(rx)
}

async fn streamable_delete(
    State(state): State<Arc<StreamableState>>,
    headers: HeaderMap,
) -> Response {
    if !state.delete_allowed {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(id) = headers.get("mcp-session-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    if !state.sessions.lock().unwrap().remove(id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    state.recorded.deleted.lock().unwrap().push(id.to_owned());
    StatusCode::OK.into_response()
}

/// Ends a streamable session on the fixture's side (as a server restart would).
pub(crate) async fn expire_session(addr: SocketAddr, session_id: &str) {
    let status = reqwest::Client::new()
        .delete(format!("http://{addr}/mcp"))
        .header("mcp-session-id", session_id)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, StatusCode::OK);
}
