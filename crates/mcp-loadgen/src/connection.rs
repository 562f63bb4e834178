//! One HTTP/1.1 keep-alive connection on hyper's low-level client, and reading replies off it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use mcp_sse::client::{DEFAULT_MAX_MESSAGE_BYTES, SseParser};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::error::{Error, excerpt};

/// Largest response body the generator reads.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// One HTTP/1.1 connection with `TCP_NODELAY`; its driver task ends when the value is dropped.
#[derive(Debug)]
pub struct HttpConnection {
    send: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    host: HeaderValue,
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConnection {
    /// Connects to `addr`.
    pub async fn open(addr: SocketAddr) -> Result<Self, Error> {
        let connect_error = |source| Error::Connect { addr, source };
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_error(Box::new(e)))?;
        tcp.set_nodelay(true)
            .map_err(|e| connect_error(Box::new(e)))?;
        let (send, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| connect_error(Box::new(e)))?;
        // The driver ends with an error when the server closes the connection mid-exchange;
        // the exchange itself reports that, so the driver's copy is dropped.
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Self {
            send,
            driver,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    /// Sends one request and returns the response head with its streaming body.
    pub async fn send(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &HeaderValue)],
        body: Bytes,
    ) -> Result<http::Response<Incoming>, Error> {
        let http_error = |source: hyper::Error| Error::Http {
            path: path.to_owned(),
            source: Box::new(source),
        };
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone());
        for (name, value) in headers {
            request = request.header(*name, (*value).clone());
        }
        let request = request.body(Full::new(body)).map_err(|e| Error::Http {
            path: path.to_owned(),
            source: Box::new(e),
        })?;
        self.send.ready().await.map_err(http_error)?;
        self.send.send_request(request).await.map_err(http_error)
    }

    /// Sends one request and reads the whole response (at most 1 MiB of body).
    pub async fn exchange(
        &mut self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &HeaderValue)],
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), Error> {
        let response = self.send(method, path, headers, body).await?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|source| Error::Http {
                path: path.to_owned(),
                source,
            })?
            .to_bytes();
        Ok((parts.status, parts.headers, body))
    }
}

/// The JSON-RPC message in a response body: the body itself, or the first `message` event of
/// an SSE body (skipping the priming event, an id and empty data, of a resumable stream).
pub(crate) fn reply_payload(headers: &HeaderMap, body: Bytes) -> Result<Bytes, Error> {
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return Ok(body);
    }
    let mut parser = SseParser::new(DEFAULT_MAX_MESSAGE_BYTES);
    parser.feed(&body)?;
    while let Some(event) = parser.next_event() {
        if event.event == "message" && !event.data.is_empty() {
            return Ok(Bytes::from(event.data));
        }
    }
    Err(Error::NoMessageEvent {
        body: excerpt(&body),
    })
}

/// Fails unless `status` is `expected`.
pub(crate) fn expect_status(
    status: StatusCode,
    expected: StatusCode,
    what: &'static str,
    body: &[u8],
) -> Result<(), Error> {
    if status != expected {
        return Err(Error::Status {
            what,
            status,
            expected,
            body: excerpt(body),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_payload_reads_json_and_sse_bodies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        assert_eq!(
            reply_payload(&headers, Bytes::from_static(b"{}")).unwrap(),
            Bytes::from_static(b"{}")
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        assert_eq!(
            reply_payload(
                &headers,
                Bytes::from_static(b"retry: 1000\n\nid: 1-0\nevent: message\ndata: {\"id\":1}\n\n")
            )
            .unwrap(),
            Bytes::from_static(b"{\"id\":1}")
        );
        let error = reply_payload(&headers, Bytes::from_static(b": ping\n\n")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "SSE response without a message event: : ping\n\n"
        );
    }

    #[test]
    fn unexpected_statuses_say_what_and_show_the_body() {
        assert!(expect_status(StatusCode::OK, StatusCode::OK, "echo", b"").is_ok());
        let error = expect_status(StatusCode::NOT_FOUND, StatusCode::OK, "echo", b"nope");
        assert_eq!(
            error.unwrap_err().to_string(),
            "echo: HTTP 404 Not Found (expected 200 OK): nope"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let error = HttpConnection::open(addr).await.unwrap_err();
        assert_eq!(error.to_string(), format!("connecting to {addr}"));
        assert!(std::error::Error::source(&error).is_some());
    }
}
