//! A Responses API client on async-openai, with a builder for remote MCP tools and an approval loop.
//!
//! - [`ResponsesApi`] is the backend seam (create, create streaming, retrieve);
//!   [`OpenAiResponses`] implements it with async-openai, reading `OPENAI_BASE_URL` and
//!   `OPENAI_API_KEY` unless the builder sets them. Point it at OpenAI, or at the local endpoint of
//!   the `responses-local` crate (`http://127.0.0.1:<port>/v1`).
//! - [`McpTool`] describes a remote MCP server (`server_label`, `server_url`, headers or a bearer
//!   token, `require_approval`, `allowed_tools`, `server_description`) and becomes async-openai's
//!   `Tool::Mcp`.
//! - [`ApprovalLoop`] answers `mcp_approval_request` items through an [`Approver`] and chains the
//!   follow-ups with `previous_response_id` until the final response (read it with
//!   `Response::output_text()`).
//! - [`Error::ExternalConnector`] is the 424 `external_connector_error`, with the MCP server's
//!   label and upstream HTTP status parsed from the message ([`ConnectorFailure`]).
//!
//! ```no_run
//! use responses_client::{ApprovalDecision, ApprovalLoop, McpTool, OpenAiResponses, mcp_request};
//!
//! # async fn demo() -> Result<(), responses_client::Error> {
//! let api = OpenAiResponses::from_env();
//! let dice = McpTool::new("dice_server", "https://your-server-url.com/sse").bearer_token("token");
//! let request = mcp_request("gpt-4.1", "Roll a few dice!", [dice]);
//! let approve_all = |_: &_| ApprovalDecision::approve();
//! match ApprovalLoop::new().run(&api, request, &approve_all).await {
//!     Ok(response) => println!("{}", response.output_text().unwrap_or_default()),
//!     Err(e) => match e.connector_failure() {
//!         Some(failure) => eprintln!(
//!             "{:?} answered HTTP {:?}",
//!             failure.server_label, failure.upstream_status
//!         ),
//!         None => return Err(e),
//!     },
//! }
//! # Ok(())
//! # }
//! ```

mod api;
mod approval;
mod error;
mod tool;

pub use api::{EventStream, OpenAiResponses, OpenAiResponsesBuilder, ResponsesApi};
pub use approval::{ApprovalDecision, ApprovalLoop, Approver, approval_requests};
pub use async_openai;
pub use error::{ConnectorFailure, Error};
pub use tool::{AllowedTools, McpTool, RequireApproval};

use async_openai::types::responses::{CreateResponse, InputParam, Tool};

/// A request for `model` with a text `input` and these MCP tools.
pub fn mcp_request(
    model: &str,
    input: &str,
    tools: impl IntoIterator<Item = McpTool>,
) -> CreateResponse {
    CreateResponse {
        model: Some(model.to_owned()),
        input: InputParam::Text(input.to_owned()),
        tools: Some(tools.into_iter().map(Tool::from).collect()),
        ..CreateResponse::default()
    }
}
