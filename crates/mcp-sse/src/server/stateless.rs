//! Streamable HTTP in the 2026-07-28 era: every POST stands alone (no session), carries its
//! protocol version in the `MCP-Protocol-Version` header and in `params._meta`, and names its
//! method (and tool, prompt or resource) in `Mcp-Method` / `Mcp-Name` headers.
//!
//! The checks run in the order the specification's reference server uses: version header
//! missing (`-32020`), `_meta` incomplete (`-32602`), header and `_meta` disagree (`-32020`),
//! version not served (`-32022`), `Mcp-Method`/`Mcp-Name` missing or disagreeing with the body
//! (`-32020`); all with HTTP 400 and the request's id. A method that does not exist answers
//! HTTP 404 (`-32601`) and a missing client capability HTTP 400 (`-32021`). Results go out as
//! one SSE stream (notifications first), except a lone error, which is a JSON body with its
//! status.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use mcp_proto::jsonrpc::code;
use mcp_proto::stateless::{META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, unsupported_version};
use mcp_proto::types::method;
use mcp_proto::{ErrorObject, Message, ProtocolVersion, Request, Response as RpcResponse, Session};
use serde_json::Value;

use super::event_log::Settled;
use super::http_util::{EventFraming, follow_log, sse_response};
use super::state::{LogOutbound, ServerState};
use super::streamable::PROTOCOL_VERSION_HEADER;
use super::transport_error::json_body;

use crate::headers::{METHOD as METHOD_HEADER, NAME as NAME_HEADER};

fn error_response(
    status: StatusCode,
    id: Option<mcp_proto::RequestId>,
    error: ErrorObject,
) -> Response {
    json_body(status, &Message::Response(RpcResponse::error(id, error)))
}

fn header_mismatch(message: impl Into<String>) -> ErrorObject {
    ErrorObject::new(code::HEADER_MISMATCH, message)
}

/// Checks a stateless request's headers and `_meta`; the error is what to answer.
fn check_request(headers: &HeaderMap, request: &Request) -> Result<ProtocolVersion, ErrorObject> {
    let header_version = headers
        .get(PROTOCOL_VERSION_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim().to_owned())
        .ok_or_else(|| header_mismatch("Missing MCP-Protocol-Version header"))?;
    let meta = request
        .params
        .as_ref()
        .and_then(|p| p.get("_meta"))
        .and_then(Value::as_object)
        .ok_or_else(|| ErrorObject::invalid_params("Invalid params: _meta is required"))?;
    let meta_version = meta
        .get(META_PROTOCOL_VERSION)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ErrorObject::invalid_params(format!(
                "Invalid params: _meta[\"{META_PROTOCOL_VERSION}\"] is required"
            ))
        })?;
    if !meta
        .get(META_CLIENT_CAPABILITIES)
        .is_some_and(Value::is_object)
    {
        return Err(ErrorObject::invalid_params(format!(
            "Invalid params: _meta[\"{META_CLIENT_CAPABILITIES}\"] is required"
        )));
    }
    if header_version != meta_version {
        return Err(header_mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value '{header_version}' does not match _meta value '{meta_version}'"
        )));
    }
    let version = match meta_version.parse::<ProtocolVersion>() {
        Ok(v) if v.is_stateless() => v,
        _ => return Err(unsupported_version(meta_version)),
    };
    let method_header = headers
        .get(METHOD_HEADER)
        .map(|v| v.to_str().unwrap_or("").trim())
        .ok_or_else(|| header_mismatch("Header mismatch: missing Mcp-Method header"))?;
    if method_header != request.method {
        return Err(header_mismatch(format!(
            "Header mismatch: Mcp-Method header value '{method_header}' does not match body value '{}'",
            request.method
        )));
    }
    let name_field = match request.method.as_str() {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        mcp_proto::task::TASKS_GET
        | mcp_proto::task::TASKS_UPDATE
        | mcp_proto::task::TASKS_CANCEL => Some("taskId"),
        _ => None,
    };
    if let Some(field) = name_field {
        let body = request
            .params
            .as_ref()
            .and_then(|p| p.get(field))
            .and_then(Value::as_str);
        let header = headers
            .get(NAME_HEADER)
            .ok_or_else(|| header_mismatch("Header mismatch: missing Mcp-Name header"))?;
        let header = header
            .to_str()
            .ok()
            .and_then(mcp_proto::http_headers::decode_header_value)
            .ok_or_else(|| {
                header_mismatch("Header mismatch: Mcp-Name header value is malformed")
            })?;
        if body.is_some_and(|b| b != header) {
            return Err(header_mismatch(format!(
                "Header mismatch: Mcp-Name header value '{header}' does not match body value '{}'",
                body.unwrap_or("")
            )));
        }
    }
    Ok(version)
}

/// The HTTP status of a lone JSON-RPC error on the stateless wire.
fn status_of(error: &ErrorObject) -> StatusCode {
    match error.code {
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        code::HEADER_MISMATCH
        | code::MISSING_REQUIRED_CLIENT_CAPABILITY
        | code::UNSUPPORTED_PROTOCOL_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// Cancels the request's work when its response body goes away (the client disconnected,
/// or the stream ended).
struct CancelOnDrop(Arc<Session>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel_all();
    }
}

/// Serves one stateless POST.
pub(crate) async fn post(
    state: &Arc<ServerState>,
    headers: &HeaderMap,
    messages: Vec<Result<Message, RpcResponse>>,
    is_batch: bool,
    extensions: http::Extensions,
) -> Response {
    let request = match single_request(messages, is_batch) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let version = match check_request(headers, &request) {
        Ok(v) => v,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, Some(request.id), e),
    };
    let mut extensions = extensions;
    extensions.insert(param_headers(headers));
    let session = Arc::new(Session::stateless(version));
    let log = Arc::new(state.new_log());
    let outbound = Arc::new(LogOutbound {
        log: Arc::clone(&log),
    });
    let task_log = Arc::clone(&log);
    let task_state = Arc::clone(state);
    let task_session = Arc::clone(&session);
    // A `subscriptions/listen` stream lasts until the client leaves: it is not a call for
    // the shutdown drain to wait for; the shutdown closes its stream, which ends it.
    let long_lived = request.method == mcp_proto::listen::SUBSCRIPTIONS_LISTEN;
    let work = async move {
        let reply = task_state
            .run_message(
                task_session,
                Message::Request(request),
                outbound,
                extensions,
            )
            .await;
        // The reply and the close in one step: the answer below sees both or neither.
        task_log.finish(reply.map(|r| super::encoded_text(r.bytes)));
    };
    if long_lived {
        tokio::spawn(work);
    } else {
        state.run_call(work).await;
    }
    // A lone error goes out as JSON with its status; anything else as a stream.
    match log.settle().await {
        Settled::Complete(events) if events.len() == 1 => {
            let data = events[0].data.as_deref().unwrap_or("");
            if let Some(response) = lone_error_response(data) {
                return response;
            }
        }
        Settled::Complete(_) | Settled::Streaming => {}
        Settled::Empty => return StatusCode::ACCEPTED.into_response(),
    }
    sse_response(follow_log(
        log,
        0,
        EventFraming::Resumable { stream_id: 1 },
        None,
        state.config.keep_alive,
        state.shutdown.child_token(),
        CancelOnDrop(session),
    ))
}

/// The one request a stateless POST carries, or the answer to a body that is not one: 400 for
/// a batch or an unreadable message, 202 for a notification or a stray response.
fn single_request(
    mut messages: Vec<Result<Message, RpcResponse>>,
    is_batch: bool,
) -> Result<mcp_proto::Request, Box<Response>> {
    if is_batch || messages.len() != 1 {
        return Err(Box::new(error_response(
            StatusCode::BAD_REQUEST,
            None,
            ErrorObject::new(
                code::INVALID_REQUEST,
                "Invalid request: batches are not supported in protocol version 2026-07-28",
            ),
        )));
    }
    match messages.pop() {
        Some(Ok(Message::Request(request))) => Ok(request),
        Some(Ok(other)) => {
            // Notifications and stray responses: nothing to answer in a stateless era.
            tracing::debug!(message = %other.to_json(), "stateless notification ignored");
            Err(Box::new(StatusCode::ACCEPTED.into_response()))
        }
        Some(Err(reply)) => Err(Box::new(json_body(
            StatusCode::BAD_REQUEST,
            &Message::Response(reply),
        ))),
        None => Err(Box::new(StatusCode::ACCEPTED.into_response())),
    }
}

/// The request's `Mcp-Param-*` headers, for the tool call to check against its arguments.
fn param_headers(headers: &HeaderMap) -> mcp_proto::http_headers::ParamHeaders {
    let params = headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with("mcp-param-"))
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), value)
        })
        .collect();
    mcp_proto::http_headers::ParamHeaders(params)
}

/// A reply that is a lone JSON-RPC error, as plain JSON with the error's HTTP status.
fn lone_error_response(data: &str) -> Option<Response> {
    let Ok(Message::Response(reply)) = serde_json::from_str::<Message>(data) else {
        return None;
    };
    let error = reply.outcome.as_ref().err()?;
    let mut response = (status_of(error), data.to_owned()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_proto::client_features::{CreateMessageParams, ElicitParams};
    use mcp_proto::listen::Change;
    use mcp_proto::{McpServer, NoArgs, ToolContext, ToolError};
    use serde_json::json;

    use std::time::Duration;

    use crate::McpHttpServer;

    async fn greet(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let schema =
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]});
        let Value::Object(schema) = schema else {
            return Err(ToolError::new("schema"));
        };
        let r = ctx
            .elicit_as("user_name", ElicitParams::form("Name?", schema))
            .await?;
        let name = r
            .content
            .and_then(|c| c.get("name").cloned())
            .unwrap_or_default();
        Ok(format!("Hello, {}!", name.as_str().unwrap_or_default()))
    }

    async fn needs_sampling(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        ctx.sample(CreateMessageParams::user_text("hi", 5)).await?;
        Ok("sampled".into())
    }

    async fn change_tools(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        ctx.notify_changed(Change::Tools).await;
        Ok("changed".into())
    }

    async fn start() -> crate::RunningServer {
        let server = McpServer::builder("stateless-test")
            .version("1.0.0")
            .tool("greet", "Asks for a name.", greet)
            .tool("needs_sampling", "Needs sampling.", needs_sampling)
            .tool(
                "change_tools",
                "Announces a tool list change.",
                change_tools,
            )
            .build()
            .unwrap();
        McpHttpServer::new(server)
            .spawn("127.0.0.1:0")
            .await
            .unwrap()
    }

    fn meta(caps: Value) -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": caps,
        })
    }

    /// POSTs with the standard headers (`None` leaves one out); returns the status and
    /// every JSON message of the body (one JSON body, or the `data:` lines of a stream).
    async fn post(
        url: &str,
        version: Option<&str>,
        method_header: Option<&str>,
        name_header: Option<&str>,
        body: Value,
    ) -> (u16, Vec<Value>) {
        let mut req = reqwest::Client::new()
            .post(url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(v) = version {
            req = req.header("mcp-protocol-version", v);
        }
        if let Some(m) = method_header {
            req = req.header("mcp-method", m);
        }
        if let Some(n) = name_header {
            req = req.header("mcp-name", n);
        }
        let resp = req.body(body.to_string()).send().await.unwrap();
        let status = resp.status().as_u16();
        let sse = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
        let text = resp.text().await.unwrap();
        if !sse {
            return (status, vec![serde_json::from_str(&text).unwrap()]);
        }
        let mut parser = crate::client::SseParser::new(1 << 20);
        parser.feed(text.as_bytes()).unwrap();
        let messages = std::iter::from_fn(|| parser.next_event())
            .filter(|event| !event.data.trim().is_empty())
            .map(|event| serde_json::from_str(&event.data).unwrap())
            .collect();
        (status, messages)
    }

    /// One request of the header and `_meta` checks, and the error it must get (with 400).
    struct HeaderCase {
        what: &'static str,
        version: Option<&'static str>,
        method: Option<&'static str>,
        name: Option<&'static str>,
        body: Value,
        code: i64,
    }

    fn header_cases() -> Vec<HeaderCase> {
        let discover = |id: i64, meta: Option<Value>| {
            let params = meta.map_or_else(|| json!({}), |m| json!({ "_meta": m }));
            json!({"jsonrpc":"2.0","id":id,"method":"server/discover","params":params})
        };
        let mut partial = meta(json!({}));
        if let Some(map) = partial.as_object_mut() {
            map.remove("io.modelcontextprotocol/clientCapabilities");
        }
        let mut other = meta(json!({}));
        other["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
        let call = json!({"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"greet","_meta": meta(json!({}))}});
        let (v, d, t) = (
            Some("2026-07-28"),
            Some("server/discover"),
            Some("tools/call"),
        );
        let fresh = || Some(meta(json!({})));
        #[rustfmt::skip]
        let cases = vec![
            // what                              version header   Mcp-Method   Mcp-Name  body                               code
            ("_meta but no version header",      None,            d,           None,     discover(1, fresh()),              -32020),
            ("no _meta",                         v,               d,           None,     discover(2, None),                 -32602),
            ("_meta without clientCapabilities", v,               d,           None,     discover(3, Some(partial)),        -32602),
            ("header and _meta disagree",        v,               d,           None,     discover(4, Some(other.clone())),  -32020),
            ("both name an unknown version",     Some("v999.0.0"), d,          None,     discover(5, Some(other)),          -32022),
            ("no Mcp-Method",                    v,               None,        None,     discover(6, fresh()),              -32020),
            ("Mcp-Method disagrees",             v,               Some("tools/list"), None, discover(7, fresh()),           -32020),
            ("no Mcp-Name",                      v,               t,           None,     call.clone(),                      -32020),
            ("Mcp-Name disagrees",               v,               t,           Some("other"), call.clone(),                 -32020),
            // The name matches once decoded: the call gets as far as the tool's capability check.
            ("Base64 Mcp-Name",                  v,               t,           Some("=?base64?Z3JlZXQ=?="), call,           -32021),
        ];
        cases
            .into_iter()
            .map(|(what, version, method, name, body, code)| HeaderCase {
                what,
                version,
                method,
                name,
                body,
                code,
            })
            .collect()
    }

    #[tokio::test]
    async fn header_and_meta_checks_answer_400_with_the_request_id() {
        let server = start().await;
        let url = server.url("/mcp");
        for case in header_cases() {
            let id = case.body["id"].clone();
            let (status, msgs) = post(&url, case.version, case.method, case.name, case.body).await;
            assert_eq!(
                (status, &msgs[0]["error"]["code"], &msgs[0]["id"]),
                (400, &json!(case.code), &id),
                "{}: {msgs:?}",
                case.what
            );
        }
        // An unsupported version names what was asked for and what is spoken.
        let mut other = meta(json!({}));
        other["io.modelcontextprotocol/protocolVersion"] = json!("v999.0.0");
        let discover =
            json!({"jsonrpc":"2.0","id":5,"method":"server/discover","params":{"_meta": other}});
        let (_, msgs) = post(
            &url,
            Some("v999.0.0"),
            Some("server/discover"),
            None,
            discover,
        )
        .await;
        assert_eq!(msgs[0]["error"]["data"]["requested"], "v999.0.0");
        assert!(
            msgs[0]["error"]["data"]["supported"]
                .as_array()
                .unwrap()
                .contains(&json!("2026-07-28"))
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn removed_and_unknown_methods_are_404_and_discover_is_stamped() {
        let server = start().await;
        let url = server.url("/mcp");
        let v = Some("2026-07-28");
        for method in ["initialize", "ping", "logging/setLevel", "unknown/method"] {
            let body =
                json!({"jsonrpc":"2.0","id":9,"method":method,"params":{"_meta": meta(json!({}))}});
            let (status, msgs) = post(&url, v, Some(method), None, body).await;
            assert_eq!(
                (status, msgs[0]["error"]["code"].clone()),
                (404, json!(-32601)),
                "{method}"
            );
        }
        let body = json!({"jsonrpc":"2.0","id":10,"method":"server/discover","params":{"_meta": meta(json!({}))}});
        let (status, msgs) = post(&url, v, Some("server/discover"), None, body).await;
        assert_eq!(status, 200);
        let result = &msgs[0]["result"];
        assert_eq!(result["resultType"], "complete");
        assert_eq!(result["cacheScope"], "public");
        assert!(result["ttlMs"].is_u64());
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "stateless-test"
        );
        assert_eq!(result["capabilities"]["tools"]["listChanged"], true);
        assert!(result["capabilities"].get("logging").is_none());
        // A stateful initialize (no version header, no _meta) still opens a session.
        let init = json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}});
        let resp = reqwest::Client::new()
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(init.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.headers().contains_key("mcp-session-id"));
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn input_rounds_and_missing_capabilities() {
        let server = start().await;
        let url = server.url("/mcp");
        let v = Some("2026-07-28");
        let caps = json!({"elicitation": {}});
        let call = |id: i64, extra: Value| {
            let mut params = json!({"name":"greet","arguments":{},"_meta": meta(caps.clone())});
            for (k, v) in extra.as_object().unwrap() {
                params[k] = v.clone();
            }
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})
        };
        let (status, msgs) = post(
            &url,
            v,
            Some("tools/call"),
            Some("greet"),
            call(1, json!({})),
        )
        .await;
        assert_eq!(status, 200);
        let r1 = &msgs[0]["result"];
        assert_eq!(r1["resultType"], "input_required");
        assert_eq!(
            r1["inputRequests"]["user_name"]["method"],
            "elicitation/create"
        );
        let state = r1["requestState"].as_str().unwrap().to_owned();
        let answer = json!({"user_name": {"action":"accept","content":{"name":"Alice"}}});
        let (_, msgs) = post(
            &url,
            v,
            Some("tools/call"),
            Some("greet"),
            call(
                2,
                json!({"inputResponses": answer, "requestState": state.clone()}),
            ),
        )
        .await;
        assert_eq!(msgs[0]["result"]["content"][0]["text"], "Hello, Alice!");
        assert_eq!(msgs[0]["result"]["resultType"], "complete");
        // Tampered state, a malformed answer and a null map are JSON-RPC errors.
        let (_, msgs) = post(
            &url,
            v,
            Some("tools/call"),
            Some("greet"),
            call(
                3,
                json!({"inputResponses": answer, "requestState": format!("{state}x")}),
            ),
        )
        .await;
        assert_eq!(msgs[0]["error"]["code"], -32602);
        let (_, msgs) = post(
            &url,
            v,
            Some("tools/call"),
            Some("greet"),
            call(4, json!({"inputResponses": {"user_name": 12345}})),
        )
        .await;
        assert_eq!(msgs[0]["error"]["code"], -32602);
        let (_, msgs) = post(
            &url,
            v,
            Some("tools/call"),
            Some("greet"),
            call(5, json!({"inputResponses": null})),
        )
        .await;
        assert_eq!(msgs[0]["error"]["code"], -32602);
        // A question the request's capabilities do not allow.
        let body = json!({"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"needs_sampling","_meta": meta(json!({}))}});
        let (status, msgs) = post(&url, v, Some("tools/call"), Some("needs_sampling"), body).await;
        assert_eq!(status, 400);
        assert_eq!(msgs[0]["error"]["code"], -32021);
        assert_eq!(
            msgs[0]["error"]["data"]["requiredCapabilities"],
            json!({"sampling": {}})
        );
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn listen_streams_get_an_ack_then_only_the_changes_they_asked_for() {
        let server = start().await;
        let url = server.url("/mcp");
        let open = |filter: Value| {
            reqwest::Client::new()
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "subscriptions/listen")
                .body(json!({"jsonrpc":"2.0","id":"sub-1","method":"subscriptions/listen","params":{"_meta": meta(json!({})),"notifications": filter}}).to_string())
                .send()
        };
        let mut tools = open(json!({"toolsListChanged": true})).await.unwrap();
        let mut prompts = open(json!({"promptsListChanged": true})).await.unwrap();
        let first = String::from_utf8(tools.chunk().await.unwrap().unwrap().to_vec()).unwrap();
        assert!(
            first.contains("notifications/subscriptions/acknowledged"),
            "{first}"
        );
        assert!(
            first.contains(r#""io.modelcontextprotocol/subscriptionId":"sub-1""#),
            "{first}"
        );
        let ack = String::from_utf8(prompts.chunk().await.unwrap().unwrap().to_vec()).unwrap();
        // The server has no prompts: it does not honour promptsListChanged.
        assert!(ack.contains(r#""notifications":{}"#), "{ack}");
        let trigger = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"change_tools","_meta": meta(json!({}))}});
        let (_, msgs) = post(
            &url,
            Some("2026-07-28"),
            Some("tools/call"),
            Some("change_tools"),
            trigger,
        )
        .await;
        assert_eq!(msgs[0]["result"]["content"][0]["text"], "changed");
        let next = tokio::time::timeout(Duration::from_secs(5), tools.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let next = String::from_utf8(next.to_vec()).unwrap();
        assert!(next.contains("notifications/tools/list_changed"), "{next}");
        assert!(next.contains("sub-1"), "{next}");
        let quiet = tokio::time::timeout(Duration::from_millis(300), prompts.chunk()).await;
        assert!(quiet.is_err(), "the prompts listener got {quiet:?}");
        drop(tools);
        drop(prompts);
        server.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn stateful_sessions_get_list_changes_on_their_get_stream() {
        let server = start().await;
        let url = server.url("/mcp");
        let http = reqwest::Client::new();
        let post = |session: Option<String>, body: Value| {
            let mut req = http
                .post(&url)
                .header("accept", "application/json, text/event-stream")
                .header("content-type", "application/json");
            if let Some(s) = session {
                req = req
                    .header("mcp-session-id", s)
                    .header("mcp-protocol-version", "2025-11-25");
            }
            req.body(body.to_string()).send()
        };
        let init = post(None, json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})).await.unwrap();
        let session = init.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let text = init.text().await.unwrap();
        assert!(text.contains(r#""tools":{"listChanged":true}"#), "{text}");
        let mut stream = http
            .get(&url)
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .unwrap();
        assert_eq!(stream.status().as_u16(), 200);
        let call = json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"change_tools","arguments":{}}});
        let reply = post(Some(session.clone()), call)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(reply.contains("changed"), "{reply}");
        let mut seen = String::new();
        while !seen.contains("list_changed") {
            let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(
            seen.contains(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#),
            "{seen}"
        );
        drop(stream);
        server.shutdown().await.unwrap();
    }

    #[test]
    fn base64_sentinel_values_decode() {
        use mcp_proto::http_headers::decode_header_value;
        assert_eq!(
            decode_header_value(" us-west1 ").as_deref(),
            Some("us-west1")
        );
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header_value("=?base64?***?="), None);
        // Strict: padding is required; a missing prefix or suffix means a literal value.
        assert_eq!(decode_header_value("=?base64?SGVsbG8?="), None);
        assert_eq!(
            decode_header_value("=?base64?SGVsbG8=").as_deref(),
            Some("=?base64?SGVsbG8=")
        );
    }
}
