//! [`Memberlist`]: a running node. One task owns the [`Core`] and loops over its
//! inputs (packets, streams' results, KV broadcasts, commands, the core's deadline);
//! everything that blocks (dialing, writing, reading streams) runs in tasks of its own
//! and reports back through channels, so the core never waits on the network.

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use rand::rngs::StdRng;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::config::{MemberlistConfig, TransportKind};
use super::join::JoinStatus;
use super::log_limit::{PeerLogLimiter, PeerWarning, peer_warn};
use super::transport::{self, Inbound, StreamError, Transport, TransportMetrics};
use super::zone_traffic::{self, ZoneTraffic};
use crate::kv::{GossipKv, Rejected};
use crate::swim::{
    self, BroadcastQueueStats, Core, Event, LocalNode, Member, RoutingStats, Transmit,
    UserBroadcast, ZoneAwareRouting,
};
use crate::wire::message::{Ack, Compressed, ErrResp, IpForm, PushPull};
use crate::wire::{Message, Packet, encode_packet};

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address asked for.
        addr: SocketAddr,
        /// The socket error.
        source: std::io::Error,
    },
    /// The SWIM settings are invalid.
    #[error(transparent)]
    Config(#[from] swim::Error),
    /// The fast join failed and `abort_if_fast_join_fails` is set.
    #[error("failed to fast-join the memberlist cluster at startup: {0}")]
    FastJoin(String),
}

/// Why a join found nobody.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// No seed address resolved.
    #[error("no address to join: {0}")]
    NoAddress(String),
    /// Every push/pull with a seed failed; the last error is given.
    #[error("could not join any of {tried} address(es): {last}")]
    Failed {
        /// Addresses tried.
        tried: usize,
        /// The last failure.
        last: String,
    },
}

/// Where a push/pull caller learns that the peer's state was merged (or why not).
type MergeDone = oneshot::Sender<Result<(), String>>;

enum Cmd {
    /// Our node states for a push/pull (request or reply).
    PushPullState {
        join: bool,
        reply: oneshot::Sender<PushPull>,
    },
    /// A peer's push/pull to merge.
    Merge {
        from: SocketAddr,
        remote: PushPull,
        done: Option<MergeDone>,
    },
    /// Graceful leave.
    Leave { done: oneshot::Sender<()> },
    /// Our own user broadcasts still queued.
    QueuedLocal { reply: oneshot::Sender<usize> },
    /// The startup join is over.
    MarkJoined,
}

struct Inner {
    name: String,
    advertise: SocketAddr,
    config: MemberlistConfig,
    cmd_tx: mpsc::Sender<Cmd>,
    members: Mutex<Vec<Member>>,
    health: AtomicU32,
    /// The core's broadcast queue numbers after its last step.
    queue_stats: Mutex<BroadcastQueueStats>,
    /// The core's zone-aware routing counters after its last step.
    routing_stats: Mutex<RoutingStats>,
    /// Where packets and push/pulls went and came from, by zone and role.
    zone_traffic: ZoneTraffic,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    transport: Arc<Transport>,
    kv: GossipKv,
    tasks: TaskTracker,
    /// The background startup join's outcome (see [`super::join`]).
    startup_join: watch::Receiver<JoinStatus>,
}

/// A memberlist node running on tokio, carrying a [`GossipKv`]. Clones share the node.
#[derive(Clone)]
pub struct Memberlist {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memberlist")
            .field("name", &self.inner.name)
            .field("advertise", &self.inner.advertise)
            .finish()
    }
}

/// The outgoing interface's address (no packet is sent: connecting a UDP socket only
/// picks a route), or loopback when there is no route.
fn outgoing_ip() -> IpAddr {
    StdUdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("10.254.254.254:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "ringkit".to_owned())
}

impl Memberlist {
    /// Binds, starts the node and, if `config.join_members` is set, joins in the
    /// background (retrying with backoff, as dskit does). The node serves until
    /// [`Memberlist::shutdown`] or [`Memberlist::leave`].
    pub async fn start(config: MemberlistConfig, kv: GossipKv) -> Result<Memberlist, StartError> {
        let bound = transport::bind(&config)
            .await
            .map_err(|source| StartError::Bind {
                addr: SocketAddr::new(config.bind_addr, config.bind_port),
                source,
            })?;
        let ip = config.advertise_addr.unwrap_or_else(|| {
            if config.bind_addr.is_unspecified() {
                outgoing_ip()
            } else {
                config.bind_addr
            }
        });
        let advertise = SocketAddr::new(ip, config.advertise_port.unwrap_or(bound.local.port()));
        // dskit announces IPv4 in the 16-byte form when it picked or was given an
        // advertise address; plain memberlist and explicit binds use 4 bytes.
        let ip_form = match config.transport {
            TransportKind::DskitTcp
                if config.advertise_addr.is_some() || config.bind_addr.is_unspecified() =>
            {
                IpForm::Mapped
            }
            _ => IpForm::V4,
        };
        let mut rng = rand::make_rng::<StdRng>();
        let mut name = if config.node_name.is_empty() {
            host_name()
        } else {
            config.node_name.clone()
        };
        if config.randomize_node_name {
            name = format!("{name}-{:08x}", rng.random::<u32>());
        }
        let mut swim_cfg = config.swim.clone();
        swim_cfg.label_len = if config.cluster_label.is_empty() {
            0
        } else {
            config.cluster_label.len() + 2
        };
        let core = Core::new(
            Instant::now().into_std(),
            swim_cfg,
            LocalNode {
                name: name.clone().into_bytes(),
                addr: advertise,
                ip_form,
                meta: None,
            },
            rng,
        )?;
        let metrics = Arc::new(TransportMetrics::default());
        let transport = Arc::new(Transport::new(
            &config,
            advertise,
            bound.udp.clone(),
            metrics,
        ));
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (join_tx, join_rx) = watch::channel(JoinStatus::Pending);
        let (in_tx, in_rx) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let inner = Arc::new(Inner {
            name,
            advertise,
            config,
            cmd_tx,
            members: Mutex::new(core.members().cloned().collect()),
            health: AtomicU32::new(0),
            queue_stats: Mutex::new(BroadcastQueueStats::default()),
            routing_stats: Mutex::new(RoutingStats::default()),
            zone_traffic: ZoneTraffic::default(),
            events: broadcast::channel(1024).0,
            cancel: cancel.clone(),
            transport: transport.clone(),
            kv: kv.clone(),
            tasks: TaskTracker::new(),
            startup_join: join_rx,
        });
        transport::spawn_listeners(transport, bound, in_tx, cancel.clone());
        let node = Memberlist { inner };
        let bcast_rx = kv.subscribe_broadcasts(node.inner.config.broadcast_channel_capacity);
        let actor = Actor {
            node: node.clone(),
            core,
            leave_done: None,
            merged: Vec::new(),
        };
        tokio::spawn(actor.run(in_rx, cmd_rx, bcast_rx));
        node.spawn_expiry();
        tracing::info!(name = %node.inner.name, addr = %advertise, "memberlist node started");
        if !node.inner.config.join_members.is_empty() {
            // dskit joins a few members before the store is in use, so a node never
            // starts (registers, claims tokens) on an empty ring.
            let limit = node.inner.config.fast_join_timeout;
            let outcome = match tokio::time::timeout(limit, node.fast_join()).await {
                Ok(r) => r.map_err(|e| e.to_string()),
                Err(_) => Err(format!("no answer within {limit:?}")),
            };
            if let Err(e) = outcome {
                tracing::error!(error = %e, "failed to fast-join the memberlist cluster at startup");
                if node.inner.config.abort_if_fast_join_fails {
                    node.shutdown().await;
                    return Err(StartError::FastJoin(e));
                }
            }
        }
        tokio::spawn(node.clone().join_in_background(join_tx));
        Ok(node)
    }

    /// Our node name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The address peers reach us at.
    pub fn advertise_addr(&self) -> SocketAddr {
        self.inner.advertise
    }

    /// The gossip store this node carries.
    pub fn kv(&self) -> &GossipKv {
        &self.inner.kv
    }

    /// The settings the node runs with.
    pub fn config(&self) -> &MemberlistConfig {
        &self.inner.config
    }

    /// Resolves once the node is stopped.
    pub(super) async fn cancelled(&self) {
        self.inner.cancel.cancelled().await;
    }

    /// The outcome of the background startup join (the full join after the fast
    /// one): waits while it is still [`JoinStatus::Pending`] (retries included).
    /// [`JoinStatus::Joined`]`(0)` when no seed is configured.
    pub async fn startup_join(&self) -> JoinStatus {
        let mut rx = self.inner.startup_join.clone();
        match rx.wait_for(|s| *s != JoinStatus::Pending).await {
            Ok(s) => s.clone(),
            Err(_) => JoinStatus::Failed("node stopped".to_owned()),
        }
    }

    /// Transport counters.
    pub fn transport_metrics(&self) -> &Arc<TransportMetrics> {
        &self.inner.transport.metrics
    }

    /// The member table as last seen (ourselves included), sorted by name.
    pub fn members(&self) -> Vec<Member> {
        self.inner
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Members currently alive (ourselves included).
    pub fn alive_members(&self) -> usize {
        self.members()
            .iter()
            .filter(|m| m.state == swim::State::Alive)
            .count()
    }

    /// Lifeguard health score (0 is healthy).
    pub fn health_score(&self) -> u32 {
        self.inner.health.load(Ordering::Relaxed)
    }

    /// Members neither dead nor left, ourselves included (memberlist `NumMembers`,
    /// dskit's `memberlist_client_cluster_members_count`).
    pub fn num_members(&self) -> usize {
        self.inner
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|m| matches!(m.state, swim::State::Alive | swim::State::Suspect))
            .count()
    }

    /// The rate limit of warnings about peers.
    pub(crate) fn peer_warnings(&self) -> &PeerLogLimiter {
        &self.inner.transport.warnings
    }

    /// The broadcast queues' sizes and drops (for dskit's
    /// `memberlist_client_messages_in_broadcast_queue{,_bytes}`,
    /// `..._messages_to_broadcast_dropped_total` and
    /// `..._received_broadcasts_dropped_total`), as of the node's last step; includes
    /// changes dropped on the way from the KV store.
    pub fn broadcast_queue_stats(&self) -> BroadcastQueueStats {
        let mut s = *self
            .inner
            .queue_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        s.channel_dropped = self.inner.kv.broadcasts_dropped();
        s
    }

    /// Zone-aware routing decisions so far, as of the node's last step (dskit's
    /// `memberlist_client_zone_aware_routing_select_nodes{,_skipped}_total`).
    pub fn routing_stats(&self) -> RoutingStats {
        *self
            .inner
            .routing_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The per-zone traffic counters (registered by [`Memberlist::register_metrics`]).
    pub(super) fn zone_traffic(&self) -> &ZoneTraffic {
        &self.inner.zone_traffic
    }

    /// Tells the core the startup join is over (routing skips count from then on).
    pub(super) async fn mark_joined(&self) {
        self.cmd(Cmd::MarkJoined).await;
    }

    /// Membership events from now on (joined, updated, suspect, dead, left).
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    async fn cmd(&self, c: Cmd) -> bool {
        self.inner.cmd_tx.send(c).await.is_ok()
    }

    /// One push/pull exchange with `to` (join or anti-entropy), merged when done.
    pub(super) async fn push_pull(&self, to: SocketAddr, join: bool) -> Result<(), StreamError> {
        let (tx, rx) = oneshot::channel();
        if !self.cmd(Cmd::PushPullState { join, reply: tx }).await {
            return Err(StreamError::Closed(0));
        }
        let request = rx.await.map_err(|_| StreamError::Closed(0))?;
        self.push_pull_with(to, request).await
    }

    async fn push_pull_with(
        &self,
        to: SocketAddr,
        mut request: PushPull,
    ) -> Result<(), StreamError> {
        let t = &self.inner.transport;
        request.user_state = self.inner.kv.local_state();
        let mut s = t.dial_stream(to).await?;
        t.write_stream(&mut s, self.wrap_stream(Message::PushPull(request)), true)
            .await?;
        let remote = match t.read_stream(&mut s, false).await? {
            Message::PushPull(p) => p,
            Message::Error(e) => {
                return Err(StreamError::Remote(
                    String::from_utf8_lossy(&e.error).into(),
                ));
            }
            other => return Err(StreamError::Unexpected(other.name())),
        };
        let (tx, rx) = oneshot::channel();
        self.cmd(Cmd::Merge {
            from: to,
            remote,
            done: Some(tx),
        })
        .await;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StreamError::Remote(e)),
            Err(_) => Err(StreamError::Closed(0)),
        }
    }

    fn wrap_stream(&self, m: Message) -> Message {
        if self.inner.config.compression_enabled {
            Message::Compressed(Compressed {
                algo: self.inner.config.compression_algorithm,
                inner: Box::new(m),
            })
        } else {
            m
        }
    }

    /// Serves one inbound stream: push/pull (reply first, then merge), stream ping, or
    /// stream user message.
    async fn serve_stream(&self, from: SocketAddr, mut s: TcpStream) {
        let t = self.inner.transport.clone();
        let msg = match t.read_stream(&mut s, true).await {
            Ok(m) => m,
            Err(e) => {
                self.warn_stream_error(from, &e);
                if matches!(e, StreamError::Decode(_)) {
                    let err = Message::Error(ErrResp {
                        error: e.to_string().into_bytes(),
                    });
                    let _ = t.write_stream(&mut s, err, false).await;
                }
                return;
            }
        };
        match msg {
            Message::PushPull(remote) => {
                let (tx, rx) = oneshot::channel();
                if !self
                    .cmd(Cmd::PushPullState {
                        join: remote.join,
                        reply: tx,
                    })
                    .await
                {
                    return;
                }
                let Ok(mut reply) = rx.await else { return };
                reply.user_state = self.inner.kv.local_state();
                if let Err(e) = t
                    .write_stream(&mut s, self.wrap_stream(Message::PushPull(reply)), false)
                    .await
                {
                    tracing::debug!(%from, error = %e, "push/pull reply failed");
                    return;
                }
                self.cmd(Cmd::Merge {
                    from,
                    remote,
                    done: None,
                })
                .await;
            }
            Message::Ping(p) => {
                let me = self.inner.name.as_bytes();
                if p.node.is_empty() || p.node == me {
                    let ack = Message::Ack(Ack {
                        seq_no: p.seq_no,
                        payload: None,
                    });
                    let _ = t.write_stream(&mut s, ack, false).await;
                }
            }
            Message::User(bytes) => self.receive_user_message(from, bytes.into()),
            other => tracing::debug!(%from, message = other.name(), "unexpected stream message"),
        }
    }

    /// A peer's stream that we could not use: what the operator can act on (another
    /// cluster label, bytes that do not decode) at WARN, rate-limited per peer; the
    /// rest (timeouts, closed connections) at debug.
    fn warn_stream_error(&self, from: SocketAddr, e: &StreamError) {
        let limiter = &self.inner.transport.warnings;
        match e {
            StreamError::Label { got, want } => peer_warn!(
                limiter,
                from,
                PeerWarning::ClusterLabel,
                label = %got,
                ours = %want,
                "refusing memberlist stream with another cluster label \
                 (is -memberlist.cluster-label the same on every member?)"
            ),
            StreamError::Decode(_) | StreamError::TooLarge(_) => peer_warn!(
                limiter,
                from,
                PeerWarning::Undecodable,
                error = %e,
                "dropping memberlist stream that does not decode"
            ),
            _ => tracing::debug!(%from, error = %e, "bad inbound stream"),
        }
    }

    /// A KV broadcast from `from`: merged, or (when malformed) warned about,
    /// rate-limited per peer. A codec we do not know is not the peer's fault.
    fn receive_user_message(&self, from: SocketAddr, bytes: Vec<u8>) {
        match self.inner.kv.receive_broadcast(bytes) {
            Ok(()) => {}
            Err(Rejected::UnknownCodec) => {
                tracing::debug!(%from, "KV broadcast with a codec we do not know");
            }
            Err(reason) => peer_warn!(
                self.inner.transport.warnings,
                from,
                PeerWarning::Undecodable,
                ?reason,
                "dropping KV broadcast that does not decode"
            ),
        }
    }

    fn spawn_expiry(&self) {
        let n = self.clone();
        let period = self
            .inner
            .kv
            .config()
            .obsolete_entries_timeout
            .max(Duration::from_secs(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    _ = tick.tick() => { n.inner.kv.expire(); }
                    _ = n.inner.cancel.cancelled() => return,
                }
            }
        });
    }

    /// Leaves gracefully: waits (bounded) for our queued KV changes to be gossiped,
    /// announces the leave, waits for it to go out, then stops the node.
    pub async fn leave(&self) {
        let cfg = &self.inner.config;
        let deadline = Instant::now() + cfg.broadcast_timeout_on_shutdown;
        while Instant::now() < deadline && self.alive_members() > 1 {
            let (tx, rx) = oneshot::channel();
            if !self.cmd(Cmd::QueuedLocal { reply: tx }).await {
                break;
            }
            match rx.await {
                Ok(0) | Err(_) => break,
                Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let (tx, rx) = oneshot::channel();
        if self.cmd(Cmd::Leave { done: tx }).await {
            let _ = tokio::time::timeout(cfg.leave_timeout, rx).await;
        }
        self.shutdown().await;
    }

    /// Stops the node without announcing anything (peers will find it dead). Waits
    /// (bounded) for packets already being sent.
    pub async fn shutdown(&self) {
        self.inner.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.tasks.wait()).await;
        self.inner.cancel.cancel();
    }

    /// True once the node was stopped.
    pub fn is_stopped(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
}

/// The task that owns the core.
struct Actor {
    node: Memberlist,
    core: Core<StdRng>,
    leave_done: Option<oneshot::Sender<()>>,
    /// Push/pull callers waiting for their merge to be complete.
    merged: Vec<(MergeDone, Result<(), String>)>,
}

impl Actor {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
        mut cmds: mpsc::Receiver<Cmd>,
        mut bcasts: mpsc::Receiver<UserBroadcast>,
    ) {
        let cancel = self.node.inner.cancel.clone();
        loop {
            let deadline = self
                .core
                .poll_timeout()
                .map(Instant::from_std)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                _ = cancel.cancelled() => return,
                Some(i) = inbound.recv() => match i {
                    Inbound::Packet { from, message } => {
                        if let Some(z) = self.routing() {
                            let peer = zone_traffic::Peer::of(z, self.core.members(), from);
                            self.node.inner.zone_traffic
                                .received(zone_traffic::Kind::of_packet(&message), peer);
                        }
                        self.core.handle_packet(Instant::now().into_std(), from, message)
                    }
                    Inbound::Stream { from, stream, slot } => {
                        let n = self.node.clone();
                        tokio::spawn(async move {
                            n.serve_stream(from, stream).await;
                            drop(slot);
                        });
                    }
                },
                Some(c) = cmds.recv() => self.command(c),
                Some(b) = bcasts.recv() => {
                    self.core.queue_user_broadcast(b);
                    // Take what else is waiting, so a burst costs one step.
                    while let Ok(b) = bcasts.try_recv() {
                        self.core.queue_user_broadcast(b);
                    }
                    self.core.gossip_local_changes(Instant::now().into_std());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    self.core.handle_timeout(Instant::now().into_std())
                }
            }
            self.drain();
            for (done, r) in self.merged.drain(..) {
                let _ = done.send(r);
            }
        }
    }

    fn command(&mut self, c: Cmd) {
        let now = Instant::now().into_std();
        match c {
            Cmd::PushPullState { join, reply } => {
                let _ = reply.send(self.core.push_pull_reply(join));
            }
            Cmd::Merge { from, remote, done } => {
                let r = self
                    .core
                    .handle_push_pull(now, from, remote)
                    .map_err(|e| e.to_string());
                if let Err(e) = &r {
                    peer_warn!(
                        self.node.inner.transport.warnings,
                        from,
                        PeerWarning::Undecodable,
                        error = %e,
                        "push/pull refused"
                    );
                }
                // Answered after the next drain, so the caller finds the peer's KV
                // state already merged.
                if let Some(d) = done {
                    self.merged.push((d, r));
                }
            }
            Cmd::Leave { done } => {
                self.leave_done = Some(done);
                self.core.leave(now);
            }
            Cmd::QueuedLocal { reply } => {
                let _ = reply.send(self.core.queued_local_broadcasts());
            }
            Cmd::MarkJoined => self.core.mark_joined(),
        }
    }

    /// Our zone and role when zone-aware routing is on with a zone set.
    fn routing(&self) -> Option<&ZoneAwareRouting> {
        self.node
            .inner
            .config
            .swim
            .zone_aware_routing
            .as_ref()
            .filter(|z| !z.zone.is_empty())
    }

    /// Sends what the core wants sent and hands its events out.
    fn drain(&mut self) {
        let inner = &self.node.inner;
        while let Some(t) = self.core.poll_transmit() {
            if let Some(z) = self.routing() {
                let peer = zone_traffic::Peer::of(z, self.core.members(), t.to());
                let kind = match &t {
                    Transmit::Packet { message, .. } => zone_traffic::Kind::of_packet(message),
                    Transmit::PushPull { .. } => zone_traffic::Kind::PushPull,
                };
                inner.zone_traffic.sent(kind, peer);
            }
            match t {
                Transmit::Packet { to, message, crc } => {
                    let Some(bytes) = self.encode_packet(message, crc) else {
                        continue;
                    };
                    let tr = inner.transport.clone();
                    inner
                        .tasks
                        .spawn(async move { tr.send_packet(to, bytes).await });
                }
                Transmit::PushPull { to, request } => {
                    let n = self.node.clone();
                    tokio::spawn(async move {
                        if let Err(e) = n.push_pull_with(to, request).await {
                            tracing::debug!(%to, error = %e, "push/pull failed");
                        }
                    });
                }
            }
        }
        let mut membership = Vec::new();
        while let Some(e) = self.core.poll_event() {
            match e {
                Event::UserMessage { from, bytes } => self.node.receive_user_message(from, bytes),
                Event::RemoteState { state, .. } => inner.kv.merge_remote_state(&state),
                Event::LeaveBroadcastDone => {
                    if let Some(d) = self.leave_done.take() {
                        let _ = d.send(());
                    }
                }
                other => {
                    log_member_event(&other);
                    membership.push(other);
                }
            }
        }
        if !membership.is_empty() {
            // The table first, so a subscriber that reacts to an event sees it applied.
            *inner.members.lock().unwrap_or_else(|p| p.into_inner()) =
                self.core.members().cloned().collect();
            for e in membership {
                let _ = inner.events.send(e);
            }
        }
        inner
            .health
            .store(self.core.health_score(), Ordering::Relaxed);
        *inner.queue_stats.lock().unwrap_or_else(|p| p.into_inner()) = self.core.broadcast_stats();
        *inner
            .routing_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = self.core.routing_stats();
    }

    /// Label, CRC and (when smaller) LZW compression, as memberlist sends packets.
    fn encode_packet(&self, message: Message, crc: bool) -> Option<Vec<u8>> {
        let t = &self.node.inner.transport;
        let plain = Packet {
            label: t.label.clone(),
            crc,
            message,
        };
        let bytes = match encode_packet(&plain) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode packet");
                return None;
            }
        };
        if !self.node.inner.config.compression_enabled {
            return Some(bytes);
        }
        let compressed = Packet {
            label: plain.label,
            crc,
            message: Message::Compressed(Compressed {
                algo: self.node.inner.config.compression_algorithm,
                inner: Box::new(plain.message),
            }),
        };
        match encode_packet(&compressed) {
            Ok(c) if c.len() < bytes.len() => Some(c),
            _ => Some(bytes),
        }
    }
}

fn log_member_event(e: &Event) {
    let (what, m) = match e {
        Event::MemberJoined(m) => ("joined", m),
        Event::MemberUpdated(m) => ("updated", m),
        Event::MemberSuspect(m) => ("suspect", m),
        Event::MemberDead(m) => ("dead", m),
        Event::MemberLeft(m) => ("left", m),
        _ => return,
    };
    tracing::info!(
        member = %String::from_utf8_lossy(&m.name),
        addr = ?m.socket_addr(),
        incarnation = m.incarnation,
        "memberlist member {what}"
    );
}
