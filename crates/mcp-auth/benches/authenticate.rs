//! Cost of bearer authentication per request: a cached token against a full RS256 verification,
//! and, in the same process, what the layer adds to an in-process axum request and how a cached
//! check compares with a bare `serde_json` echo of a `tools/call`. Run with
//! `cargo bench -p mcp-auth`; the ratios are printed after divan's table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::routing::post;
use divan::black_box;
use http::{HeaderMap, HeaderValue, Request, header::AUTHORIZATION};
use mcp_auth::{BearerAuthLayer, JwtVerifier, RsaKeyPair};
use tower::ServiceExt;

/// The request body every echo reads.
const CALL: &[u8] = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"roll_dice","arguments":{"n_dice":3}}}"#;

fn main() {
    divan::main();
    print_ratios();
}

struct Fixture {
    cached: BearerAuthLayer,
    uncached: BearerAuthLayer,
    headers: HeaderMap,
    plain: Router,
    protected: Router,
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
        let plain = Router::new().route("/mcp", post(|| async { "{}" }));
        let protected = plain.clone().layer(cached.clone());
        Fixture {
            cached,
            uncached,
            headers,
            plain,
            protected,
        }
    })
}

/// A token seen before: one SHA-256, one map lookup, reference counts, scope check.
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

/// The baseline: `serde_json` parse and serialize of a `tools/call`.
#[divan::bench]
fn serde_echo() {
    serde_echo_once();
}

/// An in-process axum request (headers of a real call), without the layer.
#[divan::bench]
fn router_without_auth() {
    router_once(&fixture().plain);
}

/// The same request through [`BearerAuthLayer`] with a cached token.
#[divan::bench]
fn router_with_auth() {
    router_once(&fixture().protected);
}

fn serde_echo_once() -> Vec<u8> {
    let value: serde_json::Value = serde_json::from_slice(black_box(CALL)).unwrap();
    serde_json::to_vec(&value).unwrap()
}

fn router_once(router: &Router) {
    let mut request = Request::post("/mcp").body(Body::from(CALL)).unwrap();
    *request.headers_mut() = fixture().headers.clone();
    let response = futures::executor::block_on(router.clone().oneshot(request)).unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
}

/// Nanoseconds per call of each of `work`, timed in interleaved batches (so drifting load hits
/// them alike), median over the batches.
fn interleaved<const N: usize>(work: [&dyn Fn(); N]) -> [f64; N] {
    const BATCHES: usize = 15;
    const PER_BATCH: u32 = 20_000;
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::with_capacity(BATCHES));
    for _ in 0..BATCHES {
        for (one, out) in work.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            for _ in 0..PER_BATCH {
                one();
            }
            out.push(elapsed_ns(started.elapsed()) / f64::from(PER_BATCH));
        }
    }
    samples.map(|mut s| {
        s.sort_by(f64::total_cmp);
        s[s.len() / 2]
    })
}

fn elapsed_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// The ratios the auth target is about, measured in this process.
fn print_ratios() {
    let fixture = fixture();
    let [cached, echo, plain, protected] = interleaved([
        &|| {
            black_box(
                futures::executor::block_on(fixture.cached.authenticate(&fixture.headers)).unwrap(),
            );
        },
        &|| {
            black_box(serde_echo_once());
        },
        &|| router_once(&fixture.plain),
        &|| router_once(&fixture.protected),
    ]);
    println!();
    println!(
        "cached token check {cached:.0} ns = {:.2}x a serde_json echo of a tools/call ({echo:.0} ns)",
        cached / echo
    );
    println!(
        "in-process axum request {plain:.0} ns, with the auth layer {protected:.0} ns: +{:.1}%",
        100.0 * (protected / plain - 1.0)
    );
}
