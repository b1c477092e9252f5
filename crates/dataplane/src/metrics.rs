//! Prometheus metrics of the data path, with the names Cortex/Mimir dashboards query
//! (`cortex_` prefix, per-tenant `user` label where Mimir has one).
//!
//! Registering is optional: [`Distributor`](crate::distributor::Distributor) and
//! [`IngesterService`](crate::ingester::IngesterService) work with unregistered defaults.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Per-tenant label set: `user="<tenant>"`.
type User = Vec<(&'static str, String)>;

fn user(tenant: &str) -> User {
    vec![("user", tenant.to_owned())]
}

/// Distributor counters.
#[derive(Clone, Debug, Default)]
pub struct DistributorMetrics {
    samples_in: Family<User, Counter>,
    received_samples: Family<User, Counter>,
    failed_pushes: Family<User, Counter>,
}

impl DistributorMetrics {
    /// Registers the counters (names without `_total`, which the encoder appends).
    pub fn register(registry: &mut Registry) -> DistributorMetrics {
        let m = DistributorMetrics::default();
        registry.register(
            "cortex_distributor_samples_in",
            "Samples received before validation",
            m.samples_in.clone(),
        );
        registry.register(
            "cortex_distributor_received_samples",
            "Samples that passed validation and were written with quorum",
            m.received_samples.clone(),
        );
        registry.register(
            "cortex_distributor_push_failures",
            "Pushes answered with an error (4xx or 5xx)",
            m.failed_pushes.clone(),
        );
        m
    }

    pub(crate) fn samples_in(&self, tenant: &str, n: usize) {
        self.samples_in
            .get_or_create(&user(tenant))
            .inc_by(n as u64);
    }

    pub(crate) fn received(&self, tenant: &str, n: usize) {
        self.received_samples
            .get_or_create(&user(tenant))
            .inc_by(n as u64);
    }

    pub(crate) fn failed(&self, tenant: &str) {
        self.failed_pushes.get_or_create(&user(tenant)).inc();
    }
}

/// Ingester counters and gauges.
#[derive(Clone, Debug, Default)]
pub struct IngesterMetrics {
    ingested: Counter,
    ingested_failures: Counter,
    replayed: Gauge,
    memory_series: Gauge,
    head_memory_bytes: Gauge,
    head_max_timestamp_seconds: Gauge,
    wal_bytes: Gauge,
    head_chunk_files: Gauge,
    head_chunk_bytes: Gauge,
    block_readers_open: Gauge,
    compactions: Counter,
    compactions_failed: Counter,
    checkpoints: Counter,
    checkpoints_failed: Counter,
    wal_writes_failed: Counter,
    blocks_deleted: Counter,
    /// Counter values already added, so absolute totals from the head become increments.
    seen: std::sync::Arc<std::sync::Mutex<TsdbCounters>>,
}

/// What the head holds, for the gauges.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadState {
    /// Series in memory, all tenants.
    pub series: u64,
    /// Approximate head memory, bytes.
    pub memory_bytes: u64,
    /// Newest sample, ms.
    pub max_timestamp_ms: i64,
    /// Head chunk files (`chunks_head/`), all tenants.
    pub chunk_files: u64,
    /// Bytes in them.
    pub chunk_bytes: u64,
    /// Block readers kept open for queries.
    pub block_readers_open: u64,
}

/// Totals of the head's TSDB work since start.
#[derive(Clone, Copy, Debug, Default)]
pub struct TsdbCounters {
    /// Blocks cut.
    pub compactions: u64,
    /// Block cuts that failed.
    pub compactions_failed: u64,
    /// Checkpoints written.
    pub checkpoints: u64,
    /// Checkpoints that failed.
    pub checkpoints_failed: u64,
    /// WAL writes that failed.
    pub wal_writes_failed: u64,
    /// Blocks deleted by retention.
    pub blocks_deleted: u64,
}

impl IngesterMetrics {
    /// Registers the metrics.
    pub fn register(registry: &mut Registry) -> IngesterMetrics {
        let m = IngesterMetrics::default();
        registry.register(
            "cortex_ingester_ingested_samples",
            "Samples appended (and logged) by this ingester",
            m.ingested.clone(),
        );
        registry.register(
            "cortex_ingester_ingested_samples_failures",
            "Samples this ingester refused (duplicate, out of order, out of bounds, invalid)",
            m.ingested_failures.clone(),
        );
        registry.register(
            "ringkit_ingester_wal_replayed_samples",
            "Samples read back from the WAL at start-up",
            m.replayed.clone(),
        );
        registry.register(
            "cortex_ingester_memory_series",
            "Series in the ingester's heads",
            m.memory_series.clone(),
        );
        registry.register(
            "ringkit_ingester_head_memory_bytes",
            "Approximate bytes of the heads' series, labels and chunks",
            m.head_memory_bytes.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_head_max_timestamp_seconds",
            "Newest sample timestamp in any head (whole seconds)",
            m.head_max_timestamp_seconds.clone(),
        );
        registry.register(
            "ringkit_ingester_tsdb_wal_bytes",
            "Bytes of every tenant's WAL segments and checkpoint on disk",
            m.wal_bytes.clone(),
        );
        registry.register(
            "ringkit_ingester_tsdb_head_chunk_files",
            "Head chunk files (chunks_head/) of every tenant: full chunks, memory-mapped",
            m.head_chunk_files.clone(),
        );
        registry.register(
            "ringkit_ingester_tsdb_head_chunk_bytes",
            "Bytes of the head chunk files of every tenant",
            m.head_chunk_bytes.clone(),
        );
        registry.register(
            "ringkit_ingester_tsdb_block_readers_open",
            "Block readers kept open for queries (bounded by --blocks-storage.tsdb.block-readers)",
            m.block_readers_open.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_compactions",
            "Blocks cut from the heads",
            m.compactions.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_compactions_failed",
            "Block cuts that failed (retried at the next compaction)",
            m.compactions_failed.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_checkpoint_creations",
            "WAL checkpoints written",
            m.checkpoints.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_checkpoint_creations_failed",
            "WAL checkpoints that failed (retried at the next compaction)",
            m.checkpoints_failed.clone(),
        );
        registry.register(
            "cortex_ingester_tsdb_wal_writes_failed",
            "WAL writes that failed (the push was answered with an error)",
            m.wal_writes_failed.clone(),
        );
        registry.register(
            "ringkit_ingester_tsdb_blocks_deleted",
            "Local blocks deleted by the retention period",
            m.blocks_deleted.clone(),
        );
        m
    }

    /// Sets the head gauges.
    pub fn head_state(&self, s: &HeadState, wal_bytes: u64) {
        self.memory_series.set(s.series as i64);
        self.head_memory_bytes.set(s.memory_bytes as i64);
        self.head_max_timestamp_seconds
            .set(if s.max_timestamp_ms == i64::MIN {
                0
            } else {
                s.max_timestamp_ms / 1000
            });
        self.wal_bytes.set(wal_bytes as i64);
        self.head_chunk_files.set(s.chunk_files as i64);
        self.head_chunk_bytes.set(s.chunk_bytes as i64);
        self.block_readers_open.set(s.block_readers_open as i64);
    }

    /// Brings the TSDB counters up to the head's totals.
    pub fn tsdb_counters(&self, now: &TsdbCounters) {
        let mut guard = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let seen = &mut *guard;
        let pairs = [
            (&self.compactions, now.compactions, &mut seen.compactions),
            (
                &self.compactions_failed,
                now.compactions_failed,
                &mut seen.compactions_failed,
            ),
            (&self.checkpoints, now.checkpoints, &mut seen.checkpoints),
            (
                &self.checkpoints_failed,
                now.checkpoints_failed,
                &mut seen.checkpoints_failed,
            ),
            (
                &self.wal_writes_failed,
                now.wal_writes_failed,
                &mut seen.wal_writes_failed,
            ),
            (
                &self.blocks_deleted,
                now.blocks_deleted,
                &mut seen.blocks_deleted,
            ),
        ];
        for (counter, total, last) in pairs {
            counter.inc_by(total.saturating_sub(*last));
            *last = (*last).max(total);
        }
    }

    pub(crate) fn ingested(&self, appended: usize, refused: usize) {
        self.ingested.inc_by(appended as u64);
        self.ingested_failures.inc_by(refused as u64);
    }

    /// Records how many samples the load step replayed.
    pub fn replayed(&self, samples: usize) {
        self.replayed.set(samples as i64);
    }
}
