//! The ingester: a gRPC `Ingester` service over a [`Head`] (series store + write-ahead log).
//!
//! # Load step
//! [`load`] replays the TSDB directory (every tenant's checkpoint and WAL segments) into a
//! fresh head and opens the logs for appending. A node calls it between registering in the
//! ring (no tokens yet, so no writes are routed to it) and claiming tokens, the order of
//! spec/ring.md §4; see [`ringkit_lifecycle::Lifecycler::join`].
//!
//! # Head compaction
//! [`run_compaction`] calls [`Head::compact`] every interval (Mimir's
//! `-blocks-storage.tsdb.head-compaction-interval`, 1 m): blocks are cut, the head truncated, a
//! checkpoint replaces old WAL segments and blocks past retention are deleted, so memory and
//! disk stay bounded by the head (see [`ringkit_ingest::head`]).
//!
//! # Push
//! The tenant comes from the `x-scope-orgid` metadata. The series are validated again (the
//! service must not trust its callers to have done it) and appended; the answer is sent only
//! after [`Head::push`] returned, i.e. after the accepted samples were written to the WAL
//! (and flushed with `fdatasync` unless [`ringkit_ingest::wal::WalConfig::sync_every_write`]
//! is off). Refused samples answer `INVALID_ARGUMENT` with the first reason, worded as
//! Prometheus words it ("duplicate sample for timestamp", "out of order sample", "out of
//! bounds"); the accepted rest of the request is kept, as in Mimir. Only a WAL failure is
//! `INTERNAL`: the sender must retry.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringkit_ingest::decode::decode_write_request_view;
use ringkit_ingest::head::{Head, HeadError, HeadOptions};
use ringkit_ingest::store::Matcher;
use ringkit_ingest::validate::{Limits, ValidSeries, validate_view};
use ringkit_ingest::wal::ReplayStats;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::encoded::RawWriteRequest;
use crate::metrics::IngesterMetrics;
use crate::proto::ingester_server::{Ingester, IngesterServer};
use crate::proto::{QueryRequest, QueryResponse, WriteResponse};
use crate::tenant;

/// Largest gRPC message either side accepts (Mimir's `-server.grpc-max-recv-msg-size-bytes`
/// is 100 MiB too); tonic's 4 MiB default is smaller than a remote-write body may decode to.
pub const MAX_GRPC_MESSAGE_SIZE: usize = 100 << 20;

/// Settings of an ingester's head.
#[derive(Clone, Debug)]
pub struct IngesterConfig {
    /// The TSDB directory (`-blocks-storage.tsdb.dir`): per tenant a WAL and the blocks cut.
    pub tsdb_dir: PathBuf,
    /// Head settings: block range, WAL (`sync_every_write` is what makes an acknowledged
    /// sample survive a crash), retention and the block store.
    pub head: HeadOptions,
    /// Validation limits applied to every pushed series.
    pub limits: Limits,
}

/// Why the load step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Replaying or opening the WAL, or reading a block, failed (an I/O error; bad records
    /// are counted, not fatal).
    #[error(transparent)]
    Head(#[from] HeadError),
    /// The replay task panicked or was cancelled (a bug).
    #[error("WAL replay task failed: {0}")]
    Task(String),
}

/// The load step: replays the TSDB directory `cfg.tsdb_dir` into a new head and opens its
/// WALs for appending. Runs on a blocking thread (replay reads and may truncate files).
pub async fn load(cfg: &IngesterConfig) -> Result<(Arc<Head>, ReplayStats), LoadError> {
    let (dir, options) = (cfg.tsdb_dir.clone(), cfg.head.clone());
    let (head, stats) = tokio::task::spawn_blocking(move || Head::open_with(dir, options))
        .await
        .map_err(|e| LoadError::Task(e.to_string()))??;
    Ok((Arc::new(head), stats))
}

/// Runs [`Head::compact`] every `interval` on a blocking thread until `shutdown` completes,
/// and keeps the head's metrics up to date. One compaction runs at a time.
pub async fn run_compaction(
    head: Arc<Head>,
    interval: Duration,
    metrics: IngesterMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; the head was just loaded.
    tick.tick().await;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {}
        }
        let h = Arc::clone(&head);
        let done = tokio::task::spawn_blocking(move || {
            let report = h.compact(now_ms());
            (report, h.wal_disk_bytes(), head_stats(&h))
        })
        .await;
        match done {
            Ok((report, wal_bytes, stats)) => {
                if !report.errors.is_empty() {
                    tracing::warn!(errors = ?report.errors, "head compaction had failures");
                }
                metrics.head_state(&stats, wal_bytes);
                let c = head.counters();
                metrics.tsdb_counters(&crate::metrics::TsdbCounters {
                    compactions: c.blocks_cut.load(Ordering::Relaxed),
                    compactions_failed: c.block_cut_failures.load(Ordering::Relaxed),
                    checkpoints: c.checkpoints.load(Ordering::Relaxed),
                    checkpoints_failed: c.checkpoint_failures.load(Ordering::Relaxed),
                    wal_writes_failed: c.wal_write_failures.load(Ordering::Relaxed),
                    blocks_deleted: c.blocks_deleted.load(Ordering::Relaxed),
                });
            }
            Err(e) => tracing::error!(error = %e, "head compaction task failed"),
        }
    }
}

/// Series and memory of every tenant's head.
fn head_stats(head: &Head) -> crate::metrics::HeadState {
    let store = head.store();
    let mut s = crate::metrics::HeadState::default();
    for t in store.tenants() {
        s.series += store.series_count(&t) as u64;
        s.memory_bytes += store.memory_bytes(&t) as u64;
        if let Some((_, max)) = store.time_bounds(&t) {
            s.max_timestamp_ms = s.max_timestamp_ms.max(max);
        }
        if let Some(f) = store.chunk_files(&t) {
            s.chunk_files += f.files as u64;
            s.chunk_bytes += f.bytes;
        }
    }
    s.block_readers_open = head.block_readers().len() as u64;
    s
}

/// The `Ingester` gRPC service.
#[derive(Clone)]
pub struct IngesterService {
    head: Arc<Head>,
    limits: Limits,
    metrics: IngesterMetrics,
}

impl std::fmt::Debug for IngesterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngesterService")
            .field("tenants", &self.head.store().tenants().len())
            .finish()
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The tenant named in the request metadata (`INVALID_ARGUMENT` when absent or invalid).
fn tenant_of(metadata: &MetadataMap) -> Result<String, Status> {
    let value = metadata
        .get(tenant::GRPC_METADATA)
        .map(|v| {
            v.to_str()
                .map_err(|_| Status::invalid_argument("x-scope-orgid is not valid text"))
        })
        .transpose()?;
    tenant::resolve(value, "").map_err(|e| Status::invalid_argument(e.to_string()))
}

impl IngesterService {
    /// A service writing into and reading from `head`, validating pushes with `limits`.
    pub fn new(head: Arc<Head>, limits: Limits) -> IngesterService {
        IngesterService {
            head,
            limits,
            metrics: IngesterMetrics::default(),
        }
    }

    /// Counts into registered metrics.
    pub fn with_metrics(mut self, metrics: IngesterMetrics) -> IngesterService {
        self.metrics = metrics;
        self
    }

    /// The head served (for status pages and tests).
    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    /// The tonic server wrapper, with message limits raised to [`MAX_GRPC_MESSAGE_SIZE`].
    pub fn into_server(self) -> IngesterServer<IngesterService> {
        IngesterServer::new(self)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_SIZE)
    }

    /// Serves the service on `listener` until `shutdown` completes, then lets in-flight
    /// calls finish.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        // No Nagle: a gRPC answer is several small writes (headers, data, trailers); with
        // Nagle the last one waits for the client's delayed ACK (~40 ms on Linux).
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |conn| {
                let conn = conn?;
                conn.set_nodelay(true)?;
                Ok::<_, std::io::Error>(conn)
            },
        );
        tonic::transport::Server::builder()
            .add_service(self.into_server())
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
    }
}

impl IngesterService {
    /// [`IngesterService::serve`] under the connection limit, keepalive and message-size
    /// settings of `cfg` (Mimir's `-server.grpc*` flags).
    pub async fn serve_limited(
        self,
        listener: crate::server::LimitedListener,
        cfg: &crate::server::ServerConfig,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let service = IngesterServer::new(self)
            .max_decoding_message_size(cfg.grpc_max_recv_msg_size)
            .max_encoding_message_size(cfg.grpc_max_send_msg_size);
        crate::server::grpc_builder(cfg)
            .add_service(service)
            .serve_with_incoming_shutdown(crate::server::grpc_incoming(listener), shutdown)
            .await
    }
}

#[tonic::async_trait]
impl Ingester for IngesterService {
    async fn push(
        &self,
        request: Request<RawWriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let tenant = tenant_of(request.metadata())?;
        let body = request.into_inner().0;
        let head = Arc::clone(&self.head);
        let limits = self.limits.clone();
        // Blocking: the WAL append waits for the disk flush. The body is read in place
        // there too (labels borrowed from tonic's buffer), so the request's bytes are all
        // the memory a push holds besides what the head keeps.
        let (report, summary) = tokio::task::spawn_blocking(move || {
            // A body prost would refuse answers as tonic's decoding did (INTERNAL, prost's
            // words); only a distributor's own encoding reaches here in a cluster.
            let view =
                decode_write_request_view(&body).map_err(|e| Status::internal(e.to_string()))?;
            let mut valid = ValidSeries::default();
            let report = validate_view(&limits, now_ms(), &view, &mut valid);
            let series = valid
                .series
                .iter()
                .map(|e| (valid.labels_of(e), view.samples_of(&view.series[e.series])));
            let summary = head
                .push_series(&tenant, series)
                .map_err(|e| Status::internal(e.to_string()))?;
            Ok::<_, Status>((report, summary))
        })
        .await
        .map_err(|e| Status::internal(format!("push task failed: {e}")))??;
        self.metrics
            .ingested(summary.appended, summary.rejected + report.rejected_samples);
        if let Some(e) = report.first_error {
            return Err(Status::invalid_argument(e.to_string()));
        }
        if let Some(e) = summary.first_error {
            return Err(Status::invalid_argument(e.to_string()));
        }
        Ok(Response::new(WriteResponse {
            appended: summary.appended as u64,
            duplicates: summary.duplicates as u64,
        }))
    }

    async fn query(
        &self,
        request: Request<QueryRequest>,
    ) -> Result<Response<QueryResponse>, Status> {
        let tenant = tenant_of(request.metadata())?;
        let q = request.into_inner();
        let matchers = q
            .matchers
            .iter()
            .map(Matcher::from_proto)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let head = Arc::clone(&self.head);
        let timeseries = tokio::task::spawn_blocking(move || {
            head.query(&tenant, &matchers, q.start_timestamp_ms, q.end_timestamp_ms)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(QueryResponse { timeseries }))
    }
}
