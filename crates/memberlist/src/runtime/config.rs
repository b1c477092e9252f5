//! Settings of a running memberlist node, named after dskit's `-memberlist.*` flags
//! (`spec/memberlist.md` §2.2, §2.14).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use crate::swim;
use crate::wire::Dialect;
use crate::wire::compress::CompressionAlgo;

/// Which transport the node speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// dskit's TCP-only transport: every packet is a TCP connection starting with
    /// `0x01`, every stream one starting with `0x02`. Mimir, Loki, Cortex, Tempo.
    DskitTcp,
    /// hashicorp memberlist's own transport: packets are UDP datagrams, streams plain
    /// TCP connections on the same port. Alertmanager, Consul, Nomad.
    Udp,
}

/// Everything a [`super::Memberlist`] needs to start.
#[derive(Debug, Clone)]
pub struct MemberlistConfig {
    /// `-memberlist.nodename`: node name; empty = the host name.
    pub node_name: String,
    /// `-memberlist.randomize-node-name` (default true): append `-` and 8 random hex
    /// characters, so a restarted process is a new member.
    pub randomize_node_name: bool,
    /// `-memberlist.bind-addr` (default 0.0.0.0).
    pub bind_addr: IpAddr,
    /// `-memberlist.bind-port` (default 7946; 0 picks a free port).
    pub bind_port: u16,
    /// `-memberlist.advertise-addr`: the address peers dial; default: the bind address,
    /// or the outgoing interface's address when binding to every interface.
    pub advertise_addr: Option<IpAddr>,
    /// `-memberlist.advertise-port`: default the bound port.
    pub advertise_port: Option<u16>,
    /// `-memberlist.join`: seeds (`host:port`, `dns+host:port`, `dnssrv+name`).
    pub join_members: Vec<String>,
    /// `-memberlist.cluster-label`: written on every packet and stream; peers with
    /// another label are ignored (keeps two clusters from merging their rings).
    pub cluster_label: String,
    /// `-memberlist.cluster-label-verification-disabled`: accept any label.
    pub cluster_label_verification_disabled: bool,
    /// Transport flavour.
    pub transport: TransportKind,
    /// `-memberlist.compression-enabled` (default true): LZW on streams, and on
    /// packets when it makes them smaller.
    pub compression_enabled: bool,
    /// `-memberlist.compression-algorithm` (dskit #970, grafana memberlist 1798cf41):
    /// what we compress with when compression is on, LZW (default) or snappy. Every
    /// algorithm is decoded whatever this says; emit snappy only once every peer
    /// decodes it (dskit since 8f06ab34, any ringkit).
    pub compression_algorithm: CompressionAlgo,
    /// `-memberlist.stream-timeout` (2 s): dial and whole exchange of one stream.
    pub stream_timeout: Duration,
    /// `-memberlist.packet-dial-timeout` (2 s).
    pub packet_dial_timeout: Duration,
    /// `-memberlist.packet-write-timeout` (5 s).
    pub packet_write_timeout: Duration,
    /// `-memberlist.max-concurrent-writes` (3): packets sent at once.
    pub max_concurrent_writes: usize,
    /// `-memberlist.acquire-writer-timeout` (250 ms): a packet waiting longer for a
    /// writer is dropped (and counted).
    pub acquire_writer_timeout: Duration,
    /// `-memberlist.leave-timeout` (20 s): how long leaving waits for the leave
    /// message to go out.
    pub leave_timeout: Duration,
    /// `-memberlist.broadcast-timeout-for-local-updates-on-shutdown` (10 s): before
    /// leaving, wait this long for our own queued changes (e.g. our LEFT tombstone) to
    /// be gossiped.
    pub broadcast_timeout_on_shutdown: Duration,
    /// `-memberlist.min-join-backoff` / `max-join-backoff` / `max-join-retries`.
    pub min_join_backoff: Duration,
    /// See `min_join_backoff`.
    pub max_join_backoff: Duration,
    /// See `min_join_backoff`.
    pub max_join_retries: u32,
    /// `-memberlist.abort-if-fast-join-fails` (false): fail the start when the fast
    /// join reached fewer than `abort_if_fast_join_fails_min_nodes` seeds.
    pub abort_if_fast_join_fails: bool,
    /// `-memberlist.abort-if-fast-join-fails-min-nodes` (1).
    pub abort_if_fast_join_fails_min_nodes: usize,
    /// `-memberlist.abort-if-join-fails` (false): the owner stops when the background
    /// full join failed every retry (see [`super::Memberlist::startup_join`]).
    pub abort_if_join_fails: bool,
    /// `-memberlist.rejoin-interval` (0 = never): how often to join the seeds again,
    /// which mends a split cluster (e.g. after the only seed restarted).
    pub rejoin_interval: Duration,
    /// `-memberlist.rejoin-seed-nodes`: seeds for the periodic rejoin; empty = the
    /// join seeds.
    pub rejoin_seed_nodes: Vec<String>,
    /// Bound on the fast join at start-up (ringkit's; dskit's is only per seed, the
    /// stream timeout). A fast join that takes longer counts as failed.
    pub fast_join_timeout: Duration,
    /// Inbound TCP connections (packets and streams) handled at once; one more is closed
    /// as soon as it is accepted and counted (`..._incoming_connections_refused_total`).
    /// ringkit's own bound (dskit has none): 256, twice memberlist's 128 concurrent
    /// push/pulls, while a connection lives at most a few seconds (the timeouts above).
    pub max_incoming_connections: usize,
    /// Bytes all connections of this node may hold in read buffers at once (packets being
    /// read, stream messages being assembled). A connection that would pass it is closed
    /// and counted. 256 MiB: several full 5,000-instance rings at once.
    pub max_read_buffer_bytes: usize,
    /// dskit `-memberlist.processed-messages-queue-size` (1024): changes the KV store
    /// hands to the node for gossip wait in a channel this long; past it they are
    /// dropped and counted (peers still get them through push/pull).
    pub broadcast_channel_capacity: usize,
    /// msgpack generation of our stream messages (both are accepted by every peer).
    pub dialect: Dialect,
    /// SWIM timers; [`swim::Config::dskit`] or [`swim::Config::default_lan`].
    pub swim: swim::Config,
    /// DNS servers asked for `dnssrv+` / `dnssrvnoa+` join addresses; empty means the
    /// system's (`/etc/resolv.conf`).
    pub dns_servers: Vec<std::net::SocketAddr>,
}

impl MemberlistConfig {
    /// dskit's defaults: TCP transport, 5 s probes, 10 MiB packets.
    pub fn dskit() -> Self {
        MemberlistConfig {
            node_name: String::new(),
            randomize_node_name: true,
            bind_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            bind_port: 7946,
            advertise_addr: None,
            advertise_port: None,
            join_members: Vec::new(),
            cluster_label: String::new(),
            cluster_label_verification_disabled: false,
            transport: TransportKind::DskitTcp,
            compression_enabled: true,
            compression_algorithm: CompressionAlgo::Lzw,
            stream_timeout: Duration::from_secs(2),
            packet_dial_timeout: Duration::from_secs(2),
            packet_write_timeout: Duration::from_secs(5),
            max_concurrent_writes: 3,
            acquire_writer_timeout: Duration::from_millis(250),
            leave_timeout: Duration::from_secs(20),
            broadcast_timeout_on_shutdown: Duration::from_secs(10),
            min_join_backoff: Duration::from_secs(1),
            max_join_backoff: Duration::from_secs(60),
            max_join_retries: 10,
            abort_if_fast_join_fails: false,
            abort_if_fast_join_fails_min_nodes: 1,
            abort_if_join_fails: false,
            rejoin_interval: Duration::ZERO,
            rejoin_seed_nodes: Vec::new(),
            fast_join_timeout: Duration::from_secs(30),
            max_incoming_connections: 256,
            max_read_buffer_bytes: 256 << 20,
            broadcast_channel_capacity: 1024,
            dialect: Dialect::V2,
            swim: swim::Config::dskit(),
            dns_servers: Vec::new(),
        }
    }

    /// Plain memberlist (`DefaultLANConfig`) over UDP + TCP, as Alertmanager runs it.
    pub fn lan() -> Self {
        MemberlistConfig {
            transport: TransportKind::Udp,
            stream_timeout: Duration::from_secs(10),
            swim: swim::Config::default_lan(),
            dialect: Dialect::Legacy,
            ..MemberlistConfig::dskit()
        }
    }
}

impl Default for MemberlistConfig {
    fn default() -> Self {
        MemberlistConfig::dskit()
    }
}
