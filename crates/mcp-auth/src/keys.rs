//! Public verification keys: parsed from PEM or JWK, each with the algorithms it may verify.

use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, RsaPublicKey};

use crate::AuthError;

/// Smallest RSA modulus accepted (RFC 7518 §3.3: 2048 bits or larger).
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// One public key and the algorithms tokens signed with it may use.
#[derive(Clone)]
pub(crate) struct VerificationKey {
    pub(crate) kid: Option<String>,
    pub(crate) key: DecodingKey,
    pub(crate) family: AlgorithmFamily,
    pub(crate) algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerificationKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// The family an algorithm belongs to.
pub(crate) fn family_of(algorithm: Algorithm) -> AlgorithmFamily {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => AlgorithmFamily::Rsa,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
    }
}

fn invalid_key(reason: impl Into<String>) -> AuthError {
    AuthError::invalid_key(reason)
}

impl VerificationKey {
    fn rsa(public_key: &RsaPublicKey, kid: Option<String>) -> Result<Self, AuthError> {
        let bits = public_key.n().bits();
        if bits < MIN_RSA_BITS {
            return Err(invalid_key(format!(
                "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
            )));
        }
        Ok(Self {
            kid,
            key: DecodingKey::from_rsa_raw_components(
                &public_key.n().to_bytes_be(),
                &public_key.e().to_bytes_be(),
            ),
            family: AlgorithmFamily::Rsa,
            algorithms: vec![Algorithm::RS256],
        })
    }

    /// Parses a PEM public key: RSA as SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`); EC (P-256,
    /// P-384) and Ed25519 as SPKI.
    pub(crate) fn from_pem(pem: &str) -> Result<Self, AuthError> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;

        let pem = pem.trim();
        let label = pem
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("-----BEGIN "))
            .and_then(|line| line.strip_suffix("-----"))
            .ok_or_else(|| invalid_key("not a PEM document (no -----BEGIN ...----- line)"))?;
        match label {
            "PUBLIC KEY" => {
                if let Ok(public_key) = RsaPublicKey::from_public_key_pem(pem) {
                    return Self::rsa(&public_key, None);
                }
                if let Ok(key) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                    return Ok(Self {
                        kid: None,
                        key,
                        family: AlgorithmFamily::Ec,
                        algorithms: vec![Algorithm::ES256, Algorithm::ES384],
                    });
                }
                if let Ok(key) = DecodingKey::from_ed_pem(pem.as_bytes()) {
                    return Ok(Self {
                        kid: None,
                        key,
                        family: AlgorithmFamily::Ed,
                        algorithms: vec![Algorithm::EdDSA],
                    });
                }
                Err(invalid_key(
                    "the PUBLIC KEY is not an RSA, P-256, P-384 or Ed25519 key",
                ))
            }
            "RSA PUBLIC KEY" => {
                let public_key = RsaPublicKey::from_pkcs1_pem(pem)
                    .map_err(|e| invalid_key(format!("bad PKCS#1 RSA public key: {e}")))?;
                Self::rsa(&public_key, None)
            }
            label if label.contains("PRIVATE KEY") => Err(invalid_key(
                "expected a public key but got a private key; pass the public key",
            )),
            other => Err(invalid_key(format!(
                "unsupported PEM label `{other}`; expected PUBLIC KEY or RSA PUBLIC KEY"
            ))),
        }
    }

    /// Converts a JWK (RFC 7517) into a verification key. Symmetric (`oct`) keys and keys meant
    /// for encryption are refused.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Result<Self, AuthError> {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            return Err(invalid_key("the JWK is for encryption (`use`: `enc`)"));
        }
        let declared = match &jwk.common.key_algorithm {
            Some(alg) => Some(Algorithm::from_str(&alg.to_string()).map_err(|_| {
                invalid_key(format!(
                    "the JWK's `alg` {alg} is not a signature algorithm"
                ))
            })?),
            None => None,
        };
        let kid = jwk.common.key_id.clone();
        let mut key = match &jwk.algorithm {
            AlgorithmParameters::RSA(params) => {
                let n = decode_b64url(&params.n)
                    .ok_or_else(|| invalid_key("the JWK's `n` is not base64url"))?;
                let e = decode_b64url(&params.e)
                    .ok_or_else(|| invalid_key("the JWK's `e` is not base64url"))?;
                let public_key =
                    RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                        .map_err(|e| invalid_key(format!("bad RSA JWK: {e}")))?;
                Self::rsa(&public_key, kid)?
            }
            AlgorithmParameters::EllipticCurve(params) => {
                let algorithm = match params.curve {
                    EllipticCurve::P256 => Algorithm::ES256,
                    EllipticCurve::P384 => Algorithm::ES384,
                    _ => {
                        return Err(invalid_key(
                            "unsupported elliptic curve (use P-256 or P-384)",
                        ));
                    }
                };
                Self {
                    kid,
                    key: DecodingKey::from_ec_components(&params.x, &params.y)
                        .map_err(|e| invalid_key(format!("bad EC JWK: {e}")))?,
                    family: AlgorithmFamily::Ec,
                    algorithms: vec![algorithm],
                }
            }
            AlgorithmParameters::OctetKeyPair(params) => {
                if params.curve != EllipticCurve::Ed25519 {
                    return Err(invalid_key("unsupported OKP curve (use Ed25519)"));
                }
                Self {
                    kid,
                    key: DecodingKey::from_ed_components(&params.x)
                        .map_err(|e| invalid_key(format!("bad Ed25519 JWK: {e}")))?,
                    family: AlgorithmFamily::Ed,
                    algorithms: vec![Algorithm::EdDSA],
                }
            }
            AlgorithmParameters::OctetKey(_) => {
                return Err(invalid_key(
                    "symmetric (`oct`, HMAC) keys are not accepted; configure a public key",
                ));
            }
        };
        if let Some(declared) = declared {
            if family_of(declared) != key.family {
                return Err(invalid_key(format!(
                    "the JWK's `alg` {declared:?} does not match its key type"
                )));
            }
            key.algorithms = vec![declared];
        }
        Ok(key)
    }

    /// Parses a JWK from JSON.
    pub(crate) fn from_jwk_value(value: &serde_json::Value) -> Result<Self, AuthError> {
        let jwk: Jwk = serde_json::from_value(value.clone())
            .map_err(|e| invalid_key(format!("not a supported JWK: {e}")))?;
        Self::from_jwk(&jwk)
    }
}

/// Decodes base64url with or without padding.
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// Picks the key for a token's `kid` from a set.
///
/// A token with a `kid` uses the key with that `kid`; a set of exactly one key without a `kid`
/// (a bare PEM key) verifies any token. A token without a `kid` needs a set of exactly one key.
pub(crate) fn select_key<'k>(
    keys: &'k [VerificationKey],
    kid: Option<&str>,
) -> Option<&'k VerificationKey> {
    let only = || match keys {
        [single] => Some(single),
        _ => None,
    };
    match kid {
        Some(kid) => keys
            .iter()
            .find(|key| key.kid.as_deref() == Some(kid))
            .or_else(|| only().filter(|key| key.kid.is_none())),
        None => only(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn refuses_hmac_jwk_private_pem_and_garbage() {
        let err = VerificationKey::from_jwk_value(&json!({"kty": "oct", "k": "c2VjcmV0"}))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "invalid key: symmetric (`oct`, HMAC) keys are not accepted; configure a public key"
            )
        );
        let err = VerificationKey::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid key: expected a public key but got a private key; pass the public key")
        );
        assert!(matches!(
            VerificationKey::from_pem("hello"),
            Err(AuthError::InvalidKey { .. })
        ));
        assert!(matches!(
            VerificationKey::from_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
            Err(AuthError::InvalidKey { .. })
        ));
    }

    #[test]
    fn refuses_small_rsa_jwk_and_mismatched_alg() {
        // A 512-bit modulus is refused for its size before anything else.
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 64]);
        let err = VerificationKey::from_jwk_value(&json!({"kty": "RSA", "n": n, "e": "AQAB"}))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid key: the RSA key has 512 bits; at least 2048 are required")
        );
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let err = VerificationKey::from_jwk_value(
            &json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "ES256"}),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid key: the JWK's `alg` ES256 does not match its key type")
        );
        let key = VerificationKey::from_jwk_value(
            &json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "PS256", "kid": "k1"}),
        );
        let key = key.ok();
        assert_eq!(
            key.as_ref().map(|k| k.algorithms.clone()),
            Some(vec![Algorithm::PS256])
        );
        assert_eq!(key.and_then(|k| k.kid), Some("k1".to_owned()));
    }
}
