//! The conformance fixture server: exactly the tools, resources and prompts the official MCP
//! conformance suite (`@modelcontextprotocol/conformance`) names, registered through
//! [`McpServer::builder`] and served by [`McpHttpServer`] at `/mcp` on `127.0.0.1:--port`.
//!
//! The same handlers serve both eras: in a stateful (2025-11-25) session their questions to the
//! client travel as server-to-client requests on the call's SSE stream; under 2026-07-28 they
//! become `InputRequiredResult` rounds. `cargo xtask conformance` starts it.

use std::time::Duration;

#[path = "conformance_server/tasks.rs"]
mod tasks;

use clap::Parser;
use mcp_proto::client_features::{CreateMessageParams, ElicitParams};
use mcp_proto::listen::Change;
use mcp_proto::types::{
    Completion, ContentBlock, LoggingLevel, PromptMessage, Resource, ResourceContents,
    ResourceTemplate, Role,
};
use mcp_proto::{
    CallToolResult, InputRequest, McpServer, NoArgs, ServerBuilder, ToolContext, ToolDef, ToolError,
};
use mcp_sse::McpHttpServer;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// A 1×1 red PNG.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
const WAV: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "The MCP conformance fixture server")]
struct Cli {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 3001)]
    port: u16,
    /// Serve over stdin/stdout instead of HTTP (exits when stdin closes).
    #[arg(long)]
    stdio: bool,
}

type ToolResult = Result<CallToolResult, ToolError>;

fn text(t: impl Into<String>) -> ToolResult {
    Ok(CallToolResult::content(vec![ContentBlock::text(t)]))
}

fn object(v: Value) -> mcp_proto::types::JsonObject {
    match v {
        Value::Object(m) => m,
        _ => Default::default(),
    }
}

fn name_form(message: &str) -> ElicitParams {
    ElicitParams::form(
        message,
        object(
            json!({"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}),
        ),
    )
}

fn content_str(content: &Option<mcp_proto::types::JsonObject>, key: &str) -> String {
    content
        .as_ref()
        .and_then(|c| c.get(key))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

fn sampled_text(r: &mcp_proto::client_features::CreateMessageResult) -> String {
    r.content.as_text().unwrap_or_default().to_owned()
}

// ---- content tools ------------------------------------------------------------------------

async fn simple_text(_: NoArgs) -> ToolResult {
    text("This is a simple text response for testing.")
}

async fn image_content(_: NoArgs) -> ToolResult {
    Ok(CallToolResult::content(vec![ContentBlock::image(
        PNG,
        "image/png",
    )]))
}

async fn audio_content(_: NoArgs) -> ToolResult {
    Ok(CallToolResult::content(vec![ContentBlock::audio(
        WAV,
        "audio/wav",
    )]))
}

async fn embedded_resource(_: NoArgs) -> ToolResult {
    Ok(CallToolResult::content(vec![ContentBlock::embedded_text(
        "test://embedded-resource",
        "text/plain",
        "This is an embedded resource content.",
    )]))
}

async fn multiple_content_types(_: NoArgs) -> ToolResult {
    Ok(CallToolResult::content(vec![
        ContentBlock::text("Multiple content types test:"),
        ContentBlock::image(PNG, "image/png"),
        ContentBlock::embedded_text(
            "test://mixed-content-resource",
            "application/json",
            r#"{"test":"data","value":123}"#,
        ),
    ]))
}

async fn error_handling(_: NoArgs) -> ToolResult {
    Err(ToolError::new(
        "This tool intentionally returns an error for testing",
    ))
}

// ---- logging and progress ---------------------------------------------------------------

async fn tool_with_logging(ctx: ToolContext, _: NoArgs) -> ToolResult {
    for (i, message) in [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ctx.log(LoggingLevel::Info, None, json!(message))
            .await
            .map_err(mcp_proto::tool_error)?;
    }
    text("Tool with logging executed successfully")
}

async fn tool_with_progress(ctx: ToolContext, _: NoArgs) -> ToolResult {
    for step in [0.0, 50.0, 100.0] {
        if step > 0.0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ctx.progress(
            step,
            Some(100.0),
            Some(&format!("Completed step {step} of 100")),
        )
        .await
        .map_err(mcp_proto::tool_error)?;
    }
    let token = ctx
        .meta()
        .and_then(|m| m.get("progressToken"))
        .map(|t| match t {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .unwrap_or_default();
    text(token)
}

async fn logging_tool(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.log(LoggingLevel::Info, None, json!("Logging tool invoked"))
        .await
        .map_err(mcp_proto::tool_error)?;
    text("Logging evaluated")
}

async fn streaming_elicitation(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.progress(1.0, Some(1.0), Some("Streaming"))
        .await
        .map_err(mcp_proto::tool_error)?;
    text("Streaming complete")
}

// ---- asking the client ------------------------------------------------------------------

#[derive(Deserialize, JsonSchema)]
struct SamplingArgs {
    /// The prompt to send to the client's model.
    prompt: String,
}

async fn sampling(ctx: ToolContext, args: SamplingArgs) -> ToolResult {
    match ctx
        .sample(CreateMessageParams::user_text(args.prompt, 100))
        .await
    {
        Ok(r) => text(format!("LLM response: {}", sampled_text(&r))),
        Err(e) => text(format!("Sampling not supported or error: {e}")),
    }
}

#[derive(Deserialize, JsonSchema)]
struct ElicitationArgs {
    /// The message to show the user.
    message: String,
}

async fn elicitation(ctx: ToolContext, args: ElicitationArgs) -> ToolResult {
    let schema = json!({"type":"object","properties":{"response":{"type":"string","description":"User's response"}},"required":["response"]});
    let r = ctx
        .elicit(ElicitParams::form(args.message, object(schema)))
        .await?;
    text(format!(
        "User response: action={}, content={}",
        r.action,
        json!(r.content)
    ))
}

async fn elicitation_defaults(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let schema = json!({"type":"object","properties":{
        "name":{"type":"string","description":"User name","default":"John Doe"},
        "age":{"type":"integer","description":"User age","default":30},
        "score":{"type":"number","description":"User score","default":95.5},
        "status":{"type":"string","description":"User status","enum":["active","inactive","pending"],"default":"active"},
        "verified":{"type":"boolean","description":"Verification status","default":true}},"required":[]});
    let r = ctx
        .elicit(ElicitParams::form(
            "Please review and update the form fields with defaults",
            object(schema),
        ))
        .await?;
    text(format!(
        "Elicitation completed: action={}, content={}",
        r.action,
        json!(r.content)
    ))
}

async fn elicitation_enums(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let schema = json!({"type":"object","properties":{
        "untitledSingle":{"type":"string","description":"Select one option","enum":["option1","option2","option3"]},
        "titledSingle":{"type":"string","description":"Select one option with titles","oneOf":[{"const":"value1","title":"First Option"},{"const":"value2","title":"Second Option"},{"const":"value3","title":"Third Option"}]},
        "legacyEnum":{"type":"string","description":"Select one option (legacy)","enum":["opt1","opt2","opt3"],"enumNames":["Option One","Option Two","Option Three"]},
        "untitledMulti":{"type":"array","description":"Select multiple options","minItems":1,"maxItems":3,"items":{"type":"string","enum":["option1","option2","option3"]}},
        "titledMulti":{"type":"array","description":"Select multiple options with titles","minItems":1,"maxItems":3,"items":{"anyOf":[{"const":"value1","title":"First Choice"},{"const":"value2","title":"Second Choice"},{"const":"value3","title":"Third Choice"}]}}},"required":[]});
    let r = ctx
        .elicit(ElicitParams::form(
            "Please select options from the enum fields",
            object(schema),
        ))
        .await?;
    text(format!(
        "Elicitation completed: action={}, content={}",
        r.action,
        json!(r.content)
    ))
}

async fn missing_capability(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.sample(CreateMessageParams::user_text("Say hello", 10))
        .await?;
    text("Success")
}

async fn input_elicitation(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let r = ctx
        .elicit_as("user_name", name_form("What is your name?"))
        .await?;
    text(format!("Hello, {}!", content_str(&r.content, "name")))
}

async fn input_sampling(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let r = ctx
        .sample_as(
            "sample_request",
            CreateMessageParams::user_text("What is the capital of France?", 100),
        )
        .await?;
    text(format!("Sampling result: {}", sampled_text(&r)))
}

async fn input_list_roots(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let r = ctx.list_roots_as("roots_request").await?;
    text(format!("Found {} root(s)", r.roots.len()))
}

fn confirm_form() -> ElicitParams {
    ElicitParams::form(
        "Please confirm",
        object(json!({"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]})),
    )
}

async fn input_request_state(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let r = ctx.elicit_as("confirm", confirm_form()).await?;
    if r.content.as_ref().and_then(|c| c.get("ok")) == Some(&json!(true)) {
        text("state-ok: requestState validated")
    } else {
        Err(ToolError::new("confirmation was not given"))
    }
}

async fn input_tampered_state(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.elicit_as("confirm", confirm_form()).await?;
    text("integrity-ok: state verified")
}

async fn input_multiple(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let answers = ctx
        .ask_all(vec![
            (
                "user_name".into(),
                InputRequest::Elicitation(name_form("What is your name?")),
            ),
            (
                "greeting".into(),
                InputRequest::Sampling(CreateMessageParams::user_text("Generate a greeting", 50)),
            ),
            ("client_roots".into(), InputRequest::ListRoots),
        ])
        .await;
    let mut answers = answers.into_iter();
    let mut next = || -> Result<Value, ToolError> {
        match answers.next() {
            Some(answer) => answer.map_err(ToolError::from),
            None => Err(ToolError::new(
                "the client gave fewer answers than questions",
            )),
        }
    };
    let name = next()?;
    let greeting = next()?;
    let roots = next()?;
    text(format!(
        "Name: {}; Greeting: {}; Roots: {}",
        name["content"]["name"].as_str().unwrap_or_default(),
        greeting["content"]["text"].as_str().unwrap_or_default(),
        roots["roots"].as_array().map_or(0, Vec::len)
    ))
}

async fn input_multi_round(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let step1 = ctx
        .elicit_as("step1", name_form("Step 1: What is your name?"))
        .await?;
    let step2 = ctx
        .elicit_as(
            "step2",
            ElicitParams::form(
                "Step 2: What is your favorite color?",
                object(json!({"type":"object","properties":{"color":{"type":"string"}},"required":["color"]})),
            ),
        )
        .await?;
    text(format!(
        "Multi-round complete for {} who likes {}",
        content_str(&step1.content, "name"),
        content_str(&step2.content, "color")
    ))
}

async fn input_capabilities(ctx: ToolContext, _: NoArgs) -> ToolResult {
    let caps = ctx.client_capabilities().clone();
    let mut requests = Vec::new();
    if caps.elicitation.is_some() {
        requests.push((
            "elicit_input".to_owned(),
            InputRequest::Elicitation(ElicitParams::form(
                "Elicitation input",
                object(json!({"type":"object","properties":{"value":{"type":"string"}},"required":["value"]})),
            )),
        ));
    }
    if caps.sampling.is_some() {
        requests.push((
            "sample_input".to_owned(),
            InputRequest::Sampling(CreateMessageParams::user_text("Sample request", 50)),
        ));
    }
    if requests.is_empty() {
        return text("No supported capabilities declared");
    }
    let keys: Vec<String> = requests.iter().map(|(k, _)| k.clone()).collect();
    for answer in ctx.ask_all(requests).await {
        answer?;
    }
    text(format!("capabilities-ok: received {}", keys.join(", ")))
}

async fn json_schema_tool(args: mcp_proto::types::JsonObject) -> ToolResult {
    text(format!(
        "JSON Schema 2020-12 tool called with: {}",
        Value::Object(args)
    ))
}

#[derive(Deserialize, JsonSchema)]
struct RegionArgs {
    /// The region, mirrored in the `Mcp-Param-Region` header.
    #[schemars(extend("x-mcp-header" = "Region"))]
    region: String,
}

async fn custom_header(args: RegionArgs) -> ToolResult {
    text(format!("Region: {}", args.region))
}

// ---- list changes -----------------------------------------------------------------------

async fn trigger_tool_change(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.notify_changed(Change::Tools).await;
    text("Mutation triggered")
}

async fn trigger_prompt_change(ctx: ToolContext, _: NoArgs) -> ToolResult {
    ctx.notify_changed(Change::Prompts).await;
    text("Mutation triggered")
}

// ---- resources and prompts --------------------------------------------------------------

fn resource(uri: &str, name: &str, title: &str, description: &str, mime: &str) -> Resource {
    Resource {
        uri: uri.into(),
        name: name.into(),
        title: Some(title.into()),
        description: Some(description.into()),
        mime_type: Some(mime.into()),
        size: None,
        icons: None,
    }
}

fn text_contents(uri: &str, mime: &str, text: &str) -> Vec<ResourceContents> {
    vec![ResourceContents::Text {
        uri: uri.into(),
        mime_type: Some(mime.into()),
        text: text.into(),
    }]
}

#[derive(Deserialize)]
struct TemplateParams {
    id: String,
}

#[derive(Deserialize, JsonSchema)]
struct PromptArgs {
    /// First test argument
    arg1: String,
    /// Second test argument
    arg2: String,
}

#[derive(Deserialize, JsonSchema)]
struct EmbeddedPromptArgs {
    /// URI of the resource to embed
    #[serde(rename = "resourceUri")]
    resource_uri: String,
}

fn user(content: ContentBlock) -> PromptMessage {
    PromptMessage {
        role: Role::User,
        content,
    }
}

fn server() -> Result<McpServer, mcp_proto::Error> {
    let server = McpServer::builder("mcp-conformance-test-server").version("1.0.0");
    let server = tasks::register(input_required_tools(notifying_tools(content_tools(server))));
    prompts(resources(server))
        .completion(|_| async { Ok(Completion::default()) })
        .build()
}

/// The tools whose results are content of each kind, errors, and the JSON Schema tool.
fn content_tools(server: ServerBuilder) -> ServerBuilder {
    server
        .tool("test_simple_text", "Returns a simple text response", simple_text)
        .tool("test_image_content", "Returns an image", image_content)
        .tool("test_audio_content", "Returns audio", audio_content)
        .tool("test_embedded_resource", "Returns an embedded resource", embedded_resource)
        .tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource",
            multiple_content_types,
        )
        .tool("test_error_handling", "Always fails with a tool error", error_handling)
        .tool_with(
            ToolDef::new(
                "json_schema_2020_12_tool",
                "Tool with JSON Schema 2020-12 features",
            )
            .input_schema(object(json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"$anchor": "addressDef", "type": "object",
                    "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"}, "email": {"type": "string"}},
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": false
            }))),
            json_schema_tool,
        )
}

/// The tools that talk back while they run: logs, progress, sampling, elicitation, list
/// changes, a custom header.
fn notifying_tools(server: ServerBuilder) -> ServerBuilder {
    server
        .tool(
            "test_tool_with_logging",
            "Sends three log messages while it runs",
            tool_with_logging,
        )
        .tool(
            "test_tool_with_progress",
            "Reports progress in three steps",
            tool_with_progress,
        )
        .tool(
            "test_sampling",
            "Asks the client's model to answer a prompt",
            sampling,
        )
        .tool(
            "test_elicitation",
            "Asks the user for a response",
            elicitation,
        )
        .tool(
            "test_elicitation_sep1034_defaults",
            "Asks the user for a form whose fields have defaults",
            elicitation_defaults,
        )
        .tool(
            "test_elicitation_sep1330_enums",
            "Asks the user to pick from enum fields",
            elicitation_enums,
        )
        .tool_with(
            ToolDef::new("test_missing_capability", "Needs the sampling capability"),
            missing_capability,
        )
        .tool(
            "test_custom_header",
            "Takes a region mirrored in an Mcp-Param header",
            custom_header,
        )
        .tool(
            "test_streaming_elicitation",
            "Streams a notification before its result",
            streaming_elicitation,
        )
        .tool(
            "test_logging_tool",
            "Logs only when the request opted in with a log level",
            logging_tool,
        )
        .tool(
            "test_trigger_tool_change",
            "Announces a tool list change to listeners",
            trigger_tool_change,
        )
        .tool(
            "test_trigger_prompt_change",
            "Announces a prompt list change to listeners",
            trigger_prompt_change,
        )
}

/// The multi-round (input required) tools.
fn input_required_tools(server: ServerBuilder) -> ServerBuilder {
    server
        .tool(
            "test_input_required_result_elicitation",
            "MRTR: returns InputRequiredResult with elicitation request",
            input_elicitation,
        )
        .tool(
            "test_input_required_result_sampling",
            "MRTR: returns InputRequiredResult with sampling request",
            input_sampling,
        )
        .tool(
            "test_input_required_result_list_roots",
            "MRTR: returns InputRequiredResult with roots request",
            input_list_roots,
        )
        .tool(
            "test_input_required_result_request_state",
            "MRTR: returns InputRequiredResult with requestState",
            input_request_state,
        )
        .tool(
            "test_input_required_result_multiple_inputs",
            "MRTR: returns InputRequiredResult with three input requests",
            input_multiple,
        )
        .tool(
            "test_input_required_result_multi_round",
            "MRTR: needs two rounds of input",
            input_multi_round,
        )
        .tool(
            "test_input_required_result_tampered_state",
            "MRTR: rejects a tampered requestState",
            input_tampered_state,
        )
        .tool(
            "test_input_required_result_capabilities",
            "MRTR: asks only for what the client declared",
            input_capabilities,
        )
}

/// The static resources and the resource template.
fn resources(server: ServerBuilder) -> ServerBuilder {
    server
        .resource(
            resource(
                "test://static-text",
                "static-text",
                "Static Text Resource",
                "A static text resource for testing",
                "text/plain",
            ),
            |_| async {
                Ok(text_contents(
                    "test://static-text",
                    "text/plain",
                    "This is the content of the static text resource.",
                ))
            },
        )
        .resource(
            resource(
                "test://static-binary",
                "static-binary",
                "Static Binary Resource",
                "A static binary resource (image) for testing",
                "image/png",
            ),
            |_| async {
                Ok(vec![ResourceContents::Blob {
                    uri: "test://static-binary".into(),
                    mime_type: Some("image/png".into()),
                    blob: PNG.into(),
                }])
            },
        )
        .resource(
            resource(
                "test://watched-resource",
                "watched-resource",
                "Watched Resource",
                "A resource for subscription tests",
                "text/plain",
            ),
            |_| async {
                Ok(text_contents(
                    "test://watched-resource",
                    "text/plain",
                    "Watched resource content",
                ))
            },
        )
        .resource_template(
            ResourceTemplate {
                uri_template: "test://template/{id}/data".into(),
                name: "template".into(),
                title: Some("Resource Template".into()),
                description: Some("A resource template with an id parameter".into()),
                mime_type: Some("application/json".into()),
                icons: None,
            },
            |_, uri: String, p: TemplateParams| async move {
                let body = json!({"id": p.id, "templateTest": true, "data": format!("Data for ID: {}", p.id)});
                Ok(text_contents(&uri, "application/json", &body.to_string()))
            },
        )
}

/// The prompts, with and without arguments, and the one that needs input.
fn prompts(server: ServerBuilder) -> ServerBuilder {
    server
        .prompt(
            "test_simple_prompt",
            "A simple prompt without arguments",
            |_, _: NoArgs| async {
                Ok(vec![user(ContentBlock::text(
                    "This is a simple prompt for testing.",
                ))])
            },
        )
        .prompt(
            "test_prompt_with_arguments",
            "A prompt with required arguments",
            |_, a: PromptArgs| async move {
                Ok(vec![user(ContentBlock::text(format!(
                    "Prompt with arguments: arg1='{}', arg2='{}'",
                    a.arg1, a.arg2
                )))])
            },
        )
        .prompt(
            "test_prompt_with_embedded_resource",
            "A prompt that includes an embedded resource",
            |_, a: EmbeddedPromptArgs| async move {
                Ok(vec![
                    user(ContentBlock::embedded_text(
                        a.resource_uri,
                        "text/plain",
                        "Embedded resource content for testing.",
                    )),
                    user(ContentBlock::text("Please process the embedded resource above.")),
                ])
            },
        )
        .prompt(
            "test_prompt_with_image",
            "A prompt that includes image content",
            |_, _: NoArgs| async {
                Ok(vec![
                    user(ContentBlock::image(PNG, "image/png")),
                    user(ContentBlock::text("Please analyze the image above.")),
                ])
            },
        )
        .prompt(
            "test_input_required_result_prompt",
            "MRTR: prompt that requires elicitation input",
            |ctx: ToolContext, _: NoArgs| async move {
                let r = ctx
                    .elicit_as(
                        "user_context",
                        ElicitParams::form(
                            "What context should the prompt use?",
                            object(json!({"type":"object","properties":{"context":{"type":"string"}},"required":["context"]})),
                        ),
                    )
                    .await?;
                Ok(vec![user(ContentBlock::text(format!(
                    "Prompt with context: {}",
                    content_str(&r.content, "context")
                )))])
            },
        )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let server = server()?;
    if cli.stdio {
        mcp_stdio::StdioServer::new(server).serve_stdio().await?;
        std::process::exit(0);
    }
    McpHttpServer::new(server)
        .serve(&format!("127.0.0.1:{}", cli.port), mcp_sse::ctrl_c())
        .await?;
    Ok(())
}
