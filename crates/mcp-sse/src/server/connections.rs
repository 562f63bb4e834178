//! Accepting and serving TCP connections with every transport-level limit: a cap on open
//! connections (overall and per client address), a deadline on reading a request's headers,
//! a deadline on every write (a client that stops reading is disconnected), and a graceful
//! shutdown with a deadline of its own.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::config::ServerConfig;

/// How long open connections may take to finish once the server has drained.
const CLOSE_DEADLINE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` resolves, then runs `drain` and closes the
/// remaining connections (within [`CLOSE_DEADLINE`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    config: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: impl Future<Output = ()>,
) {
    let limits = Arc::new(ConnectionLimits::new(config));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut tasks = JoinSet::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .keep_alive(true);
    let write_timeout = config.write_timeout;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = accept(&listener, &limits) => accepted,
            () = &mut shutdown => break,
        };
        // Reap finished connection tasks so the set stays as small as the open connections.
        while tasks.try_join_next().is_some() {}
        let Some((tcp, peer, slot)) = accepted else {
            continue;
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: http::Request<_>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let io = TokioIo::new(WriteDeadline::new(tcp, write_timeout));
        let connection = graceful.watch(builder.serve_connection(io, service));
        tasks.spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    drain.await;
    if tokio::time::timeout(CLOSE_DEADLINE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the close deadline; dropping them"
        );
    }
    tasks.abort_all();
}

/// Waits for a free connection slot, then accepts one connection; `None` when the accepted
/// connection is refused (its address is over its share) or accepting failed.
async fn accept(
    listener: &TcpListener,
    limits: &Arc<ConnectionLimits>,
) -> Option<(TcpStream, SocketAddr, ConnectionSlot)> {
    // At the cap, new connections wait in the listen backlog until a slot frees.
    let permit = Arc::clone(&limits.open).acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((tcp, peer)) => match limits.admit(peer.ip(), permit) {
            Some(slot) => Some((tcp, peer, slot)),
            None => {
                tracing::debug!(%peer, "connection refused: this address has too many open");
                None
            }
        },
        Err(e) => {
            // Out of file descriptors or a connection reset before it was accepted: never
            // fatal; back off a little so a full fd table does not spin the loop.
            tracing::warn!(error = %e, "accept failed");
            if !is_connection_error(&e) {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            None
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// The open-connection caps: overall (a semaphore) and per client address.
#[derive(Debug)]
struct ConnectionLimits {
    open: Arc<Semaphore>,
    per_address: usize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
}

impl ConnectionLimits {
    fn new(config: &ServerConfig) -> Self {
        Self {
            open: Arc::new(Semaphore::new(config.max_connections.max(1))),
            per_address: config.max_connections_per_address,
            by_address: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a connection from `ip`, or refuses it when that address holds its share.
    fn admit(self: &Arc<Self>, ip: IpAddr, permit: OwnedSemaphorePermit) -> Option<ConnectionSlot> {
        if self.per_address > 0 {
            let mut counts = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
            let count = counts.entry(ip).or_insert(0);
            if *count >= self.per_address {
                return None;
            }
            *count += 1;
        }
        Some(ConnectionSlot {
            limits: Arc::clone(self),
            ip,
            _permit: permit,
        })
    }
}

/// One open connection's share of the caps, given back when it closes.
#[derive(Debug)]
struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if self.limits.per_address == 0 {
            return;
        }
        let mut counts = self
            .limits
            .by_address
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A socket whose writes fail with [`io::ErrorKind::TimedOut`] once one has waited longer than
/// the deadline: a client that stops reading fills its receive window, every write then waits,
/// and the connection (with whatever stream or session it holds) is released.
#[derive(Debug)]
pub(crate) struct WriteDeadline<T> {
    io: T,
    timeout: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub(crate) fn new(io: T, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// After the inner write returned `Pending`: waits on the deadline, failing once it passes.
    fn poll_stalled<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(
        &mut self,
        result: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match result {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.poll_stalled(cx),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progressed(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progressed(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_flush(cx);
        self.progressed(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progressed(result, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_write_the_peer_never_reads_fails_after_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let mut io = WriteDeadline::new(server, Duration::from_millis(200));
        let chunk = vec![b'x'; 64 * 1024];
        let started = tokio::time::Instant::now();
        let error = loop {
            match io.write_all(&chunk).await {
                Ok(()) => assert!(started.elapsed() < Duration::from_secs(10)),
                Err(e) => break e,
            }
        };
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        drop(peer);
    }

    #[tokio::test]
    async fn a_reading_peer_never_trips_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut peer = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            peer.read_to_end(&mut sink).await.map(|_| sink.len())
        });
        let mut io = WriteDeadline::new(server, Duration::from_millis(200));
        for _ in 0..64 {
            io.write_all(&[b'y'; 64 * 1024]).await.unwrap();
        }
        io.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap().unwrap(), 64 * 64 * 1024);
    }
}
