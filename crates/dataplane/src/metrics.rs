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
        m
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
