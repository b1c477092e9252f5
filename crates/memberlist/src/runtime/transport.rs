//! Sockets: listening, sending packets, and stream message I/O, for both transports
//! (`spec/memberlist.md` §2.2 for dskit's TCP framing, §1.6 for streams).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::config::{MemberlistConfig, TransportKind};
use super::log_limit::{PeerLogLimiter, PeerWarning, peer_warn};
use crate::wire::dskit_tcp::{
    PACKET_MARKER, STREAM_MARKER, decode_packet_frame_unchecked, encode_packet_frame,
    go_addr_string,
};
use crate::wire::{
    DecodeError, Dialect, Limits, Message, StreamMessage, encode_stream,
    packet::decode_packet_with, stream::decode_stream_with,
};

/// Largest dskit packet connection we read (memberlist's 10 MiB budget plus framing).
const MAX_PACKET_CONN: usize = 12 * 1024 * 1024;
/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_536;

/// `memberlist_tcp_transport_*` counters (dskit names), also used for UDP.
#[derive(Debug, Default)]
pub struct TransportMetrics {
    /// Packets received.
    pub packets_received: Counter,
    /// Bytes of packets received.
    pub packets_received_bytes: Counter,
    /// Packets sent.
    pub packets_sent: Counter,
    /// Bytes of packets sent.
    pub packets_sent_bytes: Counter,
    /// Packets that failed to send.
    pub packets_sent_errors: Counter,
    /// Packets dropped because no writer was free in time.
    pub packets_dropped: Counter,
    /// Packets that did not decode or had the wrong cluster label.
    pub packets_invalid: Counter,
    /// Inbound streams.
    pub incoming_streams: Counter,
    /// Outbound streams.
    pub outgoing_streams: Counter,
    /// Outbound streams that failed.
    pub outgoing_stream_errors: Counter,
    /// Connections whose first byte was neither packet nor stream.
    pub unknown_connections: Counter,
    /// Every byte written to peers: packets, streams (push/pull), markers.
    pub sent_bytes: Counter,
    /// Every byte read from peers: packets, streams (push/pull), markers.
    pub received_bytes: Counter,
    /// Inbound connections open now (packets being read, streams being served).
    pub incoming_connections: Gauge,
    /// Inbound connections closed at once because `max_incoming_connections` were open.
    pub incoming_connections_refused: Counter,
    /// Connections closed because the node's read buffers were full
    /// (`max_read_buffer_bytes`).
    pub read_buffer_exhausted: Counter,
    /// Bytes held in read buffers now.
    pub read_buffer_bytes: Gauge,
}

impl TransportMetrics {
    /// Registers the counters as `memberlist_tcp_transport_*`.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("memberlist_tcp_transport");
        let c = |r: &mut Registry, name: &str, help: &str, m: &Counter| {
            r.register(name, help, m.clone())
        };
        c(
            r,
            "packets_received",
            "Packets received",
            &self.packets_received,
        );
        c(
            r,
            "packets_received_bytes",
            "Bytes of packets received",
            &self.packets_received_bytes,
        );
        c(r, "packets_sent", "Packets sent", &self.packets_sent);
        c(
            r,
            "packets_sent_bytes",
            "Bytes of packets sent",
            &self.packets_sent_bytes,
        );
        c(
            r,
            "packets_sent_errors",
            "Packets that failed to send",
            &self.packets_sent_errors,
        );
        c(
            r,
            "packets_dropped",
            "Packets dropped because no writer was free in time",
            &self.packets_dropped,
        );
        c(
            r,
            "packets_invalid",
            "Received packets that did not decode or carried another cluster label",
            &self.packets_invalid,
        );
        // dskit's name for the same count.
        c(
            r,
            "packets_received_errors",
            "Number of errors when receiving memberlist packets (same count as packets_invalid)",
            &self.packets_invalid,
        );
        c(
            r,
            "incoming_streams",
            "Inbound streams",
            &self.incoming_streams,
        );
        c(
            r,
            "outgoing_streams",
            "Outbound streams",
            &self.outgoing_streams,
        );
        c(
            r,
            "outgoing_stream_errors",
            "Outbound streams that failed",
            &self.outgoing_stream_errors,
        );
        c(
            r,
            "unknown_connections",
            "Connections that were neither packets nor streams",
            &self.unknown_connections,
        );
        c(
            r,
            "sent_bytes",
            "Total bytes sent by the transport: packets, full state syncs and pings",
            &self.sent_bytes,
        );
        c(
            r,
            "received_bytes",
            "Total bytes received by the transport: packets, full state syncs and pings",
            &self.received_bytes,
        );
        c(
            r,
            "incoming_connections_refused",
            "Inbound connections closed at once because the connection limit was reached",
            &self.incoming_connections_refused,
        );
        c(
            r,
            "read_buffer_exhausted",
            "Connections closed because the node's read buffer budget was used up",
            &self.read_buffer_exhausted,
        );
        r.register(
            "incoming_connections",
            "Inbound connections open now",
            self.incoming_connections.clone(),
        );
        r.register(
            "read_buffer_bytes",
            "Bytes held in connection read buffers now",
            self.read_buffer_bytes.clone(),
        );
    }
}

/// What the listeners hand to the node.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A decoded packet.
    Packet { from: SocketAddr, message: Message },
    /// An accepted stream connection (marker already consumed for dskit), with its
    /// slot of the connection limit: hold it until the stream is done.
    Stream {
        from: SocketAddr,
        stream: TcpStream,
        slot: ConnSlot,
    },
}

/// One inbound connection's place under `max_incoming_connections`; dropping it frees the
/// place and updates the gauge.
#[derive(Debug)]
pub(crate) struct ConnSlot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<TransportMetrics>,
}

impl ConnSlot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<TransportMetrics>) -> Self {
        metrics.incoming_connections.inc();
        ConnSlot {
            _permit: permit,
            metrics,
        }
    }
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.metrics.incoming_connections.dec();
    }
}

/// Bytes one connection holds of the node's read-buffer budget; returned on drop.
struct BufferCharge<'a> {
    budget: &'a Semaphore,
    held: u32,
    metrics: &'a TransportMetrics,
}

impl<'a> BufferCharge<'a> {
    fn new(t: &'a Transport) -> Self {
        BufferCharge {
            budget: &t.read_budget,
            held: 0,
            metrics: &t.metrics,
        }
    }

    /// Takes `n` more bytes of the budget; false (counted) when the budget is used up.
    fn grow(&mut self, n: usize) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.budget.try_acquire_many(n) {
            Ok(p) => {
                p.forget();
                self.held = self.held.saturating_add(n);
                self.metrics.read_buffer_bytes.inc_by(i64::from(n));
                true
            }
            Err(_) => {
                self.metrics.read_buffer_exhausted.inc();
                false
            }
        }
    }
}

impl Drop for BufferCharge<'_> {
    fn drop(&mut self) {
        self.budget.add_permits(self.held as usize);
        self.metrics.read_buffer_bytes.dec_by(i64::from(self.held));
    }
}

/// Errors of stream I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// Socket error.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Timed out.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Peer bytes did not decode.
    #[error("malformed stream message: {0}")]
    Decode(#[from] DecodeError),
    /// The message grew past the stream limit without completing.
    #[error("stream message larger than {0} bytes")]
    TooLarge(usize),
    /// The node's read buffers are full (`max_read_buffer_bytes`).
    #[error("read buffers of this node are full")]
    BufferBudget,
    /// The peer closed before a whole message arrived.
    #[error("connection closed after {0} bytes, before a whole message")]
    Closed(usize),
    /// The message carried another cluster label.
    #[error("cluster label {got:?} does not match ours ({want:?})")]
    Label {
        /// Label received.
        got: String,
        /// Our label.
        want: String,
    },
    /// The peer answered with something other than expected.
    #[error("unexpected {0} message on the stream")]
    Unexpected(&'static str),
    /// The peer sent memberlist's error response.
    #[error("peer error: {0}")]
    Remote(String),
}

/// The sending side and the label rules, shared by every task of a node.
#[derive(Debug)]
pub(crate) struct Transport {
    pub(crate) kind: TransportKind,
    /// Our advertised address in Go's text form (dskit packet header).
    pub(crate) from_text: String,
    pub(crate) label: Option<Vec<u8>>,
    pub(crate) verify_label: bool,
    pub(crate) limits: Limits,
    pub(crate) dialect: Dialect,
    pub(crate) stream_timeout: Duration,
    dial_timeout: Duration,
    write_timeout: Duration,
    acquire_timeout: Duration,
    writers: Semaphore,
    /// Inbound connections (`max_incoming_connections`).
    conns: Arc<Semaphore>,
    /// Bytes of read buffers (`max_read_buffer_bytes`, in bytes, at most u32::MAX).
    read_budget: Semaphore,
    udp: Option<Arc<UdpSocket>>,
    pub(crate) metrics: Arc<TransportMetrics>,
    /// Rate limit of warnings about what peers send.
    pub(crate) warnings: PeerLogLimiter,
}

/// Bound sockets, before the node starts reading them.
pub(crate) struct Bound {
    pub(crate) tcp: TcpListener,
    pub(crate) udp: Option<Arc<UdpSocket>>,
    pub(crate) local: SocketAddr,
}

/// Binds the TCP listener (and, for UDP, the datagram socket on the same port).
pub(crate) async fn bind(cfg: &MemberlistConfig) -> std::io::Result<Bound> {
    let want = SocketAddr::new(cfg.bind_addr, cfg.bind_port);
    let tcp = TcpListener::bind(want).await?;
    let local = tcp.local_addr()?;
    let udp = match cfg.transport {
        TransportKind::DskitTcp => None,
        TransportKind::Udp => Some(Arc::new(UdpSocket::bind(local).await?)),
    };
    Ok(Bound { tcp, udp, local })
}

impl Transport {
    pub(crate) fn new(
        cfg: &MemberlistConfig,
        advertise: SocketAddr,
        udp: Option<Arc<UdpSocket>>,
        metrics: Arc<TransportMetrics>,
    ) -> Self {
        Transport {
            kind: cfg.transport,
            from_text: go_addr_string(advertise),
            label: (!cfg.cluster_label.is_empty()).then(|| cfg.cluster_label.as_bytes().to_vec()),
            verify_label: !cfg.cluster_label_verification_disabled,
            limits: Limits::default(),
            dialect: cfg.dialect,
            stream_timeout: cfg.stream_timeout,
            dial_timeout: cfg.packet_dial_timeout,
            write_timeout: cfg.packet_write_timeout,
            acquire_timeout: cfg.acquire_writer_timeout,
            writers: Semaphore::new(cfg.max_concurrent_writes.max(1)),
            conns: Arc::new(Semaphore::new(cfg.max_incoming_connections.max(1))),
            read_budget: Semaphore::new(cfg.max_read_buffer_bytes.min(u32::MAX as usize)),
            udp,
            metrics,
            warnings: PeerLogLimiter::default(),
        }
    }

    /// Whether a received label is acceptable.
    pub(crate) fn label_ok(&self, got: Option<&[u8]>) -> bool {
        !self.verify_label || got == self.label.as_deref()
    }

    /// Sends one encoded packet (label and CRC already applied). Errors are counted
    /// and logged, never returned: packets are unreliable by contract.
    pub(crate) async fn send_packet(&self, to: SocketAddr, packet: Vec<u8>) {
        let m = &self.metrics;
        let len = packet.len() as u64;
        // Bytes on the wire: the datagram, or the whole dskit frame.
        let mut wire_len = len;
        let result =
            match self.kind {
                TransportKind::Udp => match &self.udp {
                    Some(udp) => udp.send_to(&packet, to).await.map(|_| ()),
                    None => return,
                },
                TransportKind::DskitTcp => {
                    let permit =
                        match tokio::time::timeout(self.acquire_timeout, self.writers.acquire())
                            .await
                        {
                            Ok(Ok(p)) => p,
                            _ => {
                                m.packets_dropped.inc();
                                return;
                            }
                        };
                    let frame = match encode_packet_frame(&self.from_text, &packet) {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot frame packet");
                            return;
                        }
                    };
                    wire_len = frame.len() as u64;
                    let r = self.send_tcp_packet(to, &frame).await;
                    drop(permit);
                    r
                }
            };
        match result {
            Ok(()) => {
                m.packets_sent.inc();
                m.packets_sent_bytes.inc_by(len);
                m.sent_bytes.inc_by(wire_len);
            }
            Err(e) => {
                m.packets_sent_errors.inc();
                tracing::debug!(%to, error = %e, "packet not sent");
            }
        }
    }

    async fn send_tcp_packet(&self, to: SocketAddr, frame: &[u8]) -> std::io::Result<()> {
        let mut conn = tokio::time::timeout(self.dial_timeout, TcpStream::connect(to))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "dial timeout"))??;
        tokio::time::timeout(self.write_timeout, async {
            conn.write_all(frame).await?;
            conn.shutdown().await
        })
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timeout"))?
    }

    /// Opens a stream to `to` (dskit: writes the `0x02` marker).
    pub(crate) async fn dial_stream(&self, to: SocketAddr) -> Result<TcpStream, StreamError> {
        self.metrics.outgoing_streams.inc();
        let t = self.stream_timeout;
        let r = async {
            let mut s = tokio::time::timeout(t, TcpStream::connect(to))
                .await
                .map_err(|_| StreamError::Timeout(t))??;
            s.set_nodelay(true)?;
            if self.kind == TransportKind::DskitTcp {
                s.write_all(&[STREAM_MARKER]).await?;
                self.metrics.sent_bytes.inc();
            }
            Ok(s)
        }
        .await;
        if r.is_err() {
            self.metrics.outgoing_stream_errors.inc();
        }
        r
    }

    /// Writes one stream message (with our label when `first`).
    pub(crate) async fn write_stream(
        &self,
        s: &mut TcpStream,
        message: Message,
        first: bool,
    ) -> Result<(), StreamError> {
        let m = StreamMessage {
            label: if first { self.label.clone() } else { None },
            message,
        };
        let bytes = encode_stream(&m, self.dialect).map_err(|e| {
            StreamError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ))
        })?;
        let t = self.stream_timeout;
        tokio::time::timeout(t, s.write_all(&bytes))
            .await
            .map_err(|_| StreamError::Timeout(t))??;
        self.metrics.sent_bytes.inc_by(bytes.len() as u64);
        Ok(())
    }

    /// Reads one stream message, checking the label when `first`.
    pub(crate) async fn read_stream(
        &self,
        s: &mut TcpStream,
        first: bool,
    ) -> Result<Message, StreamError> {
        let t = self.stream_timeout;
        let mut buf = Vec::new();
        let mut charge = BufferCharge::new(self);
        let limit = self.limits.max_stream_payload + 64 * 1024;
        let m = tokio::time::timeout(t, async {
            loop {
                if let Some((m, _)) = decode_stream_with(&buf, &self.limits)? {
                    return Ok::<_, StreamError>(m);
                }
                if buf.len() >= limit {
                    return Err(StreamError::TooLarge(buf.len()));
                }
                let mut chunk = [0u8; 16 * 1024];
                let n = s.read(&mut chunk).await?;
                if n == 0 {
                    return Err(StreamError::Closed(buf.len()));
                }
                self.metrics.received_bytes.inc_by(n as u64);
                if !charge.grow(n) {
                    return Err(StreamError::BufferBudget);
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await
        .map_err(|_| StreamError::Timeout(t))??;
        if first && !self.label_ok(m.label.as_deref()) {
            return Err(StreamError::Label {
                got: String::from_utf8_lossy(m.label.as_deref().unwrap_or_default()).into(),
                want: String::from_utf8_lossy(self.label.as_deref().unwrap_or_default()).into(),
            });
        }
        let mut msg = m.message;
        while let Message::Compressed(c) = msg {
            msg = *c.inner;
        }
        Ok(msg)
    }

    /// Decodes a packet's bytes and checks its label; `None` (counted) if unusable.
    fn decode_packet(&self, from: SocketAddr, bytes: &[u8]) -> Option<Message> {
        let m = &self.metrics;
        m.packets_received.inc();
        m.packets_received_bytes.inc_by(bytes.len() as u64);
        match decode_packet_with(bytes, &self.limits) {
            Ok(p) if self.label_ok(p.label.as_deref()) => Some(p.message),
            Ok(p) => {
                m.packets_invalid.inc();
                let label = p.label.as_deref().map(String::from_utf8_lossy);
                let ours = self.label.as_deref().map(String::from_utf8_lossy);
                peer_warn!(
                    self.warnings,
                    from,
                    PeerWarning::ClusterLabel,
                    ?label,
                    ?ours,
                    "dropping memberlist packet with another cluster label \
                     (is -memberlist.cluster-label the same on every member?)"
                );
                None
            }
            Err(e) => {
                m.packets_invalid.inc();
                peer_warn!(
                    self.warnings,
                    from,
                    PeerWarning::Undecodable,
                    error = %e,
                    "dropping memberlist packet that does not decode"
                );
                None
            }
        }
    }
}

/// Accepts connections (and UDP datagrams) until `cancel`, handing them to `tx`.
pub(crate) fn spawn_listeners(
    transport: Arc<Transport>,
    bound: Bound,
    tx: mpsc::Sender<Inbound>,
    cancel: CancellationToken,
) {
    if let Some(udp) = bound.udp.clone() {
        let (t, tx, cancel) = (transport.clone(), tx.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_DATAGRAM];
            loop {
                let (n, from) = tokio::select! {
                    r = udp.recv_from(&mut buf) => match r {
                        Ok(x) => x,
                        Err(e) => { tracing::debug!(error = %e, "udp receive"); continue; }
                    },
                    _ = cancel.cancelled() => return,
                };
                t.metrics.received_bytes.inc_by(n as u64);
                if let Some(message) = t.decode_packet(from, &buf[..n])
                    && tx.send(Inbound::Packet { from, message }).await.is_err()
                {
                    return;
                }
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let (conn, from) = tokio::select! {
                r = bound.tcp.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = cancel.cancelled() => return,
            };
            // At the limit the connection is closed at once (no task, no buffer): peers
            // retry packets and streams, and a flood cannot exhaust file descriptors.
            let Ok(permit) = transport.conns.clone().try_acquire_owned() else {
                transport.metrics.incoming_connections_refused.inc();
                drop(conn);
                continue;
            };
            let slot = ConnSlot::new(permit, transport.metrics.clone());
            let (t, tx) = (transport.clone(), tx.clone());
            tokio::spawn(async move { handle_conn(t, conn, from, tx, slot).await });
        }
    });
}

async fn handle_conn(
    t: Arc<Transport>,
    mut conn: TcpStream,
    from: SocketAddr,
    tx: mpsc::Sender<Inbound>,
    slot: ConnSlot,
) {
    if t.kind == TransportKind::Udp {
        t.metrics.incoming_streams.inc();
        let _ = tx
            .send(Inbound::Stream {
                from,
                stream: conn,
                slot,
            })
            .await;
        return;
    }
    let mut marker = [0u8; 1];
    let read = tokio::time::timeout(t.stream_timeout, conn.read_exact(&mut marker)).await;
    if !matches!(read, Ok(Ok(_))) {
        return;
    }
    t.metrics.received_bytes.inc();
    match marker[0] {
        STREAM_MARKER => {
            t.metrics.incoming_streams.inc();
            let _ = tx
                .send(Inbound::Stream {
                    from,
                    stream: conn,
                    slot,
                })
                .await;
        }
        PACKET_MARKER => {
            let _slot = slot;
            let mut buf = vec![PACKET_MARKER];
            let mut charge = BufferCharge::new(&t);
            let r = tokio::time::timeout(t.write_timeout, async {
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    let n = conn.read(&mut chunk).await?;
                    if n == 0 {
                        return Ok::<_, std::io::Error>(true);
                    }
                    t.metrics.received_bytes.inc_by(n as u64);
                    if buf.len() + n > MAX_PACKET_CONN || !charge.grow(n) {
                        return Ok(false);
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
            })
            .await;
            if !matches!(r, Ok(Ok(true))) {
                t.metrics.packets_invalid.inc();
                return;
            }
            let frame = match decode_packet_frame_unchecked(&buf) {
                Ok(f) => f,
                Err(e) => {
                    t.metrics.packets_invalid.inc();
                    peer_warn!(
                        t.warnings,
                        from,
                        PeerWarning::Undecodable,
                        error = %e,
                        "dropping memberlist packet connection whose frame does not decode"
                    );
                    return;
                }
            };
            if !frame.digest_ok {
                // dskit logs and still delivers; so do we.
                tracing::warn!(%from, "packet MD5 digest mismatch");
            }
            let sender = std::str::from_utf8(frame.from)
                .ok()
                .and_then(|s| s.parse::<SocketAddr>().ok())
                .unwrap_or(from);
            // Warnings name the connection's address: the frame's own is only a claim.
            if let Some(message) = t.decode_packet(from, frame.packet) {
                let _ = tx
                    .send(Inbound::Packet {
                        from: sender,
                        message,
                    })
                    .await;
            }
        }
        other => {
            t.metrics.unknown_connections.inc();
            tracing::debug!(%from, first_byte = other, "unknown connection type, closing");
        }
    }
}
