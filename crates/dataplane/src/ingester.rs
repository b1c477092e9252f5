//! The ingester: a gRPC `Ingester` service over a [`Head`] (series store + write-ahead log).
//!
//! # Load step
//! [`load`] replays the WAL directory into a fresh head and opens the log for appending. A
//! node calls it between registering in the ring (no tokens yet, so no writes are routed to
//! it) and claiming tokens, the order of spec/ring.md §4; see
//! [`ringkit_lifecycle::Lifecycler::join`].
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
use std::time::{SystemTime, UNIX_EPOCH};

use ringkit_ingest::head::Head;
use ringkit_ingest::prompb::WriteRequest;
use ringkit_ingest::store::{Matcher, StoreConfig};
use ringkit_ingest::validate::{Limits, validate_request};
use ringkit_ingest::wal::{ReplayStats, WalConfig, WalError};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

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
    /// Directory of the write-ahead log (`-ingester.wal-dir`).
    pub wal_dir: PathBuf,
    /// Series store settings.
    pub store: StoreConfig,
    /// WAL settings; `sync_every_write` is what makes an acknowledged sample survive a crash.
    pub wal: WalConfig,
    /// Validation limits applied to every pushed series.
    pub limits: Limits,
}

/// Why the load step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Replaying or opening the WAL failed (an I/O error; bad records are counted, not fatal).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The replay task panicked or was cancelled (a bug).
    #[error("WAL replay task failed: {0}")]
    Task(String),
}

/// The load step: replays the WAL of `cfg.wal_dir` into a new head and opens it for
/// appending. Runs on a blocking thread (replay reads and may truncate files).
pub async fn load(cfg: &IngesterConfig) -> Result<(Arc<Head>, ReplayStats), LoadError> {
    let (dir, store, wal) = (cfg.wal_dir.clone(), cfg.store, cfg.wal);
    let (head, stats) = tokio::task::spawn_blocking(move || Head::open(dir, store, wal))
        .await
        .map_err(|e| LoadError::Task(e.to_string()))??;
    Ok((Arc::new(head), stats))
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
        request: Request<WriteRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let tenant = tenant_of(request.metadata())?;
        let mut req = request.into_inner();
        let report = validate_request(&self.limits, now_ms(), &mut req);
        let head = Arc::clone(&self.head);
        let series = req.timeseries;
        // Blocking: the WAL append waits for the disk flush.
        let summary = tokio::task::spawn_blocking(move || head.push(&tenant, &series))
            .await
            .map_err(|e| Status::internal(format!("push task failed: {e}")))?
            .map_err(|e| Status::internal(e.to_string()))?;
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
            head.store()
                .query(&tenant, &matchers, q.start_timestamp_ms, q.end_timestamp_ms)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?;
        Ok(Response::new(QueryResponse { timeseries }))
    }
}
