//! The 2026-07-28 ("modern") era: per-request `_meta`, `server/discover`, `resultType`,
//! and multi round-trip requests whose state travels, signed, through the client.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::jsonrpc::{ErrorObject, code};
use crate::types::{ClientCapabilities, Implementation, JsonObject};
use crate::version::ProtocolVersion;

/// `_meta` key carrying the protocol version of a modern request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client's name and version.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the server's name and version in `server/discover`.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key a modern request uses to opt in to log messages at a level.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// `resultType` of a finished request.
pub const RESULT_COMPLETE: &str = "complete";
/// `resultType` of a request that needs input from the client first.
pub const RESULT_INPUT_REQUIRED: &str = "input_required";

/// What a modern request says about itself in `_meta`.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestMeta {
    /// The requested protocol version, as sent.
    pub protocol_version: String,
    /// The client's name and version.
    pub client_info: Option<Implementation>,
    /// The client's capabilities.
    pub client_capabilities: ClientCapabilities,
    /// The whole `_meta` object.
    pub raw: JsonObject,
}

impl RequestMeta {
    /// Reads the modern `_meta` of request params; `None` when the request is not modern.
    pub fn from_params(params: Option<&Value>) -> Option<Self> {
        let meta = params?.get("_meta")?.as_object()?;
        let version = meta.get(META_PROTOCOL_VERSION)?.as_str()?.to_owned();
        Some(Self {
            protocol_version: version,
            client_info: meta
                .get(META_CLIENT_INFO)
                .and_then(|v| serde_json::from_value(v.clone()).ok()),
            client_capabilities: meta
                .get(META_CLIENT_CAPABILITIES)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default(),
            raw: meta.clone(),
        })
    }

    /// The version, when it is one this crate serves statelessly.
    pub fn version(&self) -> Result<ProtocolVersion, ErrorObject> {
        match self.protocol_version.parse::<ProtocolVersion>() {
            Ok(v) if v.is_stateless() => Ok(v),
            _ => Err(unsupported_version(&self.protocol_version)),
        }
    }
}

/// `-32022` with `data: {supported, requested}`.
pub fn unsupported_version(requested: &str) -> ErrorObject {
    ErrorObject::new(
        code::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version",
    )
    .with_data(json!({
        "supported": ProtocolVersion::supported_strings(),
        "requested": requested,
    }))
}

/// Builds the `_meta` a modern client puts on every request.
pub fn client_meta(
    version: ProtocolVersion,
    info: &Implementation,
    capabilities: &ClientCapabilities,
) -> JsonObject {
    let mut meta = Map::new();
    meta.insert(META_PROTOCOL_VERSION.into(), json!(version.as_str()));
    meta.insert(
        META_CLIENT_INFO.into(),
        serde_json::to_value(info).unwrap_or(Value::Null),
    );
    meta.insert(
        META_CLIENT_CAPABILITIES.into(),
        serde_json::to_value(capabilities).unwrap_or_else(|_| json!({})),
    );
    meta
}

/// `_meta` key tagging notifications of a `subscriptions/listen` stream.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
/// The 2026-07-28 method that opens a stream of change notifications.
pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
/// First message of a `subscriptions/listen` stream.
pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
/// Most `subscriptions/listen` streams one server keeps open.
pub const MAX_LISTENERS: usize = 1024;

/// A change clients may listen for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The tool list changed (`notifications/tools/list_changed`).
    Tools,
    /// The prompt list changed (`notifications/prompts/list_changed`).
    Prompts,
    /// The resource list changed (`notifications/resources/list_changed`).
    Resources,
    /// A resource's contents changed (`notifications/resources/updated`).
    ResourceUpdated(String),
}

/// What one `subscriptions/listen` stream asked for (its `notifications` param).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tools_list_changed: bool,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub prompts_list_changed: bool,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resources_list_changed: bool,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subscriptions: Option<Vec<String>>,
}

impl ListenFilter {
    fn wants(&self, change: &Change) -> bool {
        match change {
            Change::Tools => self.tools_list_changed,
            Change::Prompts => self.prompts_list_changed,
            Change::Resources => self.resources_list_changed,
            Change::ResourceUpdated(uri) => self
                .resource_subscriptions
                .as_ref()
                .is_some_and(|u| u.iter().any(|x| x == uri)),
        }
    }
}

struct Listener {
    key: u64,
    subscription_id: String,
    filter: ListenFilter,
    outbound: std::sync::Arc<dyn crate::service::Outbound>,
    /// A legacy session's stream: every list change, and updates of the resources the
    /// session subscribed to (`resources/subscribe`), without a subscription id.
    session: Option<std::sync::Arc<crate::service::Session>>,
}

/// The open `subscriptions/listen` streams of a server, and the fan-out of changes to them.
#[derive(Default)]
pub struct Listeners {
    next: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("open", &self.len())
            .finish()
    }
}

impl Listeners {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Listener>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many streams are open.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no stream is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a stream; `None` when [`MAX_LISTENERS`] are open.
    pub(crate) fn add(
        &self,
        subscription_id: String,
        filter: ListenFilter,
        outbound: std::sync::Arc<dyn crate::service::Outbound>,
    ) -> Option<u64> {
        let mut open = self.lock();
        if open.len() >= MAX_LISTENERS {
            return None;
        }
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(Listener {
            key,
            subscription_id,
            filter,
            outbound,
            session: None,
        });
        Some(key)
    }

    /// Registers a legacy session's stream, replacing the session's earlier one; `false`
    /// when [`MAX_LISTENERS`] are open.
    pub(crate) fn add_session(
        &self,
        session: std::sync::Arc<crate::service::Session>,
        outbound: std::sync::Arc<dyn crate::service::Outbound>,
    ) -> bool {
        let mut open = self.lock();
        open.retain(|l| {
            !l.session
                .as_ref()
                .is_some_and(|s| std::sync::Arc::ptr_eq(s, &session))
        });
        if open.len() >= MAX_LISTENERS {
            return false;
        }
        let key = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        open.push(Listener {
            key,
            subscription_id: String::new(),
            filter: ListenFilter {
                tools_list_changed: true,
                prompts_list_changed: true,
                resources_list_changed: true,
                resource_subscriptions: None,
            },
            outbound,
            session: Some(session),
        });
        true
    }

    /// Forgets a legacy session's stream.
    pub(crate) fn remove_session(&self, session: &crate::service::Session) {
        self.lock().retain(|l| {
            !l.session
                .as_ref()
                .is_some_and(|s| std::ptr::eq(std::sync::Arc::as_ptr(s), session))
        });
    }

    /// Forgets a stream.
    pub(crate) fn remove(&self, key: u64) {
        self.lock().retain(|l| l.key != key);
    }

    /// Sends the change to every open stream that asked for it; streams that cannot take it
    /// any more are forgotten.
    pub async fn notify(&self, change: Change) {
        let targets: Vec<_> = self
            .lock()
            .iter()
            .filter(|l| match (&l.session, &change) {
                (Some(s), Change::ResourceUpdated(uri)) => {
                    s.state().subscriptions.iter().any(|u| u == uri)
                }
                _ => l.filter.wants(&change),
            })
            .map(|l| {
                (
                    l.key,
                    l.session.is_some(),
                    l.subscription_id.clone(),
                    std::sync::Arc::clone(&l.outbound),
                )
            })
            .collect();
        let method = match &change {
            Change::Tools => crate::types::method::TOOLS_LIST_CHANGED,
            Change::Prompts => crate::types::method::PROMPTS_LIST_CHANGED,
            Change::Resources => crate::types::method::RESOURCES_LIST_CHANGED,
            Change::ResourceUpdated(_) => crate::types::method::RESOURCES_UPDATED,
        };
        for (key, legacy, id, outbound) in targets {
            let params = match (&change, legacy) {
                (Change::ResourceUpdated(uri), true) => Some(json!({ "uri": uri })),
                (Change::ResourceUpdated(uri), false) => {
                    Some(json!({"_meta": {META_SUBSCRIPTION_ID: id}, "uri": uri}))
                }
                (_, true) => None,
                (_, false) => Some(json!({"_meta": {META_SUBSCRIPTION_ID: id}})),
            };
            let message = crate::jsonrpc::Message::notification(method, params);
            if outbound.send(message).await.is_err() {
                self.remove(key);
            }
        }
    }
}

/// The header naming a modern request's method.
pub const METHOD_HEADER: &str = "Mcp-Method";
/// The header naming the tool, prompt or resource of a modern request.
pub const NAME_HEADER: &str = "Mcp-Name";
/// Prefix of the headers mirroring tool arguments marked with `x-mcp-header`.
pub const PARAM_HEADER_PREFIX: &str = "Mcp-Param-";

/// Writes a header value as is when it is plain visible ASCII (inner spaces allowed), else
/// in the `=?base64?<UTF-8 bytes in base64>?=` form (non-ASCII, control characters, leading
/// or trailing whitespace).
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ');
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

/// The `Mcp-Method` and (for `tools/call`, `prompts/get`, `resources/read`) `Mcp-Name`
/// headers of a modern request.
pub fn standard_headers(method: &str, params: Option<&Value>) -> Vec<(&'static str, String)> {
    let mut headers = vec![(METHOD_HEADER, method.to_owned())];
    let field = match method {
        crate::types::method::TOOLS_CALL | crate::types::method::PROMPTS_GET => Some("name"),
        crate::types::method::RESOURCES_READ => Some("uri"),
        crate::task::TASKS_GET | crate::task::TASKS_UPDATE | crate::task::TASKS_CANCEL => {
            Some("taskId")
        }
        _ => None,
    };
    if let Some(name) = field.and_then(|f| params?.get(f)).and_then(Value::as_str) {
        headers.push((NAME_HEADER, encode_header_value(name)));
    }
    headers
}

/// The tool arguments a tool wants mirrored in headers: `(argument, header name)` for every
/// input property with an `x-mcp-header` annotation. An annotation that is empty, not an HTTP
/// token, on a property that is not a string, integer or boolean (`number` is not allowed),
/// or repeated (ignoring case) makes the tool unusable:
/// the error says why, and clients must leave such a tool out.
pub fn tool_header_params(tool: &crate::types::Tool) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(props) = tool
        .input_schema
        .get("properties")
        .and_then(Value::as_object)
    else {
        return Ok(out);
    };
    for (arg, schema) in props {
        let Some(annotation) = schema.get("x-mcp-header") else {
            continue;
        };
        let name = annotation
            .as_str()
            .ok_or_else(|| format!("x-mcp-header of {arg:?} is not a string"))?;
        let is_token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(is_token) {
            return Err(format!(
                "x-mcp-header {name:?} of {arg:?} is not a valid header name"
            ));
        }
        let primitive = match schema.get("type") {
            Some(Value::String(t)) => matches!(t.as_str(), "string" | "integer" | "boolean"),
            _ => false,
        };
        if !primitive {
            return Err(format!(
                "x-mcp-header on {arg:?}, which is not a primitive type"
            ));
        }
        if out.iter().any(|(_, h)| h.eq_ignore_ascii_case(name)) {
            return Err(format!("x-mcp-header {name:?} is used twice"));
        }
        out.push((arg.clone(), name.to_owned()));
    }
    Ok(out)
}

/// The `Mcp-Param-*` headers of a `tools/call` with these arguments (null and absent
/// arguments get no header; strings, numbers and booleans their text, encoded as
/// [`encode_header_value`] says).
pub fn param_headers(tool: &crate::types::Tool, arguments: &Value) -> Vec<(String, String)> {
    let Ok(params) = tool_header_params(tool) else {
        return Vec::new();
    };
    params
        .into_iter()
        .filter_map(|(arg, header)| {
            let text = match arguments.get(&arg)? {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((
                format!("{PARAM_HEADER_PREFIX}{header}"),
                encode_header_value(&text),
            ))
        })
        .collect()
}

/// The `Mcp-Param-*` headers of a 2026-07-28 HTTP request (names lowercased, values as
/// sent), put in the request's extensions by the transport so the server can check them
/// against the tool's `x-mcp-header` arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParamHeaders(pub Vec<(String, String)>);

/// Decodes a header value that may use the `=?base64?...?=` form (strict Base64 with
/// padding); `None` when the Base64 is invalid or not UTF-8. A value missing the prefix or
/// the suffix is taken literally.
pub fn decode_header_value(raw: &str) -> Option<String> {
    let value = raw.trim_matches([' ', '\t']);
    match value
        .strip_prefix("=?base64?")
        .and_then(|v| v.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok()),
        None => Some(value.to_owned()),
    }
}

/// Checks a `tools/call`'s `Mcp-Param-*` headers against its arguments: every annotated
/// argument with a value needs its header, equal to the value once decoded; a header for an
/// argument without a value is a mismatch too. The error is the `-32020` to answer.
pub(crate) fn check_param_headers(
    tool: &crate::types::Tool,
    arguments: &Value,
    headers: &ParamHeaders,
) -> Result<(), ErrorObject> {
    let Ok(params) = tool_header_params(tool) else {
        return Ok(());
    };
    for (arg, header) in params {
        let name = format!("{PARAM_HEADER_PREFIX}{header}").to_ascii_lowercase();
        let sent = headers.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v);
        let expected = match arguments.get(&arg) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        let mismatch = |detail: String| {
            ErrorObject::new(code::HEADER_MISMATCH, format!("Header mismatch: {detail}"))
        };
        match (expected, sent) {
            (None, None) => {}
            (Some(_), None) => {
                return Err(mismatch(format!(
                    "missing {PARAM_HEADER_PREFIX}{header} header"
                )));
            }
            (None, Some(_)) => {
                return Err(mismatch(format!(
                    "{PARAM_HEADER_PREFIX}{header} header sent for an argument without a value"
                )));
            }
            (Some(expected), Some(sent)) => {
                let decoded = decode_header_value(sent).ok_or_else(|| {
                    mismatch(format!(
                        "{PARAM_HEADER_PREFIX}{header} header has invalid Base64"
                    ))
                })?;
                if decoded != expected {
                    return Err(mismatch(format!(
                        "{PARAM_HEADER_PREFIX}{header} header value does not match the argument {arg:?}"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The state a multi round-trip request carries between rounds: the input responses
/// gathered so far, bound to the request it belongs to and to an expiry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct RoundState {
    /// Input responses of earlier rounds.
    pub(crate) responses: Map<String, Value>,
    /// Digest of the method and its salient params.
    pub(crate) binding: String,
    /// Expiry, seconds since the epoch.
    pub(crate) exp: u64,
}

type HmacSha256 = Hmac<Sha256>;

/// Signs and verifies `requestState` with HMAC-SHA256 so a client cannot tamper with it.
#[derive(Clone)]
pub struct RequestStateSigner {
    key: [u8; 32],
    ttl_secs: u64,
}

impl std::fmt::Debug for RequestStateSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestStateSigner")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Why a `requestState` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Not our format, or the signature does not match.
    #[error("requestState failed verification")]
    Tampered,
    /// Past its expiry.
    #[error("requestState has expired")]
    Expired,
    /// Issued for another request.
    #[error("requestState belongs to a different request")]
    WrongRequest,
}

impl RequestStateSigner {
    /// A signer with a random key (replicas must share one: use [`RequestStateSigner::with_key`]).
    pub fn random() -> Self {
        Self::with_key(rand::random::<[u8; 32]>())
    }

    /// A signer with a given key; state lives 10 minutes.
    pub fn with_key(key: [u8; 32]) -> Self {
        Self { key, ttl_secs: 600 }
    }

    /// Sets how long issued state stays valid.
    pub fn ttl_secs(mut self, ttl: u64) -> Self {
        self.ttl_secs = ttl.max(1);
        self
    }

    fn mac(&self, payload: &[u8]) -> Vec<u8> {
        // A 32-byte key is always a valid HMAC key.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return Vec::new(),
        };
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }

    pub(crate) fn sign(&self, responses: Map<String, Value>, binding: String) -> String {
        let state = RoundState {
            responses,
            binding,
            exp: now_secs() + self.ttl_secs,
        };
        let payload = serde_json::to_vec(&state).unwrap_or_default();
        let tag = self.mac(&payload);
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    pub(crate) fn verify(&self, token: &str, binding: &str) -> Result<RoundState, StateError> {
        let (payload, tag) = token.split_once('.').ok_or(StateError::Tampered)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Tampered)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Tampered)?;
        let mut mac = HmacSha256::new_from_slice(&self.key).map_err(|_| StateError::Tampered)?;
        mac.update(&payload);
        mac.verify_slice(&tag).map_err(|_| StateError::Tampered)?;
        let state: RoundState =
            serde_json::from_slice(&payload).map_err(|_| StateError::Tampered)?;
        if state.exp < now_secs() {
            return Err(StateError::Expired);
        }
        if state.binding != binding {
            return Err(StateError::WrongRequest);
        }
        Ok(state)
    }
}

/// Digest binding a round's state to its method and salient params (name/uri and arguments).
pub(crate) fn binding(method: &str, name: &str, arguments: &Value) -> String {
    let mut h = Sha256::new();
    h.update(method.as_bytes());
    h.update([0]);
    h.update(name.as_bytes());
    h.update([0]);
    h.update(arguments.to_string().as_bytes());
    URL_SAFE_NO_PAD.encode(h.finalize())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_rejects_tampering() {
        let signer = RequestStateSigner::random();
        let mut r = Map::new();
        r.insert("input_0".into(), json!({"action":"accept"}));
        let b = binding("tools/call", "t", &json!({"a":1}));
        let token = signer.sign(r.clone(), b.clone());
        assert_eq!(signer.verify(&token, &b).unwrap().responses, r);
        let other = binding("tools/call", "t", &json!({"a":2}));
        assert_eq!(signer.verify(&token, &other), Err(StateError::WrongRequest));
        let mut forged = token.clone();
        forged.insert(3, 'x');
        assert_eq!(signer.verify(&forged, &b), Err(StateError::Tampered));
        assert_eq!(
            RequestStateSigner::random().verify(&token, &b),
            Err(StateError::Tampered)
        );
        let expired = RequestStateSigner {
            ttl_secs: 0,
            ..signer.clone()
        };
        let t = RoundState {
            responses: Map::new(),
            binding: b.clone(),
            exp: 1,
        };
        let payload = serde_json::to_vec(&t).unwrap();
        let token = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(expired.mac(&payload))
        );
        assert_eq!(signer.verify(&token, &b), Err(StateError::Expired));
    }

    #[test]
    fn header_values_are_plain_or_base64() {
        assert_eq!(encode_header_value("us west 1"), "us west 1");
        assert_eq!(encode_header_value(""), "");
        assert_eq!(encode_header_value(" padded "), "=?base64?IHBhZGRlZCA=?=");
        assert_eq!(
            encode_header_value("Hello, 世界"),
            "=?base64?SGVsbG8sIOS4lueVjA==?="
        );
        assert_eq!(encode_header_value("\tindented"), "=?base64?CWluZGVudGVk?=");
    }

    #[test]
    fn tool_header_annotations_are_checked_and_mirrored() {
        let tool = |props: Value| crate::types::Tool {
            name: "t".into(),
            title: None,
            description: None,
            input_schema: serde_json::from_value(json!({"type":"object","properties": props}))
                .unwrap(),
            output_schema: None,
            annotations: None,
            icons: None,
            meta: None,
            execution: None,
        };
        let good = tool(
            json!({"region":{"type":"string","x-mcp-header":"Region"},"n":{"type":"integer","x-mcp-header":"N"},"q":{"type":"string"}}),
        );
        let headers = param_headers(&good, &json!({"region":"us-west1","n":42,"q":"x"}));
        assert!(headers.contains(&("Mcp-Param-Region".into(), "us-west1".into())));
        assert!(headers.contains(&("Mcp-Param-N".into(), "42".into())));
        assert_eq!(headers.len(), 2);
        assert!(param_headers(&good, &json!({"region":null})).is_empty());
        for bad in [
            json!({"a":{"type":"string","x-mcp-header":""}}),
            json!({"a":{"type":"object","x-mcp-header":"A"}}),
            json!({"a":{"type":"number","x-mcp-header":"A"}}),
            json!({"a":{"type":"string","x-mcp-header":"My Region"}}),
            json!({"a":{"type":"string","x-mcp-header":"Région"}}),
            json!({"a":{"type":"string","x-mcp-header":"A"},"b":{"type":"string","x-mcp-header":"a"}}),
        ] {
            assert!(tool_header_params(&tool(bad.clone())).is_err(), "{bad}");
        }
        assert_eq!(
            standard_headers("tools/call", Some(&json!({"name":"t"}))),
            vec![
                (METHOD_HEADER, "tools/call".to_owned()),
                (NAME_HEADER, "t".to_owned())
            ]
        );
    }

    #[test]
    fn meta_is_read_from_params() {
        let p = json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_INFO: {"name":"c","version":"1"}, META_CLIENT_CAPABILITIES: {"sampling":{}}}});
        let m = RequestMeta::from_params(Some(&p)).unwrap();
        assert_eq!(m.version().unwrap(), ProtocolVersion::V2026_07_28);
        assert!(m.client_capabilities.sampling.is_some());
        assert!(RequestMeta::from_params(Some(&json!({"name":"x"}))).is_none());
        let bad = json!({"_meta": {META_PROTOCOL_VERSION: "1900-01-01"}});
        let e = RequestMeta::from_params(Some(&bad))
            .unwrap()
            .version()
            .unwrap_err();
        assert_eq!(e.code, -32022);
        assert_eq!(e.data.unwrap()["requested"], "1900-01-01");
    }
}
