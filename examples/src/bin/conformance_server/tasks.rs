//! The fixtures of the suite's `tasks-*` scenarios (2026-07-28 `io.modelcontextprotocol/tasks`).

use std::time::Duration;

use mcp_proto::client_features::ElicitParams;
use mcp_proto::{
    InputRequest, NoArgs, ServerBuilder, TaskSupport, ToolContext, ToolDef, ToolError,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

use super::{ToolResult, content_str, name_form, object, text};

#[derive(Deserialize, JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

#[derive(Deserialize, JsonSchema)]
struct SlowComputeArgs {
    /// How long to work, in seconds (0 answers at once).
    #[schemars(range(max = 3600))]
    seconds: u64,
    /// A label echoed in the result.
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
struct ConfirmDeleteArgs {
    /// The file to delete.
    filename: String,
}

fn confirm_form(message: String) -> ElicitParams {
    ElicitParams::form(
        message,
        object(
            json!({"type":"object","properties":{"confirm":{"type":"boolean"}},"required":["confirm"]}),
        ),
    )
}

async fn slow_compute(args: SlowComputeArgs) -> ToolResult {
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let label = args.label.unwrap_or_default();
    text(format!("computed {label} after {} s", args.seconds))
}

async fn failing_job(_: NoArgs) -> ToolResult {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Err(ToolError::new("the job failed"))
}

async fn protocol_error_job(_: NoArgs) -> ToolResult {
    if std::hint::black_box(true) {
        panic!("protocol_error_job fails at the protocol level");
    }
    text("unreachable")
}

async fn confirm_delete(ctx: ToolContext, args: ConfirmDeleteArgs) -> ToolResult {
    let answer = ctx
        .elicit(confirm_form(format!("Delete {}?", args.filename)))
        .await?;
    if answer.action == "accept" && content_str(&answer.content, "confirm") == "true" {
        text(format!("deleted {}", args.filename))
    } else {
        text(format!("kept {}", args.filename))
    }
}

async fn multi_input(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let answers = ctx
        .ask_all(vec![
            (
                "name".into(),
                InputRequest::Elicitation(name_form("Your name?")),
            ),
            (
                "confirm".into(),
                InputRequest::Elicitation(confirm_form("Go ahead?".into())),
            ),
        ])
        .await;
    let mut parts = Vec::new();
    for answer in answers {
        let answer = answer?;
        parts.push(answer["content"].to_string());
    }
    text(format!("got {}", parts.join(" and ")))
}

/// Asks for the user's name in input rounds, then goes on as a task.
async fn tool_with_task(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let who = ctx
        .elicit_as("user_name", name_form("What is your name?"))
        .await?;
    ctx.start_task().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    text(format!("Hello, {}!", content_str(&who.content, "name")))
}

/// Registers the task fixtures.
pub(super) fn register(builder: ServerBuilder) -> ServerBuilder {
    let optional = |name: &str, description: &str| {
        ToolDef::new(name, description).task_support(TaskSupport::Optional)
    };
    let required = |name: &str, description: &str| {
        ToolDef::new(name, description).task_support(TaskSupport::Required)
    };
    builder
        .tool(
            "greet",
            "Greets someone (never a task)",
            |a: GreetArgs| async move { text(format!("Hello, {}!", a.name)) },
        )
        .tool_with(
            optional(
                "slow_compute",
                "Works for `seconds` seconds, as a task when it can",
            ),
            slow_compute,
        )
        .tool_with(
            required(
                "failing_job",
                "Fails with a tool error after a second (task only)",
            ),
            failing_job,
        )
        .tool_with(
            optional("protocol_error_job", "Fails at the protocol level"),
            protocol_error_job,
        )
        .tool_with(
            optional("confirm_delete", "Asks for confirmation, then deletes"),
            confirm_delete,
        )
        .tool_with(
            optional("multi_input", "Asks two questions at once"),
            multi_input,
        )
        .tool_with(
            required(
                "test_tool_with_task",
                "Asks for a name, then runs as a task",
            )
            .defer_task(),
            tool_with_task,
        )
}
