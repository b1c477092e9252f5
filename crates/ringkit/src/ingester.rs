//! The ingester part of `ringkit node`: its flags, the gRPC listener (bound before the
//! instance registers, so the ring entry carries the address distributors dial), the
//! load step (WAL replay) that runs between registering and claiming tokens, and the head
//! compaction loop (blocks, checkpoints, retention).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use ringkit_dataplane::ingester::{IngesterConfig, IngesterService, load, run_compaction};
use ringkit_dataplane::metrics::IngesterMetrics;
use ringkit_dataplane::server::{LimitedListener, ServerConfig, ServerMetrics};
use ringkit_ingest::head::HeadOptions;
use ringkit_ingest::store::StoreConfig;
use ringkit_ingest::validate::Limits;
use ringkit_ingest::wal::WalConfig;
use ringkit_kv::CancellationToken;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Ingester flags (names after dskit/Cortex where they have one).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct IngesterArgs {
    /// gRPC listen address of the ingester service.
    #[arg(long = "server.grpc-listen-address", default_value = "127.0.0.1")]
    pub(crate) grpc_address: String,
    /// gRPC listen port (0: any free port; the ring entry gets the bound one).
    #[arg(long = "server.grpc-listen-port", default_value_t = 9095)]
    pub(crate) grpc_port: u16,
    /// The ingester's TSDB directory: per tenant `<dir>/<tenant>/wal/` (replayed at start-up)
    /// and the blocks cut from the head, `<dir>/<tenant>/<ULID>/` (Mimir's layout).
    /// `--ingester.wal-dir` is an older name for it.
    #[arg(
        long = "blocks-storage.tsdb.dir",
        alias = "ingester.wal-dir",
        default_value = "./tsdb/"
    )]
    pub(crate) tsdb_dir: PathBuf,
    /// Width of the blocks cut from the head (Mimir takes a list; the first range is the one
    /// the head uses, so one value is taken here). The head keeps up to 1.5 ranges.
    #[arg(long = "blocks-storage.tsdb.block-ranges-period", default_value = "2h", value_parser = crate::duration::parse_duration)]
    pub(crate) block_range: Duration,
    /// Local blocks whose end is older than this are deleted (0: keep them).
    #[arg(long = "blocks-storage.tsdb.retention-period", default_value = "13h", value_parser = crate::duration::parse_duration)]
    pub(crate) retention: Duration,
    /// How often the head is checked for a block to cut (then truncated and checkpointed).
    #[arg(long = "blocks-storage.tsdb.head-compaction-interval", default_value = "1m", value_parser = crate::duration::parse_duration)]
    pub(crate) head_compaction_interval: Duration,
    /// WAL segment size; a checkpoint deletes whole segments.
    #[arg(long = "blocks-storage.tsdb.wal-segment-size-bytes", default_value_t = WalConfig::default().segment_size)]
    pub(crate) wal_segment_size: u64,
    /// Open block readers kept for remote-read queries (each holds its block's index in
    /// memory; the least recently used is closed first). 0 opens the block for every query.
    #[arg(long = "blocks-storage.tsdb.block-readers", default_value_t = HeadOptions::default().block_readers)]
    pub(crate) block_readers: usize,
    /// fdatasync the WAL before acknowledging each push (off: a crash of the machine, not
    /// of the process, may lose acknowledged samples).
    #[arg(long = "ingester.wal-sync-every-write", default_value_t = WalConfig::default().sync_every_write, action = clap::ArgAction::Set)]
    pub(crate) wal_sync: bool,
    /// Where finished blocks are shipped (Mimir's `-blocks-storage.*`); with
    /// `--blocks-storage.backend` set, every block cut from the head is uploaded.
    #[command(flatten)]
    pub(crate) storage: crate::blocks_storage::BlocksStorageArgs,
}

impl IngesterArgs {
    /// The ingester's head, WAL and limits config the flags set.
    pub(crate) fn config(&self) -> anyhow::Result<IngesterConfig> {
        let block_range_ms = i64::try_from(self.block_range.as_millis())
            .ok()
            .filter(|&ms| ms > 0)
            .context("--blocks-storage.tsdb.block-ranges-period must be positive")?;
        Ok(IngesterConfig {
            tsdb_dir: self.tsdb_dir.clone(),
            head: HeadOptions {
                store: StoreConfig {
                    block_range_ms,
                    ..StoreConfig::default()
                },
                wal: WalConfig {
                    sync_every_write: self.wal_sync,
                    segment_size: self.wal_segment_size.max(1 << 10),
                },
                retention_ms: i64::try_from(self.retention.as_millis()).unwrap_or(i64::MAX),
                block_readers: self.block_readers,
                // Mimir's rule: with shipping on, a local block outlives retention until it
                // is in the bucket.
                retention_waits_for_shipping: self.storage.backend.is_some(),
                ..HeadOptions::default()
            },
            limits: Limits::default(),
        })
    }
}

/// The bound gRPC listener of an ingester that has not loaded its data yet.
pub(crate) struct Ingester {
    listener: TcpListener,
    cfg: IngesterConfig,
    compaction_interval: Duration,
    metrics: IngesterMetrics,
    /// `-server.grpc*` limits, keepalive and their metrics.
    server: Option<(ServerConfig, ServerMetrics)>,
    /// Uploads finished blocks (only when `--blocks-storage.backend` is given).
    shipper: Option<std::sync::Arc<ringkit_ship::Shipper>>,
    /// Filled with the service once it serves, for this process' distributor
    /// (`--target=all`) to call it without gRPC.
    local: Option<std::sync::Arc<std::sync::OnceLock<IngesterService>>>,
}

impl Ingester {
    /// Binds the gRPC listener and registers the ingester's metrics.
    pub(crate) async fn bind(
        args: &IngesterArgs,
        registry: &mut Registry,
    ) -> anyhow::Result<Ingester> {
        let listener = TcpListener::bind((args.grpc_address.as_str(), args.grpc_port))
            .await
            .with_context(|| format!("binding gRPC {}:{}", args.grpc_address, args.grpc_port))?;
        let cfg = args.config()?;
        let metrics = IngesterMetrics::register(registry);
        let shipper = match &args.storage.backend {
            Some(_) => Some(args.storage.shipper(args.tsdb_dir.clone(), registry)?),
            None => None,
        };
        Ok(Ingester {
            listener,
            cfg,
            compaction_interval: args.head_compaction_interval,
            metrics,
            server: None,
            shipper,
            local: None,
        })
    }

    /// Serves gRPC with the `-server.grpc*` settings (connection limit, keepalive,
    /// message sizes) instead of tonic's defaults.
    pub(crate) fn with_server(mut self, cfg: ServerConfig, metrics: ServerMetrics) -> Self {
        self.server = Some((cfg, metrics));
        self
    }

    /// Hands the service, once it serves, to this process' distributor through `slot`.
    pub(crate) fn with_local_slot(
        mut self,
        slot: std::sync::Arc<std::sync::OnceLock<IngesterService>>,
    ) -> Self {
        self.local = Some(slot);
        self
    }

    /// The address the listener is bound to.
    pub(crate) fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// The load step: replays the WAL, then serves the gRPC service and runs head compaction
    /// until `cancel` fires (in-flight calls finish). Returns the server task.
    pub(crate) async fn load_and_serve(
        self,
        cancel: CancellationToken,
    ) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
        let started = std::time::Instant::now();
        let (head, stats) = load(&self.cfg)
            .await
            .with_context(|| format!("replaying the TSDB in {}", self.cfg.tsdb_dir.display()))?;
        tracing::info!(
            dir = %self.cfg.tsdb_dir.display(),
            segments = stats.segments,
            records = stats.records,
            samples = stats.samples,
            truncated_segments = stats.truncated_segments,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "WAL replayed"
        );
        self.metrics.replayed(stats.samples);
        let addr = self.listener.local_addr()?;
        tokio::spawn(run_compaction(
            std::sync::Arc::clone(&head),
            self.compaction_interval,
            self.metrics.clone(),
            cancel.clone().cancelled_owned(),
        ));
        if let Some(shipper) = self.shipper.clone() {
            tracing::info!("shipping finished blocks to the blocks storage");
            tokio::spawn(shipper.run(cancel.clone()));
        }
        let service =
            IngesterService::new(head, self.cfg.limits.clone()).with_metrics(self.metrics);
        if let Some(slot) = &self.local {
            let _ = slot.set(service.clone());
        }
        let task = tokio::spawn(async move {
            match self.server {
                Some((cfg, metrics)) => {
                    let limit = cfg.grpc_conn_limit;
                    let listener = LimitedListener::new(self.listener, limit, "grpc", &metrics);
                    service
                        .serve_limited(listener, &cfg, cancel.cancelled_owned())
                        .await
                }
                None => service.serve(self.listener, cancel.cancelled_owned()).await,
            }
            .context("ingester gRPC server")
        });
        tracing::info!(%addr, "ingester gRPC service listening");
        Ok(task)
    }
}
