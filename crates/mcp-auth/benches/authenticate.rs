//! Cost of bearer authentication per request: a cached token against a full RS256 verification.
//! Run with `cargo bench -p mcp-auth`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
use mcp_auth::{BearerAuthLayer, JwtVerifier, RsaKeyPair};

fn main() {
    divan::main();
}

struct Fixture {
    cached: BearerAuthLayer,
    uncached: BearerAuthLayer,
    headers: HeaderMap,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let kp =
            RsaKeyPair::from_private_key_pem(include_str!("../tests/data/primary.pem")).unwrap();
        let verifier = JwtVerifier::from_public_key_pem(&kp.public_key_pem())
            .unwrap()
            .audience("dice-server");
        let token = kp
            .create_token()
            .audience("dice-server")
            .scopes(["dice:roll"])
            .sign()
            .unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let cached = BearerAuthLayer::new(verifier.clone()).required_scopes(["dice:roll"]);
        futures::executor::block_on(cached.authenticate(&headers)).unwrap();
        let uncached = BearerAuthLayer::new(verifier)
            .required_scopes(["dice:roll"])
            .token_cache_capacity(0);
        Fixture {
            cached,
            uncached,
            headers,
        }
    })
}

/// A token seen before: hash lookup, identity clone, scope check.
#[divan::bench]
fn cached_token() {
    let fixture = fixture();
    divan::black_box(
        futures::executor::block_on(fixture.cached.authenticate(&fixture.headers)).unwrap(),
    );
}

/// A token never seen: parse, RS256 signature check, claim validation.
#[divan::bench]
fn full_verification() {
    let fixture = fixture();
    divan::black_box(
        futures::executor::block_on(fixture.uncached.authenticate(&fixture.headers)).unwrap(),
    );
}
