//! Choosing and building the ring's KV store from flags (`--kv.store=...`), the one place
//! that knows every backend (style.md §7: the kv crate knows none).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_kv::{
    Client, ClientLabels, ClientOptions, EtcdConfig, EtcdStore, InstrumentedClient, KvMetrics,
    MemoryStore, MultiClient, MultiConfig, PrefixClient,
};
use ringkit_kv::{Codec, Mergeable};
use ringkit_lifecycle::{PartitionRingCodec, PartitionRingValue, RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig, TransportKind};
use ringkit_memberlist::swim::ZoneAwareRouting;
use ringkit_memberlist::wire::compress::CompressionAlgo;
use ringkit_memberlist::wire::node_meta::{MAX_ZONE_LEN, NodeRole};

use crate::duration::parse_duration;

/// KV store flags, named like dskit's.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct KvArgs {
    /// Backend holding the ring: inmemory (this process only), etcd, memberlist (gossip,
    /// compatible with Mimir/Loki/Cortex clusters), or multi (two stores with mirroring,
    /// for migrations).
    #[arg(long = "kv.store", visible_alias = "ingester.ring.store", default_value = "inmemory", value_parser = ["inmemory", "etcd", "multi", "memberlist"])]
    pub(crate) store: String,
    /// Prefix of every key (the ring key `ring` is stored as `collectors/ring`).
    #[arg(
        long = "kv.prefix",
        visible_alias = "ingester.ring.prefix",
        default_value = "collectors/"
    )]
    pub(crate) prefix: String,
    /// Largest encoded value accepted (bytes).
    #[arg(long = "kv.max-value-size", default_value_t = ClientOptions::default().max_value_size)]
    pub(crate) max_value_size: usize,
    /// CAS attempts before giving up.
    #[arg(long = "etcd.max-retries", default_value_t = ClientOptions::default().max_cas_attempts)]
    pub(crate) max_retries: u32,
    /// etcd endpoints, comma-separated `host:port` or URLs.
    #[arg(long = "etcd.endpoints", value_delimiter = ',')]
    pub(crate) etcd_endpoints: Vec<String>,
    /// etcd dial timeout.
    #[arg(long = "etcd.dial-timeout", default_value = "10s", value_parser = parse_duration)]
    pub(crate) etcd_dial_timeout: Duration,
    /// etcd user name (enables authentication).
    #[arg(long = "etcd.username", default_value = "")]
    pub(crate) etcd_username: String,
    /// etcd password.
    #[arg(
        long = "etcd.password",
        default_value = "",
        env = "RINGKIT_ETCD_PASSWORD"
    )]
    pub(crate) etcd_password: String,
    /// multi: the primary store (inmemory or etcd).
    #[arg(long = "multi.primary", default_value = "")]
    pub(crate) multi_primary: String,
    /// multi: the secondary store (inmemory or etcd).
    #[arg(long = "multi.secondary", default_value = "")]
    pub(crate) multi_secondary: String,
    /// multi: also write every CAS result to the secondary.
    #[arg(long = "multi.mirror-enabled", default_value_t = MultiConfig::default().mirror_enabled)]
    pub(crate) multi_mirror_enabled: bool,
    /// multi: bound on one mirror write.
    #[arg(long = "multi.mirror-timeout", default_value = "2s", value_parser = parse_duration)]
    pub(crate) multi_mirror_timeout: Duration,
    /// Gossip settings (`--kv.store=memberlist`).
    #[command(flatten)]
    pub(crate) memberlist: MemberlistArgs,
}

impl KvArgs {
    /// Value size and CAS attempts of every client of the store.
    pub(crate) fn client_options(&self) -> ClientOptions {
        ClientOptions {
            max_value_size: self.max_value_size,
            max_cas_attempts: self.max_retries,
        }
    }

    /// The etcd connection the flags describe.
    pub(crate) fn etcd_config(&self) -> EtcdConfig {
        EtcdConfig {
            endpoints: self.etcd_endpoints.clone(),
            dial_timeout: self.etcd_dial_timeout,
            username: self.etcd_username.clone(),
            password: self.etcd_password.clone(),
            ..EtcdConfig::default()
        }
    }

    /// The multi store's primary, secondary and mirroring.
    pub(crate) fn multi_config(&self) -> MultiConfig {
        MultiConfig {
            primary: self.multi_primary.clone(),
            secondary: self.multi_secondary.clone(),
            mirror_enabled: self.multi_mirror_enabled,
            mirror_timeout: self.multi_mirror_timeout,
        }
    }
}

/// The ring store and, with memberlist, the running gossip node (to leave it on
/// shutdown and show it on `/memberlist`).
pub(crate) struct RingStore {
    pub(crate) memberlist: Option<Memberlist>,
    /// The store before instrumentation and key prefixing.
    raw: Arc<dyn Client<RingDesc>>,
    /// The same store holding partition rings (codec `partitionRingDesc`).
    partition_raw: Arc<dyn Client<PartitionRingValue>>,
    prefix: String,
    store_type: String,
    /// dskit's KV metrics, registered once in the process registry.
    pub(crate) kv_metrics: Arc<KvMetrics>,
}

impl RingStore {
    /// A client of the store whose calls are counted under `kv_name`, as dskit
    /// names each user of a store (Mimir: `ingester-lifecycler` for the lifecycler,
    /// `ingester-ring` for the ring client; its dashboards select `kv_name=~"ingester-.*"`).
    pub(crate) fn client_for(&self, kv_name: &str) -> Arc<dyn Client<RingDesc>> {
        instrument(
            Arc::clone(&self.raw),
            &self.kv_metrics,
            kv_name,
            &self.store_type,
            &self.prefix,
        )
    }

    /// A client of the partition ring in the same store, under its own key prefix
    /// (Mimir's `-ingester.partition-ring.prefix`), counted under `kv_name` (Mimir:
    /// `ingester-partitions-watcher`, `ingester-partitions-lifecycler`).
    pub(crate) fn partition_client_for(
        &self,
        kv_name: &str,
        prefix: &str,
    ) -> Arc<dyn Client<PartitionRingValue>> {
        instrument(
            Arc::clone(&self.partition_raw),
            &self.kv_metrics,
            kv_name,
            &self.store_type,
            prefix,
        )
    }
}

fn instrument<V: Mergeable>(
    raw: Arc<dyn Client<V>>,
    metrics: &Arc<KvMetrics>,
    kv_name: &str,
    store_type: &str,
    prefix: &str,
) -> Arc<dyn Client<V>> {
    let labels = ClientLabels::new(kv_name, "primary", store_type);
    let instrumented = InstrumentedClient::new(raw, Arc::clone(metrics), labels);
    Arc::new(PrefixClient::new(instrumented, prefix.to_owned()))
}

/// Builds the ring store for `args`; with memberlist this starts the gossip node and
/// begins joining `--memberlist.join` in the background.
pub(crate) async fn build_ring_store(
    args: &KvArgs,
    memory: &MemoryStore,
    registry: &mut Registry,
) -> anyhow::Result<RingStore> {
    let uses_gossip = [&args.store, &args.multi_primary, &args.multi_secondary]
        .iter()
        .any(|s| s.as_str() == "memberlist");
    let memberlist = if uses_gossip {
        Some(start_memberlist(&args.memberlist, registry).await?)
    } else {
        None
    };
    let gossip = memberlist.as_ref().map(Memberlist::kv);
    let raw = build_raw_client(
        args,
        memory,
        gossip,
        Some(registry),
        RingDescCodec::shared(),
    )?;
    // The multi store's metrics are registered once, with the ring's client.
    let partition_raw = build_raw_client(args, memory, gossip, None, PartitionRingCodec::shared())?;
    let kv_metrics = KvMetrics::register(registry);
    Ok(RingStore {
        memberlist,
        raw,
        partition_raw,
        prefix: args.prefix.clone(),
        store_type: args.store.clone(),
        kv_metrics,
    })
}

async fn start_memberlist(
    args: &MemberlistArgs,
    registry: &mut Registry,
) -> anyhow::Result<Memberlist> {
    let kv = GossipKv::new(args.kv_config());
    // Partition rings (Mimir's ingest storage) are merged and relayed like the ring.
    kv.client(
        ringkit_lifecycle::PartitionRingCodec::shared(),
        ClientOptions::default(),
    )?;
    let node = Memberlist::start(args.to_config()?, kv.clone())
        .await
        .context("starting memberlist")?;
    kv.register_metrics(registry);
    node.register_metrics(registry);
    Ok(node)
}

/// The typed store for `args` holding values of `codec`, before instrumentation and key
/// prefixing.
fn build_raw_client<V: Mergeable>(
    args: &KvArgs,
    memory: &MemoryStore,
    gossip: Option<&GossipKv>,
    registry: Option<&mut Registry>,
    codec: Arc<dyn Codec<V>>,
) -> anyhow::Result<Arc<dyn Client<V>>> {
    let options = args.client_options();
    let raw: Arc<dyn Client<V>> = match args.store.as_str() {
        "multi" => {
            let primary = backend(&args.multi_primary, args, memory, gossip, &options, &codec)
                .context("--multi.primary")?;
            let secondary = backend(
                &args.multi_secondary,
                args,
                memory,
                gossip,
                &options,
                &codec,
            )
            .context("--multi.secondary")?;
            Arc::new(MultiClient::new(
                &args.multi_config(),
                primary,
                secondary,
                registry,
            )?)
        }
        other => backend(other, args, memory, gossip, &options, &codec)?,
    };
    Ok(raw)
}

fn backend<V: Mergeable>(
    name: &str,
    args: &KvArgs,
    memory: &MemoryStore,
    gossip: Option<&GossipKv>,
    options: &ClientOptions,
    codec: &Arc<dyn Codec<V>>,
) -> anyhow::Result<Arc<dyn Client<V>>> {
    match name {
        "memberlist" => {
            let kv = gossip.context("the memberlist store needs a running memberlist node")?;
            Ok(Arc::new(kv.client(Arc::clone(codec), options.clone())?))
        }
        "inmemory" => Ok(Arc::new(memory.client(Arc::clone(codec), options.clone()))),
        "etcd" => {
            anyhow::ensure!(
                !args.etcd_endpoints.is_empty(),
                "--etcd.endpoints is required with the etcd store"
            );
            let store = EtcdStore::new(&args.etcd_config()).context("etcd store")?;
            Ok(Arc::new(store.client(Arc::clone(codec), options.clone())))
        }
        other => anyhow::bail!("unknown KV store {other:?} (inmemory, etcd or memberlist)"),
    }
}

/// A client of the stored bytes in the etcd `args` names, whatever their codec (for
/// tools that must look at a value before knowing its type).
pub(crate) fn etcd_bytes_client(args: &KvArgs) -> anyhow::Result<Arc<dyn Client<Vec<u8>>>> {
    anyhow::ensure!(
        !args.etcd_endpoints.is_empty(),
        "--etcd.endpoints is required with the etcd store"
    );
    let store = EtcdStore::new(&args.etcd_config()).context("etcd store")?;
    Ok(Arc::new(store.client(
        Arc::new(ringkit_kv::BytesCodec::default()),
        args.client_options(),
    )))
}

/// memberlist's default port.
pub(crate) const DEFAULT_GOSSIP_PORT: u16 = 7946;

/// memberlist flags, named like dskit's `-memberlist.*` (defaults as dskit's).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MemberlistArgs {
    /// Node name; empty = host name.
    #[arg(long = "memberlist.nodename", default_value = "")]
    pub(crate) node_name: String,
    /// Append a random suffix to the node name, so a restarted process is a new member.
    #[arg(long = "memberlist.randomize-node-name", default_value_t = MemberlistConfig::dskit().randomize_node_name, action = clap::ArgAction::Set)]
    pub(crate) randomize_node_name: bool,
    /// Address to listen on for gossip.
    #[arg(long = "memberlist.bind-addr", default_value = "0.0.0.0")]
    pub(crate) bind_addr: std::net::IpAddr,
    /// Port to listen on for gossip (0 = any free port).
    #[arg(long = "memberlist.bind-port", default_value_t = DEFAULT_GOSSIP_PORT)]
    pub(crate) bind_port: u16,
    /// Address other members reach this node at (default: the bind address; when
    /// binding to every interface, `ringkit node` takes the address of
    /// `--ingester.ring.instance-interface-names`, other commands the outgoing
    /// interface's). Never `0.0.0.0`/`::`.
    #[arg(long = "memberlist.advertise-addr")]
    pub(crate) advertise_addr: Option<std::net::IpAddr>,
    /// Port other members reach this node at (default: the bound port).
    #[arg(long = "memberlist.advertise-port")]
    pub(crate) advertise_port: Option<u16>,
    /// Members to join: `host:port`, `dns+host:port`, `dnssrv+_svc._proto.name`,
    /// `dnssrvnoa+_svc._proto.name` (repeat or comma-separate).
    #[arg(long = "memberlist.join", value_delimiter = ',')]
    pub(crate) join: Vec<String>,
    /// Cluster label written on every message; messages with another label are dropped
    /// (keeps two clusters from merging their rings).
    #[arg(long = "memberlist.cluster-label", default_value = "")]
    pub(crate) cluster_label: String,
    /// Accept messages whatever their cluster label.
    #[arg(
        long = "memberlist.cluster-label-verification-disabled",
        default_value_t = MemberlistConfig::dskit().cluster_label_verification_disabled
    )]
    pub(crate) cluster_label_verification_disabled: bool,
    /// Transport: `dskit-tcp` (Mimir, Loki, Cortex, Tempo) or `udp` (plain hashicorp
    /// memberlist: Alertmanager, Consul).
    #[arg(long = "memberlist.transport", default_value = "dskit-tcp", value_parser = ["dskit-tcp", "udp"])]
    pub(crate) transport: String,
    /// LZW-compress streams, and packets when smaller.
    #[arg(long = "memberlist.compression-enabled", default_value_t = MemberlistConfig::dskit().compression_enabled, action = clap::ArgAction::Set)]
    pub(crate) compression_enabled: bool,
    /// Compression of outgoing messages when compression is enabled: `lzw` or
    /// `snappy` (received messages are decoded whatever their algorithm). Switch to
    /// snappy only once every member decodes it.
    #[arg(long = "memberlist.compression-algorithm", default_value = "lzw", value_parser = ["lzw", "snappy"])]
    pub(crate) compression_algorithm: String,
    /// How often to gossip queued changes.
    #[arg(long = "memberlist.gossip-interval", default_value = "200ms", value_parser = parse_duration)]
    pub(crate) gossip_interval: Duration,
    /// Members gossiped to per interval.
    #[arg(long = "memberlist.gossip-nodes", default_value_t = MemberlistConfig::dskit().swim.gossip_nodes)]
    pub(crate) gossip_nodes: usize,
    /// Gossip this node's own changes at once, to as many members as their transmit quota,
    /// instead of at the next gossip tick (a burst of two, then one per gossip interval;
    /// ringkit only, false gives dskit's timing).
    #[arg(long = "memberlist.gossip-local-changes-at-once", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) gossip_local_changes_at_once: bool,
    /// How often to exchange the full state with a random member (0 disables).
    #[arg(long = "memberlist.pullpush-interval", default_value = "30s", value_parser = parse_duration)]
    pub(crate) pullpush_interval: Duration,
    /// Retransmit multiplier of gossiped messages.
    #[arg(long = "memberlist.retransmit-factor", default_value_t = MemberlistConfig::dskit().swim.retransmit_mult)]
    pub(crate) retransmit_factor: usize,
    /// How long dead members keep receiving gossip.
    #[arg(long = "memberlist.gossip-to-dead-nodes-time", default_value = "30s", value_parser = parse_duration)]
    pub(crate) gossip_to_dead_nodes_time: Duration,
    /// After this long a dead member's name may be reused from another address (0 = never).
    #[arg(long = "memberlist.dead-node-reclaim-time", default_value = "0s", value_parser = parse_duration)]
    pub(crate) dead_node_reclaim_time: Duration,
    /// LEFT ring entries older than this are removed.
    #[arg(long = "memberlist.left-ingesters-timeout", default_value = "5m", value_parser = parse_duration)]
    pub(crate) left_ingesters_timeout: Duration,
    /// Deleted keys older than this are removed.
    #[arg(long = "memberlist.obsolete-entries-timeout", default_value = "30s", value_parser = parse_duration)]
    pub(crate) obsolete_entries_timeout: Duration,
    /// How long leaving waits for the leave message to go out.
    #[arg(long = "memberlist.leave-timeout", default_value = "20s", value_parser = parse_duration)]
    pub(crate) leave_timeout: Duration,
    /// On shutdown, how long to wait for our own queued changes to be gossiped.
    #[arg(long = "memberlist.broadcast-timeout-for-local-updates-on-shutdown", default_value = "10s", value_parser = parse_duration)]
    pub(crate) broadcast_timeout_on_shutdown: Duration,
    /// Timeout of one stream exchange (push/pull).
    #[arg(long = "memberlist.stream-timeout", default_value = "2s", value_parser = parse_duration)]
    pub(crate) stream_timeout: Duration,
    /// Dial timeout of one packet connection.
    #[arg(long = "memberlist.packet-dial-timeout", default_value = "2s", value_parser = parse_duration)]
    pub(crate) packet_dial_timeout: Duration,
    /// Write timeout of one packet connection.
    #[arg(long = "memberlist.packet-write-timeout", default_value = "5s", value_parser = parse_duration)]
    pub(crate) packet_write_timeout: Duration,
    /// Packets sent concurrently.
    #[arg(long = "memberlist.max-concurrent-writes", default_value_t = MemberlistConfig::dskit().max_concurrent_writes)]
    pub(crate) max_concurrent_writes: usize,
    /// A packet waiting longer than this for a writer is dropped.
    #[arg(long = "memberlist.acquire-writer-timeout", default_value = "250ms", value_parser = parse_duration)]
    pub(crate) acquire_writer_timeout: Duration,
    /// Min backoff between attempts to join the cluster.
    #[arg(long = "memberlist.min-join-backoff", default_value = "1s", value_parser = parse_duration)]
    pub(crate) min_join_backoff: Duration,
    /// Max backoff between attempts to join the cluster.
    #[arg(long = "memberlist.max-join-backoff", default_value = "1m", value_parser = parse_duration)]
    pub(crate) max_join_backoff: Duration,
    /// Attempts to join the cluster at startup before giving up.
    #[arg(long = "memberlist.max-join-retries", default_value_t = MemberlistConfig::dskit().max_join_retries)]
    pub(crate) max_join_retries: u32,
    /// Exit if the fast join at startup (done before the ring is used) reaches fewer
    /// than --memberlist.abort-if-fast-join-fails-min-nodes members.
    #[arg(long = "memberlist.abort-if-fast-join-fails", default_value_t = MemberlistConfig::dskit().abort_if_fast_join_fails, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) abort_if_fast_join_fails: bool,
    /// Members the fast join must reach (with --memberlist.abort-if-fast-join-fails).
    #[arg(
        long = "memberlist.abort-if-fast-join-fails-min-nodes",
        default_value_t = MemberlistConfig::dskit().abort_if_fast_join_fails_min_nodes
    )]
    pub(crate) abort_if_fast_join_fails_min_nodes: usize,
    /// Exit if joining the cluster at startup failed every retry.
    #[arg(long = "memberlist.abort-if-join-fails", default_value_t = MemberlistConfig::dskit().abort_if_join_fails, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) abort_if_join_fails: bool,
    /// How often to join the seeds again (0 = never); mends a split cluster, e.g.
    /// when --memberlist.join names a few seeds and one of them restarted.
    #[arg(long = "memberlist.rejoin-interval", default_value = "0s", value_parser = parse_duration)]
    pub(crate) rejoin_interval: Duration,
    /// Seeds for the periodic rejoin (default: --memberlist.join).
    #[arg(long = "memberlist.rejoin-seed-nodes", value_delimiter = ',')]
    pub(crate) rejoin_seed_nodes: Vec<String>,
    /// Tell ring watchers about KV changes at most this often (0 = at once); fewer
    /// ring rebuilds in large clusters.
    #[arg(long = "memberlist.notify-interval", default_value = "0s", value_parser = parse_duration)]
    pub(crate) notify_interval: Duration,
    /// Inbound gossip connections served at once; more are closed at once and counted
    /// (ringkit's own bound; dskit has none).
    #[arg(long = "memberlist.max-incoming-connections", default_value_t = MemberlistConfig::dskit().max_incoming_connections)]
    pub(crate) max_incoming_connections: usize,
    /// Bytes all gossip connections may hold in read buffers at once; a connection that
    /// would pass it is closed and counted (ringkit's own bound).
    #[arg(long = "memberlist.max-read-buffer-bytes", default_value_t = MemberlistConfig::dskit().max_read_buffer_bytes)]
    pub(crate) max_read_buffer_bytes: usize,
    /// Received gossip messages waiting to be merged; more are dropped and counted.
    #[arg(
        long = "memberlist.received-messages-queue-size",
        default_value_t = MemberlistConfig::dskit().swim.handoff_queue_depth
    )]
    pub(crate) received_messages_queue_size: usize,
    /// Changes waiting to enter the broadcast queues; more are dropped and counted.
    #[arg(
        long = "memberlist.processed-messages-queue-size",
        default_value_t = MemberlistConfig::dskit().broadcast_channel_capacity
    )]
    pub(crate) processed_messages_queue_size: usize,
    /// Most messages in each broadcast queue (own changes, relayed changes); past it
    /// the most-sent ones are dropped and counted (ringkit only; dskit has no bound).
    #[arg(
        long = "memberlist.broadcast-queue-max-messages",
        default_value_t = MemberlistConfig::dskit().swim.broadcast_queue_limits.max_messages
    )]
    pub(crate) broadcast_queue_max_messages: usize,
    /// Most bytes in each broadcast queue (ringkit only).
    #[arg(long = "memberlist.broadcast-queue-max-bytes", default_value_t = MemberlistConfig::dskit().swim.broadcast_queue_limits.max_bytes)]
    pub(crate) broadcast_queue_max_bytes: usize,
    /// Route gossip and push/pull by zone (dskit's zone-aware routing, to cut
    /// cross-zone traffic): members talk within their zone, bridges also to the
    /// bridges of other zones. Needs --memberlist.zone-aware-routing.instance-availability-zone.
    #[arg(long = "memberlist.zone-aware-routing.enabled", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub(crate) zone_aware_routing_enabled: bool,
    /// Availability zone of this node for zone-aware routing (at most 16 bytes).
    #[arg(
        long = "memberlist.zone-aware-routing.instance-availability-zone",
        default_value = ""
    )]
    pub(crate) zone_aware_routing_zone: String,
    /// Role of this node in zone-aware routing: `member` or `bridge`.
    #[arg(long = "memberlist.zone-aware-routing.role", default_value = "member")]
    pub(crate) zone_aware_routing_role: String,
}

impl MemberlistArgs {
    /// The zone-aware routing the flags ask for, checked as dskit checks it (only when
    /// enabled: a zone, at most 16 bytes, and a known role).
    pub(crate) fn zone_aware_routing(&self) -> anyhow::Result<Option<ZoneAwareRouting>> {
        if !self.zone_aware_routing_enabled {
            return Ok(None);
        }
        let zone = &self.zone_aware_routing_zone;
        anyhow::ensure!(
            !zone.is_empty(),
            "zone-aware routing is enabled but zone is not set \
             (--memberlist.zone-aware-routing.instance-availability-zone)"
        );
        anyhow::ensure!(
            zone.len() <= MAX_ZONE_LEN,
            "zone name too long: {} bytes (max {MAX_ZONE_LEN})",
            zone.len()
        );
        let role = NodeRole::parse(&self.zone_aware_routing_role).ok_or_else(|| {
            anyhow::anyhow!(
                "invalid role: {} (valid values: member, bridge)",
                self.zone_aware_routing_role
            )
        })?;
        Ok(Some(ZoneAwareRouting {
            role,
            zone: zone.as_bytes().to_vec(),
        }))
    }

    /// The gossip KV's timeouts these flags set.
    pub(crate) fn kv_config(&self) -> KvConfig {
        KvConfig {
            left_ingesters_timeout: self.left_ingesters_timeout,
            obsolete_entries_timeout: self.obsolete_entries_timeout,
            notify_interval: self.notify_interval,
        }
    }

    /// The runtime configuration these flags describe.
    pub(crate) fn to_config(&self) -> anyhow::Result<MemberlistConfig> {
        let mut c = match self.transport.as_str() {
            "udp" => MemberlistConfig::lan(),
            _ => MemberlistConfig::dskit(),
        };
        anyhow::ensure!(
            self.cluster_label.len() <= 255,
            "--memberlist.cluster-label is longer than 255 bytes"
        );
        if let Some(ip) = self.advertise_addr {
            anyhow::ensure!(
                !ip.is_unspecified(),
                "--memberlist.advertise-addr {ip} is the unspecified address, which peers \
                 cannot dial; give this node's own address or leave it empty"
            );
        }
        c.node_name = self.node_name.clone();
        c.randomize_node_name = self.randomize_node_name;
        c.bind_addr = self.bind_addr;
        c.bind_port = self.bind_port;
        c.advertise_addr = self.advertise_addr;
        c.advertise_port = self.advertise_port;
        c.join_members = self.join.clone();
        c.cluster_label = self.cluster_label.clone();
        c.cluster_label_verification_disabled = self.cluster_label_verification_disabled;
        c.compression_enabled = self.compression_enabled;
        c.compression_algorithm = match self.compression_algorithm.as_str() {
            "snappy" => CompressionAlgo::Snappy,
            _ => CompressionAlgo::Lzw,
        };
        c.swim.gossip_interval = self.gossip_interval;
        c.swim.gossip_nodes = self.gossip_nodes;
        c.swim.gossip_local_changes_at_once = self.gossip_local_changes_at_once;
        c.swim.push_pull_interval = self.pullpush_interval;
        c.swim.retransmit_mult = self.retransmit_factor;
        c.swim.gossip_to_the_dead_time = self.gossip_to_dead_nodes_time;
        c.swim.dead_node_reclaim_time = self.dead_node_reclaim_time;
        c.leave_timeout = self.leave_timeout;
        c.broadcast_timeout_on_shutdown = self.broadcast_timeout_on_shutdown;
        c.stream_timeout = self.stream_timeout;
        c.packet_dial_timeout = self.packet_dial_timeout;
        c.packet_write_timeout = self.packet_write_timeout;
        c.max_concurrent_writes = self.max_concurrent_writes;
        c.acquire_writer_timeout = self.acquire_writer_timeout;
        c.min_join_backoff = self.min_join_backoff;
        c.max_join_backoff = self.max_join_backoff;
        c.max_join_retries = self.max_join_retries;
        c.abort_if_fast_join_fails = self.abort_if_fast_join_fails;
        c.abort_if_fast_join_fails_min_nodes = self.abort_if_fast_join_fails_min_nodes;
        c.abort_if_join_fails = self.abort_if_join_fails;
        c.rejoin_interval = self.rejoin_interval;
        c.rejoin_seed_nodes = self.rejoin_seed_nodes.clone();
        c.max_incoming_connections = self.max_incoming_connections;
        c.max_read_buffer_bytes = self.max_read_buffer_bytes;
        anyhow::ensure!(
            self.received_messages_queue_size > 0
                && self.processed_messages_queue_size > 0
                && self.broadcast_queue_max_messages > 0
                && self.broadcast_queue_max_bytes > 0,
            "memberlist queue sizes must be greater than 0"
        );
        c.swim.handoff_queue_depth = self.received_messages_queue_size;
        c.broadcast_channel_capacity = self.processed_messages_queue_size;
        c.swim.broadcast_queue_limits = ringkit_memberlist::swim::QueueLimits {
            max_messages: self.broadcast_queue_max_messages,
            max_bytes: self.broadcast_queue_max_bytes,
        };
        if let Some(routing) = self.zone_aware_routing()? {
            // dskit: a bridge push/pulls with two nodes (an other-zone bridge first,
            // then anyone it may talk to), so a bridge is never its zone's only link.
            c.swim.push_pull_nodes = if routing.role == NodeRole::Bridge {
                2
            } else {
                1
            };
            c.swim.zone_aware_routing = Some(routing);
        }
        debug_assert!(matches!(
            c.transport,
            TransportKind::DskitTcp | TransportKind::Udp
        ));
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        m: MemberlistArgs,
    }

    fn config(args: &[&str]) -> anyhow::Result<MemberlistConfig> {
        let mut all = vec!["ringkit"];
        all.extend_from_slice(args);
        Flags::try_parse_from(all)?.m.to_config()
    }

    #[test]
    fn zone_aware_routing_is_off_by_default() {
        let c = config(&[]).unwrap();
        assert_eq!(c.swim.zone_aware_routing, None);
        assert_eq!(c.swim.push_pull_nodes, 1);
        assert_eq!(c.compression_algorithm, CompressionAlgo::Lzw);
        let c = config(&["--memberlist.compression-algorithm=snappy"]).unwrap();
        assert_eq!(c.compression_algorithm, CompressionAlgo::Snappy);
        assert!(config(&["--memberlist.compression-algorithm=zstd"]).is_err());
        // Zone and role alone do nothing, as in dskit.
        let c = config(&["--memberlist.zone-aware-routing.instance-availability-zone=a"]).unwrap();
        assert_eq!(c.swim.zone_aware_routing, None);
    }

    #[test]
    fn dskit_flags_turn_routing_on_with_dskits_push_pull_fan_out() {
        let c = config(&[
            "--memberlist.zone-aware-routing.enabled",
            "--memberlist.zone-aware-routing.instance-availability-zone=zone-b",
            "--memberlist.zone-aware-routing.role=bridge",
        ])
        .unwrap();
        let r = c.swim.zone_aware_routing.unwrap();
        assert_eq!(
            (r.role, r.zone.as_slice()),
            (NodeRole::Bridge, &b"zone-b"[..])
        );
        assert_eq!(c.swim.push_pull_nodes, 2);
        let c = config(&[
            "--memberlist.zone-aware-routing.enabled=true",
            "--memberlist.zone-aware-routing.instance-availability-zone=zone-b",
        ])
        .unwrap();
        assert_eq!(c.swim.zone_aware_routing.unwrap().role, NodeRole::Member);
        assert_eq!(c.swim.push_pull_nodes, 1);
    }

    #[test]
    fn bad_routing_settings_are_refused_as_dskit_refuses_them() {
        let err = |args: &[&str]| config(args).unwrap_err().to_string();
        let on = "--memberlist.zone-aware-routing.enabled";
        assert!(err(&[on]).contains("zone is not set"));
        assert!(
            err(&[
                on,
                "--memberlist.zone-aware-routing.instance-availability-zone=0123456789abcdef0"
            ])
            .contains("zone name too long: 17 bytes")
        );
        assert!(
            err(&[
                on,
                "--memberlist.zone-aware-routing.instance-availability-zone=a",
                "--memberlist.zone-aware-routing.role=router"
            ])
            .contains("invalid role: router")
        );
    }
}
