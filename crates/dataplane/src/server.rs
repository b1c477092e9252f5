//! HTTP and gRPC servers that a client cannot exhaust (issue 14): a connection limit,
//! read/write/idle timeouts for HTTP, and keepalive and message-size limits for gRPC,
//! with Mimir's (dskit `server`) flag names and defaults.
//!
//! - **Connection limit** (`-server.http-conn-limit`, `-server.grpc-conn-limit`): at the
//!   limit the server stops accepting, as Go's `netutil.LimitListener` does; further
//!   clients wait in the kernel's listen backlog and hold no descriptor of ours. dskit's
//!   `0` means no limit, which with idle clients ends in "too many open files" (19,995
//!   idle connections did that to a distributor), so ringkit resolves `0` to a quarter of
//!   the process's open-file limit each (see [`resolve_conn_limit`]); a negative value
//!   disables the limit.
//! - **HTTP timeouts**: `-server.http-read-header-timeout` (0 = the read timeout) bounds
//!   the wait for a request head, idle keep-alive waits included (hyper has one timer for
//!   both, so an idle connection lives at most `min(read-header, idle)`);
//!   `-server.http-read-timeout` bounds any read stall inside a request, and
//!   `-server.http-write-timeout` any write stall; `-server.http-idle-timeout` bounds a
//!   connection on which no byte moves either way.
//! - Metrics: dskit's `cortex_tcp_connections{protocol}` and
//!   `cortex_tcp_connections_limit{protocol}`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Server settings, named after Mimir's `-server.*` flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// `-server.http-read-timeout` (30s): longest stall of a read within a request.
    pub http_read_timeout: Duration,
    /// `-server.http-read-header-timeout` (0 = `http_read_timeout`): longest wait for a
    /// request head, including the wait for the next request on a kept-alive connection.
    pub http_read_header_timeout: Duration,
    /// `-server.http-write-timeout` (Mimir 2m): longest stall of a response write.
    pub http_write_timeout: Duration,
    /// `-server.http-idle-timeout` (2m): a connection on which nothing moves is closed.
    pub http_idle_timeout: Duration,
    /// `-server.http-conn-limit`, resolved (see [`resolve_conn_limit`]); `None`: none.
    pub http_conn_limit: Option<usize>,
    /// `-server.grpc-conn-limit`, resolved; `None`: none.
    pub grpc_conn_limit: Option<usize>,
    /// `-server.grpc-max-recv-msg-size-bytes` (Mimir 100 MiB).
    pub grpc_max_recv_msg_size: usize,
    /// `-server.grpc-max-send-msg-size-bytes` (Mimir 100 MiB).
    pub grpc_max_send_msg_size: usize,
    /// `-server.grpc-max-concurrent-streams` (100; 0 = unlimited).
    pub grpc_max_concurrent_streams: u32,
    /// `-server.grpc.keepalive.time` (2h): ping an idle client this often.
    pub grpc_keepalive_time: Duration,
    /// `-server.grpc.keepalive.timeout` (20s): close when a ping is not answered in time.
    pub grpc_keepalive_timeout: Duration,
    /// `-server.grpc.keepalive.max-connection-age` (infinite = `None`).
    pub grpc_max_connection_age: Option<Duration>,
    /// `-server.grpc.keepalive.max-connection-age-grace` (infinite = `None`).
    pub grpc_max_connection_age_grace: Option<Duration>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http_read_timeout: Duration::from_secs(30),
            http_read_header_timeout: Duration::ZERO,
            http_write_timeout: Duration::from_secs(120),
            http_idle_timeout: Duration::from_secs(120),
            http_conn_limit: None,
            grpc_conn_limit: None,
            grpc_max_recv_msg_size: 100 << 20,
            grpc_max_send_msg_size: 100 << 20,
            grpc_max_concurrent_streams: 100,
            grpc_keepalive_time: Duration::from_secs(2 * 3600),
            grpc_keepalive_timeout: Duration::from_secs(20),
            grpc_max_connection_age: None,
            grpc_max_connection_age_grace: None,
        }
    }
}

/// The soft open-file limit of this process (`RLIMIT_NOFILE`), read from
/// `/proc/self/limits`; `None` where that is not available or unlimited.
pub fn open_file_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Resolves a `-server.*-conn-limit` flag: positive = that many connections, negative =
/// no limit, `0` = a quarter of the open-file limit (at least 64), so HTTP and gRPC
/// together keep half of the descriptors for gossip, WAL files and outgoing connections.
pub fn resolve_conn_limit(flag: i64, open_files: Option<u64>) -> Option<usize> {
    match flag {
        f if f > 0 => Some(usize::try_from(f).unwrap_or(usize::MAX)),
        f if f < 0 => None,
        _ => open_files.map(|n| usize::try_from(n / 4).unwrap_or(usize::MAX).max(64)),
    }
}

/// The `protocol` label of dskit's connection metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabel {
    /// `http` or `grpc`.
    pub protocol: String,
}

/// dskit's `cortex_tcp_connections` and `cortex_tcp_connections_limit`.
#[derive(Clone, Debug, Default)]
pub struct ServerMetrics {
    /// Accepted connections open now, per protocol.
    pub connections: Family<ProtocolLabel, Gauge>,
    /// The connection limit per protocol (0: none).
    pub connections_limit: Family<ProtocolLabel, Gauge>,
}

impl ServerMetrics {
    /// Registers the gauges under dskit's names.
    pub fn register(registry: &mut Registry) -> ServerMetrics {
        let m = ServerMetrics::default();
        registry.register(
            "cortex_tcp_connections",
            "Current number of accepted TCP connections.",
            m.connections.clone(),
        );
        registry.register(
            "cortex_tcp_connections_limit",
            "The max number of TCP connections that can be accepted (0 means no limit).",
            m.connections_limit.clone(),
        );
        m
    }

    fn gauge(&self, protocol: &str) -> Gauge {
        self.connections
            .get_or_create(&ProtocolLabel {
                protocol: protocol.to_owned(),
            })
            .clone()
    }
}

/// Accepts connections under a limit: waits for a free slot before accepting, so clients
/// beyond the limit queue in the kernel backlog and never take a descriptor of ours.
#[derive(Debug)]
pub struct LimitedListener {
    listener: TcpListener,
    slots: Option<Arc<Semaphore>>,
    open: Gauge,
}

impl LimitedListener {
    /// Wraps `listener`; `limit` `None` accepts without bound (still counted).
    pub fn new(
        listener: TcpListener,
        limit: Option<usize>,
        protocol: &str,
        metrics: &ServerMetrics,
    ) -> Self {
        let label = ProtocolLabel {
            protocol: protocol.to_owned(),
        };
        metrics
            .connections_limit
            .get_or_create(&label)
            .set(limit.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX)));
        LimitedListener {
            listener,
            slots: limit.map(|l| Arc::new(Semaphore::new(l.max(1)))),
            open: metrics.gauge(protocol),
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits for a slot, then for a connection. Accept errors (e.g. out of descriptors)
    /// are logged and retried after a short pause, never returned: the server keeps going.
    pub async fn accept(&self) -> (Slot, TcpStream, SocketAddr) {
        let permit = match &self.slots {
            Some(s) => Some(
                Arc::clone(s)
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed"),
            ),
            None => None,
        };
        loop {
            match self.listener.accept().await {
                Ok((conn, from)) => {
                    let _ = conn.set_nodelay(true);
                    self.open.inc();
                    let slot = Slot {
                        _permit: permit,
                        open: self.open.clone(),
                    };
                    return (slot, conn, from);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// A connection's place under the limit; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    _permit: Option<OwnedSemaphorePermit>,
    open: Gauge,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.dec();
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, format!("{what} timed out"))
}

/// A stream whose reads and writes fail with `TimedOut` when one stalls longer than
/// its timeout, and which fails when no byte has moved for `idle`.
#[derive(Debug)]
pub struct DeadlineIo<T> {
    inner: T,
    read_timeout: Duration,
    write_timeout: Duration,
    read_sleep: Option<Pin<Box<Sleep>>>,
    write_sleep: Option<Pin<Box<Sleep>>>,
    /// Milliseconds since `start` of the last byte moved.
    last: Arc<AtomicU64>,
    start: Instant,
}

impl<T> DeadlineIo<T> {
    /// Wraps `inner`; zero durations disable the respective timeout.
    pub fn new(inner: T, read_timeout: Duration, write_timeout: Duration) -> Self {
        DeadlineIo {
            inner,
            read_timeout,
            write_timeout,
            read_sleep: None,
            write_sleep: None,
            last: Arc::new(AtomicU64::new(0)),
            start: Instant::now(),
        }
    }

    /// When a byte last moved, for an idle watchdog.
    pub fn activity(&self) -> Activity {
        Activity {
            last: Arc::clone(&self.last),
            start: self.start,
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

/// Last activity of a [`DeadlineIo`].
#[derive(Clone, Debug)]
pub struct Activity {
    last: Arc<AtomicU64>,
    start: Instant,
}

impl Activity {
    /// The instant at which a connection idle since its last byte reaches `idle`.
    pub fn idle_deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

/// Polls an optional stall timer: armed when the operation is pending, cleared on
/// progress. Ready(true) when the stall passed `limit`.
fn stalled(sleep: &mut Option<Pin<Box<Sleep>>>, limit: Duration, cx: &mut Context<'_>) -> bool {
    if limit.is_zero() {
        return false;
    }
    let s = sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    s.as_mut().poll(cx).is_ready()
}

impl<T: AsyncRead + Unpin> AsyncRead for DeadlineIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.after(Direction::Read, polled, cx)
    }
}

/// Which side of a [`DeadlineIo`] an attempt was on (each has its own stall timer).
#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

impl<T> DeadlineIo<T> {
    /// One read or write attempt's outcome: progress resets that side's stall timer and
    /// marks activity; an attempt pending past that side's timeout fails.
    fn after<R>(
        &mut self,
        side: Direction,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        let (sleep, limit, what) = match side {
            Direction::Read => (&mut self.read_sleep, self.read_timeout, "read"),
            Direction::Write => (&mut self.write_sleep, self.write_timeout, "write"),
        };
        match polled {
            Poll::Ready(r) => {
                *sleep = None;
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if stalled(sleep, limit, cx) {
                    *sleep = None;
                    return Poll::Ready(Err(timed_out(what)));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for DeadlineIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.after(Direction::Write, polled, cx)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.after(Direction::Write, polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves `app` over HTTP/1.1 (and h2c) on `listener` with the limits and timeouts of
/// `cfg` until `shutdown` completes; then stops accepting and gives open connections
/// up to `grace` to finish.
pub async fn serve_http(
    listener: LimitedListener,
    app: axum::Router,
    cfg: &ServerConfig,
    shutdown: impl Future<Output = ()> + Send,
    grace: Duration,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;

    let mut builder = Builder::new(TokioExecutor::new());
    let head_timeout = if cfg.http_read_header_timeout.is_zero() {
        cfg.http_read_timeout
    } else {
        cfg.http_read_header_timeout
    };
    let head_timeout = match (head_timeout.is_zero(), cfg.http_idle_timeout.is_zero()) {
        (true, true) => None,
        (true, false) => Some(cfg.http_idle_timeout),
        (false, true) => Some(head_timeout),
        (false, false) => Some(head_timeout.min(cfg.http_idle_timeout)),
    };
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let idle = cfg.http_idle_timeout;
    let (read_timeout, write_timeout) = (cfg.http_read_timeout, cfg.http_write_timeout);
    let service = TowerToHyperService::new(app);

    tokio::pin!(shutdown);
    loop {
        let (slot, conn, _from) = tokio::select! {
            c = listener.accept() => c,
            () = &mut shutdown => break,
        };
        let io = DeadlineIo::new(conn, read_timeout, write_timeout);
        let activity = io.activity();
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(io), service.clone())
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _slot = slot;
            tokio::pin!(conn);
            loop {
                let wake = if idle.is_zero() {
                    None
                } else {
                    Some(activity.idle_deadline(idle))
                };
                tokio::select! {
                    r = &mut conn => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "http connection ended with an error");
                        }
                        return;
                    }
                    () = sleep_until_opt(wake) => {
                        if activity.idle_deadline(idle) <= Instant::now() {
                            tracing::debug!("closing idle http connection");
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(grace, graceful.shutdown()).await;
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A gRPC connection under the limit (a tonic `Connected` IO that holds its [`Slot`]).
#[derive(Debug)]
pub struct GrpcConn {
    inner: TcpStream,
    _slot: Slot,
}

impl tonic::transport::server::Connected for GrpcConn {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for GrpcConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GrpcConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The listener as the connection stream tonic's `serve_with_incoming*` takes.
pub fn grpc_incoming(
    listener: LimitedListener,
) -> impl futures::Stream<Item = io::Result<GrpcConn>> + Send + 'static {
    futures::stream::unfold(listener, |l| async move {
        let (slot, conn, _) = l.accept().await;
        Some((
            Ok(GrpcConn {
                inner: conn,
                _slot: slot,
            }),
            l,
        ))
    })
}

/// A tonic server builder with the gRPC settings of `cfg`.
pub fn grpc_builder(cfg: &ServerConfig) -> tonic::transport::Server {
    let mut b = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(cfg.grpc_keepalive_time))
        .http2_keepalive_timeout(Some(cfg.grpc_keepalive_timeout))
        .max_concurrent_streams(
            (cfg.grpc_max_concurrent_streams > 0).then_some(cfg.grpc_max_concurrent_streams),
        );
    if let Some(age) = cfg.grpc_max_connection_age {
        b = b.max_connection_age(age);
    }
    if let Some(grace) = cfg.grpc_max_connection_age_grace {
        b = b.max_connection_age_grace(grace);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_limit_zero_is_a_quarter_of_the_open_file_limit() {
        assert_eq!(resolve_conn_limit(0, Some(20_000)), Some(5_000));
        assert_eq!(resolve_conn_limit(0, Some(100)), Some(64));
        assert_eq!(resolve_conn_limit(0, None), None);
        assert_eq!(resolve_conn_limit(-1, Some(20_000)), None);
        assert_eq!(resolve_conn_limit(300, Some(20_000)), Some(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_read_or_write_fails_after_its_timeout_and_progress_resets_it() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut b) = tokio::io::duplex(8);
        let mut io = DeadlineIo::new(a, Duration::from_secs(30), Duration::from_secs(5));
        let activity = io.activity();
        // Bytes arrive: the read succeeds and counts as activity.
        b.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(io.read(&mut buf).await.unwrap(), 2);
        let idle_at = activity.idle_deadline(Duration::from_secs(120));
        // Nothing more arrives: the read stalls and fails after 30 s (paused clock).
        let err = io.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // The peer stops reading: the 8-byte pipe fills and the write fails after 5 s.
        let err = io.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Progress moved the idle deadline forward only while bytes moved.
        assert!(activity.idle_deadline(Duration::from_secs(120)) >= idle_at);
    }

    #[test]
    fn the_open_file_limit_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(open_file_limit().is_some_and(|n| n > 0));
        }
    }
}
