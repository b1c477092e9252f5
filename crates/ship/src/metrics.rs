//! The shipper's metrics, named as Mimir's ingester exports them so its dashboards and
//! alerts (MimirIngesterHasNotShippedBlocks...) work unchanged.

use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Counters and gauges of block shipping.
#[derive(Clone, Debug, Default)]
pub struct ShipperMetrics {
    pub(crate) dir_syncs: Counter,
    pub(crate) dir_sync_failures: Counter,
    pub(crate) uploads: Counter,
    pub(crate) upload_failures: Counter,
    pub(crate) last_success: Gauge<f64, AtomicU64>,
    pub(crate) oldest_unshipped: Gauge<f64, AtomicU64>,
}

impl ShipperMetrics {
    /// Registers the metrics (counter names without `_total`, which the encoder appends).
    pub fn register(registry: &mut Registry) -> ShipperMetrics {
        let m = ShipperMetrics::default();
        registry.register(
            "cortex_ingester_shipper_dir_syncs",
            "Shipper syncs of the TSDB directories",
            m.dir_syncs.clone(),
        );
        registry.register(
            "cortex_ingester_shipper_dir_sync_failures",
            "Shipper syncs that left at least one block not uploaded",
            m.dir_sync_failures.clone(),
        );
        registry.register(
            "cortex_ingester_shipper_uploads",
            "Block upload attempts (successful ones are uploads minus upload failures)",
            m.uploads.clone(),
        );
        registry.register(
            "cortex_ingester_shipper_upload_failures",
            "Block upload attempts that failed",
            m.upload_failures.clone(),
        );
        registry.register(
            "cortex_ingester_shipper_last_successful_upload_timestamp_seconds",
            "Unix time of the last block upload that completed",
            m.last_success.clone(),
        );
        registry.register(
            "cortex_ingester_oldest_unshipped_block_timestamp_seconds",
            "Creation time (from its ULID) of the oldest local block not yet shipped; 0 when all are",
            m.oldest_unshipped.clone(),
        );
        m
    }

    /// Block upload attempts so far.
    pub fn uploads(&self) -> u64 {
        self.uploads.get()
    }

    /// Failed block upload attempts so far.
    pub fn upload_failures(&self) -> u64 {
        self.upload_failures.get()
    }
}
