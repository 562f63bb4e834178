//! The 2026-07-28 revision, served without sessions: every request carries its own `_meta`
//! (protocol version, client info and capabilities), `server/discover` replaces `initialize`,
//! results say their `resultType`, and a multi round-trip request carries its state, signed,
//! through the client ([`RequestStateSigner`]).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::jsonrpc::{ErrorObject, code};
use crate::types::{ClientCapabilities, Implementation, JsonObject, ServerCapabilities};
use crate::version::ProtocolVersion;

/// `_meta` key carrying the protocol version of a stateless request.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key carrying the client's name and version.
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key carrying the client's capabilities.
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key carrying the server's name and version in `server/discover`.
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key a stateless request uses to opt in to log messages at a level.
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";

/// `resultType` of a finished request.
pub const RESULT_COMPLETE: &str = "complete";
/// `resultType` of a request that needs input from the client first.
pub const RESULT_INPUT_REQUIRED: &str = "input_required";

/// What a stateless request says about itself in `_meta`.
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
    /// Reads the stateless `_meta` of request params; `None` when the request is not stateless.
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

/// Builds the `_meta` a stateless client puts on every request.
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

/// Result of `server/discover` (2026-07-28).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiscoverResult {
    /// Protocol versions the server speaks.
    pub supported_versions: Vec<String>,
    /// Its capabilities.
    pub capabilities: ServerCapabilities,
    /// How to use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// `io.modelcontextprotocol/serverInfo` and other metadata.
    #[serde(rename = "_meta", default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<JsonObject>,
}

impl DiscoverResult {
    /// The server's name and version from `_meta`.
    pub fn server_info(&self) -> Option<Implementation> {
        let v = self.meta.as_ref()?.get(META_SERVER_INFO)?;
        serde_json::from_value(v.clone()).ok()
    }
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
#[non_exhaustive]
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

    /// Signs a server's own round state (any JSON object it wants back with the next round,
    /// e.g. a handle on work still running), bound to a request ([`binding`]) and to the
    /// signer's expiry; [`RequestStateSigner::open`] checks and returns it.
    pub fn seal(&self, state: Map<String, Value>, binding: &str) -> String {
        self.sign(state, binding.to_owned())
    }

    /// The state [`RequestStateSigner::seal`] signed, if `token` is untampered, unexpired and
    /// bound to `binding`.
    pub fn open(&self, token: &str, binding: &str) -> Result<Map<String, Value>, StateError> {
        self.verify(token, binding).map(|state| state.responses)
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
pub fn binding(method: &str, name: &str, arguments: &Value) -> String {
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
    fn sealed_state_opens_only_untampered_and_for_its_request() {
        let signer = RequestStateSigner::random();
        let mut state = Map::new();
        state.insert("call".into(), json!("c1"));
        let b = binding("prompts/get", "p", &json!({}));
        let token = signer.seal(state.clone(), &b);
        assert_eq!(signer.open(&token, &b), Ok(state));
        let other = binding("prompts/get", "q", &json!({}));
        assert_eq!(signer.open(&token, &other), Err(StateError::WrongRequest));
        let tampered = format!("{token}-TAMPERED");
        assert_eq!(signer.open(&tampered, &b), Err(StateError::Tampered));
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
