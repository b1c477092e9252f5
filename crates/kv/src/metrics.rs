//! Prometheus metrics for KV clients, with dskit's names so existing dashboards work.
//!
//! - `kv_request_duration_seconds` (histogram; labels `operation`, `status_code`, `kv_name`,
//!   `role`, `type`): every call through an [`InstrumentedClient`]. Operation names and
//!   status codes are dskit's: `List`, `GET`, `Delete`, `CAS`, `WatchKey`, `WatchPrefix`;
//!   `200` for success (and for a CAS the caller aborted), `500` for failure.
//! - `kv_cas_attempt_total`, `kv_cas_success_total`, `kv_cas_failure_total` (labels
//!   `kv_name`, `role`, `type`): CAS callback invocations and outcomes. dskit has these only
//!   for memberlist (`memberlist_client_cas_*`); ringkit counts them for every store.
//!
//! Create one [`KvMetrics`] per registry (a metric family must be registered once) and
//! share it between the clients of a process; labels tell the clients apart.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::client::{CasDecision, CasFn, Client, Value, WatchKeyFn, WatchPrefixFn};
use crate::error::Error;

/// Prometheus' default histogram buckets, which dskit uses for this histogram.
const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// dskit's operation names, as the `operation` label.
const OPERATIONS: [&str; 6] = ["List", "GET", "Delete", "CAS", "WatchKey", "WatchPrefix"];

/// Which client a metric is about.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabels {
    /// What the store is for (dskit's `kv_name`, e.g. `ingester-ring`).
    pub kv_name: String,
    /// `primary` or `secondary` (dskit's roles in a multi store).
    pub role: String,
    /// Store kind: `inmemory`, `etcd`, `memberlist`, `multi`.
    #[prometheus(flatten)]
    pub store: StoreType,
}

/// The `type` label (a Rust keyword, hence the wrapper).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreType {
    r#type: String,
}

impl StoreType {
    /// A store kind (`inmemory`, `etcd`, ...).
    pub fn new(kind: impl Into<String>) -> Self {
        StoreType {
            r#type: kind.into(),
        }
    }
}

impl ClientLabels {
    /// Labels for a client of kind `store` named `kv_name` playing `role`.
    pub fn new(
        kv_name: impl Into<String>,
        role: impl Into<String>,
        store: impl Into<String>,
    ) -> Self {
        ClientLabels {
            kv_name: kv_name.into(),
            role: role.into(),
            store: StoreType::new(store),
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    operation: &'static str,
    status_code: &'static str,
    #[prometheus(flatten)]
    client: ClientLabels,
}

/// The metric families of KV clients, registered once per registry.
#[derive(Debug, Clone)]
pub struct KvMetrics {
    request_duration: Family<RequestLabels, Histogram, fn() -> Histogram>,
    cas_attempts: Family<ClientLabels, Counter>,
    cas_successes: Family<ClientLabels, Counter>,
    cas_failures: Family<ClientLabels, Counter>,
}

fn new_request_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

impl KvMetrics {
    /// Creates the families and registers them into `registry`.
    pub fn register(registry: &mut Registry) -> Arc<Self> {
        let m = KvMetrics {
            request_duration: Family::new_with_constructor(new_request_histogram),
            cas_attempts: Family::default(),
            cas_successes: Family::default(),
            cas_failures: Family::default(),
        };
        registry.register(
            "kv_request_duration_seconds",
            "Time spent on kv store requests.",
            m.request_duration.clone(),
        );
        registry.register(
            "kv_cas_attempt",
            "Attempted CAS operations (callback invocations).",
            m.cas_attempts.clone(),
        );
        registry.register(
            "kv_cas_success",
            "Successful CAS operations.",
            m.cas_successes.clone(),
        );
        registry.register(
            "kv_cas_failure",
            "Failed CAS operations (aborts by the caller excluded).",
            m.cas_failures.clone(),
        );
        Arc::new(m)
    }

    /// Also exposes the request histogram as `{prefix}kv_request_duration_seconds`,
    /// the same samples under an application's name: Mimir exports
    /// `cortex_kv_request_duration_seconds`, which its mixin's alerts, recording rules
    /// and dashboards read. Costs nothing per request (one family, two names).
    pub fn register_alias(&self, registry: &mut Registry, prefix: &str) {
        registry.register(
            format!("{prefix}kv_request_duration_seconds"),
            "Time spent on kv store requests.",
            self.request_duration.clone(),
        );
    }

    fn observe(&self, client: &ClientLabels, operation: &'static str, ok: bool, start: Instant) {
        let labels = RequestLabels {
            operation,
            status_code: if ok { "200" } else { "500" },
            client: client.clone(),
        };
        self.request_duration
            .get_or_create(&labels)
            .observe(start.elapsed().as_secs_f64());
    }
}

/// Wraps a client and records [`KvMetrics`] for every call.
pub struct InstrumentedClient<C> {
    inner: C,
    metrics: Arc<KvMetrics>,
    labels: ClientLabels,
}

impl<C> std::fmt::Debug for InstrumentedClient<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstrumentedClient")
            .field("labels", &self.labels)
            .finish()
    }
}

impl<C> InstrumentedClient<C> {
    /// Wraps `inner`, labelling its metrics with `labels`. The success series of
    /// every operation are created at once (at zero), so a dashboard or alert finds
    /// this client's series before its first call completes (a watch completes only
    /// when it ends).
    pub fn new(inner: C, metrics: Arc<KvMetrics>, labels: ClientLabels) -> Self {
        for operation in OPERATIONS {
            let _ = metrics.request_duration.get_or_create(&RequestLabels {
                operation,
                status_code: "200",
                client: labels.clone(),
            });
        }
        InstrumentedClient {
            inner,
            metrics,
            labels,
        }
    }
}

#[async_trait]
impl<V: Value, C: Client<V>> Client<V> for InstrumentedClient<C> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let start = Instant::now();
        let r = self.inner.list(prefix).await;
        self.metrics.observe(&self.labels, "List", r.is_ok(), start);
        r
    }
    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        let start = Instant::now();
        let r = self.inner.get(key).await;
        self.metrics.observe(&self.labels, "GET", r.is_ok(), start);
        r
    }
    async fn delete(&self, key: &str) -> Result<(), Error> {
        let start = Instant::now();
        let r = self.inner.delete(key).await;
        self.metrics
            .observe(&self.labels, "Delete", r.is_ok(), start);
        r
    }
    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        let start = Instant::now();
        let attempts = self
            .metrics
            .cas_attempts
            .get_or_create(&self.labels)
            .clone();
        let mut counted = |v: Option<V>| -> CasDecision<V> {
            attempts.inc();
            f(v)
        };
        let r = self.inner.cas(key, &mut counted).await;
        let ok = match &r {
            Ok(()) => {
                self.metrics.cas_successes.get_or_create(&self.labels).inc();
                true
            }
            Err(e) if e.is_aborted() => true,
            Err(_) => {
                self.metrics.cas_failures.get_or_create(&self.labels).inc();
                false
            }
        };
        self.metrics.observe(&self.labels, "CAS", ok, start);
        r
    }
    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        let start = Instant::now();
        self.inner.watch_key(key, cancel, f).await;
        self.metrics.observe(&self.labels, "WatchKey", true, start);
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        let start = Instant::now();
        self.inner.watch_prefix(prefix, cancel, f).await;
        self.metrics
            .observe(&self.labels, "WatchPrefix", true, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientOptions;
    use crate::codec::StringCodec;
    use crate::memory::MemoryStore;
    use prometheus_client::encoding::text::encode;

    fn metrics_alias<C>(registry: &mut Registry, c: &InstrumentedClient<C>) {
        c.metrics.register_alias(registry, "cortex_");
    }

    #[tokio::test]
    async fn requests_are_recorded_with_dskit_names_and_labels() {
        let mut registry = Registry::default();
        let metrics = KvMetrics::register(&mut registry);
        let inner =
            MemoryStore::new().client::<String>(Arc::new(StringCodec), ClientOptions::default());
        let c = InstrumentedClient::new(
            inner,
            metrics,
            ClientLabels::new("ring", "primary", "inmemory"),
        );
        c.cas("k", &mut |_| CasDecision::Write("v".to_owned()))
            .await
            .unwrap();
        let _ = c.cas("k", &mut |_| CasDecision::Abort("stop".into())).await;
        c.get("k").await.unwrap();
        metrics_alias(&mut registry, &c);
        let mut text = String::new();
        encode(&mut text, &registry).unwrap();
        let labels = "kv_name=\"ring\",role=\"primary\",type=\"inmemory\"";
        assert!(
            text.contains(&format!(
                "cortex_kv_request_duration_seconds_count{{operation=\"CAS\",status_code=\"200\",{labels}}} 2"
            )),
            "the alias shows the same samples:\n{text}"
        );
        for want in [
            format!(
                "kv_request_duration_seconds_count{{operation=\"CAS\",status_code=\"200\",{labels}}} 2"
            ),
            format!(
                "kv_request_duration_seconds_count{{operation=\"GET\",status_code=\"200\",{labels}}} 1"
            ),
            format!("kv_cas_attempt_total{{{labels}}} 2"),
            format!("kv_cas_success_total{{{labels}}} 1"),
        ] {
            assert!(text.contains(&want), "missing {want:?} in\n{text}");
        }
    }
}
