//! The part only the application can do: take the user to the authorization URL and receive
//! the redirect back. [`HeadlessRedirect`] (servers that approve without a user, tests) and
//! [`LoopbackRedirect`] (desktop applications: a browser and a listener on 127.0.0.1).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use reqwest::Url;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::Error;
use crate::http::{Fetcher, HttpLimits};

/// Takes the user through the authorization endpoint and returns where they were sent back.
pub trait AuthorizationHandler: Send + Sync + std::fmt::Debug {
    /// The redirect URI: registered for the client and sent in every authorization request.
    fn redirect_uri(&self) -> String;

    /// Sends the user to `authorization_url` and returns the full URL the authorization
    /// server redirected to (carrying `code`, `state` and maybe `iss`, or `error`). The
    /// client checks that response; the handler only delivers it.
    fn authorize<'a>(&'a self, authorization_url: &'a Url) -> BoxFuture<'a, Result<Url, Error>>;
}

/// For authorization servers that approve without a user (test servers, the conformance
/// suite): GETs the authorization URL itself and reads the `Location` of the redirect,
/// without following it.
#[derive(Debug, Clone)]
pub struct HeadlessRedirect {
    redirect_uri: String,
    limits: HttpLimits,
}

impl HeadlessRedirect {
    /// A handler announcing `redirect_uri` (never contacted: the redirect is read, not
    /// followed).
    pub fn new(redirect_uri: impl Into<String>) -> Self {
        Self {
            redirect_uri: redirect_uri.into(),
            limits: HttpLimits::default(),
        }
    }
}

impl Default for HeadlessRedirect {
    fn default() -> Self {
        Self::new("http://127.0.0.1/callback")
    }
}

impl AuthorizationHandler for HeadlessRedirect {
    fn redirect_uri(&self) -> String {
        self.redirect_uri.clone()
    }

    fn authorize<'a>(&'a self, authorization_url: &'a Url) -> BoxFuture<'a, Result<Url, Error>> {
        Box::pin(async move {
            let fetcher = Fetcher::new(self.limits)?;
            let request = fetcher.client().get(authorization_url.clone());
            let response = fetcher.send(request, authorization_url).await?;
            if !response.status.is_redirection() {
                return Err(Error::NoAuthorizationResponse {
                    detail: format!(
                        "the authorization endpoint answered {} instead of redirecting (it needs a user: use LoopbackRedirect)",
                        response.status
                    ),
                });
            }
            let location = response
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::NoAuthorizationResponse {
                    detail: "the redirect has no Location".to_owned(),
                })?;
            authorization_url
                .join(location)
                .map_err(|e| Error::NoAuthorizationResponse {
                    detail: format!("the redirect Location is not a URL: {e}"),
                })
        })
    }
}

/// What [`LoopbackRedirect`] calls to show the authorization URL to the user (open a
/// browser, print it).
pub type OpenUrl = Arc<dyn Fn(&Url) + Send + Sync>;

/// For desktop applications: shows the authorization URL to the user (through a callback
/// that opens a browser) and receives the redirect on `http://127.0.0.1:<port>/callback`
/// (RFC 8252 section 7.3).
#[derive(Clone)]
pub struct LoopbackRedirect {
    port: u16,
    open: OpenUrl,
    wait: Duration,
}

impl std::fmt::Debug for LoopbackRedirect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackRedirect")
            .field("port", &self.port)
            .field("wait", &self.wait)
            .finish_non_exhaustive()
    }
}

/// Bound on the request line and headers of the redirect request.
const MAX_CALLBACK_REQUEST: usize = 16 * 1024;

impl LoopbackRedirect {
    /// A handler listening on `port` of 127.0.0.1 (fixed, since it is registered), waiting
    /// up to five minutes for the user; `open` shows them the URL.
    pub fn new(port: u16, open: OpenUrl) -> Self {
        Self {
            port,
            open,
            wait: Duration::from_secs(300),
        }
    }

    /// How long to wait for the user to come back.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    async fn receive(&self, authorization_url: &Url) -> Result<Url, Error> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let listener =
            TcpListener::bind(address)
                .await
                .map_err(|e| Error::NoAuthorizationResponse {
                    detail: format!("cannot listen on {address}: {e}"),
                })?;
        (self.open)(authorization_url);
        loop {
            let (mut socket, _) =
                listener
                    .accept()
                    .await
                    .map_err(|e| Error::NoAuthorizationResponse {
                        detail: format!("accepting the redirect: {e}"),
                    })?;
            let Some(target) = read_request_target(&mut socket).await else {
                continue;
            };
            if !target.starts_with("/callback") {
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
                continue;
            }
            let page = "<!doctype html><title>Authorized</title><p>You can close this window.";
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            return Url::parse(&self.redirect_uri())
                .and_then(|base| base.join(&target))
                .map_err(|e| Error::NoAuthorizationResponse {
                    detail: format!("the redirect target is not a URL: {e}"),
                });
        }
    }
}

/// The request target of a `GET` request, read within bounds.
async fn read_request_target(socket: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk))
            .await
            .ok()?
            .ok()?;
        if n == 0 || buf.len() + n > MAX_CALLBACK_REQUEST {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut parts = head.lines().next()?.split_whitespace();
    (parts.next()? == "GET").then(|| parts.next().map(str::to_owned))?
}

impl AuthorizationHandler for LoopbackRedirect {
    fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/callback", self.port)
    }

    fn authorize<'a>(&'a self, authorization_url: &'a Url) -> BoxFuture<'a, Result<Url, Error>> {
        Box::pin(async move {
            tokio::time::timeout(self.wait, self.receive(authorization_url))
                .await
                .map_err(|_| Error::NoAuthorizationResponse {
                    detail: format!("the user did not come back within {:?}", self.wait),
                })?
        })
    }
}
