//! Reading a ring without registering in it: [`RingReader`] follows the ring key and keeps
//! the newest [`RingSnapshot`]; [`RingChanges`] waits for the next one.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ringkit_member::Error> {
//! use ringkit_member::{RingReader, Store};
//!
//! let reader = RingReader::open(Store::memory()).await?;
//! println!("{} instances", reader.snapshot().instances_count());
//! reader.close().await;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use ringkit_kv::{CancellationToken, Client};
use ringkit_lifecycle::{RingDesc, RingWatcher};
use ringkit_memberlist::runtime::Memberlist;
use ringkit_ring::{RingConfig, RingSnapshot};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::store::Opened;
use crate::{DEFAULT_RING_KEY, Error, Store};

/// How a [`RingReader`] (or the reading half of a [`crate::Member`]) looks at the ring.
#[derive(Clone, Debug)]
pub struct ReaderBuilder {
    pub(crate) store: Store,
    pub(crate) key: String,
    pub(crate) ring: RingConfig,
}

impl ReaderBuilder {
    /// Reads the ring in `store` under [`DEFAULT_RING_KEY`] with [`RingConfig::default`]
    /// (replication factor 3, no zone awareness, 1 minute heartbeat timeout).
    pub fn new(store: Store) -> ReaderBuilder {
        ReaderBuilder {
            store,
            key: DEFAULT_RING_KEY.to_owned(),
            ring: RingConfig::default(),
        }
    }

    /// The full key of the ring (Loki's ingester ring is `collectors/ring` too; Mimir's
    /// store-gateway ring is `collectors/store-gateway`, for example).
    pub fn key(mut self, key: impl Into<String>) -> ReaderBuilder {
        self.key = key.into();
        self
    }

    /// How lookups treat the ring: replication factor, zone awareness, heartbeat timeout.
    pub fn ring_config(mut self, ring: RingConfig) -> ReaderBuilder {
        self.ring = ring;
        self
    }

    /// Shorter gossip timings for programs on one machine
    /// (see [`crate::MemberBuilder::local_testing`]).
    pub fn local_testing(mut self) -> ReaderBuilder {
        self.store.apply_local_testing();
        self
    }

    /// Opens the store (joining gossip if that is the store), reads the ring once and
    /// starts following it.
    pub async fn open(self) -> Result<RingReader, Error> {
        self.ring.validate().map_err(Error::RingConfig)?;
        let opened = self.store.open().await?;
        RingReader::start(opened, self.key, self.ring).await
    }
}

/// A handle on a ring that is followed in the background: [`RingReader::snapshot`] never
/// blocks. Dropping it stops following (and stops a gossip node without announcing a
/// leave); [`RingReader::close`] leaves gossip cleanly.
pub struct RingReader {
    watcher: Arc<RingWatcher>,
    client: Arc<dyn Client<RingDesc>>,
    key: String,
    node: Option<Memberlist>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RingReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RingReader")
            .field("key", &self.key)
            .field("gossip", &self.node)
            .field("instances", &self.snapshot().instances_count())
            .finish_non_exhaustive()
    }
}

impl RingReader {
    /// Reads the ring in `store` with the defaults of [`ReaderBuilder::new`].
    pub async fn open(store: Store) -> Result<RingReader, Error> {
        ReaderBuilder::new(store).open().await
    }

    /// Options first: key, ring config, local-testing timings.
    pub fn builder(store: Store) -> ReaderBuilder {
        ReaderBuilder::new(store)
    }

    pub(crate) async fn start(
        opened: Opened,
        key: String,
        ring: RingConfig,
    ) -> Result<RingReader, Error> {
        let Opened { client, node } = opened;
        let watcher = match RingWatcher::new(ring) {
            Ok(w) => w,
            Err(e) => {
                if let Some(node) = &node {
                    node.shutdown().await;
                }
                return Err(Error::RingConfig(e));
            }
        };
        // The first read is ours, so a store that cannot be read fails here instead of
        // in a log line; later outages are retried by the watch (and logged).
        let first = match client.get(&key).await {
            Ok(v) => v,
            Err(e) => {
                if let Some(node) = &node {
                    node.shutdown().await;
                }
                return Err(e.into());
            }
        };
        if let Some(RingDesc(desc)) = first {
            watcher.publish(desc);
        }
        let cancel = CancellationToken::new();
        let task = tokio::spawn({
            let (watcher, client, key, cancel) = (
                Arc::clone(&watcher),
                Arc::clone(&client),
                key.clone(),
                cancel.clone(),
            );
            async move {
                client
                    .watch_key(&key, &cancel, &mut |value: Option<RingDesc>| {
                        watcher.publish(value.map(|v| v.0).unwrap_or_default());
                        true
                    })
                    .await;
            }
        });
        Ok(RingReader {
            watcher,
            client,
            key,
            node,
            cancel,
            task: Some(task),
        })
    }

    /// Reads the store now and publishes what it holds.
    pub(crate) async fn refresh(&self) -> Result<(), Error> {
        let desc = self.client.get(&self.key).await?;
        self.watcher.publish(desc.map(|v| v.0).unwrap_or_default());
        Ok(())
    }

    /// The newest snapshot. Never blocks; the snapshot stays valid while held.
    pub fn snapshot(&self) -> Arc<RingSnapshot> {
        self.watcher.snapshot()
    }

    /// A stream of new snapshots, from now on. A snapshot is published for every change
    /// the store reports, heartbeats included.
    pub fn changes(&self) -> RingChanges {
        self.view().changes()
    }

    /// A cheap, cloneable handle that reads the same snapshots: give it to request
    /// handlers (e.g. axum state) while this reader (or the member) stays with `main`
    /// for a clean shutdown.
    pub fn view(&self) -> RingView {
        RingView {
            watcher: Arc::clone(&self.watcher),
            cancel: self.cancel.clone(),
        }
    }

    /// Waits until `ready` holds for the newest snapshot and returns that snapshot, or
    /// `None` if the reader was closed first. Bound it with `tokio::time::timeout`.
    pub async fn wait_for(
        &self,
        mut ready: impl FnMut(&RingSnapshot) -> bool,
    ) -> Option<Arc<RingSnapshot>> {
        let mut changes = self.changes();
        let mut snap = self.snapshot();
        loop {
            if ready(&snap) {
                return Some(snap);
            }
            snap = changes.next().await?;
        }
    }

    /// The key being followed.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The typed store client, for reads and CAS of your own (e.g. `ringkit ring forget`
    /// style operations).
    pub fn client(&self) -> &Arc<dyn Client<RingDesc>> {
        &self.client
    }

    /// The gossip node, when the store is [`Store::Gossip`] (members, health, metrics).
    pub fn gossip(&self) -> Option<&Memberlist> {
        self.node.as_ref()
    }

    /// Stops following the ring and, with gossip, leaves the cluster (bounded by the
    /// node's `leave_timeout`).
    pub async fn close(mut self) {
        self.stop().await;
    }

    pub(crate) async fn stop(&mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "ring watch task failed");
        }
        if let Some(node) = self.node.take() {
            node.leave().await;
        }
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(node) = self.node.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move { node.shutdown().await });
        }
    }
}

/// The snapshots of a [`RingReader`] or [`crate::Member`], shareable across tasks; see
/// [`RingReader::view`]. Keeps the last snapshot readable after the reader closed.
#[derive(Clone, Debug)]
pub struct RingView {
    watcher: Arc<RingWatcher>,
    cancel: CancellationToken,
}

impl RingView {
    /// The newest snapshot. Never blocks.
    pub fn snapshot(&self) -> Arc<RingSnapshot> {
        self.watcher.snapshot()
    }

    /// New snapshots from now on; see [`RingReader::changes`].
    pub fn changes(&self) -> RingChanges {
        RingChanges {
            rx: self.watcher.subscribe(),
            watcher: Arc::clone(&self.watcher),
            cancel: self.cancel.clone(),
        }
    }
}

/// New snapshots as they are published; see [`RingReader::changes`].
#[derive(Debug)]
pub struct RingChanges {
    rx: watch::Receiver<u64>,
    watcher: Arc<RingWatcher>,
    cancel: CancellationToken,
}

impl RingChanges {
    /// Waits for the next snapshot; `None` once the reader (or member) is closed.
    /// Snapshots published while nobody waited are skipped: this returns the newest.
    pub async fn next(&mut self) -> Option<Arc<RingSnapshot>> {
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => None,
            changed = self.rx.changed() => changed.ok().map(|()| self.watcher.snapshot()),
        }
    }
}
