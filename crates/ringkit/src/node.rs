//! `ringkit node`: a process that takes part in a ring stored in a KV store.
//!
//! With `--target=ingester` (or `all`) it runs a lifecycler: registers with no tokens,
//! runs its load step (WAL replay, then the gRPC ingester service), claims tokens and goes
//! ACTIVE, heartbeats, and on SIGINT/SIGTERM goes
//! LEAVING and unregisters. With `--target=distributor` (or `all`) it serves Prometheus
//! remote write/read at `/api/v1/push` and `/api/v1/read`. Every target watches the ring
//! and serves `/ring`, `/ready` and `/metrics` over HTTP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_kv::{CancellationToken, MemoryStore};
use ringkit_lifecycle::{Lifecycler, LifecyclerConfig, RingWatcher};
use ringkit_memberlist::runtime::JoinStatus;
use ringkit_ring::RingConfig;
use ringkit_ring::snapshot::ReplicationStrategy;
use ringkit_ring::tokens::{RandomTokenGenerator, SpreadMinimizingTokenGenerator, TokenGenerator};

use crate::duration::parse_duration;
use crate::http::{self, AppState};
use crate::kvstore::{KvArgs, build_ring_store};

use crate::ring_metrics::RingMetrics;
use ringkit_dataplane::server::{LimitedListener, ServerMetrics, serve_http};

/// How long open HTTP connections get to finish after shutdown starts (dskit's
/// `-server.graceful-shutdown-timeout` default).
const HTTP_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Flags of `ringkit node`, named like dskit's.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct NodeArgs {
    /// Which components to run.
    #[arg(long, default_value = "all", value_parser = ["all", "ingester", "distributor"])]
    pub(crate) target: String,
    #[command(flatten)]
    pub(crate) kv: KvArgs,
    #[command(flatten)]
    pub(crate) ingester: crate::ingester::IngesterArgs,
    #[command(flatten)]
    pub(crate) distributor: crate::distributor::DistributorArgs,
    #[command(flatten)]
    pub(crate) server: crate::server_args::ServerArgs,
    #[command(flatten)]
    pub(crate) partition: crate::partition::PartitionArgs,
    /// Key of the ring in the KV store (after the prefix).
    #[arg(long = "ring.key", default_value = "ring")]
    pub(crate) ring_key: String,
    /// Name of the ring in metrics (the `name` label, as dskit's ring name).
    #[arg(long = "ring.name", default_value = "ingester")]
    pub(crate) ring_name: String,
    /// Also export the ring, lifecycler and KV store metrics under this prefix, as an
    /// application built on dskit does (Mimir: `cortex_`, whose mixin alerts and
    /// dashboards read `cortex_ring_members`, `cortex_kv_request_duration_seconds`,
    /// `cortex_lifecycler_read_only`). dskit's unprefixed names are always exported;
    /// empty: no prefixed copy.
    #[arg(long = "metrics.ring-prefix", default_value = "cortex_")]
    pub(crate) metrics_ring_prefix: String,
    /// Instance id (ring map key). Default: the host name.
    #[arg(
        long = "ingester.lifecycler.ID",
        visible_alias = "ingester.ring.instance-id"
    )]
    pub(crate) id: Option<String>,
    /// Address other components dial (`host:port`, or an IP to which the gRPC port is
    /// added). Default: the gRPC listen address, or, when that is `0.0.0.0`/`::`, the
    /// address of `--ingester.ring.instance-interface-names`. Never `0.0.0.0`/`::`.
    #[arg(
        long = "ingester.lifecycler.addr",
        visible_alias = "ingester.ring.instance-addr"
    )]
    pub(crate) addr: Option<String>,
    /// Network interfaces whose address is advertised (in the ring and, without
    /// `--memberlist.advertise-addr`, in gossip) when listening on `0.0.0.0`/`::`; the
    /// first with a non-loopback address wins. Default: the interfaces holding a private
    /// address, else eth0,en0 (Mimir's default).
    #[arg(long = "ingester.ring.instance-interface-names", value_delimiter = ',')]
    pub(crate) instance_interface_names: Vec<String>,
    /// Take IPv6 addresses of the interfaces too (preferred over IPv4).
    #[arg(long = "ingester.ring.instance-enable-ipv6", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) instance_enable_ipv6: bool,
    /// Availability zone of this instance.
    #[arg(
        long = "ingester.availability-zone",
        visible_alias = "ingester.ring.instance-availability-zone",
        default_value = ""
    )]
    pub(crate) zone: String,
    /// Tokens per instance.
    #[arg(
        long = "ingester.num-tokens",
        visible_alias = "ingester.ring.num-tokens",
        default_value_t = LifecyclerConfig::default().num_tokens
    )]
    pub(crate) num_tokens: usize,
    /// Heartbeat period.
    #[arg(long = "ingester.heartbeat-period", visible_alias = "ingester.ring.heartbeat-period", default_value = "5s", value_parser = parse_duration)]
    pub(crate) heartbeat_period: Duration,
    /// Heartbeat timeout used by readiness and auto-forget.
    #[arg(long = "ingester.heartbeat-timeout", visible_alias = "ingester.ring.heartbeat-timeout", default_value = "1m", value_parser = parse_duration)]
    pub(crate) lifecycler_heartbeat_timeout: Duration,
    /// Observe period for token conflicts (0: go ACTIVE at once).
    #[arg(long = "ingester.observe-period", visible_alias = "ingester.ring.observe-period", default_value = "0s", value_parser = parse_duration)]
    pub(crate) observe_period: Duration,
    /// Delay before claiming tokens.
    #[arg(long = "ingester.join-after", default_value = "0s", value_parser = parse_duration)]
    pub(crate) join_after: Duration,
    /// Readiness needs the checks to pass this long.
    #[arg(long = "ingester.min-ready-duration", visible_alias = "ingester.ring.min-ready-duration", default_value = "15s", value_parser = parse_duration)]
    pub(crate) min_ready_duration: Duration,
    /// Sleep at the end of shutdown.
    #[arg(long = "ingester.final-sleep", visible_alias = "ingester.ring.final-sleep", default_value = "0s", value_parser = parse_duration)]
    pub(crate) final_sleep: Duration,
    /// File that keeps the tokens across restarts.
    #[arg(
        long = "ingester.tokens-file-path",
        visible_alias = "ingester.ring.tokens-file-path"
    )]
    pub(crate) tokens_file_path: Option<std::path::PathBuf>,
    /// How tokens are chosen: `random`, or `spread-minimizing` (dskit's deterministic
    /// tokens from the instance ID's ordinal and the zone, for even ownership; needs an ID
    /// ending in `-<number>` and no tokens file).
    #[arg(long = "ingester.ring.token-generation-strategy", default_value = "random", value_parser = ["random", "spread-minimizing"])]
    pub(crate) token_generation_strategy: String,
    /// spread-minimizing: every zone ingesters run in (comma-separated, fixed over time).
    #[arg(long = "ingester.ring.spread-minimizing-zones", value_delimiter = ',')]
    pub(crate) spread_minimizing_zones: Vec<String>,
    /// spread-minimizing: claim tokens only once the instance with the previous ordinal
    /// is in the ring.
    #[arg(long = "ingester.ring.spread-minimizing-join-ring-in-order", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) spread_minimizing_join_ring_in_order: bool,
    /// Remove the ring entry on a clean shutdown.
    #[arg(long = "ingester.unregister-on-shutdown", visible_alias = "ingester.ring.unregister-on-shutdown", default_value_t = LifecyclerConfig::default().unregister_on_shutdown, action = clap::ArgAction::Set)]
    pub(crate) unregister_on_shutdown: bool,
    /// Readiness requires every ring member ACTIVE and healthy.
    #[arg(long = "ingester.readiness-check-ring-health", default_value_t = LifecyclerConfig::default().readiness_check_ring_health, action = clap::ArgAction::Set)]
    pub(crate) readiness_check_ring_health: bool,
    /// Forget members unhealthy for this many heartbeat timeouts (0: never).
    #[arg(
        long = "ingester.auto-forget-unhealthy-periods",
        default_value_t = LifecyclerConfig::default().auto_forget_unhealthy_periods
    )]
    pub(crate) auto_forget_periods: u32,
    /// Ring client: heartbeat timeout after which lookups treat an instance as unhealthy.
    #[arg(long = "ring.heartbeat-timeout", default_value = "1m", value_parser = parse_duration)]
    pub(crate) ring_heartbeat_timeout: Duration,
    /// Replication factor.
    #[arg(
        long = "distributor.replication-factor",
        visible_alias = "ingester.ring.replication-factor",
        default_value_t = RingConfig::default().replication_factor
    )]
    pub(crate) replication_factor: usize,
    /// Place replicas in distinct zones.
    #[arg(long = "distributor.zone-awareness-enabled", visible_alias = "ingester.ring.zone-awareness-enabled", default_value_t = RingConfig::default().zone_awareness_enabled, action = clap::ArgAction::Set)]
    pub(crate) zone_awareness_enabled: bool,
    /// HTTP listen address.
    #[arg(long = "server.http-listen-address", default_value = "127.0.0.1")]
    pub(crate) http_address: String,
    /// HTTP listen port (0: any free port).
    #[arg(long = "server.http-listen-port", default_value_t = 8080)]
    pub(crate) http_port: u16,
}

impl NodeArgs {
    /// The ring client's config (replication, zones, health) the flags set.
    pub(crate) fn ring_config(&self) -> RingConfig {
        RingConfig {
            replication_factor: self.replication_factor,
            zone_awareness_enabled: self.zone_awareness_enabled,
            heartbeat_timeout: self.ring_heartbeat_timeout,
            excluded_zones: Vec::new(),
            strategy: ReplicationStrategy::Default,
        }
    }

    /// The lifecycler's config for instance `id` registered at `addr`.
    pub(crate) fn lifecycler_config(&self, id: String, addr: String) -> LifecyclerConfig {
        LifecyclerConfig {
            id,
            addr,
            zone: self.zone.clone(),
            num_tokens: self.num_tokens,
            heartbeat_period: self.heartbeat_period,
            heartbeat_timeout: self.lifecycler_heartbeat_timeout,
            join_after: self.join_after,
            observe_period: self.observe_period,
            min_ready_duration: self.min_ready_duration,
            final_sleep: self.final_sleep,
            tokens_file_path: self.tokens_file_path.clone(),
            unregister_on_shutdown: self.unregister_on_shutdown,
            readiness_check_ring_health: self.readiness_check_ring_health,
            auto_forget_unhealthy_periods: self.auto_forget_periods,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ringkit".to_owned())
}

/// The token generator `--ingester.ring.token-generation-strategy` names, checked as
/// Mimir checks it (spread-minimizing: no tokens file, an ID ending in `-<n>`, the zone
/// listed in `--ingester.ring.spread-minimizing-zones`).
fn token_generator(
    args: &NodeArgs,
    id: &str,
) -> anyhow::Result<Arc<dyn TokenGenerator + Send + Sync>> {
    if args.token_generation_strategy != "spread-minimizing" {
        anyhow::ensure!(
            !args.spread_minimizing_join_ring_in_order,
            "--ingester.ring.spread-minimizing-join-ring-in-order needs \
             --ingester.ring.token-generation-strategy=spread-minimizing"
        );
        return Ok(Arc::new(RandomTokenGenerator::new()));
    }
    anyhow::ensure!(
        args.tokens_file_path.is_none(),
        "the spread-minimizing token generation strategy needs an empty \
         --ingester.ring.tokens-file-path"
    );
    let generator = SpreadMinimizingTokenGenerator::new(
        id,
        &args.zone,
        &args.spread_minimizing_zones,
        args.spread_minimizing_join_ring_in_order,
    )
    .context("the spread-minimizing token generation strategy is misconfigured")?;
    Ok(Arc::new(generator))
}

/// The address written in the ring: `--ingester.lifecycler.addr` as given when it has a
/// port, with the gRPC port added when it is a bare IP or host (Mimir's
/// `-ingester.ring.instance-addr` is an IP only), else the gRPC listen address, or the
/// interfaces' address (`detect`) when the gRPC listener is bound to every interface. An
/// unspecified address (`0.0.0.0`, `::`) is refused: nobody could dial it.
fn advertised_addr(
    addr: Option<&str>,
    grpc: SocketAddr,
    detect: impl FnOnce() -> anyhow::Result<IpAddr>,
) -> anyhow::Result<String> {
    let unspecified = |ip: IpAddr| {
        anyhow::anyhow!(
            "--ingester.ring.instance-addr {ip} is the unspecified address, which other \
             components cannot dial; give this instance's own address or leave it empty"
        )
    };
    Ok(match addr {
        None | Some("") if grpc.ip().is_unspecified() => {
            SocketAddr::new(detect()?, grpc.port()).to_string()
        }
        None | Some("") => grpc.to_string(),
        Some(a) => match (a.parse::<IpAddr>(), a.parse::<SocketAddr>()) {
            (Ok(ip), _) if ip.is_unspecified() => return Err(unspecified(ip)),
            (_, Ok(sa)) if sa.ip().is_unspecified() => return Err(unspecified(sa.ip())),
            (Ok(ip), _) => SocketAddr::new(ip, grpc.port()).to_string(),
            (Err(_), _) if a.starts_with('[') || a.contains(':') => a.to_owned(),
            (Err(_), _) => format!("{a}:{}", grpc.port()),
        },
    })
}

/// The address of this machine that `--ingester.ring.instance-interface-names` names.
fn interface_addr(args: &NodeArgs) -> anyhow::Result<IpAddr> {
    crate::netaddr::detect(&args.instance_interface_names, args.instance_enable_ipv6)
        .context("finding this instance's address (it listens on every interface)")
}

/// Without `--memberlist.advertise-addr`, a gossip node bound to every interface
/// advertises the address of `--ingester.ring.instance-interface-names` (never
/// `0.0.0.0`); an error when there is none.
fn gossip_advertise(args: &mut NodeArgs) -> anyhow::Result<()> {
    let kv = &args.kv;
    let uses_gossip = [&kv.store, &kv.multi_primary, &kv.multi_secondary]
        .iter()
        .any(|s| s.as_str() == "memberlist");
    if uses_gossip
        && kv.memberlist.advertise_addr.is_none()
        && kv.memberlist.bind_addr.is_unspecified()
    {
        let ip = interface_addr(args).context("choosing --memberlist.advertise-addr")?;
        tracing::info!(%ip, "memberlist advertise address from the network interfaces");
        args.kv.memberlist.advertise_addr = Some(ip);
    }
    Ok(())
}

/// Runs a node until SIGINT or SIGTERM.
pub(crate) async fn run(args: NodeArgs) -> anyhow::Result<()> {
    let cancel = CancellationToken::new();
    let shutdown = cancel.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        shutdown.cancel();
    });
    run_until(args, cancel, |addr| {
        println!("ringkit node listening on http://{addr} (ring page: http://{addr}/ring)");
    })
    .await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs a node until `cancel` fires; `on_listen` learns the bound HTTP address.
pub(crate) async fn run_until(
    args: NodeArgs,
    cancel: CancellationToken,
    on_listen: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let mut args = args;
    gossip_advertise(&mut args)?;
    let mut registry = Registry::default();
    let server_cfg = args.server.to_config();
    let server_metrics = ServerMetrics::register(&mut registry);
    registry.register_collector(Box::new(crate::server_args::DecompressionMetrics));
    let memory = MemoryStore::new();
    let store = build_ring_store(&args.kv, &memory, &mut registry).await?;
    if !args.metrics_ring_prefix.is_empty() {
        store
            .kv_metrics
            .register_alias(&mut registry, &args.metrics_ring_prefix);
    }
    // One client per user of the store, named as dskit names them (`kv_name`).
    let kv = store.client_for(&format!("{}-ring", args.ring_name));
    let lifecycler_kv = store.client_for(&format!("{}-lifecycler", args.ring_name));
    let memberlist = store.memberlist.clone();
    let ring_cfg = args.ring_config();
    ring_cfg.validate()?;

    let listener = tokio::net::TcpListener::bind((args.http_address.as_str(), args.http_port))
        .await
        .with_context(|| format!("binding {}:{}", args.http_address, args.http_port))?;
    let local = listener.local_addr()?;

    let watcher = RingWatcher::new(ring_cfg.clone())?;
    let watch_task = tokio::spawn(Arc::clone(&watcher).run(
        Arc::clone(&kv),
        args.ring_key.clone(),
        cancel.clone(),
    ));

    let instance_id = args.id.clone().unwrap_or_else(hostname);
    // Ingest storage: the partition ring, watched by every target, owned by ingesters.
    let partitions = if args.partition.ingest_storage_enabled {
        args.partition.validate(&args.kv.store)?;
        let name = crate::partition::DEFAULT_KEY;
        let watcher = ringkit_lifecycle::PartitionRingWatcher::new();
        let watch_kv = store
            .partition_client_for(&format!("{name}-watcher"), &args.partition.partition_prefix);
        let task = tokio::spawn(Arc::clone(&watcher).run(
            Arc::clone(&watch_kv),
            args.partition.partition_key.clone(),
            cancel.clone(),
        ));
        let lifecycler = if args.target == "distributor" {
            None
        } else {
            let cfg = crate::partition::lifecycler_config(&args.partition, &instance_id)?;
            let kv = store.partition_client_for(
                &format!("{name}-lifecycler"),
                &args.partition.partition_prefix,
            );
            Some(Arc::new(
                ringkit_lifecycle::PartitionInstanceLifecycler::new(
                    cfg,
                    name,
                    &args.partition.partition_key,
                    kv,
                ),
            ))
        };
        registry.register_collector(Box::new(crate::partition::PartitionRingMetrics::new(
            name,
            Arc::clone(&watcher),
            lifecycler.clone(),
            &args.metrics_ring_prefix,
        )));
        let routes = Arc::new(crate::partition::PartitionRoutes {
            watcher,
            kv: watch_kv,
            key: args.partition.partition_key.clone(),
            lifecycler,
            running: std::sync::atomic::AtomicBool::new(false),
            clock: crate::partition::system_clock(),
        });
        Some((routes, task))
    } else {
        None
    };

    let mut ingester = None;
    let mut local_ingester = None;
    let lifecycler = if args.target == "distributor" {
        None
    } else {
        let mut ing = crate::ingester::Ingester::bind(&args.ingester, &mut registry)
            .await?
            .with_server(server_cfg.clone(), server_metrics.clone());
        let grpc_addr = ing.local_addr()?;
        let addr = advertised_addr(args.addr.as_deref(), grpc_addr, || interface_addr(&args))?;
        if args.target == "all" {
            // The distributor of this process calls its own ingester directly.
            let slot = Arc::new(std::sync::OnceLock::new());
            ing = ing.with_local_slot(Arc::clone(&slot));
            local_ingester = Some(ringkit_dataplane::distributor::LocalIngester {
                addr: addr.clone(),
                service: slot,
            });
        }
        ingester = Some(ing);
        let generator = token_generator(&args, &instance_id)?;
        let cfg = args.lifecycler_config(instance_id.clone(), addr);
        Some(Arc::new(Lifecycler::new(
            cfg,
            lifecycler_kv,
            args.ring_key.clone(),
            generator,
        )?))
    };

    registry.register_collector(Box::new(
        RingMetrics::new(
            args.ring_name.clone(),
            Arc::clone(&watcher),
            lifecycler.clone(),
        )
        .with_prefix(&args.metrics_ring_prefix),
    ));
    let distributor_routes = (args.target != "ingester").then(|| {
        crate::distributor::router(
            &args.distributor,
            Arc::clone(&watcher),
            local_ingester.take(),
            &mut registry,
        )
    });
    let prepare = lifecycler.as_ref().map(|l| {
        crate::prepare::Prepare::new(Arc::clone(l), &args.ingester.tsdb_dir, &mut registry)
    });
    if let (Some(p), Some((routes, _))) = (&prepare, &partitions)
        && let Some(pl) = &routes.lifecycler
    {
        p.set_partition_lifecycler(Arc::clone(pl));
    }
    let state = Arc::new(AppState {
        watcher: Arc::clone(&watcher),
        lifecycler: lifecycler.clone(),
        kv: Arc::clone(&kv),
        ring_key: args.ring_key.clone(),
        registry,
        memberlist: memberlist.clone(),
    });
    let mut app = http::router(state);
    if let Some(p) = &prepare {
        app = app.merge(p.router());
    }
    if let Some(routes) = distributor_routes {
        app = app.merge(routes);
    }
    if let Some((routes, _)) = &partitions {
        app = app.merge(crate::partition::router(Arc::clone(routes)));
    }
    let server_cancel = cancel.clone();
    // Connection limit and timeouts (-server.http-*); TCP_NODELAY is set on accept.
    let listener = LimitedListener::new(
        listener,
        server_cfg.http_conn_limit,
        "http",
        &server_metrics,
    );
    let http_cfg = server_cfg.clone();
    let server = tokio::spawn(async move {
        serve_http(
            listener,
            app,
            &http_cfg,
            server_cancel.cancelled_owned(),
            HTTP_SHUTDOWN_GRACE,
        )
        .await;
        Ok::<_, std::io::Error>(())
    });
    on_listen(local);

    let mut heartbeat_task = None;
    let mut grpc_task = None;
    if let (Some(l), Some(ing)) = (&lifecycler, ingester) {
        // Register with no tokens, load (WAL replay, then serve gRPC), claim tokens.
        let load = async {
            let task = ing.load_and_serve(cancel.clone()).await?;
            if !args.join_after.is_zero() {
                tokio::select! {
                    _ = tokio::time::sleep(args.join_after) => {}
                    _ = cancel.cancelled() => {}
                }
            }
            Ok::<_, anyhow::Error>(task)
        };
        grpc_task = Some(l.join(load).await.context("joining the ring")?);
        tracing::info!(tokens = l.tokens().len(), state = %l.state(), "joined the ring");
        if let Some(p) = &prepare {
            p.set_running(true);
        }
        let hb = Arc::clone(l);
        let hb_cancel = cancel.clone();
        heartbeat_task = Some(tokio::spawn(async move { hb.run(hb_cancel).await }));
    }
    // As Mimir: the partition is owned only once the instance is in the ingester ring.
    let mut partition_task = None;
    if let Some((routes, _)) = &partitions
        && let Some(pl) = &routes.lifecycler
    {
        pl.start(&cancel)
            .await
            .context("registering as the owner of partition")?;
        routes
            .running
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let pl = Arc::clone(pl);
        let pl_cancel = cancel.clone();
        partition_task = Some(tokio::spawn(async move { pl.run(pl_cancel).await }));
    }

    // dskit's -memberlist.abort-if-join-fails: the process stops when the startup join
    // failed every retry.
    let join_failed = async {
        match &memberlist {
            Some(m) if m.config().abort_if_join_fails => match m.startup_join().await {
                JoinStatus::Failed(e) => e,
                _ => std::future::pending().await,
            },
            _ => std::future::pending().await,
        }
    };
    let mut failure = None;
    tokio::select! {
        _ = cancel.cancelled() => {}
        e = join_failed => {
            tracing::error!(error = %e, "joining the memberlist cluster failed; stopping (--memberlist.abort-if-join-fails)");
            failure = Some(e);
            cancel.cancel();
        }
    }
    tracing::info!("shutting down");
    if let Some(p) = &prepare {
        p.set_running(false);
    }
    if let Some(task) = heartbeat_task {
        let _ = task.await;
    }
    if let Some((routes, _)) = &partitions {
        routes
            .running
            .store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(task) = partition_task {
            let _ = task.await;
        }
        if let Some(pl) = &routes.lifecycler
            && let Err(e) = pl.stop().await
        {
            tracing::warn!(error = %e, "removing the partition owner failed");
        }
    }
    if let Some(l) = &lifecycler
        && let Err(e) = l.leave().await
    {
        tracing::warn!(error = %e, "leaving the ring failed");
    } else if let Some(p) = &prepare {
        p.remove_marker();
    }
    if let Some(m) = &memberlist {
        m.leave().await;
    }
    let _ = watch_task.await;
    if let Some((_, task)) = partitions {
        let _ = task.await;
    }
    if let Some(task) = grpc_task {
        task.await??;
    }
    server.await??;
    if let Some(e) = failure {
        anyhow::bail!("joining the memberlist cluster failed: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(grpc: SocketAddr) -> impl Fn(Option<&str>) -> String {
        move |addr| advertised_addr(addr, grpc, || panic!("no detection expected")).unwrap()
    }

    #[test]
    fn bare_instance_addr_gets_the_grpc_port() {
        let addr = never("0.0.0.0:9095".parse().unwrap());
        assert_eq!(addr(Some("10.1.2.3")), "10.1.2.3:9095");
        assert_eq!(addr(Some("fd00::1")), "[fd00::1]:9095");
        assert_eq!(addr(Some("10.1.2.3:7000")), "10.1.2.3:7000");
        assert_eq!(addr(Some("ing-1.svc")), "ing-1.svc:9095");
        assert_eq!(addr(Some("ing-1.svc:7000")), "ing-1.svc:7000");
        let bound = never("127.0.0.1:9095".parse().unwrap());
        assert_eq!(bound(None), "127.0.0.1:9095");
        assert_eq!(bound(Some("")), "127.0.0.1:9095");
    }

    #[test]
    fn listening_on_every_interface_advertises_the_detected_address() {
        for grpc in ["0.0.0.0:9095", "[::]:9095"] {
            let grpc: SocketAddr = grpc.parse().unwrap();
            let got = advertised_addr(None, grpc, || Ok("10.9.8.7".parse().unwrap())).unwrap();
            assert_eq!(got, "10.9.8.7:9095");
            let err = advertised_addr(None, grpc, || anyhow::bail!("no usable address"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("no usable address"), "{err}");
        }
    }

    #[test]
    fn an_unspecified_instance_addr_is_refused() {
        let grpc: SocketAddr = "10.0.0.1:9095".parse().unwrap();
        for bad in ["0.0.0.0", "::", "0.0.0.0:9095", "[::]:9095"] {
            let err = advertised_addr(Some(bad), grpc, || panic!("no detection expected"))
                .unwrap_err()
                .to_string();
            assert!(err.contains("unspecified"), "{bad}: {err}");
        }
    }

    #[test]
    fn gossip_bound_everywhere_advertises_an_interface_address() {
        // Explicit advertise address or bind address: left as given.
        let mut given = node_args(&[
            "--kv.store=memberlist",
            "--memberlist.advertise-addr=10.1.1.1",
        ]);
        gossip_advertise(&mut given).unwrap();
        assert_eq!(
            given.kv.memberlist.advertise_addr,
            Some("10.1.1.1".parse().unwrap())
        );
        let mut bound = node_args(&["--kv.store=memberlist", "--memberlist.bind-addr=127.0.0.1"]);
        gossip_advertise(&mut bound).unwrap();
        assert_eq!(bound.kv.memberlist.advertise_addr, None);
        // No gossip: nothing to choose.
        let mut etcd = node_args(&[
            "--kv.store=etcd",
            "--ingester.ring.instance-interface-names=lo",
        ]);
        gossip_advertise(&mut etcd).unwrap();
        // Bound to 0.0.0.0 with only loopback named: a clear error, never 0.0.0.0.
        let mut lo = node_args(&[
            "--kv.store=memberlist",
            "--ingester.ring.instance-interface-names=lo",
        ]);
        let err = format!("{:#}", gossip_advertise(&mut lo).unwrap_err());
        assert!(
            err.contains("advertise-addr") && err.contains("\"lo\""),
            "{err}"
        );
    }

    fn node_args(extra: &[&str]) -> NodeArgs {
        use clap::Parser as _;
        let cli = crate::Cli::try_parse_from(["ringkit", "node"].iter().chain(extra)).unwrap();
        match cli.command {
            crate::Command::Node(a) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn mimirs_yaml_interface_keys_reach_the_flags() {
        use clap::{CommandFactory as _, FromArgMatches as _};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mimir.yaml");
        std::fs::write(
            &path,
            "ingester:\n  ring:\n    instance_interface_names: [ens5, eth0]\n    \
             instance_enable_ipv6: true\n",
        )
        .unwrap();
        let argv = ["ringkit", "node", "--config.file", path.to_str().unwrap()]
            .map(std::ffi::OsString::from)
            .to_vec();
        let args = crate::config_file::expand(&crate::Cli::command(), argv).unwrap();
        let matches = crate::Cli::command().try_get_matches_from(args).unwrap();
        let crate::Command::Node(n) = crate::Cli::from_arg_matches(&matches).unwrap().command
        else {
            panic!("not a node command")
        };
        assert_eq!(n.instance_interface_names, ["ens5", "eth0"]);
        assert!(n.instance_enable_ipv6);
    }

    #[test]
    fn spread_minimizing_strategy_is_checked_like_mimir() {
        let ok = node_args(&[
            "--ingester.ring.token-generation-strategy=spread-minimizing",
            "--ingester.ring.instance-availability-zone=zone-b",
            "--ingester.ring.spread-minimizing-zones=zone-a,zone-b,zone-c",
        ]);
        assert!(token_generator(&ok, "ingester-zone-b-7").is_ok());
        let err =
            |args: &NodeArgs, id: &str| format!("{:#}", token_generator(args, id).err().unwrap());
        assert!(err(&ok, "ingester-zone-b").contains("misconfigured"));
        let mut with_file = ok.clone();
        with_file.tokens_file_path = Some("/data/tokens".into());
        assert!(err(&with_file, "ingester-zone-b-7").contains("tokens-file-path"));
        let mut other_zone = ok.clone();
        other_zone.zone = "zone-d".into();
        assert!(err(&other_zone, "ingester-zone-d-7").contains("misconfigured"));
        let in_order_random =
            node_args(&["--ingester.ring.spread-minimizing-join-ring-in-order=true"]);
        assert!(err(&in_order_random, "x-1").contains("spread-minimizing"));
        assert!(token_generator(&node_args(&[]), "host").is_ok());
    }
}
