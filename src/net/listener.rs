//! The accept loop shared by the proxy and the simulator.
//!
//! One place decides how vcproxy speaks HTTP: HTTP/1.1 and HTTP/2 on the same port
//! (hyper-util's auto builder; over TLS the ALPN result decides, in clear text the
//! connection preface), keep-alive, `TCP_NODELAY`, large HTTP/1 answers' heads
//! written ahead of their bodies in clear text ([`crate::net::head_first`]), a header
//! read timeout against slow clients, and graceful shutdown: when `shutdown`
//! resolves the listener is closed at once, idle keep-alive connections are closed,
//! and requests already in flight run to completion before [`serve`] returns, for at
//! most [`ServeOptions::shutdown_grace`]; connections still open then are closed.
//!
//! Connection tasks live in a [`JoinSet`] owned by [`serve`]'s future: dropping the
//! future also aborts whatever connections remain.

use crate::net::head_first::HeadFirst;
use crate::net::untrusted::Untrusted;
use hyper::body::{Body, Incoming};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Errors a service or body may return, as hyper wants them.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What [`serve`] needs of the service answering a connection: a hyper service
/// that may move, with its futures, to any worker thread. (Implemented for every
/// such service; the bounds are written here once.)
pub trait ConnectionService<B>:
    Service<
        Request<Incoming>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError>,
    > + Send
    + 'static
{
}

impl<S, B> ConnectionService<B> for S where
    S: Service<
            Request<Incoming>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError>,
        > + Send
        + 'static
{
}

/// What [`serve`] needs of a response body: one that may move to any worker thread.
pub trait ResponseBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

impl<B> ResponseBody for B where B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static {}

/// How long a client gets to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client gets to send a complete request head (HTTP/1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connections may take to finish after shutdown, by default.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors), so that the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Limits on what clients may hold or send.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Connections open at once; further clients wait in the kernel's accept queue
    /// until one closes, instead of exhausting the process's file descriptors.
    pub max_connections: usize,
    /// The most a client may send as a request head (HTTP/1 read buffer, HTTP/2
    /// header list). hyper answers 431 or resets past it.
    pub max_header_bytes: usize,
    /// How long a client gets to send a complete request head (HTTP/1).
    pub header_read_timeout: Duration,
    /// After `shutdown`, how long connections may take to finish before the ones
    /// left are closed (a client dripping a body must not hold the process).
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            header_read_timeout: HEADER_READ_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `listener` until `shutdown` resolves, then drains gracefully.
///
/// `make_service` is called once per accepted connection with the peer address
/// and returns the hyper service that answers that connection's requests. With
/// `tls` set, every connection is TLS (rustls); a failed handshake only ends that
/// connection.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    serve_with(
        listener,
        tls,
        ServeOptions::default(),
        make_service,
        shutdown,
    )
    .await
}

/// [`serve`] with explicit limits.
pub async fn serve_with<M, S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    options: ServeOptions,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX));
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));

    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Wait for a free connection slot before accepting.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
        };
        // Reap finished connections so the set does not grow with the server's age.
        while conns.try_join_next().is_some() {}
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, %peer, "set_nodelay failed");
        }
        let service = make_service(peer);
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        conns.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => {
                    let io = TokioIo::new(HeadFirst::new(stream));
                    serve_connection(&builder, io, service, watcher).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(&builder, TokioIo::new(tls), service, watcher).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(error = %Untrusted(&error), %peer, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::debug!(connections = graceful.count(), "draining connections");
    let drained = tokio::time::timeout(options.shutdown_grace, async {
        graceful.shutdown().await;
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = conns.len(),
            grace_s = options.shutdown_grace.as_secs_f64(),
            "connections still open after the shutdown grace; closing them"
        );
        conns.shutdown().await;
    }
}

async fn serve_connection<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: S,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let conn = builder.serve_connection(io, service).into_owned();
    if let Err(error) = watcher.watch(conn).await {
        // Clients closing connections, resets, and deliberately failed bodies all end
        // here; none of them is the server's problem.
        tracing::debug!(error = %Untrusted(&error), "connection ended with an error");
    }
}
