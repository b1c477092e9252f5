//! `ringkit node`: a process that takes part in a ring stored in a KV store.
//!
//! With `--target=ingester` (or `all`) it runs a lifecycler: registers with no tokens,
//! runs its load step (WAL replay, then the gRPC ingester service), claims tokens and goes
//! ACTIVE, heartbeats, and on SIGINT/SIGTERM goes
//! LEAVING and unregisters. With `--target=distributor` (or `all`) it serves Prometheus
//! remote write/read at `/api/v1/push` and `/api/v1/read`. Every target watches the ring
//! and serves `/ring`, `/ready` and `/metrics` over HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_kv::{CancellationToken, MemoryStore};
use ringkit_lifecycle::{Lifecycler, LifecyclerConfig, RingWatcher};
use ringkit_ring::RingConfig;
use ringkit_ring::snapshot::ReplicationStrategy;
use ringkit_ring::tokens::RandomTokenGenerator;

use crate::duration::parse_duration;
use crate::http::{self, AppState};
use crate::kvstore::{KvArgs, build_ring_store};

use crate::ring_metrics::RingMetrics;

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
    /// Key of the ring in the KV store (after the prefix).
    #[arg(long = "ring.key", default_value = "ring")]
    pub(crate) ring_key: String,
    /// Name of the ring in metrics (the `name` label, as dskit's ring name).
    #[arg(long = "ring.name", default_value = "ingester")]
    pub(crate) ring_name: String,
    /// Instance id (ring map key). Default: the host name.
    #[arg(long = "ingester.lifecycler.ID")]
    pub(crate) id: Option<String>,
    /// Address other components dial (`host:port`). Default: the gRPC listen address.
    #[arg(long = "ingester.lifecycler.addr")]
    pub(crate) addr: Option<String>,
    /// Availability zone of this instance.
    #[arg(long = "ingester.availability-zone", default_value = "")]
    pub(crate) zone: String,
    /// Tokens per instance.
    #[arg(long = "ingester.num-tokens", default_value_t = 128)]
    pub(crate) num_tokens: usize,
    /// Heartbeat period.
    #[arg(long = "ingester.heartbeat-period", default_value = "5s", value_parser = parse_duration)]
    pub(crate) heartbeat_period: Duration,
    /// Heartbeat timeout used by readiness and auto-forget.
    #[arg(long = "ingester.heartbeat-timeout", default_value = "1m", value_parser = parse_duration)]
    pub(crate) lifecycler_heartbeat_timeout: Duration,
    /// Observe period for token conflicts (0: go ACTIVE at once).
    #[arg(long = "ingester.observe-period", default_value = "0s", value_parser = parse_duration)]
    pub(crate) observe_period: Duration,
    /// Delay before claiming tokens.
    #[arg(long = "ingester.join-after", default_value = "0s", value_parser = parse_duration)]
    pub(crate) join_after: Duration,
    /// Readiness needs the checks to pass this long.
    #[arg(long = "ingester.min-ready-duration", default_value = "15s", value_parser = parse_duration)]
    pub(crate) min_ready_duration: Duration,
    /// Sleep at the end of shutdown.
    #[arg(long = "ingester.final-sleep", default_value = "0s", value_parser = parse_duration)]
    pub(crate) final_sleep: Duration,
    /// File that keeps the tokens across restarts.
    #[arg(long = "ingester.tokens-file-path")]
    pub(crate) tokens_file_path: Option<std::path::PathBuf>,
    /// Remove the ring entry on a clean shutdown.
    #[arg(long = "ingester.unregister-on-shutdown", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) unregister_on_shutdown: bool,
    /// Readiness requires every ring member ACTIVE and healthy.
    #[arg(long = "ingester.readiness-check-ring-health", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) readiness_check_ring_health: bool,
    /// Forget members unhealthy for this many heartbeat timeouts (0: never).
    #[arg(long = "ingester.auto-forget-unhealthy-periods", default_value_t = 10)]
    pub(crate) auto_forget_periods: u32,
    /// Ring client: heartbeat timeout after which lookups treat an instance as unhealthy.
    #[arg(long = "ring.heartbeat-timeout", default_value = "1m", value_parser = parse_duration)]
    pub(crate) ring_heartbeat_timeout: Duration,
    /// Replication factor.
    #[arg(long = "distributor.replication-factor", default_value_t = 3)]
    pub(crate) replication_factor: usize,
    /// Place replicas in distinct zones.
    #[arg(long = "distributor.zone-awareness-enabled", default_value_t = false, action = clap::ArgAction::Set)]
    pub(crate) zone_awareness_enabled: bool,
    /// HTTP listen address.
    #[arg(long = "server.http-listen-address", default_value = "127.0.0.1")]
    pub(crate) http_address: String,
    /// HTTP listen port (0: any free port).
    #[arg(long = "server.http-listen-port", default_value_t = 8080)]
    pub(crate) http_port: u16,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "ringkit".to_owned())
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
    let mut registry = Registry::default();
    let memory = MemoryStore::new();
    let store = build_ring_store(&args.kv, &memory, &mut registry).await?;
    let kv = store.client;
    let memberlist = store.memberlist;
    let ring_cfg = RingConfig {
        replication_factor: args.replication_factor,
        zone_awareness_enabled: args.zone_awareness_enabled,
        heartbeat_timeout: args.ring_heartbeat_timeout,
        excluded_zones: Vec::new(),
        strategy: ReplicationStrategy::Default,
    };
    ring_cfg.validate()?;

    let listener = tokio::net::TcpListener::bind((args.http_address.as_str(), args.http_port))
        .await
        .with_context(|| format!("binding {}:{}", args.http_address, args.http_port))?;
    let local = listener.local_addr()?;

    let watcher = RingWatcher::new(ring_cfg.clone());
    let watch_task = tokio::spawn(Arc::clone(&watcher).run(
        Arc::clone(&kv),
        args.ring_key.clone(),
        cancel.clone(),
    ));

    let mut ingester = None;
    let lifecycler = if args.target == "distributor" {
        None
    } else {
        let ing = crate::ingester::Ingester::bind(&args.ingester, &mut registry).await?;
        let grpc_addr = ing.local_addr()?;
        ingester = Some(ing);
        let cfg = LifecyclerConfig {
            id: args.id.clone().unwrap_or_else(hostname),
            addr: args.addr.clone().unwrap_or_else(|| grpc_addr.to_string()),
            zone: args.zone.clone(),
            num_tokens: args.num_tokens,
            heartbeat_period: args.heartbeat_period,
            heartbeat_timeout: args.lifecycler_heartbeat_timeout,
            join_after: args.join_after,
            observe_period: args.observe_period,
            min_ready_duration: args.min_ready_duration,
            final_sleep: args.final_sleep,
            tokens_file_path: args.tokens_file_path.clone(),
            unregister_on_shutdown: args.unregister_on_shutdown,
            readiness_check_ring_health: args.readiness_check_ring_health,
            auto_forget_unhealthy_periods: args.auto_forget_periods,
        };
        Some(Arc::new(Lifecycler::new(
            cfg,
            Arc::clone(&kv),
            args.ring_key.clone(),
            Arc::new(RandomTokenGenerator::new()),
        )?))
    };

    registry.register_collector(Box::new(RingMetrics::new(
        args.ring_name.clone(),
        Arc::clone(&watcher),
        lifecycler.clone(),
    )));
    let distributor_routes = (args.target != "ingester").then(|| {
        crate::distributor::router(&args.distributor, Arc::clone(&watcher), &mut registry)
    });
    let prepare = lifecycler.as_ref().map(|l| {
        crate::prepare::Prepare::new(Arc::clone(l), &args.ingester.wal_dir, &mut registry)
    });
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
    let server_cancel = cancel.clone();
    let server = tokio::spawn(async move {
        use axum::serve::ListenerExt as _;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true); // no Nagle delay on small answers
        });
        axum::serve(listener, app)
            .with_graceful_shutdown(server_cancel.cancelled_owned())
            .await
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

    cancel.cancelled().await;
    tracing::info!("shutting down");
    if let Some(p) = &prepare {
        p.set_running(false);
    }
    if let Some(task) = heartbeat_task {
        let _ = task.await;
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
    if let Some(task) = grpc_task {
        task.await??;
    }
    server.await??;
    Ok(())
}
