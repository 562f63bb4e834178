//! The client against a real local authorization server and protected resource.

use std::time::Duration;

use http::StatusCode;

use crate::test_server::{Behaviour, Seen, TestServer};
use crate::{Error, OAuthClient, OAuthConfig, Recovery};

/// POSTs to the MCP route the way a transport does: the current token, and on 401/403 one
/// recovery then a retry, at most four times.
async fn call(oauth: &OAuthClient) -> Result<StatusCode, Error> {
    let http = reqwest::Client::new();
    for _ in 0..8 {
        let sent = oauth.authorization().await?;
        let mut request = http.post(oauth.server_url().clone());
        if let Some(value) = &sent {
            request = request.header(http::header::AUTHORIZATION, value);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return Ok(status);
        }
        if oauth
            .recover(status, response.headers(), sent.as_deref())
            .await?
            == Recovery::GiveUp
        {
            return Ok(status);
        }
    }
    Ok(StatusCode::UNAUTHORIZED)
}

fn client(server: &TestServer) -> OAuthClient {
    OAuthClient::new(&server.url(), OAuthConfig::new("test client")).unwrap()
}

/// One call against a server with `behaviour` that must fail: the error, and what the server
/// saw by then.
async fn refused(behaviour: Behaviour) -> (Error, Seen) {
    let server = TestServer::start(behaviour).await;
    let err = call(&client(&server)).await.unwrap_err();
    let seen = server.seen().clone();
    (err, seen)
}

#[tokio::test]
async fn a_401_leads_to_registration_authorization_and_a_working_token() {
    let server = TestServer::start(Behaviour::default()).await;
    let oauth = client(&server);
    assert_eq!(oauth.authorization().await.unwrap(), None);
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);

    let seen = server.seen();
    assert_eq!(seen.registrations.len(), 1);
    assert_eq!(
        seen.registrations[0]["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(seen.registrations[0]["application_type"], "native");
    let authorization = &seen.authorizations[0];
    assert_eq!(authorization["code_challenge_method"], "S256");
    assert_eq!(authorization["resource"], server.url());
    assert!(!authorization.contains_key("scope"));
    let token = &seen.token_requests[0];
    assert_eq!(token["grant_type"], "authorization_code");
    assert_eq!(token["resource"], server.url());
    assert!(token["authorization"].starts_with("Basic "));
    assert!(!token.contains_key("client_secret"));
}

#[tokio::test]
async fn metadata_for_another_resource_is_refused_before_authorizing() {
    let (err, seen) = refused(Behaviour {
        prm_resource: Some("https://evil.example.com/mcp".into()),
        ..Behaviour::default()
    })
    .await;
    assert!(matches!(err, Error::ResourceMismatch { .. }), "{err}");
    assert!(seen.authorizations.is_empty());
}

#[tokio::test]
async fn a_server_without_s256_is_refused() {
    let (err, seen) = refused(Behaviour {
        pkce_methods: Some(vec!["plain"]),
        ..Behaviour::default()
    })
    .await;
    assert!(matches!(err, Error::PkceNotSupported { .. }), "{err}");
    assert!(seen.authorizations.is_empty());
}

#[tokio::test]
async fn a_tampered_state_stops_before_the_token_request() {
    let (err, seen) = refused(Behaviour {
        tamper_state: true,
        ..Behaviour::default()
    })
    .await;
    assert!(matches!(err, Error::StateMismatch), "{err}");
    assert_eq!(seen.authorizations.len(), 1);
    assert!(seen.token_requests.is_empty());
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_not_used() {
    let (err, seen) = refused(Behaviour {
        metadata_issuer: Some("https://attacker.example.com".into()),
        ..Behaviour::default()
    })
    .await;
    assert!(matches!(err, Error::IssuerMismatch { .. }), "{err}");
    assert!(seen.registrations.is_empty());
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_use() {
    let server = TestServer::start(Behaviour {
        expires_in: 5,
        ..Behaviour::default()
    })
    .await;
    let oauth = client(&server); // refresh margin 30 s > 5 s
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    let first = server.seen().token_requests.len();
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    let seen = server.seen();
    assert_eq!(seen.token_requests.len(), first + 1);
    let refresh = seen.token_requests.last().unwrap();
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(refresh["resource"], server.url());
    assert_eq!(seen.authorizations.len(), 1, "no new authorization");
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_then_authorization_starts_over() {
    let server = TestServer::start(Behaviour::default()).await;
    let oauth = client(&server);
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    server.revoke_access_tokens();
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    {
        let seen = server.seen();
        let grants: Vec<&str> = seen
            .token_requests
            .iter()
            .map(|t| t["grant_type"].as_str())
            .collect();
        assert_eq!(grants, ["authorization_code", "refresh_token"]);
    }
    // When the refresh fails too, authorization starts over.
    server.revoke_all_tokens();
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    let seen = server.seen();
    let grants: Vec<&str> = seen
        .token_requests
        .iter()
        .map(|t| t["grant_type"].as_str())
        .collect();
    assert_eq!(
        grants,
        [
            "authorization_code",
            "refresh_token",
            "refresh_token",
            "authorization_code"
        ]
    );
    assert_eq!(seen.authorizations.len(), 2);
}

#[tokio::test]
async fn insufficient_scope_steps_up_to_the_union_and_stops_when_it_cannot_help() {
    let server = TestServer::start(Behaviour {
        required_scope: Some("mcp:write"),
        scopes_supported: Some(vec!["mcp:read", "mcp:write", "offline_access"]),
        ..Behaviour::default()
    })
    .await;
    let oauth = OAuthClient::new(
        &server.url(),
        OAuthConfig {
            request_offline_access: false,
            ..OAuthConfig::new("test client")
        },
    )
    .unwrap();
    // Authorize up front, without scopes (the resource lists none): the call's 403 then asks
    // for mcp:write.
    oauth.authorize().await.unwrap();
    assert_eq!(call(&oauth).await.unwrap(), StatusCode::OK);
    {
        let seen = server.seen();
        assert_eq!(seen.authorizations.len(), 2);
        assert!(!seen.authorizations[0].contains_key("scope"));
        assert_eq!(seen.authorizations[1]["scope"], "mcp:write");
    }

    // A server that never grants what the resource demands: bounded re-authorizations.
    let stuck = TestServer::start(Behaviour {
        required_scope: Some("mcp:admin"),
        granted_scope: Some("mcp:read"),
        ..Behaviour::default()
    })
    .await;
    let oauth = client(&stuck);
    let err = call(&oauth).await.unwrap_err();
    assert!(matches!(err, Error::InsufficientScope { .. }), "{err}");
    assert_eq!(
        stuck.seen().authorizations.len(),
        1 + crate::DEFAULT_MAX_STEP_UPS as usize
    );
}

#[tokio::test]
async fn every_oauth_request_is_bounded_in_time() {
    // A listener that accepts and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let oauth = OAuthClient::new(
        &url,
        OAuthConfig {
            http: crate::HttpLimits {
                timeout: Duration::from_millis(200),
                ..Default::default()
            },
            ..OAuthConfig::new("test client")
        },
    )
    .unwrap();
    let started = std::time::Instant::now();
    let err = oauth.authorize().await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}
