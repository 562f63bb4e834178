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
