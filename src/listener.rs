//! The accept loop shared by the proxy and the simulator.
//!
//! One place decides how vcproxy speaks HTTP: HTTP/1.1 and HTTP/2 on the same port
//! (hyper-util's auto builder; over TLS the ALPN result decides, in clear text the
//! connection preface), keep-alive, `TCP_NODELAY`, a header read timeout against
//! slow clients, and graceful shutdown: when `shutdown` resolves the listener is
//! closed at once, idle keep-alive connections are closed, and requests already in
//! flight run to completion before [`serve`] returns.
//!
//! Connection tasks live in a [`JoinSet`] owned by [`serve`]'s future, so a caller
//! that cannot wait for slow requests forever can bound the drain with
//! `tokio::time::timeout(grace, serve(..))`: dropping the future aborts whatever
//! connections remain.

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

/// How long a client gets to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client gets to send a complete request head (HTTP/1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors), so that the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Serves `listener` until `shutdown` resolves, then drains gracefully.
///
/// `make_service` is called once per accepted connection with the peer address
/// and returns the hyper service that answers that connection's requests. With
/// `tls` set, every connection is TLS (rustls); a failed handshake only ends that
/// connection.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());

    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
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
            match acceptor {
                None => serve_connection(&builder, TokioIo::new(stream), service, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
                    {
                        Ok(Ok(tls)) => {
                            serve_connection(&builder, TokioIo::new(tls), service, watcher).await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, %peer, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracing::debug!(connections = graceful.count(), "draining connections");
    graceful.shutdown().await;
    while conns.join_next().await.is_some() {}
}

async fn serve_connection<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: S,
    watcher: Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let conn = builder.serve_connection(io, service).into_owned();
    if let Err(error) = watcher.watch(conn).await {
        // Clients closing connections, resets, and deliberately failed bodies all end
        // here; none of them is the server's problem.
        tracing::debug!(%error, "connection ended with an error");
    }
}
