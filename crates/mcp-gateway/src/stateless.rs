//! 2026-07-28 clients in front of an older child: the gateway translates.
//!
//! A 2026-07-28 request carries the protocol version, client info and capabilities in its
//! `_meta` and needs no session. The gateway answers `server/discover` from the child's
//! `initialize` result, forwards the other requests without the `io.modelcontextprotocol/`
//! `_meta` keys (an older child does not know them) over its own session with the child, and
//! gives each result the `resultType` and server info a 2026-07-28 client expects. Methods
//! 2026-07-28 removed (`ping`, `logging/setLevel`, `resources/subscribe`, `initialize`) are
//! unknown to such clients, and -32002 (resource not found) becomes -32602. List and read
//! results carry caching hints (`ttlMs` 0); log messages reach a request only at the
//! `logLevel` its `_meta` asked for.
//!
//! Requests of the child during a `tools/call`, `prompts/get` or `resources/read`
//! (`elicitation/create`, `sampling/createMessage`, `roots/list`) become an
//! `InputRequiredResult`: the call stays running at the child, parked at the gateway, and the
//! client's retry with `inputResponses` and the signed `requestState` answers the child's
//! requests and resumes it (see the `input_rounds` module). The keys of `inputRequests` are
//! those the child names in its requests' `_meta` ([`mcp_proto::input::META_INPUT_KEY`], as
//! our servers do), else `input_<n>`. A request the client's declared capabilities cannot
//! answer is refused at the child with -32601 when the round has other questions; when it has
//! none, the call ends with -32021 naming the capabilities, as a 2026-07-28 server would. The
//! `requestState` is bound to the method, target, arguments and authenticated subject, and to
//! this gateway process: replicas need a client's retries routed to the same gateway.
//!
//! Not translated: `subscriptions/listen` (no change notifications for 2026-07-28 clients,
//! whose capabilities then list none).

use std::sync::Arc;

use mcp_proto::jsonrpc::code;
use mcp_proto::stateless::{self, RequestMeta};
use mcp_proto::types::{LoggingLevel, method};
use mcp_proto::{
    AuthSubject, BoxFuture, ErrorObject, Message, MessageContext, Outbound, ProtocolVersion,
    Request, RequestId, Response, SendError,
};
use serde_json::{Map, Value, json};

use crate::gateway::Gateway;
use crate::input_rounds::{
    CallFuture, InputCall, InputRounds, RoundEnd, RoundOutbound, input_required,
};
use crate::upstream::{Outcome, Route};

/// The `_meta` keys only 2026-07-28 peers know.
const STATELESS_META_PREFIX: &str = "io.modelcontextprotocol/";

impl Gateway {
    pub(crate) async fn stateless_request(
        &self,
        mut request: Request,
        meta: RequestMeta,
        ctx: MessageContext,
    ) -> Option<Response> {
        let id = request.id.clone();
        if let Err(error) = meta.version() {
            return Some(Response::error(Some(id), error));
        }
        ctx.session.update_state(|s| {
            s.client_capabilities = meta.client_capabilities.clone();
            s.client_info = meta.client_info.clone();
        });
        if let Some(outcome) = self.answered_here(&request, &ctx).await {
            return Some(Response {
                id: Some(id),
                outcome,
            });
        }
        let method = request.method.clone();
        let min_log = meta
            .raw
            .get(stateless::META_LOG_LEVEL)
            .and_then(|l| serde_json::from_value::<LoggingLevel>(l.clone()).ok());
        let ctx = ctx.clone().with_outbound(Arc::new(LogFilter {
            inner: Arc::clone(&ctx.outbound),
            min: min_log,
        }));
        strip_stateless_meta(&mut request.params);
        let server_info = self
            .child_init(&ctx.session)
            .await
            .ok()
            .and_then(|init| init.get("serverInfo").cloned());
        let mut response = if INPUT_METHODS.contains(&method.as_str()) {
            self.forward_with_input(request, &meta, &ctx).await?
        } else {
            self.forward(request, &ctx).await?
        };
        response.outcome = match response.outcome {
            Ok(mut result) => {
                if method == "tools/list" {
                    self.config().tools.filter_list(&mut result);
                }
                Ok(cache_hints(&method, stateless_result(result, server_info)))
            }
            Err(mut error) => {
                if error.code == code::RESOURCE_NOT_FOUND {
                    error.code = code::INVALID_PARAMS;
                }
                Err(error)
            }
        };
        Some(response)
    }

    /// The outcome of a request the gateway answers itself (`server/discover`, methods
    /// 2026-07-28 removed, calls of hidden tools); `None` for those the child answers.
    async fn answered_here(&self, request: &Request, ctx: &MessageContext) -> Option<Outcome> {
        match request.method.as_str() {
            "server/discover" => Some(
                self.child_init(&ctx.session)
                    .await
                    .map(|init| discover(&init)),
            ),
            "initialize"
            | "ping"
            | "logging/setLevel"
            | "resources/subscribe"
            | "resources/unsubscribe"
            | mcp_proto::listen::SUBSCRIPTIONS_LISTEN => {
                Some(Err(ErrorObject::method_not_found(&request.method)))
            }
            "tools/call" => self
                .config()
                .tools
                .check_call(request.params.as_ref())
                .map(Err),
            _ => None,
        }
    }
}

/// The requests whose result may be an `InputRequiredResult`.
const INPUT_METHODS: [&str; 3] = [
    method::TOOLS_CALL,
    method::PROMPTS_GET,
    method::RESOURCES_READ,
];

/// One step of a call's round.
enum Step {
    Done(Outcome),
    Cancelled,
    Settled,
}

impl Gateway {
    /// A request that may need input rounds: a new call, or the retry of a parked one
    /// (`requestState`); `None` when the client went away.
    async fn forward_with_input(
        &self,
        mut request: Request,
        meta: &RequestMeta,
        ctx: &MessageContext,
    ) -> Option<Response> {
        let id = request.id.clone();
        let progress_token = request
            .params
            .as_ref()
            .and_then(|p| p.get("_meta"))
            .and_then(|m| m.get("progressToken"))
            .cloned();
        let mut params = request.params.take().unwrap_or_else(|| json!({}));
        let owner = AuthSubject::of(&ctx.extensions);
        let binding = call_binding(&request.method, &params, owner.as_deref());
        let call = match take_round_params(&mut params) {
            Err(error) => Err(error),
            Ok((given, Some(token))) => self.resume_call(&token, &binding, meta, given),
            Ok((given, None)) => {
                request.params = Some(params);
                self.start_input_call(request, meta, ctx, given, owner)
                    .await
            }
        };
        let outcome = match call {
            Ok(call) => {
                call.outbound
                    .attach(Arc::clone(&ctx.outbound), progress_token);
                self.serve_round(call, &id, &binding, ctx).await?
            }
            Err(error) => Err(error),
        };
        Some(Response {
            id: Some(id),
            outcome,
        })
    }

    /// Forwards a new call whose requests of the child become its questions.
    async fn start_input_call(
        &self,
        request: Request,
        meta: &RequestMeta,
        ctx: &MessageContext,
        given: Map<String, Value>,
        owner: Option<Arc<str>>,
    ) -> Result<InputCall, ErrorObject> {
        let upstream = self.upstream_for(&ctx.session).await?;
        let capabilities = meta.client_capabilities.clone();
        let rounds = Arc::new(InputRounds::new(capabilities, given));
        let outbound = Arc::new(RoundOutbound::default());
        let route = Route {
            session: Arc::clone(&ctx.session),
            outbound: Arc::clone(&outbound) as Arc<dyn Outbound>,
            rounds: Some(Arc::clone(&rounds)),
        };
        let future: CallFuture = Box::pin(async move { upstream.call(request, route).await });
        Ok(InputCall::new(future, rounds, outbound, owner))
    }

    /// Takes back the parked call a retry names and gives it the retry's answers.
    fn resume_call(
        &self,
        token: &str,
        binding: &str,
        meta: &RequestMeta,
        given: Map<String, Value>,
    ) -> Result<InputCall, ErrorObject> {
        let call = self.parked().resume(token, binding)?;
        let capabilities = meta.client_capabilities.clone();
        if let Err(error) = call.rounds.resume(capabilities, given) {
            call.rounds.fail_open(&error);
            return Err(error);
        }
        Ok(call)
    }

    /// Waits for the call's result, or for the end of its round: then the call is parked
    /// and the client gets an `InputRequiredResult`. `None` when the client went away
    /// (the call is cancelled at the child).
    async fn serve_round(
        &self,
        mut call: InputCall,
        id: &RequestId,
        binding: &str,
        ctx: &MessageContext,
    ) -> Option<Outcome> {
        let rounds = Arc::clone(&call.rounds);
        let cancelled = ctx.session.begin_request(id.clone());
        let step = tokio::select! {
            biased;
            outcome = &mut call.future => Step::Done(outcome),
            () = cancelled.cancelled() => Step::Cancelled,
            () = rounds.settled() => Step::Settled,
        };
        ctx.session.end_request(id);
        match step {
            Step::Done(outcome) => {
                rounds.fail_open(&ErrorObject::internal("the call has ended"));
                Some(outcome)
            }
            Step::Cancelled => {
                rounds.fail_open(&ErrorObject::internal("the client cancelled the call"));
                None
            }
            Step::Settled => Some(match rounds.end_round() {
                RoundEnd::Failed(error) => {
                    rounds.fail_open(&error);
                    Err(error)
                }
                RoundEnd::Input(requests) => self
                    .parked()
                    .park(call, binding)
                    .map(|state| input_required(requests, state)),
            }),
        }
    }
}

/// Takes `inputResponses` (an object) and `requestState` (a string) out of a request's
/// params; the error is the client's.
fn take_round_params(
    params: &mut Value,
) -> Result<(Map<String, Value>, Option<String>), ErrorObject> {
    let Value::Object(map) = params else {
        return Err(ErrorObject::invalid_params("expected an object"));
    };
    let given = match map.remove("inputResponses") {
        None => Map::new(),
        Some(Value::Object(given)) => given,
        Some(_) => {
            return Err(ErrorObject::invalid_params(
                "inputResponses must be an object",
            ));
        }
    };
    let token = match map.remove("requestState") {
        None => None,
        Some(Value::String(token)) => Some(token),
        Some(_) => {
            return Err(ErrorObject::invalid_params("requestState must be a string"));
        }
    };
    Ok((given, token))
}

/// What a call's `requestState` is bound to: the method, the tool, prompt or resource, its
/// arguments, and the authenticated subject of the client (so no one else can answer it).
fn call_binding(method: &str, params: &Value, owner: Option<&str>) -> String {
    let target = params
        .get("name")
        .or_else(|| params.get("uri"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let arguments = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(arguments) => arguments.clone(),
    };
    stateless::binding(method, target, &json!([arguments, owner]))
}

/// Caching hints (SEP-2549) on list and read results: `ttlMs` 0, since the gateway cannot
/// tell when the child's lists change (it announces changes on legacy streams only);
/// lists are the same for everyone (`public`), reads may not be (`private`).
fn cache_hints(method: &str, mut result: Value) -> Value {
    let scope = match method {
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => "public",
        "resources/read" => "private",
        _ => return result,
    };
    if let Value::Object(map) = &mut result
        && map.get("resultType") == Some(&json!(stateless::RESULT_COMPLETE))
    {
        map.entry("ttlMs").or_insert(json!(0));
        map.entry("cacheScope").or_insert(json!(scope));
    }
    result
}

/// Passes log messages (`notifications/message`) only at or above the level the request
/// asked for in its `_meta` (none when it asked for none), everything else unchanged.
struct LogFilter {
    inner: Arc<dyn Outbound>,
    min: Option<LoggingLevel>,
}

impl Outbound for LogFilter {
    fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
        if let Message::Notification(n) = &message
            && n.method == "notifications/message"
        {
            let level = n
                .params
                .as_ref()
                .and_then(|p| p.get("level"))
                .and_then(|l| serde_json::from_value::<LoggingLevel>(l.clone()).ok());
            let allowed = matches!((self.min, level), (Some(min), Some(level)) if level >= min);
            if !allowed {
                return Box::pin(async { Ok(()) });
            }
        }
        self.inner.send(message)
    }
}

/// Removes the 2026-07-28 keys from a request's `_meta` (and `_meta` itself when nothing
/// else is left).
fn strip_stateless_meta(params: &mut Option<Value>) {
    let Some(Value::Object(map)) = params else {
        return;
    };
    let empty = match map.get_mut("_meta") {
        Some(Value::Object(meta)) => {
            meta.retain(|key, _| !key.starts_with(STATELESS_META_PREFIX));
            meta.is_empty()
        }
        _ => false,
    };
    if empty {
        map.remove("_meta");
    }
}

/// A child's result as a 2026-07-28 result.
fn stateless_result(mut result: Value, server_info: Option<Value>) -> Value {
    if let Value::Object(map) = &mut result {
        map.entry("resultType")
            .or_insert_with(|| json!(stateless::RESULT_COMPLETE));
        if let (Some(info), Value::Object(meta)) =
            (server_info, map.entry("_meta").or_insert_with(|| json!({})))
        {
            meta.entry(stateless::META_SERVER_INFO).or_insert(info);
        }
    }
    result
}

/// `server/discover` from the child's `initialize` result: the capabilities without those
/// 2026-07-28 removed.
fn discover(init: &Value) -> Value {
    let mut capabilities = init
        .get("capabilities")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Value::Object(caps) = &mut capabilities {
        caps.remove("logging");
        // No `subscriptions/listen` through the gateway: no change notifications either.
        for kind in ["tools", "prompts", "resources"] {
            if let Some(Value::Object(cap)) = caps.get_mut(kind) {
                cap.remove("subscribe");
                cap.remove("listChanged");
            }
        }
    }
    let mut meta = Map::new();
    if let Some(info) = init.get("serverInfo") {
        meta.insert(stateless::META_SERVER_INFO.into(), info.clone());
    }
    let mut result = json!({
        "supportedVersions": ProtocolVersion::supported_strings(),
        "capabilities": capabilities,
        "resultType": stateless::RESULT_COMPLETE,
        "_meta": meta,
    });
    if let Some(instructions) = init.get("instructions") {
        result["instructions"] = instructions.clone();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stateless_meta_keys_are_stripped_and_others_kept() {
        let mut params = Some(json!({"name": "x", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "c", "version": "1"},
            "progressToken": 7,
        }}));
        strip_stateless_meta(&mut params);
        assert_eq!(
            params,
            Some(json!({"name": "x", "_meta": {"progressToken": 7}}))
        );
        let mut only_modern =
            Some(json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28"}}));
        strip_stateless_meta(&mut only_modern);
        assert_eq!(only_modern, Some(json!({})));
    }

    #[test]
    fn discover_drops_removed_capabilities() {
        let init = json!({
            "protocolVersion": "2024-11-05",
            "capabilities": {"logging": {}, "tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}},
            "serverInfo": {"name": "old", "version": "1"},
            "instructions": "roll",
        });
        let result = discover(&init);
        assert_eq!(
            result["capabilities"],
            json!({"tools": {}, "resources": {}})
        );
        assert_eq!(result["resultType"], "complete");
        assert_eq!(result["instructions"], "roll");
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
            "old"
        );
        assert!(
            result["supportedVersions"]
                .as_array()
                .unwrap()
                .contains(&json!("2026-07-28"))
        );
    }

    #[test]
    fn lists_and_reads_get_caching_hints() {
        let list = cache_hints("tools/list", json!({"tools": [], "resultType": "complete"}));
        assert_eq!(
            list,
            json!({"tools": [], "resultType": "complete", "ttlMs": 0, "cacheScope": "public"})
        );
        let read = cache_hints(
            "resources/read",
            json!({"contents": [], "resultType": "complete"}),
        );
        assert_eq!(read["cacheScope"], "private");
        let call = cache_hints(
            "tools/call",
            json!({"content": [], "resultType": "complete"}),
        );
        assert_eq!(call.get("ttlMs"), None);
    }

    #[test]
    fn results_get_a_result_type_and_the_server_info() {
        let result = stateless_result(json!({"content": []}), Some(json!({"name": "old"})));
        assert_eq!(
            result,
            json!({"content": [], "resultType": "complete", "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "old"}}})
        );
    }
}
