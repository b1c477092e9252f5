//! The multi store: one primary, other stores as mirrors, switchable at run time.
//!
//! This is how operators migrate a ring between stores (say etcd to memberlist) without
//! downtime (`spec/memberlist.md` §3.4): reads, deletes and watches go to the current
//! primary; a successful CAS on the primary is mirrored, when mirroring is on, to every
//! other store with a one-shot write bounded by `mirror_timeout` (failures are logged and
//! counted, never returned). Switching the primary ends the watches running on the old one,
//! which restart on the new one and begin with its current value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{CasDecision, CasFn, Client, Value, WatchKeyFn, WatchPrefixFn};
use crate::error::Error;

/// Configuration of a multi store (dskit `multi.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MultiConfig {
    /// Primary store name (`--multi.primary`, YAML `primary`; default empty, required).
    pub primary: String,
    /// Secondary store name (`--multi.secondary`, YAML `secondary`; default empty,
    /// required, different from the primary).
    pub secondary: String,
    /// Mirror CAS results to the secondary (`--multi.mirror-enabled`, YAML
    /// `mirror_enabled`; default false). Turn on before switching the primary.
    pub mirror_enabled: bool,
    /// Bound on one mirror write (`--multi.mirror-timeout`, YAML `mirror_timeout`;
    /// default 2 s). A slow secondary delays the CAS caller by at most this.
    pub mirror_timeout: Duration,
}

impl Default for MultiConfig {
    fn default() -> Self {
        MultiConfig {
            primary: String::new(),
            secondary: String::new(),
            mirror_enabled: false,
            // dskit's default for multi.mirror-timeout.
            mirror_timeout: Duration::from_secs(2),
        }
    }
}

impl MultiConfig {
    /// Checks the rules dskit enforces: both names set, neither `multi`, and different.
    pub fn validate(&self) -> Result<(), Error> {
        if self.primary.is_empty() || self.secondary.is_empty() {
            return Err(Error::Config(
                "multi: primary or secondary store not set".into(),
            ));
        }
        if self.primary == "multi" || self.secondary == "multi" {
            return Err(Error::Config(
                "multi: primary and secondary stores cannot be multi stores".into(),
            ));
        }
        if self.primary == self.secondary {
            return Err(Error::Config(
                "multi: primary and secondary stores must be different".into(),
            ));
        }
        Ok(())
    }
}

/// Run-time changes (dskit's runtime config `multi_kv_config`): `None` leaves a setting
/// as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MultiRuntimeConfig {
    /// New primary store name.
    pub primary: Option<String>,
    /// Mirroring on or off.
    pub mirror_enabled: Option<bool>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabel {
    store: String,
}

#[derive(Debug, Clone, Default)]
struct MultiMetrics {
    primary_store: Family<StoreLabel, Gauge>,
    mirror_enabled: Gauge,
    mirror_writes: Counter,
    mirror_write_errors: Counter,
}

impl MultiMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "multikv_primary_store",
            "Selected primary KV store",
            self.primary_store.clone(),
        );
        registry.register(
            "multikv_mirror_enabled",
            "Is mirroring to secondary store enabled",
            self.mirror_enabled.clone(),
        );
        registry.register(
            "multikv_mirror_writes",
            "Number of mirror-writes to secondary store",
            self.mirror_writes.clone(),
        );
        registry.register(
            "multikv_mirror_write_errors",
            "Number of failures to mirror-write to secondary store",
            self.mirror_write_errors.clone(),
        );
    }
}

/// A named store of a multi store.
pub struct NamedClient<V> {
    /// Store name as used in the config (`etcd`, `memberlist`, ...).
    pub name: String,
    /// The store's client.
    pub client: Arc<dyn Client<V>>,
}

/// Forwards to a primary store and mirrors writes to the others (see the module doc).
pub struct MultiClient<V> {
    clients: Vec<NamedClient<V>>,
    primary: AtomicUsize,
    mirror_enabled: AtomicBool,
    mirror_timeout: Duration,
    /// Bumped on every primary switch; watches restart when it changes.
    switch_tx: watch::Sender<u64>,
    metrics: MultiMetrics,
}

impl<V: Value> std::fmt::Debug for MultiClient<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MultiClient")
            .field(
                "stores",
                &self.clients.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("primary", &self.primary_name())
            .field("mirror_enabled", &self.mirror_enabled())
            .finish()
    }
}

impl<V: Value> MultiClient<V> {
    /// A multi store over `primary` and `secondary`, named as in `config`. Metrics go to
    /// `registry` when given.
    pub fn new(
        config: &MultiConfig,
        primary: Arc<dyn Client<V>>,
        secondary: Arc<dyn Client<V>>,
        registry: Option<&mut Registry>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let metrics = MultiMetrics::default();
        if let Some(r) = registry {
            metrics.register(r);
        }
        let m = MultiClient {
            clients: vec![
                NamedClient {
                    name: config.primary.clone(),
                    client: primary,
                },
                NamedClient {
                    name: config.secondary.clone(),
                    client: secondary,
                },
            ],
            primary: AtomicUsize::new(0),
            mirror_enabled: AtomicBool::new(config.mirror_enabled),
            mirror_timeout: config.mirror_timeout,
            switch_tx: watch::Sender::new(0),
            metrics,
        };
        m.update_primary_gauge();
        m.metrics
            .mirror_enabled
            .set(i64::from(config.mirror_enabled));
        Ok(m)
    }

    /// Name of the current primary store.
    pub fn primary_name(&self) -> &str {
        &self.clients[self.primary.load(Ordering::Acquire)].name
    }

    /// Whether CAS results are mirrored.
    pub fn mirror_enabled(&self) -> bool {
        self.mirror_enabled.load(Ordering::Acquire)
    }

    /// Turns mirroring on or off.
    pub fn set_mirror_enabled(&self, enabled: bool) {
        let old = self.mirror_enabled.swap(enabled, Ordering::AcqRel);
        if old != enabled {
            tracing::info!(enabled, "multikv: toggled mirroring");
        }
        self.metrics.mirror_enabled.set(i64::from(enabled));
    }

    /// Makes the store named `name` the primary. Returns whether it changed; running
    /// watches move to the new primary. Unknown names are [`Error::Config`].
    pub fn set_primary(&self, name: &str) -> Result<bool, Error> {
        let idx = self
            .clients
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| Error::Config(format!("multi: KV store {name:?} not found")))?;
        let prev = self.primary.swap(idx, Ordering::AcqRel);
        if prev == idx {
            return Ok(false);
        }
        tracing::info!(primary = name, "multikv: switched primary KV store");
        self.update_primary_gauge();
        self.switch_tx.send_modify(|g| *g += 1);
        Ok(true)
    }

    /// Applies a run-time config change.
    pub fn apply(&self, change: &MultiRuntimeConfig) -> Result<(), Error> {
        if let Some(enabled) = change.mirror_enabled {
            self.set_mirror_enabled(enabled);
        }
        if let Some(primary) = change.primary.as_deref().filter(|p| !p.is_empty()) {
            self.set_primary(primary)?;
        }
        Ok(())
    }

    /// Applies every change received on `changes` until the sender is dropped or `cancel`
    /// fires (run it in a task). Bad changes are logged and skipped.
    pub async fn follow(
        &self,
        mut changes: tokio::sync::mpsc::Receiver<MultiRuntimeConfig>,
        cancel: &CancellationToken,
    ) {
        loop {
            let change = tokio::select! {
                c = changes.recv() => c,
                _ = cancel.cancelled() => return,
            };
            let Some(change) = change else { return };
            if let Err(e) = self.apply(&change) {
                tracing::error!(error = %e, "multikv: failed to apply runtime config");
            }
        }
    }

    fn update_primary_gauge(&self) {
        let p = self.primary.load(Ordering::Acquire);
        for (i, c) in self.clients.iter().enumerate() {
            self.metrics
                .primary_store
                .get_or_create(&StoreLabel {
                    store: c.name.clone(),
                })
                .set(i64::from(i == p));
        }
    }

    fn current(&self) -> (usize, &NamedClient<V>) {
        let p = self.primary.load(Ordering::Acquire);
        (p, &self.clients[p])
    }

    async fn mirror(&self, primary: usize, key: &str, value: &V) {
        for (i, c) in self.clients.iter().enumerate() {
            if i == primary {
                continue;
            }
            self.metrics.mirror_writes.inc();
            let mut once = |_: Option<V>| CasDecision::Write(value.clone());
            let r = tokio::time::timeout(self.mirror_timeout, c.client.cas(key, &mut once)).await;
            let err = match r {
                Ok(Ok(())) => {
                    tracing::debug!(key, secondary = %c.name, "multikv: mirrored value");
                    continue;
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("timed out after {:?}", self.mirror_timeout),
            };
            self.metrics.mirror_write_errors.inc();
            tracing::warn!(key, secondary = %c.name, error = %err, "multikv: failed to mirror value to secondary store");
        }
    }
}

#[async_trait]
impl<V: Value> Client<V> for MultiClient<V> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.current().1.client.list(prefix).await
    }
    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        self.current().1.client.get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.current().1.client.delete(key).await
    }
    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        let (idx, primary) = self.current();
        // The value of the attempt that won, if it wrote; earlier attempts' values are
        // overwritten by later calls of the callback.
        let mut written: Option<V> = None;
        let mut capture = |current: Option<V>| {
            let d = f(current);
            written = match &d {
                CasDecision::Write(v) => Some(v.clone()),
                _ => None,
            };
            d
        };
        primary.client.cas(key, &mut capture).await?;
        if let Some(v) = written
            && self.mirror_enabled()
        {
            self.mirror(idx, key, &v).await;
        }
        Ok(())
    }
    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        let mut switches = self.switch_tx.subscribe();
        loop {
            switches.borrow_and_update();
            let client = self.current().1.client.clone();
            let switched = tokio::select! {
                _ = client.watch_key(key, cancel, f) => false,
                r = switches.changed() => r.is_ok(),
            };
            if !switched || cancel.is_cancelled() {
                return;
            }
        }
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        let mut switches = self.switch_tx.subscribe();
        loop {
            switches.borrow_and_update();
            let client = self.current().1.client.clone();
            let switched = tokio::select! {
                _ = client.watch_prefix(prefix, cancel, f) => false,
                r = switches.changed() => r.is_ok(),
            };
            if !switched || cancel.is_cancelled() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientOptions;
    use crate::codec::StringCodec;
    use crate::memory::MemoryStore;
    use prometheus_client::encoding::text::encode;
    use tokio::sync::mpsc;

    fn string_client(store: &MemoryStore, options: ClientOptions) -> Arc<dyn Client<String>> {
        Arc::new(store.client::<String>(Arc::new(StringCodec), options))
    }

    fn config(mirror: bool) -> MultiConfig {
        MultiConfig {
            primary: "a".into(),
            secondary: "b".into(),
            mirror_enabled: mirror,
            ..MultiConfig::default()
        }
    }

    fn write(v: &str) -> impl FnMut(Option<String>) -> CasDecision<String> + Send + '_ {
        move |_| CasDecision::Write(v.to_owned())
    }

    fn metrics_text(registry: &Registry) -> String {
        let mut out = String::new();
        encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn config_rules_match_dskits() {
        assert!(MultiConfig::default().validate().is_err());
        let mut c = config(false);
        c.validate().unwrap();
        c.secondary = "a".into();
        assert!(c.validate().is_err());
        c.secondary = "multi".into();
        assert!(c.validate().is_err());
    }

    #[tokio::test]
    async fn mirroring_copies_cas_results_to_the_secondary_and_counts_them() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        let mut registry = Registry::default();
        let multi = MultiClient::new(
            &config(true),
            string_client(&a, ClientOptions::default()),
            string_client(&b, ClientOptions::default()),
            Some(&mut registry),
        )
        .unwrap();
        multi.cas("k", &mut write("v1")).await.unwrap();
        let secondary = string_client(&b, ClientOptions::default());
        assert_eq!(secondary.get("k").await.unwrap().as_deref(), Some("v1"));
        // No write, no mirror.
        multi
            .cas("k", &mut |_| CasDecision::Unchanged)
            .await
            .unwrap();
        let text = metrics_text(&registry);
        assert!(text.contains("multikv_mirror_writes_total 1\n"), "{text}");
        assert!(
            text.contains("multikv_mirror_write_errors_total 0\n"),
            "{text}"
        );
        assert!(text.contains("multikv_mirror_enabled 1\n"), "{text}");
        assert!(
            text.contains("multikv_primary_store{store=\"a\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("multikv_primary_store{store=\"b\"} 0\n"),
            "{text}"
        );

        multi.set_mirror_enabled(false);
        multi.cas("k", &mut write("v2")).await.unwrap();
        assert_eq!(secondary.get("k").await.unwrap().as_deref(), Some("v1"));
        assert!(metrics_text(&registry).contains("multikv_mirror_enabled 0\n"));
    }

    #[tokio::test]
    async fn mirror_failures_are_counted_not_returned() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        let mut registry = Registry::default();
        let tiny = ClientOptions {
            max_value_size: 1,
            ..ClientOptions::default()
        };
        let multi = MultiClient::new(
            &config(true),
            string_client(&a, ClientOptions::default()),
            string_client(&b, tiny),
            Some(&mut registry),
        )
        .unwrap();
        multi.cas("k", &mut write("too big")).await.unwrap();
        assert_eq!(multi.get("k").await.unwrap().as_deref(), Some("too big"));
        assert!(metrics_text(&registry).contains("multikv_mirror_write_errors_total 1\n"));
    }

    #[tokio::test]
    async fn switching_primary_moves_running_watches_and_reads() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        let ca = string_client(&a, ClientOptions::default());
        let cb = string_client(&b, ClientOptions::default());
        ca.cas("k", &mut write("from a")).await.unwrap();
        cb.cas("k", &mut write("from b")).await.unwrap();
        let multi = Arc::new(MultiClient::new(&config(false), ca, cb.clone(), None).unwrap());

        let (tx, mut rx) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let watcher = {
            let (multi, cancel) = (multi.clone(), cancel.clone());
            tokio::spawn(async move {
                multi
                    .watch_key("k", &cancel, &mut |v| tx.send(v).is_ok())
                    .await
            })
        };
        assert_eq!(rx.recv().await.flatten().as_deref(), Some("from a"));
        assert!(multi.set_primary("b").unwrap());
        assert!(!multi.set_primary("b").unwrap(), "already primary");
        assert!(multi.set_primary("nope").is_err());
        assert_eq!(multi.primary_name(), "b");
        assert_eq!(rx.recv().await.flatten().as_deref(), Some("from b"));
        assert_eq!(multi.get("k").await.unwrap().as_deref(), Some("from b"));
        cb.cas("k", &mut write("b again")).await.unwrap();
        assert_eq!(rx.recv().await.flatten().as_deref(), Some("b again"));
        cancel.cancel();
        watcher.await.unwrap();
    }

    #[tokio::test]
    async fn runtime_config_channel_switches_primary_and_mirroring() {
        let (a, b) = (MemoryStore::new(), MemoryStore::new());
        let multi = MultiClient::new(
            &config(false),
            string_client(&a, ClientOptions::default()),
            string_client(&b, ClientOptions::default()),
            None,
        )
        .unwrap();
        let (tx, rx) = mpsc::channel(4);
        tx.send(MultiRuntimeConfig {
            primary: Some("b".into()),
            mirror_enabled: Some(true),
        })
        .await
        .unwrap();
        drop(tx);
        multi.follow(rx, &CancellationToken::new()).await;
        assert_eq!(multi.primary_name(), "b");
        assert!(multi.mirror_enabled());
    }
}
