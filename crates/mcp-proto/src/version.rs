//! Protocol versions and version negotiation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A protocol version this crate speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// 2024-11-05: the HTTP+SSE era.
    V2024_11_05,
    /// 2025-03-26: streamable HTTP, batches, tool annotations, audio.
    V2025_03_26,
    /// 2025-06-18: structured tool output, elicitation, resource links; batches removed.
    V2025_06_18,
    /// 2025-11-25: icons, URL elicitation, input validation as tool errors.
    V2025_11_25,
    /// 2026-07-28: the stateless era (no `initialize`, no sessions).
    V2026_07_28,
}

/// Error for a version string this crate does not speak.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported protocol version {0:?}")]
pub struct UnknownVersion(pub String);

impl ProtocolVersion {
    /// Every version, oldest first.
    pub const ALL: [ProtocolVersion; 5] = [
        ProtocolVersion::V2024_11_05,
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2026_07_28,
    ];

    /// The versions negotiated with `initialize` (the stateful era), oldest first.
    pub const STATEFUL: [ProtocolVersion; 4] = [
        ProtocolVersion::V2024_11_05,
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_11_25,
    ];

    /// The newest version negotiated through `initialize`.
    pub const LATEST_STATEFUL: ProtocolVersion = ProtocolVersion::V2025_11_25;

    /// The newest version.
    pub const LATEST: ProtocolVersion = ProtocolVersion::V2026_07_28;

    /// What a streamable HTTP server assumes when `MCP-Protocol-Version` is absent.
    pub const HTTP_DEFAULT: ProtocolVersion = ProtocolVersion::V2025_03_26;

    /// The wire string, e.g. `"2025-06-18"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
            ProtocolVersion::V2026_07_28 => "2026-07-28",
        }
    }

    /// Whether this version uses the stateless, `initialize`-free semantics.
    pub fn is_stateless(self) -> bool {
        self >= ProtocolVersion::V2026_07_28
    }

    /// JSON-RPC batches are part of 2025-03-26 only.
    pub fn allows_batches(self) -> bool {
        self == ProtocolVersion::V2025_03_26
    }

    /// Tool annotations, audio content, progress `message`, `completions` capability.
    pub fn has_annotations_and_audio(self) -> bool {
        self >= ProtocolVersion::V2025_03_26
    }

    /// `structuredContent`, `outputSchema`, `resource_link`, `title`, elicitation.
    pub fn has_structured_output(self) -> bool {
        self >= ProtocolVersion::V2025_06_18
    }

    /// Icons, `Implementation.description`/`websiteUrl`, URL elicitation.
    pub fn has_icons(self) -> bool {
        self >= ProtocolVersion::V2025_11_25
    }

    /// From 2025-11-25 invalid tool arguments are tool execution errors (`isError: true`);
    /// before, they are JSON-RPC `-32602` errors.
    pub fn argument_errors_are_tool_errors(self) -> bool {
        self >= ProtocolVersion::V2025_11_25
    }

    /// The code for "resource not found": `-32002` up to 2025-11-25, `-32602` after.
    pub fn resource_not_found_code(self) -> i64 {
        if self.is_stateless() {
            crate::jsonrpc::code::INVALID_PARAMS
        } else {
            crate::jsonrpc::code::RESOURCE_NOT_FOUND
        }
    }

    /// Version negotiation for `initialize`: echo the client's version when it is a stateful
    /// version we speak, otherwise answer with our newest stateful version.
    pub fn negotiate(requested: &str) -> ProtocolVersion {
        match requested.parse::<ProtocolVersion>() {
            Ok(v) if !v.is_stateless() => v,
            _ => ProtocolVersion::LATEST_STATEFUL,
        }
    }

    /// The wire strings of every version, newest first (used in error `data.supported`).
    pub fn supported_strings() -> Vec<&'static str> {
        ProtocolVersion::ALL
            .iter()
            .rev()
            .map(|v| v.as_str())
            .collect()
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProtocolVersion {
    type Err = UnknownVersion;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProtocolVersion::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownVersion(s.to_owned()))
    }
}

impl Serialize for ProtocolVersion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProtocolVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_echoes_supported_and_falls_back_to_latest_stateful() {
        for v in ProtocolVersion::STATEFUL {
            assert_eq!(ProtocolVersion::negotiate(v.as_str()), v);
        }
        assert_eq!(
            ProtocolVersion::negotiate("1.0.0"),
            ProtocolVersion::V2025_11_25
        );
        assert_eq!(
            ProtocolVersion::negotiate("2024-10-07"),
            ProtocolVersion::V2025_11_25
        );
        // initialize never selects the stateless era
        assert_eq!(
            ProtocolVersion::negotiate("2026-07-28"),
            ProtocolVersion::V2025_11_25
        );
    }

    #[test]
    fn feature_gates_follow_the_changelogs() {
        use ProtocolVersion::*;
        assert!(V2025_03_26.allows_batches());
        assert!(!V2024_11_05.allows_batches());
        assert!(!V2025_06_18.allows_batches());
        assert!(!V2025_03_26.has_structured_output());
        assert!(V2025_06_18.has_structured_output());
        assert!(!V2025_06_18.has_icons());
        assert!(V2025_11_25.has_icons());
        assert!(!V2025_06_18.argument_errors_are_tool_errors());
        assert!(V2025_11_25.argument_errors_are_tool_errors());
        assert_eq!(V2025_11_25.resource_not_found_code(), -32002);
        assert_eq!(V2026_07_28.resource_not_found_code(), -32602);
    }

    #[test]
    fn parses_and_prints() {
        for v in ProtocolVersion::ALL {
            assert_eq!(v.as_str().parse::<ProtocolVersion>().unwrap(), v);
            assert_eq!(serde_json::to_string(&v).unwrap(), format!("\"{v}\""));
        }
        assert!("2025-01-01".parse::<ProtocolVersion>().is_err());
    }
}
