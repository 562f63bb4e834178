//! The approval loop: answer `mcp_approval_request` items until the response is final.

use async_openai::types::responses::{
    CreateResponse, InputItem, InputParam, Item, MCPApprovalRequest, MCPApprovalResponse,
    OutputItem, Response,
};
use futures::future::BoxFuture;

use crate::api::ResponsesApi;
use crate::error::Error;

/// The caller's answer to one approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalDecision {
    /// Whether the call may run.
    pub approve: bool,
    /// An optional reason, sent along.
    pub reason: Option<String>,
}

impl ApprovalDecision {
    /// Let the call run.
    pub fn approve() -> Self {
        Self {
            approve: true,
            reason: None,
        }
    }

    /// Refuse the call, saying why.
    pub fn deny(reason: impl Into<String>) -> Self {
        Self {
            approve: false,
            reason: Some(reason.into()),
        }
    }
}

/// Decides approval requests. Any `Fn(&MCPApprovalRequest) -> ApprovalDecision` is one; implement
/// the trait directly to decide asynchronously (e.g. by asking a person).
pub trait Approver: Send + Sync {
    /// The decision for `request` (its `server_label`, `name` and JSON `arguments`).
    fn decide<'a>(&'a self, request: &'a MCPApprovalRequest) -> BoxFuture<'a, ApprovalDecision>;
}

impl<F> Approver for F
where
    F: Fn(&MCPApprovalRequest) -> ApprovalDecision + Send + Sync,
{
    fn decide<'a>(&'a self, request: &'a MCPApprovalRequest) -> BoxFuture<'a, ApprovalDecision> {
        let decision = self(request);
        Box::pin(async move { decision })
    }
}

/// The approval requests of a response, in output order.
pub fn approval_requests(response: &Response) -> Vec<&MCPApprovalRequest> {
    response
        .output
        .iter()
        .filter_map(|item| match item {
            OutputItem::McpApprovalRequest(request) => Some(request),
            _ => None,
        })
        .collect()
}

/// Sends a request and answers its approval requests round after round.
///
/// Each round sends one `mcp_approval_response` per pending request, with `previous_response_id`
/// set to the response that asked and everything else (model, tools...) as in the first request.
/// The first response without approval requests is returned; after `max_rounds` answered rounds
/// with requests still pending, [`Error::TooManyApprovalRounds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApprovalLoop {
    max_rounds: u32,
}

impl Default for ApprovalLoop {
    fn default() -> Self {
        Self { max_rounds: 8 }
    }
}

impl ApprovalLoop {
    /// A loop of at most 8 answered rounds.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the most answered rounds.
    pub fn max_rounds(mut self, rounds: u32) -> Self {
        self.max_rounds = rounds;
        self
    }

    /// Runs the loop.
    pub async fn run<A, P>(
        &self,
        api: &A,
        request: CreateResponse,
        approver: &P,
    ) -> Result<Response, Error>
    where
        A: ResponsesApi + ?Sized,
        P: Approver + ?Sized,
    {
        let mut response = api.create(request.clone()).await?;
        let mut rounds = 0;
        loop {
            let pending = approval_requests(&response);
            if pending.is_empty() {
                return Ok(response);
            }
            if rounds >= self.max_rounds {
                return Err(Error::TooManyApprovalRounds {
                    rounds: self.max_rounds,
                    last_response_id: response.id,
                });
            }
            let mut answers = Vec::with_capacity(pending.len());
            for approval in pending {
                let decision = approver.decide(approval).await;
                tracing::debug!(
                    server_label = %approval.server_label,
                    tool = %approval.name,
                    approve = decision.approve,
                    "answering an MCP approval request"
                );
                answers.push(InputItem::Item(Item::McpApprovalResponse(
                    MCPApprovalResponse {
                        approval_request_id: approval.id.clone(),
                        approve: decision.approve,
                        id: None,
                        reason: decision.reason,
                    },
                )));
            }
            let mut next = request.clone();
            next.input = InputParam::Items(answers);
            next.previous_response_id = Some(response.id.clone());
            next.stream = None;
            response = api.create(next).await?;
            rounds += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use serde_json::{Value, json};

    use super::*;
    use crate::api::EventStream;
    use crate::{McpTool, mcp_request};

    /// Answers with scripted responses and records every request.
    struct Scripted {
        responses: Mutex<Vec<Value>>,
        requests: Mutex<Vec<Value>>,
    }

    impl Scripted {
        fn new(responses: Vec<Value>) -> Self {
            Self {
                responses: Mutex::new(responses),
                requests: Mutex::new(Vec::new()),
            }
        }
    }

    impl ResponsesApi for Scripted {
        fn create(&self, request: CreateResponse) -> BoxFuture<'_, Result<Response, Error>> {
            self.requests
                .lock()
                .unwrap()
                .push(serde_json::to_value(&request).unwrap());
            let next = self.responses.lock().unwrap().remove(0);
            Box::pin(async move { Ok(serde_json::from_value(next).unwrap()) })
        }

        fn create_stream(&self, _: CreateResponse) -> BoxFuture<'_, Result<EventStream, Error>> {
            Box::pin(async { Err(Error::InvalidRequest("not scripted".to_owned())) })
        }

        fn retrieve<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Response, Error>> {
            Box::pin(async { Err(Error::InvalidRequest("not scripted".to_owned())) })
        }
    }

    fn response(id: &str, output: Value) -> Value {
        json!({"id": id, "object": "response", "created_at": 1, "status": "completed",
               "model": "gpt-4.1", "output": output})
    }

    fn approval(id: &str) -> Value {
        json!({"type": "mcp_approval_request", "id": id, "server_label": "dice_server",
               "name": "roll_dice", "arguments": "{\"n_dice\":3}"})
    }

    #[tokio::test]
    async fn each_round_answers_every_request_and_chains_the_previous_response() {
        let api = Scripted::new(vec![
            response("resp_1", json!([approval("mcpr_a"), approval("mcpr_b")])),
            response(
                "resp_2",
                json!([{"type": "message", "id": "msg_1", "role": "assistant", "status": "completed",
                        "content": [{"type": "output_text", "text": "done", "annotations": []}]}]),
            ),
        ]);
        let approver = |request: &MCPApprovalRequest| {
            if request.id == "mcpr_a" {
                ApprovalDecision::approve()
            } else {
                ApprovalDecision::deny("twice is enough")
            }
        };
        let tool = McpTool::new("dice_server", "http://h/sse");
        let request = mcp_request("gpt-4.1", "Roll a few dice!", [tool]);
        let done = ApprovalLoop::new()
            .run(&api, request, &approver)
            .await
            .unwrap();
        assert_eq!(done.output_text().as_deref(), Some("done"));
        let requests = api.requests.lock().unwrap();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0]["input"], "Roll a few dice!");
        assert_eq!(requests[1]["previous_response_id"], "resp_1");
        assert_eq!(requests[1]["model"], "gpt-4.1");
        assert_eq!(requests[1]["tools"], requests[0]["tools"]);
        assert_eq!(
            requests[1]["input"],
            json!([
                {"type": "mcp_approval_response", "approval_request_id": "mcpr_a", "approve": true},
                {"type": "mcp_approval_response", "approval_request_id": "mcpr_b", "approve": false,
                 "reason": "twice is enough"}
            ])
        );
    }

    #[tokio::test]
    async fn the_round_limit_is_enforced() {
        let api = Scripted::new(vec![
            response("resp_1", json!([approval("mcpr_a")])),
            response("resp_2", json!([approval("mcpr_b")])),
        ]);
        let approve = |_: &MCPApprovalRequest| ApprovalDecision::approve();
        let error = ApprovalLoop::new()
            .max_rounds(1)
            .run(&api, mcp_request("m", "x", []), &approve)
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            Error::TooManyApprovalRounds { rounds: 1, ref last_response_id } if last_response_id == "resp_2"
        ));
    }
}
