//! Prometheus metrics: what the transports record and how to serve them.
//!
//! The transports record through the [`metrics`] facade, which costs nothing until a recorder
//! is installed: metrics are **off by default**. [`install`] installs the Prometheus recorder
//! of `metrics-exporter-prometheus` once per process; from then on
//! [`crate::McpHttpServer::health_router`] also serves `GET /metrics`, and [`serve`] can
//! serve it on a port of its own.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `mcp_requests_total` | counter | `transport` (`sse`, `streamable_http`, `stdio`), `method`, `outcome` (`ok`, `error`, `timeout`, `notification`) |
//! | `mcp_request_duration_seconds` | histogram | `transport`, `method` |
//! | `mcp_tool_call_duration_seconds` | histogram | `tool`, `outcome` (`ok`, `tool_error`, `error`, `timeout`) |
//! | `mcp_sessions_open` | gauge | (set at each scrape) |
//! | `mcp_calls_in_flight` | gauge | (set at each scrape) |
//! | `mcp_auth_failures_total` | counter | `reason` (recorded by `mcp-auth`'s bearer layer) |
//! | `mcp_session_store_errors_total` | counter | `kind` (`unavailable`, `failed`) |
//! | `mcp_limit_rejections_total` | counter | `limit` (`body_bytes`, `body_time`, `sessions`, `client_sessions`, `in_flight`, `line_bytes`) |
//!
//! Method labels are the MCP methods (anything else is `other`) and tool labels the names
//! of tools that exist (`unknown` otherwise), so clients cannot grow the label sets. Every
//! request also runs in a `tracing` span `mcp.message` with the same `transport` and
//! `method` fields, for an OpenTelemetry subscriber to export.
//!
//! ```
//! let handle = mcp_sse::metrics::install()?;
//! mcp_sse::metrics::record_limit_rejection("sessions");
//! assert!(handle.render().contains("mcp_limit_rejections_total{limit=\"sessions\"} 1"));
//! # Ok::<(), mcp_sse::Error>(())
//! ```

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use mcp_proto::types::method;
use mcp_proto::{Message, ReplyOutcome, RequestId};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::Error;

/// Requests and notifications handled, by transport, method and outcome.
pub const REQUESTS_TOTAL: &str = "mcp_requests_total";
/// Time to answer a request, by transport and method.
pub const REQUEST_DURATION: &str = "mcp_request_duration_seconds";
/// Time one `tools/call` took, by tool and outcome.
pub const TOOL_CALL_DURATION: &str = "mcp_tool_call_duration_seconds";
/// Sessions open on this server.
pub const SESSIONS_OPEN: &str = "mcp_sessions_open";
/// Calls running on this server.
pub const CALLS_IN_FLIGHT: &str = "mcp_calls_in_flight";
/// Requests refused by authentication, by reason (recorded by `mcp-auth`).
pub const AUTH_FAILURES_TOTAL: &str = "mcp_auth_failures_total";
/// Failed session-store operations, by kind.
pub const STORE_ERRORS_TOTAL: &str = "mcp_session_store_errors_total";
/// Requests refused because a limit was reached, by limit.
pub const LIMIT_REJECTIONS_TOTAL: &str = "mcp_limit_rejections_total";

/// Latency buckets in seconds, from a fast local call to the longest call timeouts.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static INSTALLING: Mutex<()> = Mutex::new(());

/// Installs the Prometheus recorder (once per process; later calls return the same handle).
///
/// Errors: [`Error::Metrics`] when another `metrics` recorder is already installed.
pub fn install() -> Result<PrometheusHandle, Error> {
    let _one_at_a_time = INSTALLING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .map_err(|e| Error::Metrics(e.into()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|e| Error::Metrics(e.into()))?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The installed handle, if [`install`] ran.
pub fn handle() -> Option<PrometheusHandle> {
    HANDLE.get().cloned()
}

fn describe() {
    metrics::describe_counter!(REQUESTS_TOTAL, "MCP messages handled");
    metrics::describe_histogram!(
        REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an MCP request"
    );
    metrics::describe_histogram!(
        TOOL_CALL_DURATION,
        metrics::Unit::Seconds,
        "Time one tools/call took"
    );
    metrics::describe_gauge!(SESSIONS_OPEN, "MCP sessions open");
    metrics::describe_gauge!(CALLS_IN_FLIGHT, "MCP calls running");
    metrics::describe_counter!(AUTH_FAILURES_TOTAL, "Requests refused by authentication");
    metrics::describe_counter!(STORE_ERRORS_TOTAL, "Failed session store operations");
    metrics::describe_counter!(LIMIT_REJECTIONS_TOTAL, "Requests refused at a limit");
}

/// The `method` label: an MCP method, or `other`.
pub fn method_label(name: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        method::INITIALIZE,
        method::INITIALIZED,
        method::PING,
        method::SERVER_DISCOVER,
        method::TOOLS_LIST,
        method::TOOLS_CALL,
        method::RESOURCES_LIST,
        method::RESOURCE_TEMPLATES_LIST,
        method::RESOURCES_READ,
        method::RESOURCES_SUBSCRIBE,
        method::RESOURCES_UNSUBSCRIBE,
        method::PROMPTS_LIST,
        method::PROMPTS_GET,
        method::COMPLETION_COMPLETE,
        method::LOGGING_SET_LEVEL,
        method::CANCELLED,
        method::PROGRESS,
        mcp_proto::listen::SUBSCRIPTIONS_LISTEN,
        "notifications/roots/list_changed",
        "response",
    ];
    KNOWN
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("other")
}

/// What the `mcp.message` span and the request metrics say about a message, the same on
/// every transport.
///
/// ```
/// use mcp_proto::{Message, RequestId};
/// use mcp_sse::metrics::MessageLabels;
///
/// let call = Message::request(7, "tools/call", Some(serde_json::json!({"name": "roll_dice"})));
/// let labels = MessageLabels::of(&call);
/// assert_eq!(labels.method, "tools/call");
/// assert_eq!(labels.id, Some(RequestId::from(7)));
/// assert_eq!(labels.tool.as_deref(), Some("roll_dice"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct MessageLabels {
    /// The JSON-RPC method; `response` for an answer from the client.
    pub method: String,
    /// The request id, for a request.
    pub id: Option<RequestId>,
    /// For `tools/call`, the tool named.
    pub tool: Option<String>,
}

impl MessageLabels {
    /// The labels of one message.
    pub fn of(message: &Message) -> Self {
        match message {
            Message::Request(r) => Self {
                tool: (r.method == method::TOOLS_CALL)
                    .then(|| r.params.as_ref()?.get("name")?.as_str().map(str::to_owned))
                    .flatten(),
                method: r.method.clone(),
                id: Some(r.id.clone()),
            },
            Message::Notification(n) => Self {
                method: n.method.clone(),
                id: None,
                tool: None,
            },
            Message::Response(_) => Self {
                method: "response".to_owned(),
                id: None,
                tool: None,
            },
        }
    }
}

/// One handled message, as a transport saw it.
#[derive(Debug, Clone, Copy)]
pub struct HandledMessage<'a> {
    /// `sse`, `streamable_http` or `stdio`.
    pub transport: &'static str,
    /// The JSON-RPC method (`response` for answers to the server's requests).
    pub method: &'a str,
    /// For `tools/call`, the tool named in the request.
    pub tool: Option<&'a str>,
    /// Whether the call ran out of time.
    pub timed_out: bool,
    /// How long the service took.
    pub elapsed: Duration,
}

/// Records one handled message and its reply: the request counter and latency, and for
/// `tools/call` the per-tool latency.
pub fn record_message(message: &HandledMessage<'_>, reply: Option<ReplyOutcome>) {
    let method = method_label(message.method);
    let outcome = match (message.timed_out, reply) {
        (true, _) => "timeout",
        (false, Some(ReplyOutcome::Error(_))) => "error",
        (false, Some(_)) => "ok",
        (false, None) => "notification",
    };
    metrics::counter!(REQUESTS_TOTAL, "transport" => message.transport, "method" => method, "outcome" => outcome)
        .increment(1);
    if reply.is_none() {
        return;
    }
    let seconds = message.elapsed.as_secs_f64();
    metrics::histogram!(REQUEST_DURATION, "transport" => message.transport, "method" => method)
        .record(seconds);
    if let (Some(tool), Some(reply)) = (message.tool, reply) {
        let (tool, outcome) = match reply {
            ReplyOutcome::ToolError => (tool.to_owned(), "tool_error"),
            ReplyOutcome::Error(_) if message.timed_out => (tool.to_owned(), "timeout"),
            // An unknown tool must not become a label.
            ReplyOutcome::Error(_) => ("unknown".to_owned(), "error"),
            _ => (tool.to_owned(), "ok"),
        };
        metrics::histogram!(TOOL_CALL_DURATION, "tool" => tool, "outcome" => outcome)
            .record(seconds);
    }
}

/// Records a request refused at a limit (`body_bytes`, `body_time`, `sessions`,
/// `client_sessions`, `in_flight`, `line_bytes`).
pub fn record_limit_rejection(limit: &'static str) {
    metrics::counter!(LIMIT_REJECTIONS_TOTAL, "limit" => limit).increment(1);
}

/// Records a failed session-store operation (`unavailable` or `failed`).
pub fn record_store_error(kind: &'static str) {
    metrics::counter!(STORE_ERRORS_TOTAL, "kind" => kind).increment(1);
}

/// `GET /metrics` in the Prometheus text format, from the installed recorder; `gauges` runs
/// first to set values that are read at scrape time.
pub(crate) fn router_with(gauges: impl Fn() + Clone + Send + Sync + 'static) -> Option<Router> {
    let handle = handle()?;
    Some(Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            let gauges = gauges.clone();
            async move {
                gauges();
                (
                    [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    ))
}

/// Serves `GET /metrics` alone on `addr` (a port apart from the MCP routes) until
/// `shutdown` resolves; the recorder must be installed.
///
/// Errors: [`Error::Metrics`] when [`install`] has not run, [`Error::Io`] when binding fails.
pub async fn serve(
    addr: &str,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    serve_listener(listener, shutdown).await
}

/// [`serve`] on a bound listener.
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let router =
        router_with(|| {}).ok_or_else(|| Error::Metrics("metrics::install has not run".into()))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_proto::{ErrorObject, Response};
    use serde_json::json;

    #[test]
    fn labels_of_a_tool_call_a_notification_and_an_answer() {
        let call = Message::request(7, "tools/call", Some(json!({"name": "roll_dice"})));
        assert_eq!(
            MessageLabels::of(&call),
            MessageLabels {
                method: "tools/call".into(),
                id: Some(RequestId::from(7)),
                tool: Some("roll_dice".into()),
            }
        );
        let list = Message::request(8, "tools/list", Some(json!({"name": "not a call"})));
        assert_eq!(MessageLabels::of(&list).tool, None);
        let note = Message::notification("notifications/initialized", None);
        assert_eq!(MessageLabels::of(&note).method, "notifications/initialized");
        let answer = Message::Response(Response::result(RequestId::from(1), json!({})));
        assert_eq!(
            MessageLabels::of(&answer),
            MessageLabels {
                method: "response".into(),
                id: None,
                tool: None,
            }
        );
    }

    #[test]
    fn methods_outside_mcp_share_one_label() {
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/evil-1"), "other");
    }

    #[test]
    fn requests_and_tool_latency_reach_the_exposition() {
        let handle = install().unwrap();
        let ok = Message::Response(Response::result(
            mcp_proto::RequestId::from(1),
            json!({"content": []}),
        ));
        let unknown = Message::Response(Response::error(
            Some(mcp_proto::RequestId::from(2)),
            ErrorObject::invalid_params("Unknown tool: 'nope'"),
        ));
        let call = |tool| HandledMessage {
            transport: "stdio",
            method: "tools/call",
            tool: Some(tool),
            timed_out: false,
            elapsed: Duration::from_millis(3),
        };
        record_message(&call("metrics_test_tool"), Some(ReplyOutcome::of(&ok)));
        record_message(&call("nope"), Some(ReplyOutcome::of(&unknown)));
        let text = handle.render();
        assert!(
            text.contains(
                r#"mcp_tool_call_duration_seconds_count{tool="metrics_test_tool",outcome="ok"} 1"#
            ),
            "{text}"
        );
        assert!(!text.contains(r#"tool="nope""#), "{text}");
        assert!(
            text.contains(
                r#"mcp_requests_total{transport="stdio",method="tools/call",outcome="error"}"#
            ),
            "{text}"
        );
    }
}
