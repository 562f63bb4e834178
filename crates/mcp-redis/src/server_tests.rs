//! The `mcp-sse` server on [`RedisStore`]: several servers in this process, each with its own
//! replica id, on real sockets and one real `redis-server`, play the replicas behind a load
//! balancer. Each request below picks its replica explicitly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use mcp_proto::listen::Change;
use mcp_proto::{AuthSubject, McpServer, NoArgs, ToolContext, ToolError};
use mcp_sse::client::SseParser;
use mcp_sse::store::{ReplicaBus, SessionStore, SharedStore};
use mcp_sse::{McpHttpServer, ServerConfig};
use serde_json::{Value, json};

use mcp_stack_tests::raw::{RawClient, Reply};

use crate::test_redis::TestRedis;
use crate::{RedisConfig, RedisStore};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    token: String,
}

async fn echo(args: EchoArgs) -> Result<String, ToolError> {
    Ok(args.token)
}

async fn progress_steps(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    for step in 1..=3 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        ctx.progress(f64::from(step), Some(3.0), None)
            .await
            .map_err(mcp_proto::tool_error)?;
    }
    Ok("done".into())
}

async fn change_tools(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    ctx.notify_changed(Change::Tools).await;
    Ok("changed".into())
}

async fn ask_name(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}},
                        "required": ["name"]});
    let Value::Object(schema) = schema else {
        unreachable!()
    };
    let answer = ctx
        .elicit(mcp_proto::client_features::ElicitParams::form(
            "Your name?",
            schema,
        ))
        .await
        .map_err(mcp_proto::tool_error)?;
    let name = answer
        .content
        .and_then(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(format!("hello {name}"))
}

async fn wait_a_second(_: NoArgs) -> Result<String, ToolError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok("late".into())
}

fn service() -> McpServer {
    McpServer::builder("replica-test")
        .tool("wait_a_second", "Answers after a second", wait_a_second)
        .tool("ask_name", "Asks the user's name", ask_name)
        .tool("echo", "Returns the token", echo)
        .tool(
            "progress_steps",
            "Three progress steps, then done",
            progress_steps,
        )
        .tool("change_tools", "Announces a tool list change", change_tools)
        .build()
        .unwrap()
}

/// Stands in for an authentication layer: `x-test-subject` becomes the request's subject.
async fn test_subject(mut request: Request, next: Next) -> Response {
    let subject = request
        .headers()
        .get("x-test-subject")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(subject) = subject {
        request.extensions_mut().insert(AuthSubject::new(subject));
    }
    next.run(request).await
}

/// Waits (up to a second) until `store` made `expected` round trips since `before`: the last
/// of a call's (its slot given back) may follow its answer.
async fn settle_round_trips(store: &RedisStore, before: u64, expected: u64) {
    for _ in 0..100 {
        if store.round_trips() - before >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One replica: its base URL and its store (for round-trip counts).
struct Replica {
    url: String,
    store: Arc<RedisStore>,
    _task: tokio::task::JoinHandle<()>,
}

async fn replicas(redis: &TestRedis, n: usize, config: ServerConfig) -> Vec<Replica> {
    let mut out = Vec::new();
    for i in 0..n {
        let store = Arc::new(
            RedisStore::connect(
                RedisConfig::new(redis.url())
                    .replica_id(format!("replica-{i}"))
                    .op_timeout(Duration::from_millis(500)),
            )
            .await
            .unwrap(),
        );
        let shared: Arc<dyn SharedStore> = store.clone();
        let server = McpHttpServer::with_config(service(), config.clone()).session_store(shared);
        let app = server
            .router()
            .layer(axum::middleware::from_fn(test_subject));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        out.push(Replica {
            url,
            store,
            _task: task,
        });
    }
    out
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// `POST /mcp` on `base` at 2025-06-18, in `session` and as `subject` when given.
async fn post_mcp(
    http: &reqwest::Client,
    base: &str,
    session: Option<&str>,
    subject: Option<&str>,
    body: Value,
) -> Reply {
    let mut raw = RawClient::with_http(http.clone()).version("2025-06-18");
    if let Some(s) = subject {
        raw = raw.header("x-test-subject", s);
    }
    raw.post(&format!("{base}/mcp"), session, None, &body).await
}

/// `GET /mcp` on `base` for `session`, resuming after `last_event_id` when given.
async fn get_stream(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut request = http
        .get(format!("{base}/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18");
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    request.send().await.unwrap()
}

/// `POST /mcp` on `base` in `session`, its response left unread (a stream to follow).
async fn post_streaming(
    http: &reqwest::Client,
    base: &str,
    session: &str,
    body: &Value,
) -> reqwest::Response {
    http.post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn initialize_request() -> Value {
    json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
        "clientInfo": {"name": "replica-test", "version": "1"}}})
}

fn initialized() -> Value {
    json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
}

fn echo_call(id: u64, token: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "echo", "arguments": {"token": token}}})
}

/// The token an `echo` result carries.
fn echoed(message: &Value) -> String {
    let result = &message["result"];
    result["structuredContent"]["result"]
        .as_str()
        .or_else(|| result["content"][0]["text"].as_str())
        .unwrap_or_else(|| panic!("not an echo result: {message}"))
        .to_owned()
}

/// Initializes a streamable session on `base` and sends `initialized` on `then`.
async fn streamable_session(
    http: &reqwest::Client,
    base: &str,
    then: &str,
    subject: Option<&str>,
) -> String {
    let reply = post_mcp(http, base, None, subject, initialize_request()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.session_id.clone().unwrap();
    assert_eq!(
        reply.messages()[0]["result"]["protocolVersion"],
        "2025-06-18"
    );
    let reply = post_mcp(http, then, Some(&session), subject, initialized()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    session
}

/// An open SSE stream, read event by event.
struct EventStream {
    parser: SseParser,
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
}

impl EventStream {
    async fn open(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        Self {
            parser: SseParser::new(1 << 20),
            body: response.bytes_stream().boxed(),
        }
    }

    /// The next event (comments skipped); `None` when the stream ends; panics after 10 s.
    async fn next(&mut self) -> Option<mcp_sse::client::SseEvent> {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                if let Some(e) = self.parser.next_event() {
                    return Some(e);
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.parser.feed(&chunk).unwrap(),
                    _ => return None,
                }
            }
        })
        .await
        .expect("an event or the end of the stream within 10 s")
    }

    /// The next event carrying a JSON-RPC message.
    async fn next_message(&mut self) -> Value {
        loop {
            let event = self.next().await.expect("the stream to stay open");
            if event.event == "message" && !event.data.is_empty() {
                return serde_json::from_str(&event.data).unwrap();
            }
        }
    }

    /// Asserts nothing but keep-alives arrives for `wait`.
    async fn quiet_for(&mut self, wait: Duration) {
        let extra = tokio::time::timeout(wait, async {
            loop {
                if let Some(e) = self.parser.next_event() {
                    return e;
                }
                match self.body.next().await {
                    Some(Ok(chunk)) => self.parser.feed(&chunk).unwrap(),
                    _ => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        assert!(extra.is_err(), "unexpected event: {extra:?}");
    }
}

/// Opens a legacy stream on `base`; returns it and its message endpoint path.
async fn legacy_stream(
    http: &reqwest::Client,
    base: &str,
    subject: Option<&str>,
) -> (EventStream, String) {
    let mut request = http.get(format!("{base}/sse"));
    if let Some(s) = subject {
        request = request.header("x-test-subject", s);
    }
    let response = reqwest::Client::new()
        .execute(request.build().unwrap())
        .await
        .unwrap();
    let mut stream = EventStream::open(response).await;
    let endpoint = stream.next().await.unwrap();
    assert_eq!(endpoint.event, "endpoint");
    (stream, endpoint.data)
}

async fn post_legacy(
    http: &reqwest::Client,
    base: &str,
    endpoint: &str,
    subject: Option<&str>,
    body: &Value,
) -> u16 {
    let mut request = http.post(format!("{base}{endpoint}")).json(body);
    if let Some(s) = subject {
        request = request.header("x-test-subject", s);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_stream_on_one_replica_gets_every_answer_to_posts_on_the_others_once() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 3, ServerConfig::default()).await;
    let http = http();
    let (mut stream, endpoint) = legacy_stream(&http, &r[0].url, None).await;

    // initialize on B, initialized on C, the answer on A's stream.
    assert_eq!(
        post_legacy(&http, &r[1].url, &endpoint, None, &initialize_request()).await,
        202
    );
    let init = stream.next_message().await;
    assert_eq!(init["id"], 0);
    assert_eq!(init["result"]["serverInfo"]["name"], "replica-test");
    assert_eq!(
        post_legacy(&http, &r[2].url, &endpoint, None, &initialized()).await,
        202
    );

    // 60 calls at once over the three replicas (within the session's 64 in-flight slots,
    // counted across replicas): each answer once, with its own token.
    let calls = (1..=60u64).map(|id| {
        let http = http.clone();
        let base = r[(id % 3) as usize].url.clone();
        let endpoint = endpoint.clone();
        async move {
            let status = post_legacy(
                &http,
                &base,
                &endpoint,
                None,
                &echo_call(id, &format!("token-{id}")),
            )
            .await;
            assert_eq!(status, 202);
        }
    });
    futures::future::join_all(calls).await;
    let mut seen: HashMap<u64, String> = HashMap::new();
    for _ in 0..60 {
        let m = stream.next_message().await;
        let id = m["id"].as_u64().unwrap();
        assert!(seen.insert(id, echoed(&m)).is_none(), "answer {id} twice");
    }
    for id in 1..=60u64 {
        assert_eq!(seen[&id], format!("token-{id}"), "answer {id}");
    }
    stream.quiet_for(Duration::from_millis(300)).await;

    // Progress from B arrives on A's stream before the result, in order.
    let call = json!({"jsonrpc": "2.0", "id": 100, "method": "tools/call", "params": {
        "name": "progress_steps", "arguments": {}, "_meta": {"progressToken": "p"}}});
    assert_eq!(
        post_legacy(&http, &r[1].url, &endpoint, None, &call).await,
        202
    );
    for step in 1..=3 {
        let m = stream.next_message().await;
        assert_eq!(m["method"], "notifications/progress", "{m}");
        assert_eq!(m["params"]["progress"].as_f64(), Some(f64::from(step)));
    }
    let result = stream.next_message().await;
    assert_eq!(result["id"], 100);

    // Redis round trips: a call on the replica holding the stream costs two (load with its
    // in-flight slot, slot given back); a call that crosses replicas three (and deliver).
    for (replica, expected) in [(0usize, 2u64), (1, 3)] {
        let before = r[replica].store.round_trips();
        assert_eq!(
            post_legacy(
                &http,
                &r[replica].url,
                &endpoint,
                None,
                &echo_call(200 + replica as u64, "rt")
            )
            .await,
            202
        );
        let m = stream.next_message().await;
        assert_eq!(echoed(&m), "rt");
        // The slot goes back once the answer is delivered: wait for it, then count.
        let store = &r[replica].store;
        settle_round_trips(store, before, expected).await;
        assert_eq!(store.round_trips() - before, expected, "replica {replica}");
    }

    // The stream closes: the session is gone on every replica.
    drop(stream);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if post_legacy(&http, &r[1].url, &endpoint, None, &echo_call(300, "late")).await == 404 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the session outlived its stream");
    assert_eq!(
        post_legacy(&http, &r[2].url, &endpoint, None, &echo_call(301, "late")).await,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_session_works_on_every_replica_and_delete_anywhere_ends_it_everywhere() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 3, ServerConfig::default()).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[1].url, None).await;

    for (i, replica) in r.iter().enumerate() {
        let before = replica.store.round_trips();
        let reply = post_mcp(
            &http,
            &replica.url,
            Some(&session),
            None,
            echo_call(i as u64 + 1, &format!("t{i}")),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(echoed(&reply.messages()[0]), format!("t{i}"));
        // Two round trips per streamable call, on any replica: load with its in-flight
        // slot, slot given back.
        settle_round_trips(&replica.store, before, 2).await;
        assert_eq!(replica.store.round_trips() - before, 2, "replica {i}");
    }

    // A GET stream held by replica 0 ends when the session is deleted on replica 2.
    let get = get_stream(&http, &r[0].url, &session, None).await;
    let mut stream = EventStream::open(get).await;

    let delete = http
        .delete(format!("{}/mcp", r[2].url))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(delete.status(), 200);
    assert!(
        stream.next().await.is_none(),
        "the GET stream on replica 0 ended"
    );
    for replica in &r {
        let reply = post_mcp(&http, &replica.url, Some(&session), None, echo_call(9, "x")).await;
        assert_eq!(reply.status, 404, "{}", reply.body);
        assert_eq!(
            reply.messages()[0]["error"]["message"],
            "Not Found: Unknown or expired session ID"
        );
    }
    let again = http
        .delete(format!("{}/mcp", r[1].url))
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_unknown_to_another_subject_on_every_replica() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 3, ServerConfig::default()).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[1].url, Some("alice")).await;
    for replica in &r {
        for subject in [Some("bob"), None] {
            let reply = post_mcp(
                &http,
                &replica.url,
                Some(&session),
                subject,
                echo_call(1, "x"),
            )
            .await;
            assert_eq!(reply.status, 404, "{subject:?}: {}", reply.body);
        }
        let bob_delete = http
            .delete(format!("{}/mcp", replica.url))
            .header("mcp-session-id", &session)
            .header("x-test-subject", "bob")
            .send()
            .await
            .unwrap();
        assert_eq!(bob_delete.status(), 404);
        let reply = post_mcp(
            &http,
            &replica.url,
            Some(&session),
            Some("alice"),
            echo_call(2, "mine"),
        )
        .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(echoed(&reply.messages()[0]), "mine");
    }

    // Legacy too: bob's POST to alice's stream is 404 wherever it lands.
    let (mut stream, endpoint) = legacy_stream(&http, &r[0].url, Some("alice")).await;
    for replica in &r {
        assert_eq!(
            post_legacy(
                &http,
                &replica.url,
                &endpoint,
                Some("bob"),
                &initialize_request()
            )
            .await,
            404
        );
    }
    assert_eq!(
        post_legacy(
            &http,
            &r[2].url,
            &endpoint,
            Some("alice"),
            &initialize_request()
        )
        .await,
        202
    );
    assert_eq!(stream.next_message().await["id"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_get_stream_on_one_replica_receives_what_another_replica_sends_the_session() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 2, ServerConfig::default()).await;
    let http = http();
    let session = streamable_session(&http, &r[1].url, &r[1].url, None).await;
    // Replica 0 claims the session with its GET stream.
    let get = get_stream(&http, &r[0].url, &session, None).await;
    let mut stream = EventStream::open(get).await;
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                      "params": {"name": "change_tools", "arguments": {}}});
    let reply = post_mcp(&http, &r[1].url, Some(&session), None, call).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let m = stream.next_message().await;
    assert_eq!(
        m,
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_stream_cut_on_one_replica_resumes_on_another_without_loss() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 2, ServerConfig::default()).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[0].url, None).await;
    let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "progress_steps", "arguments": {}, "_meta": {"progressToken": "p"}}});
    let response = post_streaming(&http, &r[0].url, &session, &call).await;
    let mut stream = EventStream::open(response).await;
    // Read up to the first progress notification, then drop the connection.
    let last_id = loop {
        let event = stream.next().await.unwrap();
        if event.data.contains("notifications/progress") {
            break event.id.unwrap();
        }
    };
    drop(stream);

    let resumed = get_stream(&http, &r[1].url, &session, Some(&last_id)).await;
    let mut stream = EventStream::open(resumed).await;
    let mut rest = Vec::new();
    while let Some(event) = stream.next().await {
        if !event.data.is_empty() {
            rest.push(serde_json::from_str::<Value>(&event.data).unwrap());
        }
    }
    let progress: Vec<Option<f64>> = rest
        .iter()
        .map(|m| m["params"]["progress"].as_f64())
        .collect();
    assert_eq!(progress, [Some(2.0), Some(3.0), None], "{rest:?}");
    assert_eq!(rest[2]["id"], 7);
    assert_eq!(echoed(&rest[2]), "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_is_503_with_json_and_service_resumes_when_it_returns() {
    let mut redis = TestRedis::start();
    let r = replicas(&redis, 2, ServerConfig::default()).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[1].url, None).await;

    redis.kill();
    let reply = post_mcp(&http, &r[1].url, Some(&session), None, echo_call(1, "x")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let error = &reply.messages()[0]["error"];
    assert_eq!(error["code"], -32000);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .starts_with("Service Unavailable: session store unavailable"),
        "{error}"
    );
    let reply = post_mcp(&http, &r[0].url, None, None, initialize_request()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let response = http.get(format!("{}/sse", r[0].url)).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");

    // Back (empty: this Redis keeps nothing on disk): new sessions work without a restart of
    // either replica, on both transports.
    redis.restart();
    let mut recovered = None;
    for _ in 0..40 {
        let reply = post_mcp(&http, &r[0].url, None, None, initialize_request()).await;
        if reply.status == 200 {
            recovered = reply.session_id;
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = recovered.expect("service resumed within 4 s");
    let reply = post_mcp(&http, &r[1].url, Some(&session), None, echo_call(2, "back")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(echoed(&reply.messages()[0]), "back");
    let (mut stream, endpoint) = legacy_stream(&http, &r[1].url, None).await;
    assert_eq!(
        post_legacy(&http, &r[0].url, &endpoint, None, &initialize_request()).await,
        202
    );
    assert_eq!(stream.next_message().await["id"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_holds_on_every_replica() {
    let redis = TestRedis::start();
    let config = ServerConfig {
        session_idle_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    };
    let r = replicas(&redis, 2, config).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[1].url, None).await;
    // Used on replica 1 every 300 ms: alive on replica 0 too.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let reply = post_mcp(&http, &r[1].url, Some(&session), None, echo_call(1, "x")).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = post_mcp(&http, &r[0].url, Some(&session), None, echo_call(2, "x")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    // Unused for longer than the idle timeout: gone everywhere.
    tokio::time::sleep(Duration::from_millis(900)).await;
    for replica in &r {
        let reply = post_mcp(&http, &replica.url, Some(&session), None, echo_call(3, "x")).await;
        assert_eq!(reply.status, 404, "{}", reply.body);
    }
}

fn elicit_answer(request: &Value, name: &str) -> Value {
    assert_eq!(request["method"], "elicitation/create", "{request}");
    json!({"jsonrpc": "2.0", "id": request["id"].clone(),
           "result": {"action": "accept", "content": {"name": name}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answer_reaches_the_replica_whose_call_asked_on_both_transports() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 3, ServerConfig::default()).await;
    let http = http();
    let ask = json!({"jsonrpc": "2.0", "id": 11, "method": "tools/call",
                     "params": {"name": "ask_name", "arguments": {}}});

    // Streamable: the call runs on replica 1; its request comes on the POST's stream; the
    // answer lands on replica 2 and is forwarded.
    let session = streamable_session(&http, &r[0].url, &r[0].url, None).await;
    let response = post_streaming(&http, &r[1].url, &session, &ask).await;
    let mut stream = EventStream::open(response).await;
    let request = stream.next_message().await;
    let reply = post_mcp(
        &http,
        &r[2].url,
        Some(&session),
        None,
        elicit_answer(&request, "ada"),
    )
    .await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let result = stream.next_message().await;
    assert_eq!(result["id"], 11);
    assert_eq!(echoed(&result), "hello ada");

    // Legacy SSE: stream on replica 0, call on replica 1, answer on replica 2.
    let (mut stream, endpoint) = legacy_stream(&http, &r[0].url, None).await;
    assert_eq!(
        post_legacy(&http, &r[0].url, &endpoint, None, &initialize_request()).await,
        202
    );
    stream.next_message().await;
    assert_eq!(
        post_legacy(&http, &r[0].url, &endpoint, None, &initialized()).await,
        202
    );
    assert_eq!(
        post_legacy(&http, &r[1].url, &endpoint, None, &ask).await,
        202
    );
    let request = stream.next_message().await;
    assert_eq!(
        post_legacy(
            &http,
            &r[2].url,
            &endpoint,
            None,
            &elicit_answer(&request, "grace")
        )
        .await,
        202
    );
    let result = stream.next_message().await;
    assert_eq!(result["id"], 11);
    assert_eq!(echoed(&result), "hello grace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_at_its_lifetime_on_every_replica_however_much_it_is_used() {
    let redis = TestRedis::start();
    let config = ServerConfig {
        session_lifetime: Duration::from_millis(1200),
        ..ServerConfig::default()
    };
    let r = replicas(&redis, 2, config).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[1].url, None).await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_millis(1700) {
        let replica = &r[statuses.len() % 2];
        let reply = post_mcp(&http, &replica.url, Some(&session), None, echo_call(1, "x")).await;
        statuses.push((started.elapsed(), reply.status));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (at, status) in &statuses {
        if *at < Duration::from_millis(1000) {
            assert_eq!(*status, 200, "at {at:?}: {statuses:?}");
        } else if *at > Duration::from_millis(1300) {
            assert_eq!(*status, 404, "at {at:?}: {statuses:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancellation_reaches_the_call_on_whichever_replica_runs_it() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 3, ServerConfig::default()).await;
    let http = http();
    let call = json!({"jsonrpc": "2.0", "id": 21, "method": "tools/call",
                      "params": {"name": "wait_a_second", "arguments": {}}});
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                        "params": {"requestId": 21, "reason": "changed my mind"}});

    // Streamable: the call runs on replica 1, the cancellation lands on replica 2.
    let session = streamable_session(&http, &r[0].url, &r[0].url, None).await;
    let started = std::time::Instant::now();
    let running = {
        let (http, url, session, call) = (
            http.clone(),
            r[1].url.clone(),
            session.clone(),
            call.clone(),
        );
        tokio::spawn(async move { post_mcp(&http, &url, Some(&session), None, call).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reply = post_mcp(&http, &r[2].url, Some(&session), None, cancel.clone()).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    let cancelled = running.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "ended after {:?}",
        started.elapsed()
    );
    assert!(
        cancelled
            .messages()
            .iter()
            .all(|m| m.get("result").is_none()),
        "a cancelled call answered: {}",
        cancelled.body
    );

    // Legacy SSE: stream on replica 0, call on replica 1, cancellation on replica 2.
    let (mut stream, endpoint) = legacy_stream(&http, &r[0].url, None).await;
    assert_eq!(
        post_legacy(&http, &r[0].url, &endpoint, None, &initialize_request()).await,
        202
    );
    stream.next_message().await;
    assert_eq!(
        post_legacy(&http, &r[1].url, &endpoint, None, &call).await,
        202
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post_legacy(&http, &r[2].url, &endpoint, None, &cancel).await,
        202
    );
    stream.quiet_for(Duration::from_millis(1500)).await;
    // The session goes on.
    assert_eq!(
        post_legacy(&http, &r[2].url, &endpoint, None, &echo_call(22, "after")).await,
        202
    );
    assert_eq!(echoed(&stream.next_message().await), "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_caps_hold_across_replicas() {
    let redis = TestRedis::start();
    let config = ServerConfig {
        max_sessions: 4,
        max_sessions_per_client: 2,
        ..Default::default()
    };
    let r = replicas(&redis, 2, config).await;
    let http = http();
    // Alice's two sessions, one per replica, fill her quota on both.
    for replica in &r {
        streamable_session(&http, &replica.url, &replica.url, Some("alice")).await;
    }
    for replica in &r {
        let reply = post_mcp(
            &http,
            &replica.url,
            None,
            Some("alice"),
            initialize_request(),
        )
        .await;
        assert_eq!(reply.status, 429, "{}", reply.body);
        assert_eq!(
            serde_json::from_str::<Value>(&reply.body).unwrap(),
            json!({"jsonrpc":"2.0","id":null,"error":{"code":-32000,
                "message":"Too Many Requests: this client already holds 2 sessions"}})
        );
    }
    // Bob still gets his, up to the four sessions of the whole deployment.
    streamable_session(&http, &r[0].url, &r[0].url, Some("bob")).await;
    streamable_session(&http, &r[1].url, &r[1].url, Some("bob")).await;
    let reply = post_mcp(&http, &r[0].url, None, Some("carol"), initialize_request()).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_calls_are_counted_per_session_across_replicas() {
    let redis = TestRedis::start();
    let config = ServerConfig {
        max_in_flight_per_session: 2,
        ..Default::default()
    };
    let r = replicas(&redis, 3, config).await;
    let http = http();
    let session = streamable_session(&http, &r[0].url, &r[0].url, None).await;
    let slow = |id: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
               "params": {"name": "wait_a_second", "arguments": {}}})
    };
    // Two slow calls on replicas 0 and 1 take both slots of the session...
    let running: Vec<_> = [0usize, 1]
        .into_iter()
        .map(|i| {
            let (http, url, session) = (http.clone(), r[i].url.clone(), session.clone());
            tokio::spawn(async move {
                post_mcp(&http, &url, Some(&session), None, slow(i as u64 + 1)).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so a third call is refused on replica 2.
    let refused = post_mcp(&http, &r[2].url, Some(&session), None, echo_call(9, "x")).await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    for call in running {
        assert_eq!(call.await.unwrap().status, 200);
    }
    // A finished call's slot goes back with its replica's next script, or alone at the
    // latest 10 ms after the call.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let reply = post_mcp(&http, &r[2].url, Some(&session), None, echo_call(10, "y")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_forwarded_only_to_live_replicas() {
    let redis = TestRedis::start();
    let r = replicas(&redis, 1, ServerConfig::default()).await;
    // Started: its heartbeat says it is alive.
    let mut alive = false;
    for _ in 0..50 {
        if r[0]
            .store
            .forward_to_replica(
                "replica-0",
                "s",
                r#"{"jsonrpc":"2.0","id":"x","result":{}}"#,
            )
            .await
            .unwrap()
        {
            alive = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(alive, "a started replica is alive");
    // A replica that never started (or died long enough ago) gets nothing.
    assert!(
        !r[0]
            .store
            .forward_to_replica(
                "replica-9",
                "s",
                r#"{"jsonrpc":"2.0","id":"x","result":{}}"#
            )
            .await
            .unwrap()
    );
    let key = "mcp:deliveries:replica-9";
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "nothing was queued for a replica nobody reads");
}
