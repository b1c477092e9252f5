//! The ring watcher: follows the ring key in the KV store and publishes an immutable
//! [`RingSnapshot`] that readers load without ever blocking (spec/ring.md §3.8, "ring
//! client update path").
//!
//! Heartbeat-only changes reuse the previous snapshot's token tables
//! ([`RingSnapshot::update`]), so the common update is cheap; a topology change is
//! rebuilt in full (walk table included) by the task that publishes it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use ringkit_kv::{CancellationToken, Client};
use ringkit_ring::{ConfigError, Desc, RingConfig, RingSnapshot};
use tokio::sync::watch;

use crate::store::RingDesc;

/// Follows one ring key and keeps the newest snapshot.
pub struct RingWatcher {
    current: ArcSwap<RingSnapshot>,
    updates: watch::Sender<u64>,
}

impl std::fmt::Debug for RingWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingWatcher")
            .field("instances", &self.current.load().instances_count())
            .finish()
    }
}

impl RingWatcher {
    /// A watcher holding an empty ring until [`RingWatcher::run`] reads the store. Fails
    /// when `cfg` is invalid (see [`RingConfig::validate`]).
    pub fn new(cfg: RingConfig) -> Result<Arc<RingWatcher>, ConfigError> {
        Ok(Arc::new(RingWatcher {
            current: ArcSwap::from_pointee(RingSnapshot::empty(cfg)?),
            updates: watch::Sender::new(0),
        }))
    }

    /// The newest snapshot. Never blocks; the snapshot stays valid while held.
    pub fn snapshot(&self) -> Arc<RingSnapshot> {
        self.current.load_full()
    }

    /// A receiver that changes whenever a new snapshot is published (the value counts
    /// publications).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Publishes the snapshot of `desc` (tombstones are dropped by the snapshot). Every
    /// table a lookup reads is built here, before the snapshot is visible, so readers
    /// never pay for a rebuild; a states-only change reuses the previous tables.
    pub fn publish(&self, desc: Desc) {
        let next = self.current.load().update(desc);
        self.current.store(Arc::new(next));
        self.updates.send_modify(|n| *n += 1);
    }

    /// Reads the key once, then follows it until `cancel` fires. The KV client's watch
    /// reconnects by itself if the store restarts and always delivers the latest value.
    pub async fn run(
        self: Arc<Self>,
        kv: Arc<dyn Client<RingDesc>>,
        key: String,
        cancel: CancellationToken,
    ) {
        match kv.get(&key).await {
            Ok(Some(v)) => self.publish(v.0),
            Ok(None) => {}
            Err(e) => tracing::warn!(%key, error = %e, "ring watcher: initial read failed"),
        }
        let this = Arc::clone(&self);
        kv.watch_key(&key, &cancel, &mut move |value: Option<RingDesc>| {
            this.publish(value.map(|v| v.0).unwrap_or_default());
            true
        })
        .await;
    }
}
