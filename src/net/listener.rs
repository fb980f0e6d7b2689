//! The accept loop shared by the proxy and the simulator.
//!
//! One place decides how vcproxy speaks HTTP: HTTP/1.1 and HTTP/2 on the same port
//! (hyper-util's auto builder; over TLS the ALPN result decides, in clear text the
//! connection preface), keep-alive, `TCP_NODELAY`, large HTTP/1 answers' heads
//! written ahead of their bodies in clear text ([`crate::net::head_first`]), a header
//! read timeout against slow clients, deadlines against silent ones (see
//! [`Watchdog`]), and graceful shutdown: when `shutdown`
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
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;

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
/// How long a keep-alive connection may stay idle, by default (nginx's 75 s: longer
/// than the clients' own pools keep an idle connection, Go's 90 s excepted, and Go
/// retries a request that meets a connection the server has just closed).
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// HTTP/2 pings: how often on a quiet connection, and how long to wait for the
/// answer before the peer is taken for gone.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);
/// How long connections may take to finish after shutdown, by default.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (e.g. out of file descriptors), so that the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Limits on what clients may hold or send.
#[derive(Debug, Clone)]
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
    /// How long a keep-alive connection may sit with no request in flight after
    /// its last answer (HTTP/1 and HTTP/2 alike).
    pub idle_timeout: Duration,
    /// Connections open now, kept by [`serve_with`] for whoever reports on it
    /// (`/readyz` says not ready while every slot is taken).
    pub open: Arc<AtomicUsize>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_connections: 4096,
            max_header_bytes: 64 * 1024,
            header_read_timeout: HEADER_READ_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
            idle_timeout: IDLE_TIMEOUT,
            open: Arc::default(),
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
    make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let (_fixed, options) = tokio::sync::watch::channel(options);
    serve_reloadable(listener, tls, options, make_service, shutdown).await
}

/// The hyper connection builder for `options`.
fn connection_builder(options: &ServeOptions) -> auto::Builder<TokioExecutor> {
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
        .max_header_list_size(u32::try_from(options.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(H2_PING_INTERVAL))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    builder
}

/// [`serve_with`] whose limits may change while it serves (a configuration
/// reload): each new connection gets the limits in force when it is accepted;
/// connections already open keep theirs. A lower `max_connections` takes effect
/// as connections close.
pub async fn serve_reloadable<M, S, B>(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut limits: tokio::sync::watch::Receiver<ServeOptions>,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
) where
    M: FnMut(SocketAddr) -> S,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut options = limits.borrow_and_update().clone();
    let mut builder = connection_builder(&options);
    let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));

    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        if limits.has_changed().unwrap_or(false) {
            let new = limits.borrow_and_update().clone();
            resize(
                &slots,
                options.max_connections.max(1),
                new.max_connections.max(1),
            );
            builder = connection_builder(&new);
            options = new;
        }
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
        let (dog, service) = Watchdog::new(
            make_service(peer),
            options.header_read_timeout,
            options.idle_timeout,
        );
        let watcher = graceful.watcher();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let open = OpenGuard::new(options.open.clone());
        // The handshake counts against the first request's deadline.
        let handshake_within = options.header_read_timeout.min(TLS_HANDSHAKE_TIMEOUT);
        conns.spawn(async move {
            let _permit = permit;
            let _open = open;
            match acceptor {
                None => {
                    let io = TokioIo::new(HeadFirst::new(stream));
                    serve_connection(&builder, io, service, watcher, dog, peer).await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(handshake_within, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let io = TokioIo::new(tls);
                            serve_connection(&builder, io, service, watcher, dog, peer).await
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
    let options = limits.borrow().clone();
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

/// Changes the number of connection slots from `from` to `to`. Slots held by open
/// connections are taken out as those connections close.
fn resize(slots: &Arc<tokio::sync::Semaphore>, from: usize, to: usize) {
    if to > from {
        slots.add_permits(to - from);
    } else if to < from {
        let excess = to.abs_diff(from);
        let forgotten = slots.forget_permits(excess);
        if forgotten < excess {
            let (slots, rest) = (slots.clone(), (excess - forgotten) as u32);
            tokio::spawn(async move {
                if let Ok(p) = slots.acquire_many_owned(rest).await {
                    p.forget();
                }
            });
        }
    }
}

async fn serve_connection<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: TokioIo<I>,
    service: Tracked<S>,
    watcher: Watcher,
    dog: Watchdog,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: ConnectionService<B>,
    B: ResponseBody,
{
    let conn = builder.serve_connection(io, service).into_owned();
    tokio::select! {
        ended = watcher.watch(conn) => {
            if let Err(error) = ended {
                // Clients closing connections, resets, and deliberately failed bodies
                // all end here; none of them is the server's problem.
                tracing::debug!(error = %Untrusted(&error), "connection ended with an error");
            }
        }
        why = dog.expired() => {
            // Dropping the connection closes it, whatever state it is in.
            tracing::debug!(%peer, why, "connection closed");
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> OpenGuard {
        open.fetch_add(1, Ordering::Relaxed);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Closes a connection that holds a slot without using it, whatever the protocol
/// and whatever hyper's own timers cover: one that has not completed a request head
/// within `first` of being accepted (silent after connecting, after the TLS
/// handshake, after the HTTP/2 preface, or in the middle of a header block), and one
/// with no request in flight for `idle` since its last answer. A request is in
/// flight from its complete head (the service is called) until its response body
/// has been sent or dropped.
///
/// Requests only touch two atomics (no wake-up of the connection's task); the
/// watchdog wakes on its own timer, at the deadline the state it last saw implies,
/// and looks again.
struct Watchdog {
    activity: Arc<Activity>,
    first: Duration,
    idle: Duration,
}

/// What the watchdog reads: requests in flight, and when that number last changed.
struct Activity {
    /// Requests in flight, plus [`SERVED`] once a request head has arrived.
    in_flight: AtomicUsize,
    /// When `in_flight` last changed, in milliseconds since `start`.
    since_ms: std::sync::atomic::AtomicU64,
    start: Instant,
}

/// The flag in [`Activity::in_flight`] that says a request head has arrived.
const SERVED: usize = 1 << (usize::BITS - 1);

impl Activity {
    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.since_ms.store(ms, Ordering::Relaxed);
    }
}

impl Watchdog {
    fn new<S>(service: S, first: Duration, idle: Duration) -> (Watchdog, Tracked<S>) {
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            since_ms: std::sync::atomic::AtomicU64::new(0),
            start: Instant::now(),
        });
        let dog = Watchdog {
            activity: activity.clone(),
            first,
            idle,
        };
        (
            dog,
            Tracked {
                inner: service,
                activity,
            },
        )
    }

    /// Resolves when the connection has overstayed: why, for the log.
    ///
    /// The watchdog is not woken by requests, so it never sleeps longer than the
    /// shorter limit: the limit that applies changes when a first request arrives
    /// (`first` to `idle`), and a deadline seen before that may be too far.
    async fn expired(self) -> &'static str {
        let a = &self.activity;
        let step = self.first.min(self.idle);
        loop {
            let state = a.in_flight.load(Ordering::Acquire);
            let since = a.start + Duration::from_millis(a.since_ms.load(Ordering::Acquire));
            let (limit, why) = if state & SERVED != 0 {
                (self.idle, "idle past listen.idle_timeout")
            } else {
                (
                    self.first,
                    "no complete request head within listen.header_read_timeout",
                )
            };
            let now = Instant::now();
            if state & !SERVED > 0 {
                // Busy: look again later.
                tokio::time::sleep(step).await;
                continue;
            }
            let deadline = since + limit;
            if now >= deadline {
                return why;
            }
            tokio::time::sleep_until(deadline.min(now + step)).await;
        }
    }
}

/// The connection's service, reporting each request's start and end to its
/// [`Watchdog`].
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, B> Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = TrackedFuture<S::Future>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        self.activity.in_flight.fetch_or(SERVED, Ordering::AcqRel);
        TrackedFuture {
            inner: self.inner.call(req),
            in_flight: Some(InFlight(self.activity.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// The service's future, handing the request's time in flight on to the
    /// response body (no allocation per request).
    pub struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
    }
}

impl<F, B, E> Future for TrackedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<TrackedBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        let in_flight = this.in_flight.take().expect("polled after completion");
        Poll::Ready(result.map(|response| {
            response.map(|inner| TrackedBody {
                inner,
                _in_flight: in_flight,
            })
        }))
    }
}

/// Ends a request's time in flight when dropped: with its response body, or with
/// the service's future if it never answered.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // The time first: the watchdog must not see zero in flight with the old time.
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it is sent or
    /// dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        _in_flight: InFlight,
    }
}

impl<B: Body> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
