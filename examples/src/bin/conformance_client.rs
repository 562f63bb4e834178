//! The conformance client fixture: our `McpClient` driven through one scenario of the official
//! MCP conformance suite's client leg.
//!
//! The suite runs `conformance_client <server URL>` with `MCP_CONFORMANCE_SCENARIO` (the
//! scenario), `MCP_CONFORMANCE_PROTOCOL_VERSION` (the revision whose wire to speak) and, for
//! some scenarios, `MCP_CONFORMANCE_CONTEXT` (JSON). The process exits 0 when the scenario's
//! flow ran to its end. `cargo xtask conformance` runs it.
//!
//! For the `auth/*` scenarios the client authorizes with `mcp-oauth-client`: the suite's
//! authorization server approves by itself, so [`HeadlessRedirect`] reads the redirect; the
//! context supplies pre-registered credentials, keys and assertions where a scenario needs
//! them.

#![allow(clippy::print_stderr)]

use std::time::Duration;

use anyhow::Context;
use mcp_oauth_client::{
    AssertionSource, ClientAssertionKey, Grant, HeadlessRedirect, IdentityProviderExchange,
    OAuthConfig,
};
use mcp_proto::ErrorObject;
use mcp_proto::client_features::ElicitParams;
use mcp_proto::types::ClientCapabilities;
use mcp_proto::{Implementation, ProtocolVersion};
use mcp_sse::TransportKind;
use mcp_sse::client::McpClient;
use serde_json::{Map, Value, json};

/// What the suite tells the fixture.
#[derive(Debug)]
struct Invocation {
    scenario: String,
    version: ProtocolVersion,
    context: Option<Value>,
    url: String,
}

fn invocation() -> anyhow::Result<Invocation> {
    let url = std::env::args()
        .skip(1)
        .last()
        .context("usage: conformance_client <server URL>")?;
    let scenario = std::env::var("MCP_CONFORMANCE_SCENARIO").unwrap_or_default();
    let version = std::env::var("MCP_CONFORMANCE_PROTOCOL_VERSION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(ProtocolVersion::LATEST_STATEFUL);
    let context = std::env::var("MCP_CONFORMANCE_CONTEXT")
        .ok()
        .and_then(|c| serde_json::from_str(&c).ok());
    Ok(Invocation {
        scenario,
        version,
        context,
        url,
    })
}

/// The client ID metadata document URL the suite accepts as `client_id`.
const CLIENT_METADATA_URL: &str = "https://conformance-test.local/client-metadata.json";

/// A string field of the scenario context.
fn context_str(inv: &Invocation, field: &str) -> anyhow::Result<String> {
    inv.context
        .as_ref()
        .and_then(|c| c.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("MCP_CONFORMANCE_CONTEXT has no {field}"))
}

/// The OAuth configuration of an `auth/*` scenario; `None` for the others.
fn oauth_config(inv: &Invocation) -> anyhow::Result<Option<OAuthConfig>> {
    if !inv.scenario.starts_with("auth/") {
        return Ok(None);
    }
    let base = OAuthConfig::new("mcp-rs-conformance-client")
        .with_client_metadata_url(CLIENT_METADATA_URL)
        .with_authorization_handler(std::sync::Arc::new(HeadlessRedirect::new(
            "http://localhost:3000/callback",
        )));
    let config = match inv.scenario.as_str() {
        "auth/pre-registration" => base.with_client(
            context_str(inv, "client_id")?,
            Some(context_str(inv, "client_secret")?),
        ),
        "auth/client-credentials-basic" => base.with_grant(Grant::ClientCredentials).with_client(
            context_str(inv, "client_id")?,
            Some(context_str(inv, "client_secret")?),
        ),
        "auth/client-credentials-jwt" => {
            let algorithm =
                context_str(inv, "signing_algorithm").unwrap_or_else(|_| "ES256".to_owned());
            let key =
                ClientAssertionKey::from_pem(&context_str(inv, "private_key_pem")?, &algorithm)?;
            base.with_grant(Grant::ClientCredentials)
                .with_client(context_str(inv, "client_id")?, None)
                .with_client_assertion_key(key)
        }
        "auth/wif-jwt-bearer" => base
            .with_grant(Grant::JwtBearer(AssertionSource::Jwt(context_str(
                inv,
                "valid_jwt",
            )?)))
            .with_client(context_str(inv, "client_id")?, None),
        "auth/enterprise-managed-authorization" => {
            let exchange = IdentityProviderExchange {
                token_endpoint: context_str(inv, "idp_token_endpoint")?,
                client_id: context_str(inv, "idp_client_id")?,
                client_secret: None,
                id_token: context_str(inv, "idp_id_token")?,
            };
            base.with_grant(Grant::JwtBearer(AssertionSource::IdentityProvider(
                exchange,
            )))
            .with_client(
                context_str(inv, "client_id")?,
                Some(context_str(inv, "client_secret")?),
            )
        }
        _ => base,
    };
    Ok(Some(config))
}

/// The client every scenario starts from: our name and capabilities, the form-filling user,
/// and the scenario's OAuth configuration if any.
fn client_builder(
    inv: &Invocation,
    oauth: Option<OAuthConfig>,
) -> mcp_sse::client::McpClientBuilder {
    let builder = McpClient::builder(inv.url.clone())
        .transport(TransportKind::StreamableHttp)
        .protocol_version(inv.version)
        .client_info(Implementation::new("mcp-rs-conformance-client", "1.0.0"))
        .capabilities(capabilities())
        .on_input(answer)
        .request_timeout(Duration::from_secs(20));
    match oauth {
        Some(config) => builder.oauth(config),
        None => builder,
    }
}

/// Calls tool `name` with `arguments` and logs its content.
async fn call(client: &McpClient, name: &str, arguments: Value) -> anyhow::Result<()> {
    let r = client
        .call_tool(name, arguments)
        .await
        .with_context(|| format!("tools/call {name}"))?;
    eprintln!("{name}: {:?}", r.content);
    Ok(())
}

/// Calls the auth scenarios' `test-tool` when the server lists it.
async fn call_test_tool(client: &McpClient, tools: &[mcp_proto::Tool]) -> anyhow::Result<()> {
    if tools.iter().any(|t| t.name == "test-tool") {
        call(client, "test-tool", json!({})).await?;
    }
    Ok(())
}

/// `json-schema-2020-12-preservation`: echoes the focal tool's input schema back.
async fn echo_focal_schema(client: &McpClient, tools: &[mcp_proto::Tool]) -> anyhow::Result<()> {
    if let Some(focal) = tools.iter().find(|t| t.name == "json_schema_2020_12_tool") {
        let schema = Value::Object(focal.input_schema.clone());
        call(client, "json_schema_echo", json!({ "schema": schema })).await?;
    }
    Ok(())
}

/// `http-custom-headers`: the calls the scenario's context lists.
async fn custom_header_calls(client: &McpClient, inv: &Invocation) -> anyhow::Result<()> {
    let calls = inv
        .context
        .as_ref()
        .and_then(|c| c.get("toolCalls"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in calls {
        let name = c["name"].as_str().unwrap_or_default();
        call(
            client,
            name,
            c.get("arguments").cloned().unwrap_or(Value::Null),
        )
        .await?;
    }
    Ok(())
}

/// `http-standard-headers`: every tool, every resource read and every prompt got.
async fn standard_header_calls(
    client: &McpClient,
    tools: &[mcp_proto::Tool],
) -> anyhow::Result<()> {
    for tool in tools {
        call(client, &tool.name, json!({})).await?;
    }
    let resources = client.request("resources/list", None).await;
    let resources = resources.context("resources/list")?;
    for r in resources["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let read = client.request("resources/read", Some(json!({"uri": r["uri"]})));
        read.await.context("resources/read")?;
    }
    let prompts = client.request("prompts/list", None).await;
    let prompts = prompts.context("prompts/list")?;
    for p in prompts["prompts"].as_array().cloned().unwrap_or_default() {
        let get = client.request("prompts/get", Some(json!({"name": p["name"]})));
        get.await.context("prompts/get")?;
    }
    Ok(())
}

fn capabilities() -> ClientCapabilities {
    ClientCapabilities {
        sampling: Some(Map::new()),
        elicitation: Some(Map::new()),
        ..Default::default()
    }
}

/// The user of this client: accepts every form with its defaults (and `true`, `0` or an
/// empty string for fields without one), answers sampling with a fixed text, has no roots.
async fn answer(method: String, params: Value) -> Result<Value, ErrorObject> {
    match method.as_str() {
        "elicitation/create" => {
            let form: ElicitParams =
                serde_json::from_value(params).map_err(ErrorObject::invalid_params)?;
            let mut content = form.default_content();
            let props = form
                .requested_schema
                .as_ref()
                .and_then(|s| s.get("properties"))
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for (name, prop) in props {
                if content.contains_key(&name) {
                    continue;
                }
                let filler = match prop.get("type").and_then(Value::as_str) {
                    Some("boolean") => json!(true),
                    Some("integer") | Some("number") => json!(0),
                    Some("string") => json!(""),
                    _ => continue,
                };
                content.insert(name, filler);
            }
            Ok(json!({"action": "accept", "content": content}))
        }
        "sampling/createMessage" => Ok(json!({
            "role": "assistant",
            "content": {"type": "text", "text": "Hello from the conformance client."},
            "model": "conformance-client",
            "stopReason": "endTurn"
        })),
        "roots/list" => Ok(json!({"roots": []})),
        other => Err(ErrorObject::method_not_found(other)),
    }
}

/// The 2026-07-28 era: `server/discover`, then the scenario's requests.
async fn stateless(inv: &Invocation) -> anyhow::Result<()> {
    let client = client_builder(inv, oauth_config(inv)?)
        .connect()
        .await
        .context("server/discover")?;
    let tools = client.list_tools().await.context("tools/list")?;
    match inv.scenario.as_str() {
        "tools_call" => call(&client, "add_numbers", json!({"a": 2, "b": 3})).await?,
        "sep-2322-client-request-state" => {
            for name in [
                "test_mrtr_echo_state",
                "test_mrtr_unrelated",
                "test_mrtr_no_state",
                "test_mrtr_no_result_type",
            ] {
                call(&client, name, json!({})).await?;
            }
        }
        "http-custom-headers" => custom_header_calls(&client, inv).await?,
        "http-invalid-tool-headers" => {
            // Tools with invalid x-mcp-header annotations were left out of the list.
            for tool in &tools {
                call(&client, &tool.name, json!({"region": "us-west1"})).await?;
            }
        }
        "http-standard-headers" => standard_header_calls(&client, &tools).await?,
        "json-schema-2020-12-preservation" => echo_focal_schema(&client, &tools).await?,
        _ => {
            // request-metadata, json-schema-ref-no-deref, auth/* and others: discover, list,
            // and call the auth scenarios' tool.
            eprintln!("{} tools", tools.len());
            call_test_tool(&client, &tools).await?;
        }
    }
    client.close().await.ok();
    Ok(())
}

/// The stateful era (2025-11-25 and before): `initialize`, then the scenario's calls.
async fn stateful(inv: &Invocation) -> anyhow::Result<()> {
    let oauth = oauth_config(inv)?;
    // The auth scenarios' servers have no GET stream.
    let server_stream = oauth.is_none();
    let client = client_builder(inv, oauth)
        .server_stream(server_stream)
        .connect()
        .await
        .context("initialize")?;
    let tools = client.list_tools().await.context("tools/list")?;
    match inv.scenario.as_str() {
        "tools_call" => call(&client, "add_numbers", json!({"a": 2, "b": 3})).await?,
        "sse-retry" => call(&client, "test_reconnection", json!({})).await?,
        "json-schema-2020-12-preservation" => echo_focal_schema(&client, &tools).await?,
        "elicitation-sep1034-client-defaults" => {
            call(&client, "test_client_elicitation_defaults", json!({})).await?;
        }
        _ => {
            // Any other scenario: the handshake and the tool list are the flow, plus the
            // auth scenarios' tool.
            if let Some(tool) = tools.first() {
                eprintln!("first tool: {}", tool.name);
            }
            call_test_tool(&client, &tools).await?;
        }
    }
    let _ = client.close().await;
    Ok(())
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
    let inv = invocation()?;
    eprintln!(
        "scenario {} at {} against {}",
        inv.scenario, inv.version, inv.url
    );
    if inv.version.is_stateless() {
        stateless(&inv).await
    } else {
        stateful(&inv).await
    }
}
