//! Asking the client for input from inside a handler: one API for both eras.
//!
//! In a stateful session a request becomes a server-to-client JSON-RPC request on the call's
//! stream, and the handler awaits the client's response. Under 2026-07-28 there is no such
//! stream: the handler runs again on every round, each question is answered from the input
//! response the client sent under the question's key (chosen by the handler with
//! [`crate::ToolContext::ask_as`], or `input_<k>` for the k-th question), and unanswered
//! questions end the round with an `InputRequiredResult` whose signed `requestState` carries
//! the answers gathered so far. Questions asked together ([`crate::ToolContext::ask_all`]) go
//! out in one round. The handler's code is the same in both cases.
//!
//! In a stateful session a question asked under a key carries it in its request's `_meta`
//! ([`META_INPUT_KEY`]), so that a gateway serving such a server to 2026-07-28 clients can name
//! the `inputRequests` entry as the handler did.
//!
//! Under 2026-07-28 a question the request's `clientCapabilities` do not allow ends the call
//! with `-32021` (`data.requiredCapabilities`), and an answer of the wrong shape ends it with
//! `-32602`; in a stateful session the handler sees [`InputError::Unsupported`] and
//! [`InputError::Malformed`] instead.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cancel::CancellationSignal;
use crate::client_features::{
    CreateMessageParams, CreateMessageResult, ElicitParams, ElicitResult, ListRootsResult,
};
use crate::jsonrpc::{ErrorObject, Message, code};
use crate::service::{Outbound, Session};
use crate::types::{ClientCapabilities, method};

/// `_meta` key of a stateful server-to-client request naming the question's key (the one a
/// handler chose with [`crate::ToolContext::ask_as`]); not part of the specification, and
/// ignored by clients that do not know it.
pub const META_INPUT_KEY: &str = "mcp-stack/inputKey";

/// A question for the client.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InputRequest {
    /// `sampling/createMessage`.
    Sampling(CreateMessageParams),
    /// `elicitation/create`.
    Elicitation(ElicitParams),
    /// `roots/list`.
    ListRoots,
}

impl InputRequest {
    /// The JSON-RPC method.
    pub fn method(&self) -> &'static str {
        match self {
            InputRequest::Sampling(_) => method::SAMPLING_CREATE_MESSAGE,
            InputRequest::Elicitation(_) => method::ELICITATION_CREATE,
            InputRequest::ListRoots => method::ROOTS_LIST,
        }
    }

    /// The params.
    pub fn params(&self) -> Value {
        match self {
            InputRequest::Sampling(p) => serde_json::to_value(p).unwrap_or(Value::Null),
            InputRequest::Elicitation(p) => serde_json::to_value(p).unwrap_or(Value::Null),
            InputRequest::ListRoots => json!({}),
        }
    }

    /// The `requiredCapabilities` object of a `-32021` error for this request.
    fn required_capabilities(&self) -> Value {
        match self {
            InputRequest::Sampling(_) => json!({"sampling": {}}),
            InputRequest::Elicitation(p) if p.mode.as_deref() == Some("url") => {
                json!({"elicitation": {"url": {}}})
            }
            InputRequest::Elicitation(_) => json!({"elicitation": {}}),
            InputRequest::ListRoots => json!({"roots": {}}),
        }
    }

    /// Checks that an answer has the shape of this request's result.
    pub(crate) fn check_answer(&self, answer: &Value) -> Result<(), String> {
        let ok = match self {
            InputRequest::Sampling(_) => {
                serde_json::from_value::<CreateMessageResult>(answer.clone()).is_ok()
            }
            InputRequest::Elicitation(_) => serde_json::from_value::<ElicitResult>(answer.clone())
                .is_ok_and(|r| matches!(r.action.as_str(), "accept" | "decline" | "cancel")),
            InputRequest::ListRoots => {
                serde_json::from_value::<ListRootsResult>(answer.clone()).is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(format!("not a valid {} result", self.method()))
        }
    }

    /// The capability the client must have declared, if it lacks it.
    pub(crate) fn missing_capability(&self, caps: &ClientCapabilities) -> Option<&'static str> {
        match self {
            InputRequest::Sampling(_) if caps.sampling.is_none() => Some("sampling"),
            InputRequest::Elicitation(p) => match (&caps.elicitation, p.mode.as_deref()) {
                (None, _) => Some("elicitation"),
                (Some(e), Some("url")) if !e.contains_key("url") => Some("elicitation.url"),
                _ => None,
            },
            InputRequest::ListRoots if caps.roots.is_none() => Some("roots"),
            _ => None,
        }
    }
}

/// Why the client's input could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The client did not declare the capability the request needs.
    #[error("the client does not support {0}")]
    Unsupported(&'static str),
    /// The client answered with a JSON-RPC error.
    #[error("the client refused: {} ({})", .0.message, .0.code)]
    Rejected(ErrorObject),
    /// The client's answer did not have the expected shape.
    #[error("malformed answer from the client")]
    Malformed(#[source] serde_json::Error),
    /// There is no way to reach the client (closed stream, too many questions pending): the
    /// source says which.
    #[error("cannot reach the client")]
    Unreachable(#[source] crate::BoxError),
}

impl From<InputError> for crate::tool::ToolError {
    fn from(e: InputError) -> Self {
        crate::tool::ToolError::new(crate::error_chain(&e))
    }
}

/// The stateless era's per-call record of questions and answers.
#[derive(Debug, Default)]
pub(crate) struct Rounds {
    pub(crate) responses: Map<String, Value>,
    pub(crate) asked: usize,
    pub(crate) needed: Vec<(String, Value)>,
    /// Set when the call must end with this error instead (2026-07-28 only).
    pub(crate) failure: Option<ErrorObject>,
}

/// How a handler's questions reach the client.
#[derive(Clone)]
pub(crate) enum InputChannel {
    /// Server-to-client requests on the call's stream (stateful sessions).
    Stream {
        session: Arc<Session>,
        outbound: Arc<dyn Outbound>,
    },
    /// Multi round-trip requests (2026-07-28).
    Rounds {
        rounds: Arc<Mutex<Rounds>>,
        /// Fires when the handler asked something not yet answered.
        needs_input: CancellationSignal,
    },
}

impl InputChannel {
    pub(crate) async fn ask(
        &self,
        key: Option<String>,
        request: InputRequest,
        caps: &ClientCapabilities,
    ) -> Result<Value, InputError> {
        if let Some(cap) = request.missing_capability(caps) {
            if let InputChannel::Rounds {
                rounds,
                needs_input,
            } = self
            {
                {
                    let mut r = rounds.lock().unwrap_or_else(|p| p.into_inner());
                    r.failure.get_or_insert_with(|| {
                        ErrorObject::new(
                            code::MISSING_REQUIRED_CLIENT_CAPABILITY,
                            format!("Missing required client capability: {cap}"),
                        )
                        .with_data(json!({"requiredCapabilities": request.required_capabilities()}))
                    });
                }
                needs_input.cancel();
                return std::future::pending().await;
            }
            return Err(InputError::Unsupported(cap));
        }
        match self {
            InputChannel::Stream { session, outbound } => {
                ask_over_stream(session, outbound.as_ref(), key, &request).await
            }
            InputChannel::Rounds {
                rounds,
                needs_input,
            } => {
                match recorded_answer(rounds, key, &request) {
                    Some(v) => Ok(v),
                    None => {
                        // End the round: the server answers with InputRequiredResult.
                        needs_input.cancel();
                        std::future::pending().await
                    }
                }
            }
        }
    }
}

/// Sends `request` to the client on the call's stream (naming `key` in its `_meta`, see
/// [`META_INPUT_KEY`]) and waits for its answer.
async fn ask_over_stream(
    session: &Session,
    outbound: &dyn Outbound,
    key: Option<String>,
    request: &InputRequest,
) -> Result<Value, InputError> {
    let (id, receiver) = session
        .begin_server_request()
        .map_err(|e| InputError::Unreachable(e.into()))?;
    let mut params = request.params();
    if let (Some(key), Value::Object(map)) = (key, &mut params) {
        map.insert("_meta".into(), json!({ META_INPUT_KEY: key }));
    }
    let message = Message::request(id.clone(), request.method(), Some(params));
    if let Err(e) = outbound.send(message).await {
        session.abandon_server_request(&id);
        return Err(InputError::Unreachable(e.into()));
    }
    match receiver.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(InputError::Rejected(error)),
        Err(_) => Err(InputError::Unreachable("the session ended".into())),
    }
}

/// The client's answer to `request` among this round's `inputResponses` (under `key`, or
/// `input_<n>` for the n-th question); `None` when it has none yet (the question is recorded
/// for the next round) or a wrong one (the call's failure is recorded).
fn recorded_answer(
    rounds: &Mutex<Rounds>,
    key: Option<String>,
    request: &InputRequest,
) -> Option<Value> {
    let mut r = rounds.lock().unwrap_or_else(|p| p.into_inner());
    let key = key.unwrap_or_else(|| format!("input_{}", r.asked));
    r.asked += 1;
    match r.responses.get(&key) {
        Some(v) => match request.check_answer(v) {
            Ok(()) => Some(v.clone()),
            Err(detail) => {
                r.failure.get_or_insert_with(|| {
                    ErrorObject::invalid_params(format!("inputResponses.{key}: {detail}"))
                });
                None
            }
        },
        None => {
            let asked = json!({"method": request.method(), "params": request.params()});
            r.needed.push((key, asked));
            None
        }
    }
}

pub(crate) fn parse_answer<T: DeserializeOwned>(value: Value) -> Result<T, InputError> {
    serde_json::from_value(value).map_err(InputError::Malformed)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use serde_json::json;

    use crate::client_features::CreateMessageParams;
    use crate::service::{BoxFuture, MessageContext, SendError};
    use crate::{McpServer, McpService, NoArgs, RequestId, ToolContext, ToolError};

    use super::*;

    /// The same handler for both eras: two questions asked together.
    async fn two_questions(ctx: ToolContext, _: NoArgs) -> Result<String, ToolError> {
        let answers = ctx
            .ask_all(vec![
                ("roots".into(), InputRequest::ListRoots),
                (
                    "model".into(),
                    InputRequest::Sampling(CreateMessageParams::user_text("hi", 5)),
                ),
            ])
            .await;
        let mut answers = answers.into_iter();
        let (Some(roots), Some(sample)) = (answers.next(), answers.next()) else {
            return Err(ToolError::new("two answers expected"));
        };
        let (roots, sample) = (roots?, sample?);
        Ok(format!(
            "{} roots; {}",
            roots["roots"].as_array().map_or(0, Vec::len),
            sample["content"]["text"].as_str().unwrap_or_default()
        ))
    }

    #[derive(Default)]
    struct Capture(Mutex<Vec<Message>>);

    impl crate::Outbound for Capture {
        fn send(&self, message: Message) -> BoxFuture<'_, Result<(), SendError>> {
            self.0.lock().unwrap().push(message);
            Box::pin(async { Ok(()) })
        }
    }

    /// Yields once to the executor.
    struct YieldNow(bool);
    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                Poll::Ready(())
            } else {
                self.0 = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }

    fn server() -> McpServer {
        McpServer::builder("t")
            .tool("two_questions", "Asks two things.", two_questions)
            .build()
            .unwrap()
    }

    #[test]
    fn stateful_questions_are_server_requests_on_the_call_stream() {
        let server = server();
        let session = Arc::new(Session::new(Some("s".into())));
        let init = Message::request(
            0,
            "initialize",
            Some(json!({"protocolVersion":"2025-11-25",
            "capabilities":{"roots":{},"sampling":{}},"clientInfo":{"name":"c","version":"1"}})),
        );
        futures::executor::block_on(server.handle(init, MessageContext::new(Arc::clone(&session))));
        let capture = Arc::new(Capture::default());
        let ctx = MessageContext::new(Arc::clone(&session)).with_outbound(capture.clone());
        let call = Message::request(1, "tools/call", Some(json!({"name":"two_questions"})));
        let client = async {
            let requests = loop {
                let sent = capture.0.lock().unwrap().clone();
                if sent.len() == 2 {
                    break sent;
                }
                YieldNow(false).await;
            };
            for m in requests {
                let Message::Request(r) = m else {
                    panic!("not a request: {m:?}")
                };
                let (key, result) = match r.method.as_str() {
                    "roots/list" => ("roots", json!({"roots":[{"uri":"file:///a"}]})),
                    "sampling/createMessage" => (
                        "model",
                        json!({"role":"assistant",
                        "content":{"type":"text","text":"hello"},"model":"m"}),
                    ),
                    other => panic!("unexpected {other}"),
                };
                // Each request names the key the handler asked under.
                assert_eq!(r.params.as_ref().unwrap()["_meta"][META_INPUT_KEY], key);
                let answer = Message::Response(crate::Response::result(r.id, result));
                assert!(
                    server
                        .handle(answer, MessageContext::new(Arc::clone(&session)))
                        .await
                        .is_none()
                );
            }
        };
        let (reply, ()) =
            futures::executor::block_on(futures::future::join(server.handle(call, ctx), client));
        let reply = serde_json::to_value(reply.unwrap()).unwrap();
        assert_eq!(reply["result"]["content"][0]["text"], "1 roots; hello");
    }

    #[test]
    fn stateless_questions_go_out_together_and_answers_come_back_by_key() {
        let server = server();
        let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"roots":{},"sampling":{}}});
        let run = |params: Value| {
            let session = Arc::new(Session::stateless(crate::ProtocolVersion::V2026_07_28));
            let call = Message::request(7, "tools/call", Some(params));
            let reply =
                futures::executor::block_on(server.handle(call, MessageContext::new(session)));
            serde_json::to_value(reply.unwrap()).unwrap()
        };
        let first = run(json!({"name":"two_questions","_meta":meta}));
        let result = &first["result"];
        assert_eq!(result["resultType"], "input_required");
        assert_eq!(
            result["inputRequests"]["roots"],
            json!({"method":"roots/list","params":{}})
        );
        assert_eq!(
            result["inputRequests"]["model"]["method"],
            "sampling/createMessage"
        );
        let answers = json!({"roots":{"roots":[]},
            "model":{"role":"assistant","content":{"type":"text","text":"hey"},"model":"m"}});
        let second = run(
            json!({"name":"two_questions","_meta":meta,"inputResponses":answers,
            "requestState": result["requestState"]}),
        );
        assert_eq!(second["result"]["content"][0]["text"], "0 roots; hey");
        assert_eq!(
            second["id"],
            serde_json::to_value(RequestId::from(7)).unwrap()
        );
        // Without roots declared, the question is a -32021 with the capability it needs.
        let narrow = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"sampling":{}}});
        let refused = run(json!({"name":"two_questions","_meta":narrow}));
        assert_eq!(refused["error"]["code"], -32021);
        assert_eq!(
            refused["error"]["data"],
            json!({"requiredCapabilities":{"roots":{}}})
        );
    }
}
