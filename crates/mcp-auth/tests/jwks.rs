//! `JwtVerifier::from_jwks_url` against a local JWKS server: caching, `Cache-Control`, key
//! rotation, rate-limited refreshes, one shared fetch for concurrent requests, failures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use http::StatusCode;
use mcp_auth::{AuthError, JwtVerifier, ResourceServer};

use common::{JwksServer, Protected, key_set, primary, rotated};

const AUDIENCE: &str = "dice-server";

fn jwks_verifier(jwks: &JwksServer, refresh_interval: Duration) -> JwtVerifier {
    JwtVerifier::from_jwks_url(&jwks.url)
        .unwrap()
        .audience(AUDIENCE)
        .jwks_refresh_interval(refresh_interval)
}

fn token_from(pair: &mcp_auth::RsaKeyPair, subject: &str) -> String {
    pair.create_token()
        .audience(AUDIENCE)
        .subject(subject)
        .sign()
        .unwrap()
}

#[tokio::test]
async fn unknown_kid_and_key_rotation_refetch_at_most_once_per_interval() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    let interval = Duration::from_millis(2000);
    let verifier = jwks_verifier(&jwks, interval);
    let server =
        Protected::start(|resource| ResourceServer::new(resource, verifier.clone()).unwrap()).await;
    let unknown_key = |server: &Protected| {
        format!(
            "Bearer error=\"invalid_token\", error_description=\"the token was signed with an unknown key\", resource_metadata=\"{}\"",
            server.metadata_url
        )
    };
    assert_eq!(jwks.fetches(), 0, "keys are fetched lazily");

    let (status, _) = server
        .call_ok(&format!("Bearer {}", token_from(primary(), "a")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks.fetches(), 1);
    let (status, _) = server
        .call_ok(&format!("Bearer {}", token_from(primary(), "b")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks.fetches(), 1, "the key set is cached");

    // The authorization server rotates; a token with the new kid arrives within the interval.
    jwks.set_document(key_set(&[primary(), rotated()]));
    let new_token = token_from(rotated(), "c");
    server
        .expect_rejection(
            Some(&format!("Bearer {new_token}")),
            StatusCode::UNAUTHORIZED,
            &unknown_key(&server),
            "invalid_token",
        )
        .await;
    assert_eq!(jwks.fetches(), 1, "no refetch within the refresh interval");

    tokio::time::sleep(interval + Duration::from_millis(100)).await;
    let (status, _) = server.call_ok(&format!("Bearer {new_token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        jwks.fetches(),
        2,
        "unknown kid refetched once the interval passed"
    );

    // An unknown kid right after a fetch does not cause another one.
    let bogus = rotated()
        .create_token()
        .audience(AUDIENCE)
        .kid("no-such-key")
        .sign()
        .unwrap();
    server
        .expect_rejection(
            Some(&format!("Bearer {bogus}")),
            StatusCode::UNAUTHORIZED,
            &unknown_key(&server),
            "invalid_token",
        )
        .await;
    assert_eq!(jwks.fetches(), 2);
    // Known keys keep working without fetches.
    let (status, _) = server
        .call_ok(&format!("Bearer {}", token_from(primary(), "d")))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks.fetches(), 2);
    assert_eq!(verifier.jwks_fetch_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_first_requests_share_one_fetch() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    jwks.set_delay(Duration::from_millis(300));
    let server = Protected::start(|resource| {
        ResourceServer::new(resource, jwks_verifier(&jwks, Duration::from_secs(30))).unwrap()
    })
    .await;
    let authorization = format!("Bearer {}", token_from(primary(), "crowd"));
    let started = Instant::now();
    let requests = (0..1000).map(|_| {
        server
            .client
            .get(format!("{}/mcp", server.base))
            .header("authorization", authorization.as_str())
            .send()
    });
    let responses = futures::future::join_all(requests).await;
    let statuses: Vec<u16> = responses
        .into_iter()
        .map(|response| response.unwrap().status().as_u16())
        .collect();
    println!(
        "1000 concurrent first requests took {:?}",
        started.elapsed()
    );
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    assert_eq!(jwks.fetches(), 1);
    assert_eq!(server.handler_runs.load(Ordering::SeqCst), 1000);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    jwks.set_cache_control("public, max-age=1");
    let verifier = jwks_verifier(&jwks, Duration::from_millis(100));
    let token = token_from(primary(), "a");
    verifier.verify_token(&token).await.unwrap();
    verifier.verify_token(&token).await.unwrap();
    assert_eq!(jwks.fetches(), 1);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    verifier.verify_token(&token).await.unwrap();
    assert_eq!(jwks.fetches(), 2, "refetched after max-age");
}

#[tokio::test]
async fn failed_refresh_keeps_the_previous_keys() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    jwks.set_cache_control("max-age=1");
    let verifier = jwks_verifier(&jwks, Duration::from_millis(100));
    let token = token_from(primary(), "a");
    verifier.verify_token(&token).await.unwrap();
    jwks.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let identity = verifier.verify_token(&token).await.unwrap();
    assert_eq!(identity.subject.as_deref(), Some("a"));
    assert_eq!(jwks.fetches(), 2);
}

#[tokio::test]
async fn unavailable_key_set_answers_503_and_is_not_hammered() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    jwks.set_status(StatusCode::INTERNAL_SERVER_ERROR);
    let server = Protected::start(|resource| {
        ResourceServer::new(resource, jwks_verifier(&jwks, Duration::from_secs(30))).unwrap()
    })
    .await;
    for subject in ["a", "b"] {
        let body = server
            .expect_rejection_without_challenge(
                Some(&format!("Bearer {}", token_from(primary(), subject))),
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
            )
            .await;
        assert_eq!(
            body["error_description"],
            "the signing keys are unavailable: the JWKS endpoint answered 500 Internal Server Error"
        );
    }
    assert_eq!(jwks.fetches(), 1, "failures are rate-limited too");
}

#[tokio::test]
async fn slow_key_set_fetch_times_out() {
    let jwks = JwksServer::start(key_set(&[primary()])).await;
    jwks.set_delay(Duration::from_secs(5));
    let verifier = jwks_verifier(&jwks, Duration::from_secs(30))
        .jwks_fetch_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let error = verifier
        .verify_token(&token_from(primary(), "a"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error,
        AuthError::KeySetUnavailable {
            reason: "fetching the key set took longer than 200ms".to_owned()
        }
    );
}

#[tokio::test]
async fn oversized_or_unusable_key_sets_are_refused() {
    let jwks = JwksServer::start(serde_json::json!({
        "keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"}],
        "padding": "x".repeat(10),
    }))
    .await;
    let verifier = jwks_verifier(&jwks, Duration::from_secs(30));
    let error = verifier
        .verify_token(&token_from(primary(), "a"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AuthError::KeySetUnavailable {
            reason: "the JWKS has no usable signature keys".to_owned()
        }
    );

    let big = JwksServer::start(serde_json::json!({
        "keys": [primary().public_jwk()],
        "padding": "x".repeat(300 * 1024),
    }))
    .await;
    let error = jwks_verifier(&big, Duration::from_secs(30))
        .verify_token(&token_from(primary(), "a"))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        AuthError::KeySetUnavailable {
            reason: "the JWKS document is larger than 262144 bytes".to_owned()
        }
    );
}

#[test]
fn jwks_url_must_be_http() {
    assert!(matches!(
        JwtVerifier::from_jwks_url("file:///etc/jwks.json"),
        Err(AuthError::InvalidConfig { .. })
    ));
    assert!(matches!(
        JwtVerifier::from_jwks_url("not a url"),
        Err(AuthError::InvalidConfig { .. })
    ));
}
