//! Client tests against the axum fixtures in `test_fixtures`, over real loopback sockets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use mcp_proto::jsonrpc::code;
use mcp_proto::{Message, ProtocolVersion, RequestId};
use serde_json::{Value, json};

use super::test_fixtures::{Recorded, expire_session, legacy_router, serve, streamable_router};
use super::*;
use crate::Error;
use crate::TransportKind;

async fn legacy_fixture() -> (std::net::SocketAddr, Arc<Recorded>) {
    let recorded = Arc::new(Recorded::default());
    (serve(legacy_router(recorded.clone())).await, recorded)
}

async fn streamable_fixture(delete_allowed: bool) -> (std::net::SocketAddr, Arc<Recorded>) {
    let recorded = Arc::new(Recorded::default());
    (
        serve(streamable_router(recorded.clone(), delete_allowed)).await,
        recorded,
    )
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Incoming>) -> Option<Incoming> {
    tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no incoming item within 5 s")
}

async fn next_message(rx: &mut tokio::sync::mpsc::Receiver<Incoming>) -> Value {
    match next(rx).await {
        Some(Incoming::Message(m)) => serde_json::to_value(m).unwrap(),
        other => panic!("expected a message, got {other:?}"),
    }
}

fn assert_401(err: &Error) {
    assert_eq!(err.to_string(), "Http status code: 401 (Unauthorized)");
    let Error::Http {
        status,
        reason,
        body,
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason, "Unauthorized");
    assert_eq!(body, "{\"error\":\"invalid_token\"}");
}

// ---- legacy SSE transport ----

#[tokio::test]
async fn legacy_transport_round_trip_over_crlf_comment_and_multiline_frames() {
    let (addr, recorded) = legacy_fixture().await;
    let options = TransportOptions::default()
        .with_header("x-custom", "abc")
        .unwrap();
    let (transport, mut rx) = SseClientTransport::connect(&format!("http://{addr}/sse"), options)
        .await
        .unwrap();
    assert_eq!(transport.endpoint().path(), "/messages/");
    assert_eq!(transport.endpoint().port(), Some(addr.port()));
    assert_eq!(
        transport.session_id().unwrap(),
        "00000000000000000000000000000001"
    );
    let request = Message::request(7, "echo_headers", Some(json!({})));
    transport.send(&request).await.unwrap();
    assert_eq!(
        next_message(&mut rx).await,
        json!({"jsonrpc": "2.0", "id": 7, "result": {"authorization": null, "x-custom": "abc",
            "mcp-protocol-version": null, "mcp-session-id": null}})
    );
    assert_eq!(
        recorded.messages(),
        vec![json!({"jsonrpc": "2.0", "id": 7, "method": "echo_headers", "params": {}})]
    );
    transport.close();
    // Closing the stream ends the channel.
    assert!(next(&mut rx).await.is_none());
}

#[tokio::test]
async fn a_full_incoming_channel_holds_messages_back_without_losing_any() {
    let (addr, _) = legacy_fixture().await;
    let options = TransportOptions {
        incoming_capacity: 1,
        ..TransportOptions::default()
    };
    let (transport, mut rx) = SseClientTransport::connect(&format!("http://{addr}/sse"), options)
        .await
        .unwrap();
    for id in 1..=20 {
        let request = Message::request(id, "echo_headers", Some(json!({})));
        transport.send(&request).await.unwrap();
    }
    // Nothing was read while sending; every answer is still there, in order.
    for id in 1..=20 {
        assert_eq!(next_message(&mut rx).await["id"], id);
    }
}

#[tokio::test]
async fn legacy_transport_times_out_without_endpoint_event() {
    let (addr, _) = legacy_fixture().await;
    let options = TransportOptions {
        connect_timeout: Duration::from_millis(300),
        ..TransportOptions::default()
    };
    let started = Instant::now();
    let err = SseClientTransport::connect(&format!("http://{addr}/silent/sse"), options)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout(d, "the SSE endpoint event") if d == Duration::from_millis(300)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn legacy_transport_rejects_cross_origin_endpoint() {
    let (addr, _) = legacy_fixture().await;
    let err = SseClientTransport::connect(
        &format!("http://{addr}/evil/sse"),
        TransportOptions::default(),
    )
    .await
    .unwrap_err();
    let Error::CrossOriginEndpoint { endpoint, sse_url } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(endpoint, "http://evil.example/messages/?session_id=x");
    assert_eq!(sse_url, &format!("http://{addr}/evil/sse"));
}

#[tokio::test]
async fn legacy_transport_keeps_401_status_reason_and_body() {
    let (addr, _) = legacy_fixture().await;
    let err = SseClientTransport::connect(
        &format!("http://{addr}/locked/sse"),
        TransportOptions::default(),
    )
    .await
    .unwrap_err();
    assert_401(&err);
    assert_eq!(err.http_status(), Some(StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn legacy_transport_refuses_a_non_event_stream() {
    let (addr, _) = legacy_fixture().await;
    let err = SseClientTransport::connect(
        &format!("http://{addr}/html/sse"),
        TransportOptions::default(),
    )
    .await
    .unwrap_err();
    let Error::Transport(detail) = &err else {
        panic!("{err:?}")
    };
    assert!(detail.contains("not text/event-stream"), "{detail}");
}

#[tokio::test]
async fn legacy_transport_reports_bad_messages_and_ends_with_the_stream() {
    let (addr, _) = legacy_fixture().await;
    let (transport, mut rx) = SseClientTransport::connect(
        &format!("http://{addr}/bad/sse"),
        TransportOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(transport.session_id().as_deref(), Some("bad"));
    match next(&mut rx).await {
        Some(Incoming::Malformed(Error::Transport(detail))) => {
            assert!(
                detail.starts_with("the server sent an invalid JSON-RPC message: Parse error"),
                "{detail}"
            )
        }
        other => panic!("{other:?}"),
    }
    // `event: other` is skipped; the notification arrives; then the stream ends.
    assert_eq!(
        next_message(&mut rx).await,
        json!({"jsonrpc": "2.0", "method": "notifications/message", "params": {}})
    );
    assert!(next(&mut rx).await.is_none());
}

#[tokio::test]
async fn legacy_post_to_a_forgotten_session_is_http_404() {
    let (addr, _) = legacy_fixture().await;
    let (transport, _rx) =
        SseClientTransport::connect(&format!("http://{addr}/sse"), TransportOptions::default())
            .await
            .unwrap();
    let hangup = Message::request(1, "tools/call", Some(json!({"name": "hangup"})));
    transport.send(&hangup).await.unwrap();
    let err = transport.send(&hangup).await.unwrap_err();
    let Error::Http {
        status,
        reason,
        body,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*status, reason.as_str(), body.as_str()),
        (StatusCode::NOT_FOUND, "Not Found", "Could not find session")
    );
}

#[test]
fn bad_urls_and_headers_are_specific_errors() {
    let err = parse_url("ftp://127.0.0.1/sse").unwrap_err();
    assert_eq!(err.to_string(), "invalid URL \"ftp://127.0.0.1/sse\"");
    assert_eq!(
        mcp_proto::error_chain(&err),
        "invalid URL \"ftp://127.0.0.1/sse\": scheme \"ftp\" is not http or https"
    );
    assert!(matches!(
        parse_url("not a url"),
        Err(Error::InvalidUrl { .. })
    ));
    let err = TransportOptions::default()
        .with_header("bad name", "v")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidHeader { name, .. } if name == "bad name"),
        "{err:?}"
    );
    let err = TransportOptions::default()
        .with_header("x-ok", "line\nbreak")
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidHeader { name, .. } if name == "x-ok"),
        "{err:?}"
    );
}

#[tokio::test]
async fn oversized_server_messages_are_refused_on_both_transports() {
    let small = || TransportOptions {
        max_message_bytes: 64,
        ..TransportOptions::default()
    };
    let big = Message::request(3, "echo_headers", Some(json!({})));
    // Legacy SSE: the event is refused and the stream is closed.
    let (addr, _) = legacy_fixture().await;
    let (transport, mut rx) = SseClientTransport::connect(&format!("http://{addr}/sse"), small())
        .await
        .unwrap();
    transport.send(&big).await.unwrap();
    assert!(matches!(
        next(&mut rx).await,
        Some(Incoming::Malformed(Error::MessageTooLarge { limit: 64 }))
    ));
    assert!(next(&mut rx).await.is_none());
    // Streamable HTTP: a JSON body over the limit fails the send.
    let (addr, _) = streamable_fixture(true).await;
    let (transport, _rx) =
        StreamableHttpClientTransport::new(&format!("http://{addr}/mcp"), small()).unwrap();
    let init = Message::request(
        1,
        "initialize",
        Some(json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "a-long-client-name-to-make-the-answer-long", "version": "1"}})),
    );
    let err = transport.send(&init).await.unwrap_err();
    assert!(
        matches!(err, Error::MessageTooLarge { limit: 64 }),
        "{err:?}"
    );
}

// ---- streamable HTTP transport ----

#[tokio::test]
async fn streamable_transport_handles_json_and_event_stream_answers() {
    let (addr, recorded) = streamable_fixture(true).await;
    let options = TransportOptions::default()
        .with_header("authorization", "Bearer xyz")
        .unwrap();
    let (transport, mut rx) =
        StreamableHttpClientTransport::new(&format!("http://{addr}/mcp"), options).unwrap();
    assert_eq!(transport.session_id(), None);
    let init = Message::request(
        1,
        "initialize",
        Some(json!({"protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}})),
    );
    transport.send(&init).await.unwrap();
    let answer = next_message(&mut rx).await;
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["protocolVersion"], "2025-06-18");
    assert_eq!(transport.session_id().as_deref(), Some("sess-1"));
    transport.set_protocol_version(ProtocolVersion::V2025_06_18);
    transport
        .send(&Message::notification("notifications/initialized", None))
        .await
        .unwrap();
    // A tool call answered with an event stream: progress, then the result.
    let call = Message::request(
        2,
        "tools/call",
        Some(json!({"name": "echo", "arguments": {"x": 1}, "_meta": {"progressToken": "p"}})),
    );
    transport.send(&call).await.unwrap();
    let first = next_message(&mut rx).await;
    assert_eq!(
        first,
        json!({"jsonrpc": "2.0", "method": "notifications/progress",
            "params": {"progressToken": "p", "progress": 1, "total": 2, "message": "half"}})
    );
    assert_eq!(next_message(&mut rx).await["params"]["progress"], 2);
    let result = next_message(&mut rx).await;
    assert_eq!(result["id"], 2);
    assert_eq!(
        result["result"]["structuredContent"]["headers"],
        json!({"authorization": "Bearer xyz", "x-custom": null,
            "mcp-protocol-version": "2025-06-18", "mcp-session-id": "sess-1"})
    );
    let methods: Vec<Value> = recorded
        .messages()
        .iter()
        .map(|m| m["method"].clone())
        .collect();
    assert_eq!(
        methods,
        vec![
            json!("initialize"),
            json!("notifications/initialized"),
            json!("tools/call")
        ]
    );
    transport.close().await.unwrap();
    assert_eq!(*recorded.deleted.lock().unwrap(), vec!["sess-1".to_owned()]);
    assert!(next(&mut rx).await.is_none());
    assert!(matches!(
        transport.send(&call).await,
        Err(Error::SessionClosed)
    ));
}

async fn initialized_streamable(
    addr: std::net::SocketAddr,
) -> (
    StreamableHttpClientTransport,
    tokio::sync::mpsc::Receiver<Incoming>,
) {
    let (transport, mut rx) = StreamableHttpClientTransport::new(
        &format!("http://{addr}/mcp"),
        TransportOptions::default(),
    )
    .unwrap();
    let init = Message::request(
        1,
        "initialize",
        Some(json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}})),
    );
    transport.send(&init).await.unwrap();
    next_message(&mut rx).await;
    transport.set_protocol_version(ProtocolVersion::V2025_11_25);
    (transport, rx)
}

#[tokio::test]
async fn streamable_stream_that_ends_before_the_answer_reports_lost() {
    let (addr, recorded) = streamable_fixture(true).await;
    let (transport, mut rx) = initialized_streamable(addr).await;
    let call = Message::request(5, "tools/call", Some(json!({"name": "drop"})));
    transport.send(&call).await.unwrap();
    // The stream had event ids, so the transport tries to resume (after the server's
    // `retry: 500`); the fixture answers that GET with 405 and the request is lost.
    assert_eq!(
        next_message(&mut rx).await["method"],
        "notifications/message"
    );
    match next(&mut rx).await {
        Some(Incoming::Lost {
            id,
            error: Error::Transport(detail),
        }) => {
            assert_eq!(id, RequestId::from(5));
            assert!(
                detail.ends_with("ended before the response to request 5"),
                "{detail}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        *recorded.last_event_ids.lock().unwrap(),
        vec!["1".to_owned()]
    );
}

#[tokio::test]
async fn streamable_stream_that_ends_early_is_resumed_with_last_event_id() {
    let (addr, recorded) = streamable_fixture(true).await;
    let (transport, mut rx) = initialized_streamable(addr).await;
    let call = Message::request(
        9,
        "tools/call",
        Some(json!({"name": "resume", "_meta": {"progressToken": 1}})),
    );
    transport.send(&call).await.unwrap();
    assert_eq!(next_message(&mut rx).await["params"]["progress"], 1);
    assert_eq!(next_message(&mut rx).await["params"]["progress"], 2);
    // The POST stream ended here (after event id 2); the answer comes from the GET.
    let answer = next_message(&mut rx).await;
    assert_eq!(answer["id"], 9);
    assert_eq!(
        answer["result"]["structuredContent"]["arguments"],
        json!({"resumed": true})
    );
    assert_eq!(
        *recorded.last_event_ids.lock().unwrap(),
        vec!["2".to_owned()]
    );
    // The same through McpClient, with progress delivered before the result.
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .connect()
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let result = client
        .call_tool_with_progress("resume", Value::Null, move |p| {
            sink.lock().unwrap().push(p.progress)
        })
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![1.0, 2.0]);
    assert_eq!(
        result.structured_content.unwrap()["arguments"],
        json!({"resumed": true})
    );
}

#[tokio::test]
async fn streamable_transport_keeps_401_status_reason_and_body() {
    let (addr, _) = streamable_fixture(true).await;
    let (transport, _rx) = StreamableHttpClientTransport::new(
        &format!("http://{addr}/locked/mcp"),
        TransportOptions::default(),
    )
    .unwrap();
    let err = transport
        .send(&Message::request(1, "initialize", Some(json!({}))))
        .await
        .unwrap_err();
    assert_401(&err);
}

#[tokio::test]
async fn streamable_404_on_a_session_is_session_closed() {
    let (addr, _) = streamable_fixture(true).await;
    let (transport, mut rx) = initialized_streamable(addr).await;
    expire_session(addr, "sess-1").await;
    let err = transport
        .send(&Message::request(2, "tools/list", None))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::SessionClosed), "{err:?}");
    assert!(transport.is_closed());
    assert!(next(&mut rx).await.is_none());
    // Nothing left to delete: close is a no-op.
    transport.close().await.unwrap();
}

#[tokio::test]
async fn streamable_close_tolerates_405_and_missing_session_header_is_400() {
    let (addr, recorded) = streamable_fixture(false).await;
    let (transport, _rx) = initialized_streamable(addr).await;
    transport.close().await.unwrap();
    assert!(recorded.deleted.lock().unwrap().is_empty());
    // A transport that never initialized sends no session id: the server's 400 comes back
    // whole.
    let (fresh, _rx2) = StreamableHttpClientTransport::new(
        &format!("http://{addr}/mcp"),
        TransportOptions::default(),
    )
    .unwrap();
    let err = fresh
        .send(&Message::request(1, "tools/list", None))
        .await
        .unwrap_err();
    let Error::Http {
        status,
        reason,
        body,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(*status, StatusCode::BAD_REQUEST);
    assert_eq!(reason, "Bad Request");
    assert_eq!(body, "Bad Request: Missing session ID");
    assert_eq!(err.to_string(), "Http status code: 400 (Bad Request)");
}

// ---- McpClient ----

fn urls(
    addr_sse: std::net::SocketAddr,
    addr_mcp: std::net::SocketAddr,
) -> [(String, TransportKind); 2] {
    [
        (format!("http://{addr_sse}/sse"), TransportKind::LegacySse),
        (
            format!("http://{addr_mcp}/mcp"),
            TransportKind::StreamableHttp,
        ),
    ]
}

#[tokio::test]
async fn client_initializes_lists_calls_and_reports_progress_over_both_transports() {
    let (sse_addr, sse_rec) = legacy_fixture().await;
    let (mcp_addr, mcp_rec) = streamable_fixture(true).await;
    for ((url, kind), recorded) in urls(sse_addr, mcp_addr).into_iter().zip([sse_rec, mcp_rec]) {
        let client = McpClient::builder(&url)
            .bearer_token("t0k")
            .header("x-custom", "42")
            .client_info(mcp_proto::Implementation::new("tester", "9"))
            .connect()
            .await
            .unwrap();
        assert_eq!(client.transport_kind(), Some(kind));
        assert_eq!(client.protocol_version(), ProtocolVersion::V2025_11_25);
        assert_eq!(client.server_info().unwrap().name, "fixture");
        assert_eq!(client.server_info().unwrap().version, "1.2.3");
        assert!(client.session_id().is_some());
        let sent = recorded.messages();
        assert_eq!(sent[0]["method"], "initialize");
        assert_eq!(sent[0]["params"]["protocolVersion"], "2025-11-25");
        assert_eq!(
            sent[0]["params"]["clientInfo"],
            json!({"name": "tester", "version": "9"})
        );
        assert_eq!(
            sent[1],
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        );

        let names: Vec<String> = client
            .list_tools()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, ["echo", "fail", "silent", "ping_me"], "{kind:?}");

        let result = client.call_tool("echo", json!({"a": 1})).await.unwrap();
        assert!(!result.is_error());
        assert_eq!(result.content[0].as_text(), Some("{\"a\":1}"));
        let seen = &result.structured_content.as_ref().unwrap()["headers"];
        assert_eq!(seen["authorization"], "Bearer t0k");
        assert_eq!(seen["x-custom"], "42");
        if kind == TransportKind::StreamableHttp {
            assert_eq!(seen["mcp-protocol-version"], "2025-11-25");
            assert_eq!(
                seen["mcp-session-id"],
                client.session_id().unwrap().as_str()
            );
        }

        let progress = Arc::new(Mutex::new(Vec::new()));
        let sink = progress.clone();
        let result = client
            .call_tool_with_progress("echo", json!({"b": 2}), move |p| {
                sink.lock().unwrap().push((p.progress, p.total, p.message));
            })
            .await
            .unwrap();
        // Both notifications reached the callback before the result returned.
        assert_eq!(
            *progress.lock().unwrap(),
            vec![
                (1.0, Some(2.0), Some("half".to_owned())),
                (2.0, Some(2.0), Some("done".to_owned()))
            ]
        );
        assert_eq!(
            result.structured_content.unwrap()["arguments"],
            json!({"b": 2})
        );
        let call = recorded
            .wait_for(|m| m["params"]["arguments"] == json!({"b": 2}))
            .await;
        assert_eq!(
            call["params"]["_meta"],
            json!({"progressToken": "progress-0"})
        );

        let err = client.call_tool("fail", Value::Null).await.unwrap_err();
        let Error::Protocol(mcp_proto::Error::Rpc(rpc)) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (rpc.code, rpc.message.as_str()),
            (code::INVALID_PARAMS, "Unknown tool: fail")
        );

        let err = client.request("nope/nope", None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "JSON-RPC error -32601: Method not found: nope/nope"
        );

        let err = client.call_tool("echo", json!([1])).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "tool arguments must be a JSON object, got [1]"
        );
        client.close().await.unwrap();
        assert!(matches!(
            client.list_tools().await,
            Err(Error::SessionClosed)
        ));
    }
}

#[tokio::test]
async fn client_timeout_forgets_the_request_and_sends_cancelled() {
    let (sse_addr, sse_rec) = legacy_fixture().await;
    let (mcp_addr, mcp_rec) = streamable_fixture(true).await;
    for ((url, kind), recorded) in urls(sse_addr, mcp_addr).into_iter().zip([sse_rec, mcp_rec]) {
        let client = McpClient::builder(&url)
            .request_timeout(Duration::from_millis(300))
            .connect()
            .await
            .unwrap();
        let started = Instant::now();
        let err = client.call_tool("silent", Value::Null).await.unwrap_err();
        assert!(
            matches!(err, Error::Timeout(d, "the answer to a request") if d == Duration::from_millis(300)),
            "{kind:?}: {err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        let call = recorded.wait_for(|m| m["params"]["name"] == "silent").await;
        let cancelled = recorded
            .wait_for(|m| m["method"] == "notifications/cancelled")
            .await;
        assert_eq!(
            cancelled["params"],
            json!({"requestId": call["id"], "reason": "request timed out"}),
            "{kind:?}"
        );
        assert_eq!(client.pending_requests(), 0);
        // The session still works.
        assert_eq!(client.list_tools().await.unwrap().len(), 4);
    }
}

#[tokio::test]
async fn client_answers_server_ping_and_refuses_other_server_requests() {
    let (sse_addr, sse_rec) = legacy_fixture().await;
    let (mcp_addr, mcp_rec) = streamable_fixture(true).await;
    for ((url, kind), recorded) in urls(sse_addr, mcp_addr).into_iter().zip([sse_rec, mcp_rec]) {
        let client = McpClient::builder(&url).connect().await.unwrap();
        client.call_tool("ping_me", Value::Null).await.unwrap();
        let pong = recorded.wait_for(|m| m["id"] == "srv-ping").await;
        assert_eq!(
            pong,
            json!({"jsonrpc": "2.0", "id": "srv-ping", "result": {}}),
            "{kind:?}"
        );
        let refused = recorded.wait_for(|m| m["id"] == "srv-sample").await;
        assert_eq!(
            refused,
            json!({"jsonrpc": "2.0", "id": "srv-sample",
                "error": {"code": -32601, "message": "Method not found: sampling/createMessage"}})
        );
    }
}

#[tokio::test]
async fn client_pending_requests_fail_when_the_stream_ends() {
    let (addr, _) = legacy_fixture().await;
    let client = McpClient::builder(format!("http://{addr}/sse"))
        .connect()
        .await
        .unwrap();
    let client = Arc::new(client);
    let waiting = {
        let client = client.clone();
        tokio::spawn(async move { client.call_tool("silent", Value::Null).await })
    };
    // Let the call get on the wire, then make the server hang up.
    tokio::time::sleep(Duration::from_millis(100)).await;
    client.notify("notifications/whatever", None).await.unwrap();
    let hangup = client.call_tool("hangup", Value::Null).await.unwrap_err();
    assert!(matches!(hangup, Error::SessionClosed), "{hangup:?}");
    let err = waiting.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::SessionClosed), "{err:?}");
    assert!(matches!(
        client.list_tools().await,
        Err(Error::SessionClosed)
    ));
}

#[tokio::test]
async fn client_session_expired_by_the_server_is_session_closed() {
    let (addr, _) = streamable_fixture(true).await;
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .connect()
        .await
        .unwrap();
    expire_session(addr, &client.session_id().unwrap()).await;
    let err = client.list_tools().await.unwrap_err();
    assert!(matches!(err, Error::SessionClosed), "{err:?}");
    assert!(matches!(
        client.list_tools().await,
        Err(Error::SessionClosed)
    ));
}

#[tokio::test]
async fn client_connect_errors_keep_http_status_over_both_transports() {
    let (sse_addr, _) = legacy_fixture().await;
    let (mcp_addr, _) = streamable_fixture(true).await;
    for url in [
        format!("http://{sse_addr}/locked/sse"),
        format!("http://{mcp_addr}/locked/mcp"),
    ] {
        let err = McpClient::builder(&url)
            .bearer_token("bad")
            .connect()
            .await
            .unwrap_err();
        assert_401(&err);
    }
    // Nothing listens on this port (bound, then dropped).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = McpClient::builder(format!("http://127.0.0.1:{port}/mcp"))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Connect { url, .. } if url == &format!("http://127.0.0.1:{port}/mcp")),
        "{err:?}"
    );
    // The cause is reqwest's own error, and below it the refused connection.
    let source = std::error::Error::source(&err).unwrap();
    assert!(
        source
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect),
        "{source:?}"
    );
    let mut root: &dyn std::error::Error = source;
    while let Some(next) = root.source() {
        root = next;
    }
    assert_eq!(
        root.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused),
        "{}",
        mcp_proto::error_chain(&err)
    );
    let err = McpClient::builder("http://127.0.0.1:1/mcp")
        .header("bad header", "x")
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidHeader { name, .. } if name == "bad header"),
        "{err:?}"
    );
    assert!(
        std::error::Error::source(&err)
            .unwrap()
            .is::<http::header::InvalidHeaderName>()
    );
}

#[tokio::test]
async fn a_stateful_only_server_fails_a_pinned_2026_client_and_discover_first_falls_back() {
    let (addr, recorded) = streamable_fixture(true).await;
    // Pinned to 2026-07-28: `server/discover` is the whole handshake, and this server
    // refuses it (it wants a session).
    let err = McpClient::builder(format!("http://{addr}/mcp"))
        .protocol_version(ProtocolVersion::V2026_07_28)
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Http { status, .. } if status.as_u16() == 400),
        "{err:?}"
    );
    let sent = recorded.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["method"], "server/discover");
    assert_eq!(
        sent[0]["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    // Discover first: the refusal sends the client to the stateful `initialize` handshake.
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .discover_first(true)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.protocol_version(), ProtocolVersion::V2025_11_25);
    let methods: Vec<Value> = recorded.messages()[1..]
        .iter()
        .map(|m| m["method"].clone())
        .collect();
    assert_eq!(
        methods,
        vec![
            json!("server/discover"),
            json!("initialize"),
            json!("notifications/initialized")
        ]
    );
    client.close().await.unwrap();
}

#[tokio::test]
async fn client_server_stream_delivers_notifications_and_server_pings() {
    let (addr, recorded) = streamable_fixture(true).await;
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::channel(8);
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .server_stream(true)
        .on_notification(move |n| {
            let _ = seen_tx.try_send(n.method);
        })
        .connect()
        .await
        .unwrap();
    let method = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(method, "notifications/tools/list_changed");
    let pong = recorded.wait_for(|m| m["id"] == "get-ping").await;
    assert_eq!(
        pong,
        json!({"jsonrpc": "2.0", "id": "get-ping", "result": {}})
    );
    client.close().await.unwrap();

    // A server without the stream (405) is fine; at the transport level it reads `false`.
    let (addr, _) = streamable_fixture(false).await;
    let (transport, _rx) = initialized_streamable(addr).await;
    assert!(!transport.open_server_stream().await.unwrap());
    let client = McpClient::builder(format!("http://{addr}/mcp"))
        .server_stream(true)
        .connect()
        .await
        .unwrap();
    assert_eq!(client.list_tools().await.unwrap().len(), 4);
}

#[test]
fn auto_picks_legacy_sse_for_paths_ending_in_sse() {
    let kind = |url: &str| McpClient::builder(url).resolved_transport().unwrap();
    assert_eq!(kind("http://h/sse"), TransportKind::LegacySse);
    assert_eq!(kind("http://h/api/sse/"), TransportKind::LegacySse);
    assert_eq!(kind("http://h/mcp"), TransportKind::StreamableHttp);
    assert_eq!(kind("http://h/ssex"), TransportKind::StreamableHttp);
    assert_eq!(kind("http://h/"), TransportKind::StreamableHttp);
    assert_eq!(
        McpClient::builder("http://h/mcp")
            .transport(TransportKind::LegacySse)
            .resolved_transport()
            .unwrap(),
        TransportKind::LegacySse
    );
    assert!(matches!(
        McpClient::builder("h/mcp").resolved_transport(),
        Err(Error::InvalidUrl { .. })
    ));
}
