//! Shared by the integration tests: a test server, a way to drive it like a transport, and
//! validation against the official JSON Schema of each protocol version.
//!
//! The schemas (`<version>/schema.json` from the specification repository) are looked up in
//! `$MCP_SCHEMA_DIR`, then `crates/mcp-proto/tests/fixtures/schema`, then `../shared/mcp-schema`
//! beside the repository (see `tests/fixtures/schema/README.md`). When none is found, schema
//! validation is skipped with a note on stderr, and every other assertion still runs; set
//! `MCP_SCHEMA_REQUIRED=1` to make a missing schema a failure.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr
)]

use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use mcp_proto::types::{Icon, ToolAnnotations};
use mcp_proto::{
    CallToolResult, ContentBlock, McpServer, McpService, Message, MessageContext, NoArgs,
    ProtocolVersion, Session, ToolDef, ToolError,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// The test server
// ---------------------------------------------------------------------------------------------

/// Arguments of `roll_dice`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RollDice {
    /// How many dice to roll.
    #[schemars(range(min = 1, max = 100))]
    pub n_dice: u32,
}

/// Arguments of `sum`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SumArgs {
    /// The numbers to add.
    pub values: Vec<i64>,
}

/// Output of `sum`: an object, so it is not wrapped in `{"result": ...}`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Sum {
    /// How many numbers were added.
    pub count: usize,
    /// Their sum.
    pub total: i64,
}

/// The text of the failing tool's error.
pub const EXPLODE_MESSAGE: &str = "the dice fell off the table";

/// A server with a dice tool, a media tool, a structured-output tool and a failing tool,
/// and a counter of the dice handler's invocations.
pub struct Fixture {
    pub server: McpServer,
    pub dice_calls: Arc<AtomicUsize>,
}

impl Fixture {
    pub fn dice_calls(&self) -> usize {
        self.dice_calls.load(Ordering::SeqCst)
    }
}

pub fn media_result() -> CallToolResult {
    CallToolResult::content(vec![
        ContentBlock::text("here is everything"),
        ContentBlock::image("iVBORw0KGgo=", "image/png"),
        ContentBlock::audio("UklGRg==", "audio/wav"),
        ContentBlock::embedded_text("test://dice/rules", "text/plain", "Roll, then add."),
        ContentBlock::ResourceLink {
            uri: "test://dice/history".into(),
            name: "history".into(),
            title: Some("Roll history".into()),
            description: Some("Every roll so far".into()),
            mime_type: Some("application/json".into()),
            size: Some(42),
            annotations: None,
        },
    ])
}

pub fn fixture() -> Fixture {
    let dice_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&dice_calls);
    let roll_dice = move |args: RollDice| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<Vec<u8>, ToolError>((0..args.n_dice).map(|i| (i % 6 + 1) as u8).collect()) }
    };
    let media = ToolDef::new("media", "Returns one block of every content type.")
        .title("Media Sampler")
        .annotations(ToolAnnotations {
            read_only_hint: Some(true),
            ..Default::default()
        })
        .icons(vec![Icon {
            src: "data:image/png;base64,iVBORw0KGgo=".into(),
            mime_type: Some("image/png".into()),
            sizes: Some(vec!["48x48".into()]),
            theme: None,
        }]);
    let server = McpServer::builder("Dice Roller")
        .title("Dice Roller Server")
        .version("1.2.3")
        .instructions("Roll dice with roll_dice.")
        .tool(
            "roll_dice",
            "Roll `n_dice` 6-sided dice and return the results.",
            roll_dice,
        )
        .tool_with(media, |_: NoArgs| async {
            Ok::<_, ToolError>(media_result())
        })
        .tool("sum", "Add numbers.", |args: SumArgs| async move {
            Ok::<_, ToolError>(Sum {
                count: args.values.len(),
                total: args.values.iter().fold(0i64, |a, b| a.saturating_add(*b)),
            })
        })
        .tool("explode", "Always fails.", |_: NoArgs| async {
            Err::<Vec<u8>, _>(ToolError::new(EXPLODE_MESSAGE))
        })
        .build()
        .unwrap();
    Fixture { server, dice_calls }
}

// ---------------------------------------------------------------------------------------------
// Driving the server the way a transport does
// ---------------------------------------------------------------------------------------------

pub fn new_session() -> Arc<Session> {
    Arc::new(Session::new(Some("test-session".into())))
}

/// Hands one message to the service and returns its answer, serialized.
pub fn handle(server: &McpServer, session: &Arc<Session>, message: Message) -> Option<Value> {
    let reply = futures::executor::block_on(
        server.handle(message, MessageContext::new(Arc::clone(session))),
    );
    reply.map(|m| serde_json::from_slice(&m.to_vec()).unwrap())
}

/// Sends a request and returns the serialized response (a request always gets one).
pub fn request(
    server: &McpServer,
    session: &Arc<Session>,
    id: i64,
    method: &str,
    params: Option<Value>,
) -> Value {
    handle(server, session, Message::request(id, method, params))
        .unwrap_or_else(|| panic!("no response to {method}"))
}

/// Bytes in, bytes out, as a transport would do for one HTTP body: `decode`, then `handle`
/// for each message. Returns every response serialized (none for notifications).
pub fn handle_bytes(server: &McpServer, session: &Arc<Session>, bytes: &[u8]) -> Vec<Value> {
    let to_value = |m: Message| serde_json::from_slice::<Value>(&m.to_vec()).unwrap();
    match mcp_proto::decode(bytes) {
        Err(error) => vec![to_value(Message::Response(error))],
        Ok(mcp_proto::Decoded::Single(m)) => handle(server, session, m).into_iter().collect(),
        Ok(mcp_proto::Decoded::Batch(items)) => items
            .into_iter()
            .filter_map(|item| match item {
                Ok(m) => handle(server, session, m),
                Err(error) => Some(to_value(Message::Response(error))),
            })
            .collect(),
    }
}

/// Initializes `session` at `version` and sends `notifications/initialized`.
pub fn initialize(server: &McpServer, session: &Arc<Session>, version: ProtocolVersion) -> Value {
    let response = request(
        server,
        session,
        0,
        "initialize",
        Some(json!({
            "protocolVersion": version.as_str(),
            "capabilities": {},
            "clientInfo": {"name": "schema-tests", "version": "0.0.1"}
        })),
    );
    assert_eq!(response["result"]["protocolVersion"], version.as_str());
    let none = handle(
        server,
        session,
        Message::notification("notifications/initialized", None),
    );
    assert_eq!(none, None);
    response
}

/// The error code of a serialized error response.
pub fn error_code(response: &Value) -> i64 {
    response["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error response: {response}"))
}

// ---------------------------------------------------------------------------------------------
// The official JSON Schemas
// ---------------------------------------------------------------------------------------------

/// One version's schema document, as published and in a strict variant where every object
/// schema that does not say otherwise has `additionalProperties: false` (so a field the
/// version does not define is an error).
struct SpecDoc {
    defs_key: &'static str,
    loose: Value,
    strict: Value,
}

pub struct Spec {
    pub dir: PathBuf,
    docs: HashMap<ProtocolVersion, SpecDoc>,
    validators: Mutex<HashMap<(ProtocolVersion, bool, String), Arc<jsonschema::Validator>>>,
}

fn candidate_dirs() -> Vec<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("MCP_SCHEMA_DIR") {
        dirs.push(PathBuf::from(dir));
    }
    dirs.push(manifest.join("tests/fixtures/schema"));
    dirs.push(manifest.join("../../../shared/mcp-schema"));
    dirs
}

/// The schemas, when they can be found (see the module docs).
pub fn spec() -> Option<&'static Spec> {
    static SPEC: OnceLock<Option<Spec>> = OnceLock::new();
    SPEC.get_or_init(|| {
        let found = candidate_dirs()
            .into_iter()
            .find(|d| d.join("2024-11-05/schema.json").is_file());
        let Some(dir) = found else {
            if std::env::var_os("MCP_SCHEMA_REQUIRED").is_some_and(|v| v != "0") {
                panic!(
                    "MCP_SCHEMA_REQUIRED is set but no schema directory was found in {:?}",
                    candidate_dirs()
                );
            }
            // Written to stderr directly so that the test harness does not capture it.
            let _ = writeln!(
                std::io::stderr(),
                "NOTE: official MCP schemas not found in {:?}; schema validation is skipped \
                 (every other assertion runs). See tests/fixtures/schema/README.md.",
                candidate_dirs()
            );
            return None;
        };
        let mut docs = HashMap::new();
        for v in ProtocolVersion::ALL {
            let path = dir.join(v.as_str()).join("schema.json");
            let Ok(text) = std::fs::read_to_string(&path) else {
                assert!(
                    v == ProtocolVersion::LATEST,
                    "schema for {v} missing at {}",
                    path.display()
                );
                continue;
            };
            let loose: Value = serde_json::from_str(&text).unwrap();
            let defs_key = if loose.get("$defs").is_some() {
                "$defs"
            } else {
                "definitions"
            };
            let mut strict = loose.clone();
            for (name, def) in strict[defs_key].as_object_mut().unwrap().iter_mut() {
                strictify(def);
                // Every request's and notification's params may carry `_meta` (the base
                // `Request`/`Notification` types say so), though the generated schemas of
                // some methods do not list it before 2025-11-25.
                if (name.ends_with("Request") || name.ends_with("Notification"))
                    && let Some(Value::Object(props)) =
                        def.pointer_mut("/properties/params/properties")
                {
                    props
                        .entry("_meta")
                        .or_insert_with(|| json!({"type": "object"}));
                }
            }
            docs.insert(
                v,
                SpecDoc {
                    defs_key,
                    loose,
                    strict,
                },
            );
        }
        Some(Spec {
            dir,
            docs,
            validators: Mutex::new(HashMap::new()),
        })
    })
    .as_ref()
}

/// Adds `additionalProperties: false` to every object schema that does not set it, except
/// inside `allOf` (where it would reject the other branches' fields) and below properties
/// that hold arbitrary JSON Schemas or arbitrary objects.
fn strictify(schema: &mut Value) {
    const OPEN: [&str; 6] = [
        "inputSchema",
        "outputSchema",
        "structuredContent",
        "_meta",
        "arguments",
        "experimental",
    ];
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    if obj.contains_key("properties") && !obj.contains_key("additionalProperties") {
        obj.insert("additionalProperties".into(), Value::Bool(false));
    }
    if let Some(Value::Object(props)) = obj.get_mut("properties") {
        for (name, sub) in props.iter_mut() {
            if !OPEN.contains(&name.as_str()) {
                strictify(sub);
            }
        }
    }
    if let Some(items) = obj.get_mut("items") {
        strictify(items);
    }
    if let Some(Value::Array(branches)) = obj.get_mut("anyOf") {
        branches.iter_mut().for_each(strictify);
    }
    if let Some(Value::Array(branches)) = obj.get_mut("oneOf") {
        branches.iter_mut().for_each(strictify);
    }
    if let Some(extra @ Value::Object(_)) = obj.get_mut("additionalProperties") {
        strictify(extra);
    }
}

impl Spec {
    /// Whether `version`'s schema defines `def` (a definition name, optionally followed by a
    /// JSON pointer inside it, e.g. `InitializeRequest/properties/params`).
    pub fn has(&self, version: ProtocolVersion, def: &str) -> bool {
        self.docs
            .get(&version)
            .is_some_and(|d| d.loose.pointer(&format!("/{}/{def}", d.defs_key)).is_some())
    }

    fn validator(
        &self,
        version: ProtocolVersion,
        strict: bool,
        def: &str,
    ) -> Arc<jsonschema::Validator> {
        let key = (version, strict, def.to_owned());
        if let Some(v) = self.validators.lock().unwrap().get(&key) {
            return Arc::clone(v);
        }
        let doc = self
            .docs
            .get(&version)
            .unwrap_or_else(|| panic!("no schema for {version}"));
        assert!(self.has(version, def), "{version} has no definition {def}");
        let mut root = if strict {
            doc.strict.clone()
        } else {
            doc.loose.clone()
        };
        root.as_object_mut().unwrap().insert(
            "$ref".into(),
            Value::String(format!("#/{}/{def}", doc.defs_key)),
        );
        let validator = Arc::new(jsonschema::validator_for(&root).unwrap());
        self.validators
            .lock()
            .unwrap()
            .insert(key, Arc::clone(&validator));
        validator
    }

    /// Validates `value` against `def` of `version`; the error lists every problem.
    pub fn validate(
        &self,
        version: ProtocolVersion,
        def: &str,
        value: &Value,
        strict: bool,
    ) -> Result<(), String> {
        let validator = self.validator(version, strict, def);
        let problems: Vec<String> = validator
            .iter_errors(value)
            .map(|e| format!("{} at {:?}", e, e.instance_path().to_string()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }
}

/// Asserts that `value` is valid for `def` of `version`, with no field the version lacks.
/// A no-op (with a note) when the schemas are not available.
pub fn assert_schema(version: ProtocolVersion, def: &str, value: &Value) {
    if let Some(spec) = spec()
        && let Err(problems) = spec.validate(version, def, value, true)
    {
        panic!("{version} {def}: not valid:\n{problems}\nvalue: {value:#}");
    }
}

/// Like [`assert_schema`] but against the schema as published (unknown fields allowed).
pub fn assert_schema_loose(version: ProtocolVersion, def: &str, value: &Value) {
    if let Some(spec) = spec()
        && let Err(problems) = spec.validate(version, def, value, false)
    {
        panic!("{version} {def}: not valid:\n{problems}\nvalue: {value:#}");
    }
}

/// The definition of a successful response message in `version`'s schema.
pub fn result_response_def(version: ProtocolVersion) -> &'static str {
    if version >= ProtocolVersion::V2025_11_25 {
        "JSONRPCResultResponse"
    } else {
        "JSONRPCResponse"
    }
}

/// The definition of an error response message in `version`'s schema.
pub fn error_response_def(version: ProtocolVersion) -> &'static str {
    if version >= ProtocolVersion::V2025_11_25 {
        "JSONRPCErrorResponse"
    } else {
        "JSONRPCError"
    }
}

/// Validates a whole response message: the envelope (as published, since `result` is open)
/// and the result against `result_def` (strict), or the error envelope (strict).
pub fn assert_response(version: ProtocolVersion, result_def: &str, response: &Value) {
    if response.get("error").is_some() {
        assert_schema(version, error_response_def(version), response);
    } else {
        assert_schema_loose(version, result_response_def(version), response);
        assert_schema(version, result_def, &response["result"]);
    }
}

// ---------------------------------------------------------------------------------------------
// A server with resources, a template, a prompt and completion
// ---------------------------------------------------------------------------------------------

/// Variables of the `dice://rolls/{id}` template.
#[derive(Debug, Deserialize)]
pub struct RollId {
    pub id: String,
}

/// Arguments of the `roll_prompt` prompt.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PromptArgs {
    /// Which dice to roll, e.g. `2d6`.
    pub dice: String,
}

/// The dice tool plus a static resource, a resource template, a prompt and a completion
/// handler, each with the newest optional fields (title, icons) set, so that tests can
/// check that older versions do not get them.
pub fn full_server() -> McpServer {
    use mcp_proto::types::{
        Completion, PromptMessage, Resource, ResourceContents, ResourceTemplate, Role,
    };
    let icon = Icon {
        src: "data:image/png;base64,iVBORw0KGgo=".into(),
        mime_type: Some("image/png".into()),
        sizes: None,
        theme: None,
    };
    McpServer::builder("Dice Library")
        .tool("roll_dice", "Roll dice.", |args: RollDice| async move {
            Ok::<_, ToolError>(vec![1u8; args.n_dice as usize])
        })
        .resource(
            Resource {
                uri: "dice://rules".into(),
                name: "rules".into(),
                title: Some("Rules".into()),
                description: Some("How to roll".into()),
                mime_type: Some("text/plain".into()),
                size: Some(15),
                icons: Some(vec![icon.clone()]),
            },
            |_ctx| async {
                Ok(vec![ResourceContents::Text {
                    uri: "dice://rules".into(),
                    mime_type: Some("text/plain".into()),
                    text: "Roll, then add.".into(),
                }])
            },
        )
        .resource_template(
            ResourceTemplate {
                uri_template: "dice://rolls/{id}".into(),
                name: "roll".into(),
                title: Some("A past roll".into()),
                description: Some("One roll by id".into()),
                mime_type: Some("application/json".into()),
                icons: Some(vec![icon.clone()]),
            },
            |_ctx, uri: String, vars: RollId| async move {
                Ok(vec![ResourceContents::Text {
                    uri,
                    mime_type: Some("application/json".into()),
                    text: format!("{{\"id\":\"{}\",\"dice\":[3,4]}}", vars.id),
                }])
            },
        )
        .prompt(
            "roll_prompt",
            "Ask the model to roll.",
            |_ctx, args: PromptArgs| async move {
                Ok::<_, ToolError>(vec![PromptMessage {
                    role: Role::User,
                    content: ContentBlock::text(format!("Roll {} for me.", args.dice)),
                }])
            },
        )
        .completion(|_params| async {
            Ok(Completion {
                values: vec!["1d6".into(), "2d6".into()],
                total: Some(2),
                has_more: Some(false),
            })
        })
        .build()
        .unwrap()
}

/// `_meta` of a 2026-07-28 request.
pub fn stateless_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "schema-tests", "version": "0.0.1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    })
}
