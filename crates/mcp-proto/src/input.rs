//! Asking the client for input from inside a handler: one API for both eras.
//!
//! In a legacy session a request becomes a server-to-client JSON-RPC request on the call's
//! stream, and the handler awaits the client's response. Under 2026-07-28 there is no such
//! stream: the handler runs again on every round, each question is answered from the input
//! response the client sent under the question's key (chosen by the handler with
//! [`crate::ToolContext::ask_as`], or `input_<k>` for the k-th question), and unanswered
//! questions end the round with an `InputRequiredResult` whose signed `requestState` carries
//! the answers gathered so far. Questions asked together ([`crate::ToolContext::ask_all`]) go
//! out in one round. The handler's code is the same in both cases.
//!
//! Under 2026-07-28 a question the request's `clientCapabilities` do not allow ends the call
//! with `-32021` (`data.requiredCapabilities`), and an answer of the wrong shape ends it with
//! `-32602`; in a legacy session the handler sees [`InputError::Unsupported`] and
//! [`InputError::Malformed`] instead.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cancel::CancellationSignal;
use crate::jsonrpc::{ErrorObject, Message, code};
use crate::service::{Outbound, Session};
use crate::types::{ClientCapabilities, method};
use crate::types_input::{
    CreateMessageParams, CreateMessageResult, ElicitParams, ElicitResult, ListRootsResult,
};

/// A question for the client.
#[derive(Debug, Clone, PartialEq)]
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
    fn check_answer(&self, answer: &Value) -> Result<(), String> {
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
    fn missing_capability(&self, caps: &ClientCapabilities) -> Option<&'static str> {
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
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InputError {
    /// The client did not declare the capability the request needs.
    #[error("the client does not support {0}")]
    Unsupported(&'static str),
    /// The client answered with a JSON-RPC error.
    #[error("the client refused: {} ({})", .0.message, .0.code)]
    Rejected(ErrorObject),
    /// The client's answer did not have the expected shape.
    #[error("malformed answer from the client: {0}")]
    Malformed(String),
    /// There is no way to reach the client (closed stream, too many questions pending).
    #[error("cannot reach the client: {0}")]
    Unreachable(String),
}

impl From<InputError> for crate::tool::ToolError {
    fn from(e: InputError) -> Self {
        crate::tool::ToolError::new(e.to_string())
    }
}

/// The modern era's per-call record of questions and answers.
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
    /// Server-to-client requests on the call's stream (legacy sessions).
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
                let (id, receiver) = session
                    .begin_server_request()
                    .map_err(|e| InputError::Unreachable(e.to_string()))?;
                let message =
                    Message::request(id.clone(), request.method(), Some(request.params()));
                if let Err(e) = outbound.send(message).await {
                    session.abandon_server_request(&id);
                    return Err(InputError::Unreachable(e.to_string()));
                }
                match receiver.await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(error)) => Err(InputError::Rejected(error)),
                    Err(_) => Err(InputError::Unreachable("the session ended".into())),
                }
            }
            InputChannel::Rounds {
                rounds,
                needs_input,
            } => {
                let answer = {
                    let mut r = rounds.lock().unwrap_or_else(|p| p.into_inner());
                    let key = key.unwrap_or_else(|| format!("input_{}", r.asked));
                    r.asked += 1;
                    match r.responses.get(&key) {
                        Some(v) => match request.check_answer(v) {
                            Ok(()) => Some(v.clone()),
                            Err(detail) => {
                                r.failure.get_or_insert_with(|| {
                                    ErrorObject::invalid_params(format!(
                                        "inputResponses.{key}: {detail}"
                                    ))
                                });
                                None
                            }
                        },
                        None => {
                            r.needed.push((
                                key,
                                json!({"method": request.method(), "params": request.params()}),
                            ));
                            None
                        }
                    }
                };
                match answer {
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

pub(crate) fn parse_answer<T: DeserializeOwned>(value: Value) -> Result<T, InputError> {
    serde_json::from_value(value).map_err(|e| InputError::Malformed(e.to_string()))
}
