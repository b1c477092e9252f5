//! [`GossipKv`]: the gossip store shared by a process, and [`GossipClient`], its typed
//! [`ringkit_kv::Client`].
//!
//! The store is a [`KvState`] behind a mutex (never held across an `.await`), a watch
//! channel carrying the latest revision (watchers re-read what changed, so bursts
//! coalesce but the final value is never missed), and a channel of encoded
//! `KeyValuePair`s to broadcast, drained by the memberlist node
//! ([`crate::runtime::Memberlist`]). Without a node the store works as a local store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use rand::RngExt;
use ringkit_kv::{
    CancellationToken, CasDecision, CasFn, Client, ClientOptions, Codec, Error, Mergeable, Value,
    WatchKeyFn, WatchPrefixFn,
};
use tokio::sync::{mpsc, watch};

use super::ops::{MergeOps, ValueOps};
use super::state::{Applied, KeyInfo, KvConfig, KvState, ReadValue, Rejected};
use crate::swim::{Origin, UserBroadcast};

/// Default capacity of the channel from the store to the memberlist node (dskit's
/// `-memberlist.processed-messages-queue-size` default): changes that find it full
/// are dropped and counted ([`GossipKv::broadcasts_dropped`]).
pub const DEFAULT_BROADCAST_CHANNEL_CAPACITY: usize = 1024;

/// dskit's `memberlist_client_*` metrics of the store (`spec/memberlist.md` §2.16).
///
/// The push/pull counters count as dskit's code does (not as its help texts read):
/// `state_pulls` when a peer pulls our state (we answer with `LocalState`),
/// `state_pushes` when a peer's state is pushed to us (`MergeRemoteState`), so dskit
/// dashboards read the same for both.
#[derive(Debug, Default)]
pub struct KvStoreMetrics {
    /// Broadcast messages received.
    pub received_broadcasts: Counter,
    /// Bytes of broadcast messages received.
    pub received_broadcasts_bytes: Counter,
    /// Received broadcasts that were invalid (empty key, unknown codec, bad value).
    pub received_broadcasts_invalid: Counter,
    /// Our full state sent to a peer (dskit counts this in `LocalState`).
    pub state_pulls: Counter,
    /// Bytes of our full state sent.
    pub state_pulls_bytes: Counter,
    /// A peer's full state received and merged (dskit: `MergeRemoteState`).
    pub state_pushes: Counter,
    /// Bytes of peers' full states received.
    pub state_pushes_bytes: Counter,
    /// CAS attempts.
    pub cas_attempt: Counter,
    /// CAS successes.
    pub cas_success: Counter,
    /// CAS failures.
    pub cas_failure: Counter,
    /// Keys in the store.
    pub kv_store_count: Gauge,
}

impl KvStoreMetrics {
    /// Registers the store-wide metrics under `memberlist_client_` names. The per-key
    /// tombstone metrics need the store: [`GossipKv::register_metrics`] registers both.
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("memberlist_client");
        let counters: [(&str, &str, &Counter); 10] = [
            (
                "received_broadcasts",
                "Number of received broadcast user messages",
                &self.received_broadcasts,
            ),
            (
                "received_broadcasts_bytes",
                "Total size of received broadcast user messages",
                &self.received_broadcasts_bytes,
            ),
            (
                "received_broadcasts_invalid",
                "Number of received broadcast user messages that were invalid",
                &self.received_broadcasts_invalid,
            ),
            (
                "state_pulls",
                "How many times a peer pulled this node's full state (counted as dskit does, when the state is sent)",
                &self.state_pulls,
            ),
            (
                "state_pulls_bytes",
                "Total size of full states sent to peers",
                &self.state_pulls_bytes,
            ),
            (
                "state_pushes",
                "How many times a peer pushed its full state to this node (counted as dskit does, when it is merged)",
                &self.state_pushes,
            ),
            (
                "state_pushes_bytes",
                "Total size of full states received from peers",
                &self.state_pushes_bytes,
            ),
            ("cas_attempt", "Attempted CAS operations", &self.cas_attempt),
            (
                "cas_success",
                "Successful CAS operations",
                &self.cas_success,
            ),
            ("cas_failure", "Failed CAS operations", &self.cas_failure),
        ];
        for (name, help, c) in counters {
            r.register(name, help, c.clone());
        }
        r.register(
            "kv_store_count",
            "Number of values in KV Store",
            self.kv_store_count.clone(),
        );
    }
}

/// Scrape-time per-key tombstone metrics of a store, with dskit's names and `key` label.
#[derive(Debug)]
struct TombstoneCollector {
    kv: std::sync::Weak<Shared>,
}

impl Collector for TombstoneCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let per_key = self
            .kv
            .upgrade()
            .map(|shared| GossipKv { shared }.lock().tombstones())
            .unwrap_or_default();
        let mut m = encoder.encode_descriptor(
            "memberlist_client_kv_store_value_tombstones",
            "Number of tombstones currently present in KV store values",
            None,
            MetricType::Gauge,
        )?;
        for (key, t) in &per_key {
            let labels = [("key", key.as_str())];
            ConstGauge::new(i64::try_from(t.present).unwrap_or(i64::MAX))
                .encode(m.encode_family(&labels)?)?;
        }
        // prometheus-client appends `_total` to counter names.
        let mut m = encoder.encode_descriptor(
            "memberlist_client_kv_store_value_tombstones_removed",
            "Total number of tombstones which have been removed from KV store values",
            None,
            MetricType::Counter,
        )?;
        for (key, t) in &per_key {
            let labels = [("key", key.as_str())];
            ConstCounter::new(t.removed).encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The clock of the store; tests inject their own.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// What the store's one lock guards: the state and the broadcast channel, so a change
/// is applied and queued for gossip in one critical section (and in revision order).
struct Locked {
    kv: KvState,
    broadcasts: Option<mpsc::Sender<UserBroadcast>>,
}

impl std::ops::Deref for Locked {
    type Target = KvState;
    fn deref(&self) -> &KvState {
        &self.kv
    }
}

impl std::ops::DerefMut for Locked {
    fn deref_mut(&mut self) -> &mut KvState {
        &mut self.kv
    }
}

struct Shared {
    state: Mutex<Locked>,
    revision_tx: watch::Sender<u64>,
    clock: Clock,
    metrics: Arc<KvStoreMetrics>,
    /// Changes dropped because the broadcast channel was full.
    broadcasts_dropped: AtomicU64,
}

/// A process's gossip key-value store. Clones share it.
#[derive(Clone)]
pub struct GossipKv {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for GossipKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("GossipKv")
            .field("keys", &st.len())
            .field("revision", &st.revision())
            .finish()
    }
}

impl GossipKv {
    /// An empty store using the system clock.
    pub fn new(config: KvConfig) -> Self {
        Self::with_clock(config, Arc::new(SystemTime::now))
    }

    /// An empty store reading time from `clock`.
    pub fn with_clock(config: KvConfig, clock: Clock) -> Self {
        GossipKv {
            shared: Arc::new(Shared {
                state: Mutex::new(Locked {
                    kv: KvState::new(config),
                    broadcasts: None,
                }),
                revision_tx: watch::Sender::new(0),
                clock,
                metrics: Arc::new(KvStoreMetrics::default()),
                broadcasts_dropped: AtomicU64::new(0),
            }),
        }
    }

    /// The store's metrics (register them with [`GossipKv::register_metrics`]).
    pub fn metrics(&self) -> &Arc<KvStoreMetrics> {
        &self.shared.metrics
    }

    /// Registers the store's `memberlist_client_*` metrics, per-key ones included.
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.shared.metrics.register(registry);
        registry.register_collector(Box::new(TombstoneCollector {
            kv: Arc::downgrade(&self.shared),
        }));
    }

    fn lock(&self) -> MutexGuard<'_, Locked> {
        // Every critical section leaves the state consistent (single map operations),
        // so a poisoned lock is still usable.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the locked state (read-only views for pages and tests).
    pub fn with_state<T>(&self, f: impl FnOnce(&KvState) -> T) -> T {
        f(&self.lock())
    }

    fn now(&self) -> SystemTime {
        (self.shared.clock)()
    }

    /// Starts a new broadcast channel holding at most `capacity` changes: every change
    /// made or learnt from now on is sent there as an encoded `KeyValuePair` with what
    /// it covers (the memberlist node drains it into its queues). A change that finds
    /// the channel full is dropped and counted in [`GossipKv::broadcasts_dropped`]
    /// (dskit's `messages_to_broadcast_dropped_total`); peers still get it through
    /// push/pull.
    pub fn subscribe_broadcasts(&self, capacity: usize) -> mpsc::Receiver<UserBroadcast> {
        let (tx, rx) = mpsc::channel(capacity.clamp(1, usize::MAX >> 4));
        self.lock().broadcasts = Some(tx);
        rx
    }

    /// Changes dropped because the broadcast channel was full.
    pub fn broadcasts_dropped(&self) -> u64 {
        self.shared.broadcasts_dropped.load(Ordering::Relaxed)
    }

    /// A typed client for mergeable values of `codec` (registers the codec's merge).
    /// Fails when the codec id is already registered for another value type.
    pub fn client<V: Mergeable>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Result<GossipClient<V>, Error> {
        let ops: Arc<dyn ValueOps> = Arc::new(MergeOps::new(codec.clone()));
        if !self.lock().register(ops.clone()) {
            return Err(Error::Config(format!(
                "codec {:?} is already registered for another value type",
                codec.id()
            )));
        }
        Ok(GossipClient {
            kv: self.clone(),
            codec,
            ops: Some(ops),
            options,
        })
    }

    /// A client that reads and writes whole values of any type, without merging: for
    /// tools that copy values and for values no peer merges. Its writes replace the
    /// stored value (and are broadcast whole).
    pub fn raw_client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> GossipClient<V> {
        GossipClient {
            kv: self.clone(),
            codec,
            ops: None,
            options,
        }
    }

    /// Keys with version, codec, size (for the `/memberlist` page).
    pub fn describe(&self) -> Vec<KeyInfo> {
        self.lock().describe()
    }

    /// Codec id and full encoded value of `key`.
    pub fn encoded(&self, key: &str) -> Option<(String, Vec<u8>)> {
        self.lock().encoded(key)
    }

    /// Push/pull user state (dskit `LocalState`): counted as a pull, as dskit does.
    pub fn local_state(&self) -> Vec<u8> {
        let state = self.lock().local_state();
        self.shared.metrics.state_pulls.inc();
        self.shared
            .metrics
            .state_pulls_bytes
            .inc_by(state.len() as u64);
        state
    }

    /// A broadcast user message from a peer (dskit `NotifyMsg`): merged, and only the
    /// change gossiped on (as the message's own bytes when it is exactly the message).
    pub fn notify_msg(&self, bytes: &[u8]) {
        self.notify_msg_owned(bytes.to_vec());
    }

    /// [`GossipKv::notify_msg`] for a message the caller owns (the node's receive
    /// path): when the change to gossip on is exactly the message, the same buffer is
    /// queued for gossip.
    pub fn notify_msg_owned(&self, bytes: Vec<u8>) {
        if let Err(reason) = self.receive_broadcast(bytes) {
            tracing::debug!(?reason, "dropping invalid KV broadcast");
        }
    }

    /// [`GossipKv::notify_msg_owned`] that says why a message was dropped (counted
    /// as invalid), so the caller, who knows the sender, can tell the operator.
    pub(crate) fn receive_broadcast(&self, bytes: Vec<u8>) -> Result<(), Rejected> {
        let m = &self.shared.metrics;
        m.received_broadcasts.inc();
        m.received_broadcasts_bytes.inc_by(bytes.len() as u64);
        let mut st = self.lock();
        match st.receive_message_clocked(bytes, &|| self.now()) {
            Ok(a) => {
                self.publish_locked(st, Origin::Relayed, std::iter::once(a));
                Ok(())
            }
            Err(reason) => {
                drop(st);
                m.received_broadcasts_invalid.inc();
                Err(reason)
            }
        }
    }

    /// Push/pull user state from a peer (dskit `MergeRemoteState`): counted as a
    /// push, as dskit does.
    pub fn merge_remote_state(&self, state: &[u8]) {
        let m = &self.shared.metrics;
        m.state_pushes.inc();
        m.state_pushes_bytes.inc_by(state.len() as u64);
        let now = self.now();
        let (changes, rejected) = self.lock().receive_state(state, now);
        if rejected > 0 {
            tracing::debug!(rejected, "push/pull state had pairs we could not merge");
        }
        self.publish(Origin::Relayed, changes);
    }

    /// Drops deleted keys past the obsolete-entries timeout (call periodically).
    pub fn expire(&self) -> usize {
        let now = self.now();
        let mut st = self.lock();
        let n = st.expire(now);
        self.shared.metrics.kv_store_count.set(st.len() as i64);
        n
    }

    /// Sends broadcasts (ours or relayed, by `origin`) and wakes watchers for applied
    /// changes.
    fn publish(&self, origin: Origin, applied: impl IntoIterator<Item = Applied>) {
        self.publish_locked(self.lock(), origin, applied);
    }

    /// [`GossipKv::publish`] for a caller that holds the state lock: changes are queued
    /// for gossip and, when anything changed, the store gauges read under it, then it is
    /// released before watchers are woken.
    fn publish_locked(
        &self,
        mut st: MutexGuard<'_, Locked>,
        origin: Origin,
        applied: impl IntoIterator<Item = Applied>,
    ) {
        let m = &self.shared.metrics;
        let mut latest = None;
        for a in applied {
            if let Applied::Changed {
                revision,
                broadcast,
                cover,
            } = a
            {
                latest = Some(revision);
                let (Some(tx), Some(b)) = (st.broadcasts.as_ref(), broadcast) else {
                    continue;
                };
                let b = UserBroadcast {
                    bytes: b.into_bytes(),
                    origin,
                    cover,
                };
                match tx.try_send(b) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        self.shared
                            .broadcasts_dropped
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    // The node stopped draining: stop queueing.
                    Err(mpsc::error::TrySendError::Closed(_)) => st.broadcasts = None,
                }
            }
        }
        let Some(rev) = latest else {
            return; // old news: nothing to count or wake
        };
        m.kv_store_count.set(st.len() as i64);
        drop(st);
        // Waking watchers costs more than the rest of a heartbeat's receive; with no
        // watcher there is nobody to wake. Skipping is safe: a watcher subscribes before
        // it reads the store's revision under the lock, so either it sees this change
        // there or it was counted here.
        if self.shared.revision_tx.receiver_count() > 0 {
            self.shared.revision_tx.send_modify(|r| *r = (*r).max(rev));
        }
    }

    async fn wait_newer(
        rx: &mut watch::Receiver<u64>,
        seen: u64,
        cancel: &CancellationToken,
    ) -> bool {
        tokio::select! {
            r = rx.wait_for(|rev| *rev > seen) => r.is_ok(),
            _ = cancel.cancelled() => false,
        }
    }

    /// dskit's `-memberlist.notify-interval`: with an interval set, a watcher reads
    /// (and is told about) changes at most once per interval, so a burst of changes
    /// costs it one notification. The first change is told at once (dskit's ticker
    /// may hold it up to one interval). False once `cancel` fires.
    async fn pace(
        &self,
        last: &mut Option<tokio::time::Instant>,
        cancel: &CancellationToken,
    ) -> bool {
        let every = self.lock().config().notify_interval;
        if every.is_zero() {
            return true;
        }
        if let Some(t) = *last {
            tokio::select! {
                _ = tokio::time::sleep_until(t + every) => {}
                _ = cancel.cancelled() => return false,
            }
        }
        *last = Some(tokio::time::Instant::now());
        true
    }
}

/// A typed client of a [`GossipKv`].
pub struct GossipClient<V> {
    kv: GossipKv,
    codec: Arc<dyn Codec<V>>,
    /// The registered merge of `V` (`None` for a raw client).
    ops: Option<Arc<dyn ValueOps>>,
    options: ClientOptions,
}

impl<V> Clone for GossipClient<V> {
    fn clone(&self) -> Self {
        GossipClient {
            kv: self.kv.clone(),
            codec: self.codec.clone(),
            ops: self.ops.clone(),
            options: self.options.clone(),
        }
    }
}

impl<V: 'static> std::fmt::Debug for GossipClient<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GossipClient")
            .field("codec", &self.codec.id())
            .field("merge", &self.ops.is_some())
            .finish()
    }
}

impl<V: Value> GossipClient<V> {
    /// The store behind this client.
    pub fn store(&self) -> &GossipKv {
        &self.kv
    }

    /// Turns a stored value into `V`, checking the codec id.
    fn typed(&self, key: &str, read: ReadValue) -> Result<V, Error> {
        let (id, bytes) = match read {
            ReadValue::Decoded(id, any) => {
                if id != self.codec.id() {
                    return Err(self.mismatch(key, id));
                }
                match any.downcast::<V>() {
                    Ok(v) => return Ok(*v),
                    // Same id, other type (a raw client of a merged codec): via bytes.
                    Err(any) => {
                        let st = self.kv.lock();
                        let bytes = st.ops(&id).map(|o| o.encode(&any)).unwrap_or_default();
                        (id, Arc::from(bytes))
                    }
                }
            }
            ReadValue::Raw(id, bytes) => (id, bytes),
        };
        if id != self.codec.id() {
            return Err(self.mismatch(key, id));
        }
        self.codec.decode(&bytes).map_err(|source| Error::Decode {
            key: key.to_owned(),
            source,
        })
    }

    fn mismatch(&self, key: &str, stored: String) -> Error {
        Error::CodecMismatch {
            key: key.to_owned(),
            stored,
            expected: self.codec.id().to_owned(),
        }
    }

    fn read(&self, key: &str) -> Result<Option<(V, u64)>, Error> {
        let read = self.kv.lock().read(key);
        read.map(|(r, version)| self.typed(key, r).map(|v| (v, version)))
            .transpose()
    }

    fn decode_for_watch(&self, key: &str) -> Option<V> {
        match self.read(key) {
            Ok(v) => v.map(|(v, _)| v),
            Err(e) => {
                tracing::warn!(key, error = %e, "watch: skipping value that does not decode");
                None
            }
        }
    }

    /// One CAS write attempt; `Ok(false)` on a version conflict.
    fn try_write(&self, key: &str, seen: u64, value: V) -> Result<bool, Error> {
        let bytes = self.codec.encode(&value);
        if bytes.len() > self.options.max_value_size {
            return Err(Error::TooLarge {
                key: key.to_owned(),
                size: bytes.len(),
                max: self.options.max_value_size,
            });
        }
        let now = self.kv.now();
        let applied = {
            let mut st = self.kv.lock();
            match &self.ops {
                Some(ops) => st.cas_merge(key, seen, ops, Box::new(value), now),
                None => st.cas_raw(key, seen, self.codec.id(), bytes, now),
            }
        };
        match applied {
            None => Ok(false),
            Some(a) => {
                self.kv.publish(Origin::Local, std::iter::once(a));
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl<V: Value> Client<V> for GossipClient<V> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let st = self.kv.lock();
        Ok(st
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| !e.deleted)
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        Ok(self.read(key)?.map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let now = self.kv.now();
        let applied = self.kv.lock().delete(key, now);
        self.kv.publish(Origin::Local, std::iter::once(applied));
        Ok(())
    }

    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        let m = self.kv.shared.metrics.clone();
        let attempts = self.options.max_cas_attempts.max(1);
        let mut last = None;
        for attempt in 1..=attempts {
            if attempt > 1 {
                let ms = rand::rng().random_range(5..50u64) * u64::from(attempt.min(10));
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            m.cas_attempt.inc();
            let (current, seen) = match self.read(key) {
                Ok(Some((v, version))) => (Some(v), version),
                Ok(None) => (None, self.kv.lock().version(key)),
                Err(e) => {
                    m.cas_failure.inc();
                    return Err(e);
                }
            };
            let value = match f(current) {
                CasDecision::Write(v) => v,
                CasDecision::Unchanged => {
                    m.cas_success.inc();
                    return Ok(());
                }
                CasDecision::Abort(reason) => {
                    m.cas_success.inc();
                    return Err(Error::Aborted {
                        key: key.to_owned(),
                        reason,
                    });
                }
                CasDecision::Retry(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match self.try_write(key, seen, value) {
                Ok(true) => {
                    m.cas_success.inc();
                    return Ok(());
                }
                Ok(false) => last = None,
                Err(e) => {
                    m.cas_failure.inc();
                    return Err(e);
                }
            }
        }
        m.cas_failure.inc();
        Err(Error::CasGaveUp {
            key: key.to_owned(),
            attempts,
            last,
        })
    }

    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        let mut rx = self.kv.shared.revision_tx.subscribe();
        let mut paced = None;
        let mut delivered = 0u64;
        let mut seen = 0u64;
        loop {
            let (revision, now) = {
                let st = self.kv.lock();
                let now = st
                    .entries
                    .get(key)
                    .map_or(0, |e| if e.deleted { u64::MAX } else { e.revision });
                (st.revision(), now)
            };
            seen = seen.max(revision);
            if now != delivered {
                let was_present = delivered != 0 && delivered != u64::MAX;
                delivered = now;
                let gone = now == 0 || now == u64::MAX;
                if gone {
                    if was_present && !f(None) {
                        return;
                    }
                } else if let Some(v) = self.decode_for_watch(key)
                    && !f(Some(v))
                {
                    return;
                }
            }
            if !GossipKv::wait_newer(&mut rx, seen, cancel).await
                || !self.kv.pace(&mut paced, cancel).await
            {
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
        let mut rx = self.kv.shared.revision_tx.subscribe();
        let mut paced = None;
        let mut seen = 0;
        loop {
            let (revision, mut changes) = {
                let st = self.kv.lock();
                let changes: Vec<(String, u64)> = st
                    .changed_since(seen)
                    .into_iter()
                    .filter(|(k, _)| k.starts_with(prefix))
                    .collect();
                (st.revision(), changes)
            };
            seen = seen.max(revision);
            changes.sort_by_key(|(_, rev)| *rev);
            for (key, _) in changes {
                if let Some(v) = self.decode_for_watch(&key)
                    && !f(&key, v)
                {
                    return;
                }
            }
            if !GossipKv::wait_newer(&mut rx, seen, cancel).await
                || !self.kv.pace(&mut paced, cancel).await
            {
                return;
            }
        }
    }
}
