//! The bearer layer over real sockets: every rejection is checked for its status, exact
//! `WWW-Authenticate`, JSON body, and that the protected handler did not run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::StatusCode;
use mcp_auth::{AuthError, DEV_ISSUER, JwtVerifier, ResourceServer, TokenVerifier};
use serde_json::{Value, json};

use common::{CountingVerifier, Protected, now, other, primary};

const AUDIENCE: &str = "dice-server";

fn verifier() -> JwtVerifier {
    JwtVerifier::from_public_key_pem(&primary().public_key_pem())
        .unwrap()
        .audience(AUDIENCE)
}

async fn protected() -> Protected {
    Protected::start(|resource| ResourceServer::new(resource, verifier()).unwrap()).await
}

fn token() -> String {
    primary().create_token().audience(AUDIENCE).sign().unwrap()
}

fn b64(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

fn invalid_token(server: &Protected, description: &str) -> String {
    format!(
        "Bearer error=\"invalid_token\", error_description=\"{description}\", resource_metadata=\"{}\"",
        server.metadata_url
    )
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_its_identity() {
    let server = protected().await;
    let token = primary()
        .create_token()
        .audience(AUDIENCE)
        .subject("alice")
        .scopes(["dice:roll", "dice:read"])
        .claim("client_id", "responses-local")
        .sign()
        .unwrap();
    let (status, body) = server.call_ok(&format!("Bearer {token}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "subject": "alice",
            "client_id": "responses-local",
            "scopes": ["dice:roll", "dice:read"],
            "iss": DEV_ISSUER,
        })
    );
    assert_eq!(server.handler_runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn scheme_name_is_case_insensitive() {
    let server = protected().await;
    let (status, _) = server.call_ok(&format!("bEARER {}", token())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_header_gets_a_challenge_without_error_code() {
    let server = protected().await;
    let expected = format!("Bearer resource_metadata=\"{}\"", server.metadata_url);
    server
        .expect_rejection(None, StatusCode::UNAUTHORIZED, &expected, "unauthorized")
        .await;
}

#[tokio::test]
async fn basic_scheme_counts_as_missing_credentials() {
    let server = protected().await;
    let expected = format!("Bearer resource_metadata=\"{}\"", server.metadata_url);
    server
        .expect_rejection(
            Some("Basic ZGV2LXVzZXI6c2VjcmV0"),
            StatusCode::UNAUTHORIZED,
            &expected,
            "unauthorized",
        )
        .await;
}

#[tokio::test]
async fn token_in_query_string_is_not_accepted() {
    let server = protected().await;
    let response = server
        .client
        .get(format!("{}/mcp?access_token={}", server.base, token()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!("Bearer resource_metadata=\"{}\"", server.metadata_url).as_str()
    );
    assert_eq!(server.handler_runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn empty_token() {
    let server = protected().await;
    let expected = invalid_token(&server, "the bearer token is empty");
    server
        .expect_rejection(
            Some("Bearer "),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn malformed_tokens() {
    let server = protected().await;
    let header = b64(r#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = b64(&json!({"aud": AUDIENCE, "exp": now() + 600}).to_string());
    let cases = [
        (
            "abc.def".to_owned(),
            "the token is malformed: a JWT has three dot-separated parts",
        ),
        (
            "a.b.c.d".to_owned(),
            "the token is malformed: a JWT has three dot-separated parts",
        ),
        (
            "e+J9.e30.sig".to_owned(),
            "the token is malformed: the header is not valid base64url",
        ),
        (
            format!("{}.{claims}.sig", b64("not json")),
            "the token is malformed: the header is not a JSON object",
        ),
        (
            format!("{header}.{}.sig", b64("[1, 2]")),
            "the token is malformed: the claims are not a JSON object",
        ),
        (
            format!("{header}.%%%.sig"),
            "the token is malformed: the bearer token has characters a token cannot contain",
        ),
        (
            format!("{}.{claims}.sig", b64(r#"{"typ":"JWT"}"#)),
            "the token is malformed: the header has no `alg`",
        ),
        (
            format!("{header}.{claims}.!!"),
            "the token is malformed: the bearer token has characters a token cannot contain",
        ),
        (
            format!("{header}.{claims}.c2ln+w"),
            "the token is malformed: the signature is not valid base64url",
        ),
    ];
    for (token, description) in cases {
        let expected = invalid_token(&server, description);
        server
            .expect_rejection(
                Some(&format!("Bearer {token}")),
                StatusCode::UNAUTHORIZED,
                &expected,
                "invalid_token",
            )
            .await;
    }
}

#[tokio::test]
async fn alg_none_is_refused() {
    let server = protected().await;
    let claims = json!({"sub": "mallory", "aud": AUDIENCE, "exp": now() + 600});
    let token = format!(
        "{}.{}.",
        b64(r#"{"alg":"none","typ":"JWT"}"#),
        b64(&claims.to_string())
    );
    let expected = invalid_token(
        &server,
        "the token's signing algorithm none is not accepted",
    );
    server
        .expect_rejection(
            Some(&format!("Bearer {token}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_pem_is_refused() {
    let server = protected().await;
    let claims = json!({"sub": "mallory", "aud": AUDIENCE, "exp": now() + 600});
    let pem = primary().public_key_pem();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(pem.as_bytes()),
    )
    .unwrap();
    let expected = invalid_token(
        &server,
        "the token's signing algorithm HS256 is not accepted",
    );
    server
        .expect_rejection(
            Some(&format!("Bearer {token}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn token_signed_by_another_key_is_refused() {
    let server = protected().await;
    let token = other().create_token().audience(AUDIENCE).sign().unwrap();
    let expected = invalid_token(&server, "the token's signature is invalid");
    server
        .expect_rejection(
            Some(&format!("Bearer {token}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn expired_token_is_refused_but_leeway_applies() {
    let server = protected().await;
    let expired = primary()
        .create_token()
        .audience(AUDIENCE)
        .issued_at(now() - 7200)
        .lifetime(Duration::from_secs(3600))
        .sign()
        .unwrap();
    let expected = invalid_token(&server, "the token has expired");
    server
        .expect_rejection(
            Some(&format!("Bearer {expired}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
    // Expired 10 s ago: within the default 30 s leeway.
    let barely = primary()
        .create_token()
        .audience(AUDIENCE)
        .issued_at(now() - 70)
        .lifetime(Duration::from_secs(60))
        .sign()
        .unwrap();
    let (status, _) = server.call_ok(&format!("Bearer {barely}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn token_without_exp_is_refused() {
    let server = protected().await;
    let token = primary()
        .create_token()
        .audience(AUDIENCE)
        .claim("exp", Value::Null)
        .sign()
        .unwrap();
    let expected = invalid_token(&server, "the token has no `exp` claim");
    server
        .expect_rejection(
            Some(&format!("Bearer {token}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn token_not_valid_yet_is_refused() {
    let server = protected().await;
    let token = primary()
        .create_token()
        .audience(AUDIENCE)
        .not_before(now() + 600)
        .sign()
        .unwrap();
    let expected = invalid_token(&server, "the token is not valid yet");
    server
        .expect_rejection(
            Some(&format!("Bearer {token}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn audience_checks() {
    let server = protected().await;
    let wrong = primary()
        .create_token()
        .audience("other-server")
        .sign()
        .unwrap();
    let expected = invalid_token(
        &server,
        "the token is not intended for this resource (audience mismatch)",
    );
    server
        .expect_rejection(
            Some(&format!("Bearer {wrong}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;

    let missing = primary().create_token().sign().unwrap();
    let expected = invalid_token(&server, "the token has no `aud` claim");
    server
        .expect_rejection(
            Some(&format!("Bearer {missing}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;

    let wrong_list = primary()
        .create_token()
        .audience("a")
        .audience("b")
        .sign()
        .unwrap();
    let expected = invalid_token(
        &server,
        "the token is not intended for this resource (audience mismatch)",
    );
    server
        .expect_rejection(
            Some(&format!("Bearer {wrong_list}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;

    let list = primary()
        .create_token()
        .audience("other-server")
        .audience(AUDIENCE)
        .sign()
        .unwrap();
    let (status, _) = server.call_ok(&format!("Bearer {list}")).await;
    assert_eq!(status, StatusCode::OK);

    // A verifier accepting a list of audiences takes a token naming any one of them.
    let several = Protected::start(|resource| {
        ResourceServer::new(resource, verifier().audience("https://mcp.example.com/mcp")).unwrap()
    })
    .await;
    let second = primary()
        .create_token()
        .audience("https://mcp.example.com/mcp")
        .sign()
        .unwrap();
    let (status, _) = several.call_ok(&format!("Bearer {second}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn issuer_checks() {
    let server = Protected::start(|resource| {
        ResourceServer::new(resource, verifier().issuer(DEV_ISSUER)).unwrap()
    })
    .await;
    let wrong = primary()
        .create_token()
        .audience(AUDIENCE)
        .issuer("https://evil.example")
        .sign()
        .unwrap();
    let expected = invalid_token(&server, "the token was issued by an untrusted issuer");
    server
        .expect_rejection(
            Some(&format!("Bearer {wrong}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
    let missing = primary()
        .create_token()
        .audience(AUDIENCE)
        .claim("iss", Value::Null)
        .sign()
        .unwrap();
    let expected = invalid_token(&server, "the token has no `iss` claim");
    server
        .expect_rejection(
            Some(&format!("Bearer {missing}")),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
    let (status, _) = server.call_ok(&format!("Bearer {}", token())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn missing_scope_is_forbidden() {
    let server = Protected::start(|resource| {
        ResourceServer::new(resource, verifier())
            .unwrap()
            .required_scopes(["dice:roll"])
    })
    .await;
    let unscoped = primary()
        .create_token()
        .audience(AUDIENCE)
        .scopes(["dice:read"])
        .sign()
        .unwrap();
    let expected = format!(
        "Bearer error=\"insufficient_scope\", scope=\"dice:roll\", resource_metadata=\"{}\"",
        server.metadata_url
    );
    server
        .expect_rejection(
            Some(&format!("Bearer {unscoped}")),
            StatusCode::FORBIDDEN,
            &expected,
            "insufficient_scope",
        )
        .await;
    // The 401 challenge announces the required scope.
    let expected = format!(
        "Bearer scope=\"dice:roll\", resource_metadata=\"{}\"",
        server.metadata_url
    );
    server
        .expect_rejection(None, StatusCode::UNAUTHORIZED, &expected, "unauthorized")
        .await;
    let scoped = primary()
        .create_token()
        .audience(AUDIENCE)
        .scopes(["dice:read", "dice:roll"])
        .sign()
        .unwrap();
    let (status, _) = server.call_ok(&format!("Bearer {scoped}")).await;
    assert_eq!(status, StatusCode::OK);
    let scp = primary()
        .create_token()
        .audience(AUDIENCE)
        .claim("scp", json!(["dice:roll"]))
        .sign()
        .unwrap();
    let (status, _) = server.call_ok(&format!("Bearer {scp}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn verifier_required_scopes_also_give_403() {
    let verifier = verifier().required_scopes(["admin"]);
    let error = verifier.verify(&token()).await.unwrap_err();
    assert_eq!(
        error,
        AuthError::InsufficientScope {
            required: vec!["admin".to_owned()]
        }
    );
    assert_eq!(error.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn oversized_authorization_header_is_refused() {
    let server = protected().await;
    let huge = format!("Bearer {}", "a".repeat(9000));
    let expected = invalid_token(
        &server,
        "the Authorization header is longer than 8192 bytes",
    );
    server
        .expect_rejection(
            Some(&huge),
            StatusCode::UNAUTHORIZED,
            &expected,
            "invalid_token",
        )
        .await;
}

#[tokio::test]
async fn two_authorization_headers_are_a_bad_request() {
    let server = protected().await;
    let response = server
        .client
        .get(format!("{}/mcp", server.base))
        .header("authorization", format!("Bearer {}", token()))
        .header("authorization", "Basic ZGV2OmRldg==")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.headers()["www-authenticate"],
        format!(
            "Bearer error=\"invalid_request\", error_description=\"the request has more than one Authorization header\", resource_metadata=\"{}\"",
            server.metadata_url
        )
        .as_str()
    );
    assert_eq!(server.handler_runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn token_cache_avoids_reverification() {
    let counting = Arc::new(CountingVerifier::new(verifier()));
    let calls = Arc::clone(&counting.calls);
    let server = Protected::start(move |resource| {
        ResourceServer::new(resource, Arc::clone(&counting)).unwrap()
    })
    .await;
    let token = token();
    for _ in 0..5 {
        let (status, _) = server.call_ok(&format!("Bearer {token}")).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(server.cache_hits(), 4);
    // Another token is verified on its own.
    let (status, _) = server
        .call_ok(&format!(
            "Bearer {}",
            primary()
                .create_token()
                .audience(AUDIENCE)
                .subject("bob")
                .sign()
                .unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Failures are not cached.
    let wrong = primary().create_token().audience("nope").sign().unwrap();
    for _ in 0..2 {
        server
            .expect_rejection(
                Some(&format!("Bearer {wrong}")),
                StatusCode::UNAUTHORIZED,
                &invalid_token(
                    &server,
                    "the token is not intended for this resource (audience mismatch)",
                ),
                "invalid_token",
            )
            .await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(server.cache_hits(), 4);
}

#[tokio::test]
async fn protected_resource_metadata_at_both_paths() {
    let server = Protected::start(|resource| {
        ResourceServer::new(resource, verifier())
            .unwrap()
            .authorization_server("https://auth.example.com")
            .scopes_supported(["dice:read"])
            .required_scopes(["dice:roll"])
    })
    .await;
    let expected = json!({
        "resource": format!("{}/mcp", server.base),
        "authorization_servers": ["https://auth.example.com"],
        "scopes_supported": ["dice:read", "dice:roll"],
        "bearer_methods_supported": ["header"],
    });
    assert_eq!(
        server.metadata_url,
        format!("{}/.well-known/oauth-protected-resource/mcp", server.base)
    );
    for url in [
        server.metadata_url.clone(),
        format!("{}/.well-known/oauth-protected-resource", server.base),
    ] {
        let response = server.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(response.headers()["access-control-allow-origin"], "*");
        assert_eq!(response.json::<Value>().await.unwrap(), expected, "{url}");
    }
    assert_eq!(server.handler_runs.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn layer_without_resource_server_sends_a_bare_challenge() {
    let layer = mcp_auth::BearerAuthLayer::new(verifier());
    let server = Protected::start_with_router(|router: Router| router.layer(layer)).await;
    server
        .expect_rejection(None, StatusCode::UNAUTHORIZED, "Bearer", "unauthorized")
        .await;
    let (status, _) = server.call_ok(&format!("Bearer {}", token())).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn other_key_formats_verify_the_same_tokens() {
    let pkcs1 = include_str!("data/primary_pkcs1_public.pem");
    let jwk = primary().public_jwk();
    let jwks = primary().jwks();
    let verifiers = [
        JwtVerifier::from_public_key_pem(pkcs1).unwrap(),
        JwtVerifier::from_jwk(&jwk).unwrap(),
        JwtVerifier::from_jwks(&jwks).unwrap(),
    ];
    let token = token();
    for verifier in verifiers {
        let identity = verifier.audience(AUDIENCE).verify(&token).await.unwrap();
        assert_eq!(identity.subject.as_deref(), Some("dev-user"));
    }
    // A JWKS verifier needs the token's kid to match.
    let unknown = primary()
        .create_token()
        .audience(AUDIENCE)
        .kid("other")
        .sign()
        .unwrap();
    let error = JwtVerifier::from_jwks(&jwks)
        .unwrap()
        .audience(AUDIENCE)
        .verify(&unknown)
        .await
        .unwrap_err();
    assert_eq!(error, AuthError::UnknownSigningKey);
    // PS256 only when allowed.
    let err = JwtVerifier::from_public_key_pem(pkcs1)
        .unwrap()
        .algorithms(["HS256"])
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::invalid_config(
            "`HS256` is not an accepted asymmetric signature algorithm".to_owned()
        )
    );
    let err = JwtVerifier::from_public_key_pem(pkcs1)
        .unwrap()
        .algorithms(["ES256"])
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::invalid_config("no configured key can verify ES256".to_owned())
    );
}

#[tokio::test]
async fn dev_tokens_have_fastmcp_like_defaults() {
    let kp = primary();
    let token = kp.create_token().audience(AUDIENCE).sign().unwrap();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    assert_eq!(header.kid.as_deref(), Some(kp.kid()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let identity = verifier().verify(&token).await.unwrap();
    let claims = &identity.claims;
    assert_eq!(claims["sub"], "dev-user");
    assert_eq!(claims["iss"], DEV_ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap(), iat + 3600);
    assert!(iat.abs_diff(now()) <= 5);
    let bare = kp.create_token().without_kid().sign().unwrap();
    assert_eq!(jsonwebtoken::decode_header(&bare).unwrap().kid, None);
    // FastMCP-style tokens without `kid` verify against a bare PEM key.
    let identity = JwtVerifier::from_public_key_pem(&kp.public_key_pem())
        .unwrap()
        .verify(&bare)
        .await
        .unwrap();
    assert_eq!(identity.subject.as_deref(), Some("dev-user"));
    // The JWK thumbprint kid is stable for a key.
    assert_eq!(kp.jwks()["keys"][0]["kid"], kp.kid());
    assert_eq!(kp.kid().len(), 43);
}
