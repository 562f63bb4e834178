//! Asking the client for input from inside a handler: one API for both eras.
//!
//! In a legacy session a request becomes a server-to-client JSON-RPC request on the call's
//! stream, and the handler awaits the client's response. Under 2026-07-28 there is no such
//! stream: the handler runs again on every round, the k-th input it asks for is answered from
//! the k-th input response the client sent on its retry, and an unanswered question ends the
//! round with an `InputRequiredResult` whose signed `requestState` carries earlier answers.
//! The handler's code is the same in both cases.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::cancel::CancellationSignal;
use crate::jsonrpc::{ErrorObject, Message};
use crate::service::{Outbound, Session};
use crate::types::{ClientCapabilities, method};
use crate::types_input::{CreateMessageParams, ElicitParams};

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
        request: InputRequest,
        caps: &ClientCapabilities,
    ) -> Result<Value, InputError> {
        if let Some(cap) = request.missing_capability(caps) {
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
                    let key = format!("input_{}", r.asked);
                    r.asked += 1;
                    match r.responses.get(&key) {
                        Some(v) => Some(v.clone()),
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
