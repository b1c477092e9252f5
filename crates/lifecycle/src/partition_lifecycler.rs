//! The partition instance lifecycler and the partition ring watcher, run against a KV
//! store (dskit's `PartitionInstanceLifecycler` and `PartitionRingWatcher`,
//! spec/partition-ring.md §6.1, §6.2). The decisions are [`crate::partition_decide`]'s.
//!
//! Call order: [`PartitionInstanceLifecycler::start`] (create the partition if missing,
//! or wait for it, and register the owner), [`PartitionInstanceLifecycler::run`]
//! (reconcile at once, then every polling interval, until cancelled),
//! [`PartitionInstanceLifecycler::stop`] (remove the owner when configured to).
//! Every write is one CAS on the whole descriptor; an unchanged descriptor is not written.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use ringkit_kv::{BoxError, CancellationToken, CasDecision, Client};
use ringkit_ring::partition::{
    PartitionRing, PartitionRingDesc, PartitionRingError, PartitionState,
};
use tokio::sync::watch;

use crate::lifecycler::Clock;
use crate::partition_decide::{self as decide, PartitionLifecyclerConfig};
use crate::partition_store::PartitionRingValue;

/// Why a partition lifecycler step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionLifecyclerError {
    /// The KV store refused or failed the operation.
    #[error("partition ring KV store: {0}")]
    Kv(#[from] ringkit_kv::Error),
    /// The partition ring rules refused the step (missing partition, state change not
    /// allowed, bad partition ID).
    #[error(transparent)]
    Rule(#[from] PartitionRingError),
    /// State changes are only made while the lifecycler runs (dskit's "lifecycler not
    /// running").
    #[error("lifecycler not running")]
    NotRunning,
    /// Waiting for the partition to be created was cancelled.
    #[error("cancelled while waiting for partition {0} to be created")]
    Cancelled(i32),
}

/// The two kinds of reconcile, as dskit labels them (`type` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconcileKind {
    /// Pending → Active of the owned partition (`owned-partition`).
    OwnedPartition,
    /// Deleting old INACTIVE partitions with no owners (`other-partitions`).
    OtherPartitions,
}

impl ReconcileKind {
    /// Both kinds, in label order.
    pub const ALL: [ReconcileKind; 2] = [
        ReconcileKind::OwnedPartition,
        ReconcileKind::OtherPartitions,
    ];

    /// dskit's `type` label value.
    pub fn label(self) -> &'static str {
        match self {
            ReconcileKind::OwnedPartition => "owned-partition",
            ReconcileKind::OtherPartitions => "other-partitions",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Reconciles started and failed per [`ReconcileKind`] (dskit's
/// `partition_ring_lifecycler_reconciles_total` and `..._failed_total`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReconcileCounts {
    /// Started, indexed as [`ReconcileKind::ALL`].
    pub total: [u64; 2],
    /// Failed (the CAS failed or the rules refused), indexed as [`ReconcileKind::ALL`].
    pub failed: [u64; 2],
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Manages this instance's partition and owner entry in the partition ring.
pub struct PartitionInstanceLifecycler {
    cfg: PartitionLifecyclerConfig,
    ring_name: String,
    key: String,
    kv: Arc<dyn Client<PartitionRingValue>>,
    clock: Clock,
    create_partition_on_startup: AtomicBool,
    remove_owner_on_shutdown: AtomicBool,
    running: AtomicBool,
    /// Serialises explicit state changes with reconciles, as dskit's actor loop does.
    steps: tokio::sync::Mutex<()>,
    total: [AtomicU64; 2],
    failed: [AtomicU64; 2],
}

impl std::fmt::Debug for PartitionInstanceLifecycler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionInstanceLifecycler")
            .field("ring", &self.ring_name)
            .field("key", &self.key)
            .field("partition", &self.cfg.partition_id)
            .field("owner", &self.cfg.owner_id())
            .finish()
    }
}

impl PartitionInstanceLifecycler {
    /// A lifecycler for `cfg` on the partition ring stored at `key` (`ring_name` is the
    /// `name` label of its metrics, Mimir: `ingester-partitions`). A zero polling interval
    /// becomes dskit's 5s.
    pub fn new(
        mut cfg: PartitionLifecyclerConfig,
        ring_name: &str,
        key: &str,
        kv: Arc<dyn Client<PartitionRingValue>>,
    ) -> PartitionInstanceLifecycler {
        if cfg.polling_interval.is_zero() {
            cfg.polling_interval = std::time::Duration::from_secs(5);
        }
        PartitionInstanceLifecycler {
            cfg,
            ring_name: ring_name.to_owned(),
            key: key.to_owned(),
            kv,
            clock: Arc::new(SystemTime::now),
            create_partition_on_startup: AtomicBool::new(true),
            remove_owner_on_shutdown: AtomicBool::new(false),
            running: AtomicBool::new(false),
            steps: tokio::sync::Mutex::new(()),
            total: Default::default(),
            failed: Default::default(),
        }
    }

    /// Replaces the wall clock (tests).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &PartitionLifecyclerConfig {
        &self.cfg
    }

    /// The ring name (metrics' `name` label).
    pub fn ring_name(&self) -> &str {
        &self.ring_name
    }

    /// Whether startup creates a missing partition (default true); when false, startup
    /// waits for someone else to create it.
    pub fn create_partition_on_startup(&self) -> bool {
        self.create_partition_on_startup.load(Ordering::Relaxed)
    }

    /// See [`Self::create_partition_on_startup`] (Mimir's prepare-shutdown sets false).
    pub fn set_create_partition_on_startup(&self, create: bool) {
        self.create_partition_on_startup
            .store(create, Ordering::Relaxed);
    }

    /// Whether [`Self::stop`] removes the owner entry (default false).
    pub fn remove_owner_on_shutdown(&self) -> bool {
        self.remove_owner_on_shutdown.load(Ordering::Relaxed)
    }

    /// See [`Self::remove_owner_on_shutdown`] (Mimir's prepare-shutdown sets true).
    pub fn set_remove_owner_on_shutdown(&self, remove: bool) {
        self.remove_owner_on_shutdown
            .store(remove, Ordering::Relaxed);
    }

    /// Reconcile counters so far.
    pub fn reconciles(&self) -> ReconcileCounts {
        let load =
            |a: &[AtomicU64; 2]| [a[0].load(Ordering::Relaxed), a[1].load(Ordering::Relaxed)];
        ReconcileCounts {
            total: load(&self.total),
            failed: load(&self.failed),
        }
    }

    /// One CAS running `step` on the stored descriptor (an absent key is an empty ring);
    /// `step` gets the time at each attempt and says whether it changed anything.
    async fn update<T: Send>(
        &self,
        mut step: impl FnMut(&mut PartitionRingDesc, i64) -> Result<(bool, T), PartitionRingError>
        + Send,
    ) -> Result<T, PartitionLifecyclerError> {
        cas_partition_ring(self.kv.as_ref(), &self.key, &self.clock, &mut step).await
    }

    /// Startup (dskit's `starting`): with creation on, one CAS that adds the partition
    /// PENDING if it is missing and registers the owner; otherwise polls every interval
    /// until the partition exists (or `cancel` fires), then registers the owner.
    pub async fn start(&self, cancel: &CancellationToken) -> Result<(), PartitionLifecyclerError> {
        let cfg = &self.cfg;
        if self.create_partition_on_startup() {
            self.update(|d, now| {
                Ok((
                    decide::create_partition_and_register_owner(d, cfg, now)?,
                    (),
                ))
            })
            .await?;
        } else {
            loop {
                let desc = self.stored().await?;
                if desc.has_partition(cfg.partition_id) {
                    break;
                }
                tracing::info!(
                    partition = cfg.partition_id,
                    "partition not found in the ring; waiting"
                );
                tokio::select! {
                    _ = tokio::time::sleep(cfg.polling_interval) => {}
                    _ = cancel.cancelled() => return Err(PartitionLifecyclerError::Cancelled(cfg.partition_id)),
                }
            }
            self.update(|d, now| Ok((decide::register_owner(d, cfg, now), ())))
                .await?;
        }
        self.running.store(true, Ordering::SeqCst);
        tracing::info!(partition = cfg.partition_id, owner = %cfg.owner_id(), "partition owner registered");
        Ok(())
    }

    /// One reconcile of both kinds (dskit runs them at start and on every tick); failures
    /// are counted and logged, never returned.
    pub async fn reconcile(&self) {
        let _serial = self.steps.lock().await;
        let cfg = &self.cfg;
        let kind = ReconcileKind::OwnedPartition;
        self.total[kind.index()].fetch_add(1, Ordering::Relaxed);
        let owned = self
            .update(|d, now| {
                let changed = decide::reconcile_owned_partition(d, cfg, now)?;
                Ok((changed, changed))
            })
            .await;
        match owned {
            Ok(true) => tracing::info!(
                partition = cfg.partition_id,
                "partition switched from Pending to Active: enough owners for long enough"
            ),
            Ok(false) => {}
            Err(e) => {
                self.failed[kind.index()].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(partition = cfg.partition_id, error = %e, "failed to reconcile owned partition");
            }
        }
        let kind = ReconcileKind::OtherPartitions;
        self.total[kind.index()].fetch_add(1, Ordering::Relaxed);
        let other = self
            .update(|d, now| {
                let removed = decide::reconcile_other_partitions(d, cfg, now);
                Ok((!removed.is_empty(), removed))
            })
            .await;
        match other {
            Ok(removed) if !removed.is_empty() => {
                tracing::info!(
                    ?removed,
                    "removed inactive partitions with no owners from the ring"
                )
            }
            Ok(_) => {}
            Err(e) => {
                self.failed[kind.index()].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "failed to reconcile other partitions");
            }
        }
    }

    /// Reconciles at once, then every polling interval, until `cancel` fires.
    pub async fn run(&self, cancel: CancellationToken) {
        self.running.store(true, Ordering::SeqCst);
        loop {
            self.reconcile().await;
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.polling_interval) => {}
                _ = cancel.cancelled() => break,
            }
        }
        self.running.store(false, Ordering::SeqCst);
    }

    /// Shutdown (dskit's `stopping`): removes the owner entry when
    /// [`Self::remove_owner_on_shutdown`]; the partition's state is left alone.
    pub async fn stop(&self) -> Result<(), PartitionLifecyclerError> {
        self.running.store(false, Ordering::SeqCst);
        if !self.remove_owner_on_shutdown() {
            return Ok(());
        }
        let cfg = &self.cfg;
        self.update(|d, _| Ok((decide::remove_owner(d, cfg), ())))
            .await?;
        tracing::info!(partition = cfg.partition_id, owner = %cfg.owner_id(), "removed from partition owners");
        Ok(())
    }

    /// Changes the owned partition's state with dskit's rules (same state: no change;
    /// only Pending→Active, Pending→Inactive, Active→Inactive, Inactive→Active).
    /// Returns whether the state changed. Only while running (after [`Self::start`]).
    pub async fn change_partition_state(
        &self,
        to: PartitionState,
    ) -> Result<bool, PartitionLifecyclerError> {
        if !self.running.load(Ordering::SeqCst) {
            return Err(PartitionLifecyclerError::NotRunning);
        }
        let _serial = self.steps.lock().await;
        let id = self.cfg.partition_id;
        self.update(|d, now| {
            let at = crate::partition_decide::state_change_time(d, id, now);
            let changed = d.change_partition_state(id, to, at)?;
            Ok((changed, changed))
        })
        .await
    }

    /// The partition ring as the store holds it now (empty when the key is absent).
    async fn stored(&self) -> Result<PartitionRingDesc, PartitionLifecyclerError> {
        Ok(self
            .kv
            .get(&self.key)
            .await?
            .map(|v| v.0)
            .unwrap_or_default())
    }

    /// The owned partition's state and when it last changed (Unix seconds), read from
    /// the store (dskit's `GetPartitionState`).
    pub async fn get_partition_state(
        &self,
    ) -> Result<(PartitionState, i64), PartitionLifecyclerError> {
        let desc = self.stored().await?;
        let p = desc
            .partitions
            .get(&self.cfg.partition_id)
            .ok_or(PartitionRingError::PartitionDoesNotExist)?;
        Ok((p.state_or_unknown(), p.state_timestamp))
    }
}

/// Changes any partition's state in the stored ring (dskit's `PartitionRingEditor`,
/// for operators and the partition ring page): same rules as the lifecycler's, stamped
/// with `now` (Unix seconds). Returns whether the state changed.
pub async fn change_partition_state(
    kv: &dyn Client<PartitionRingValue>,
    key: &str,
    id: i32,
    to: PartitionState,
    clock: &Clock,
) -> Result<bool, PartitionLifecyclerError> {
    cas_partition_ring(kv, key, clock, &mut |desc, now| {
        let at = crate::partition_decide::state_change_time(desc, id, now);
        desc.change_partition_state(id, to, at)
            .map(|changed| (changed, changed))
    })
    .await
}

/// Locks or unlocks partition `id`'s state in the stored ring (dskit's
/// `PartitionRingEditor.SetPartitionStateChangeLock`, for operators and the partition ring
/// page): while locked, no lifecycler or operator changes its state. An unknown partition
/// changes nothing, as in dskit. Returns whether the lock changed.
pub async fn set_partition_state_change_lock(
    kv: &dyn Client<PartitionRingValue>,
    key: &str,
    id: i32,
    locked: bool,
    clock: &Clock,
) -> Result<bool, PartitionLifecyclerError> {
    cas_partition_ring(kv, key, clock, &mut |desc, now| {
        let at = crate::partition_decide::lock_change_time(desc, id, now);
        let changed = desc.update_partition_state_change_lock(id, locked, at);
        Ok((changed, changed))
    })
    .await
}

/// A change to the partition ring at a time (Unix seconds): whether it changed anything,
/// and what to return, or the dskit rule it broke.
type PartitionStep<'a, T> =
    dyn FnMut(&mut PartitionRingDesc, i64) -> Result<(bool, T), PartitionRingError> + Send + 'a;

/// One CAS running `step` on the stored descriptor (an absent key is an empty ring);
/// `step` gets the time at each attempt and says whether it changed anything. A rule
/// `step` refuses aborts the CAS and comes back as [`PartitionLifecyclerError::Rule`].
async fn cas_partition_ring<T: Send>(
    kv: &dyn Client<PartitionRingValue>,
    key: &str,
    clock: &Clock,
    step: &mut PartitionStep<'_, T>,
) -> Result<T, PartitionLifecyclerError> {
    let mut outcome: Option<Result<T, PartitionRingError>> = None;
    let result = kv
        .cas(key, &mut |current: Option<PartitionRingValue>| {
            let mut desc = current.map(|v| v.0).unwrap_or_default();
            match step(&mut desc, unix(clock())) {
                Ok((changed, value)) => {
                    outcome = Some(Ok(value));
                    if changed {
                        CasDecision::Write(PartitionRingValue(desc))
                    } else {
                        CasDecision::Unchanged
                    }
                }
                Err(e) => {
                    let msg: BoxError = e.to_string().into();
                    outcome = Some(Err(e));
                    CasDecision::Abort(msg)
                }
            }
        })
        .await;
    match (result, outcome) {
        (Ok(()), Some(Ok(v))) => Ok(v),
        (_, Some(Err(rule))) => Err(PartitionLifecyclerError::Rule(rule)),
        (Err(e), _) => Err(PartitionLifecyclerError::Kv(e)),
        (Ok(()), None) => unreachable!("a CAS that succeeded called its callback"),
    }
}

/// Follows the partition ring key and keeps the newest [`PartitionRing`] (dskit's
/// `PartitionRingWatcher`): tombstones are dropped before the ring is built, as dskit's
/// memberlist KV does for every reader.
pub struct PartitionRingWatcher {
    current: ArcSwap<PartitionRing>,
    updates: watch::Sender<u64>,
}

impl std::fmt::Debug for PartitionRingWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionRingWatcher")
            .field("partitions", &self.current.load().partitions_count())
            .finish()
    }
}

impl PartitionRingWatcher {
    /// A watcher holding an empty ring until [`Self::run`] reads the store.
    pub fn new() -> Arc<PartitionRingWatcher> {
        Arc::new(PartitionRingWatcher {
            current: ArcSwap::from_pointee(PartitionRing::new(PartitionRingDesc::new())),
            updates: watch::Sender::new(0),
        })
    }

    /// The newest ring; never blocks.
    pub fn ring(&self) -> Arc<PartitionRing> {
        self.current.load_full()
    }

    /// A receiver that changes on every publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Publishes the ring of `desc` (tombstones dropped first). A partition whose state
    /// change is newly locked (or locked again later) is logged at warn, as dskit's
    /// watcher logs locked partitions; an unchanged lock is not logged again.
    pub fn publish(&self, mut desc: PartitionRingDesc) {
        desc.remove_tombstones(None);
        let before = self.current.load();
        for (id, p) in &desc.partitions {
            let was = before
                .desc()
                .partitions
                .get(id)
                .map(|b| (b.state_change_locked, b.state_change_locked_timestamp));
            if p.state_change_locked && was != Some((true, p.state_change_locked_timestamp)) {
                tracing::warn!(
                    partition_id = id,
                    partition_state = p.state_or_unknown().clean_name(),
                    "partition state change is locked"
                );
            }
        }
        self.current.store(Arc::new(PartitionRing::new(desc)));
        self.updates.send_modify(|n| *n += 1);
    }

    /// Reads the key once, then follows it until `cancel` fires.
    pub async fn run(
        self: Arc<Self>,
        kv: Arc<dyn Client<PartitionRingValue>>,
        key: String,
        cancel: CancellationToken,
    ) {
        match kv.get(&key).await {
            Ok(v) => self.publish(v.map(|v| v.0).unwrap_or_default()),
            Err(e) => {
                tracing::warn!(%key, error = %e, "partition ring watcher: initial read failed")
            }
        }
        let this = Arc::clone(&self);
        kv.watch_key(&key, &cancel, &mut move |value: Option<
            PartitionRingValue,
        >| {
            this.publish(value.map(|v| v.0).unwrap_or_default());
            true
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition_store::PartitionRingCodec;
    use ringkit_kv::{ClientOptions, MemoryStore};
    use ringkit_ring::partition::OwnerState;
    use std::sync::atomic::AtomicI64;
    use std::time::Duration;

    const T: i64 = 1_700_000_000;

    struct FakeClock(Arc<AtomicI64>);
    impl FakeClock {
        fn new() -> (FakeClock, Clock) {
            let secs = Arc::new(AtomicI64::new(T));
            let s = Arc::clone(&secs);
            let clock: Clock =
                Arc::new(move || UNIX_EPOCH + Duration::from_secs(s.load(Ordering::SeqCst) as u64));
            (FakeClock(secs), clock)
        }
        fn advance(&self, secs: i64) {
            self.0.fetch_add(secs, Ordering::SeqCst);
        }
    }

    fn store() -> Arc<dyn Client<PartitionRingValue>> {
        Arc::new(MemoryStore::new().client(PartitionRingCodec::shared(), ClientOptions::default()))
    }

    async fn stored(kv: &Arc<dyn Client<PartitionRingValue>>) -> PartitionRingDesc {
        kv.get("ingester-partitions").await.unwrap().unwrap().0
    }

    fn lifecycler(
        kv: &Arc<dyn Client<PartitionRingValue>>,
        instance: &str,
        clock: &Clock,
    ) -> PartitionInstanceLifecycler {
        let id = decide::partition_id_from_instance_id(instance).unwrap();
        let mut cfg = PartitionLifecyclerConfig::new(instance, id);
        cfg.wait_owners_count_on_pending = 2;
        cfg.wait_owners_duration_on_pending = Duration::from_secs(10);
        cfg.delete_inactive_partition_after = Duration::from_secs(60);
        PartitionInstanceLifecycler::new(
            cfg,
            "ingester-partitions",
            "ingester-partitions",
            Arc::clone(kv),
        )
        .with_clock(Arc::clone(clock))
    }

    #[tokio::test]
    async fn two_zones_own_a_partition_that_goes_active_then_is_scaled_down_and_deleted() {
        let kv = store();
        let (time, clock) = FakeClock::new();
        let a = lifecycler(&kv, "ingester-zone-a-1", &clock);
        let cancel = CancellationToken::new();
        a.start(&cancel).await.unwrap();
        a.reconcile().await;
        let d = stored(&kv).await;
        assert!(d.partitions[&1].is_pending(), "one owner of two");

        time.advance(5);
        let b = lifecycler(&kv, "ingester-zone-b-1", &clock);
        b.start(&cancel).await.unwrap();
        assert_eq!(stored(&kv).await.partition_owners_count(1), 2);
        time.advance(10);
        a.reconcile().await;
        assert!(
            stored(&kv).await.partitions[&1].is_pending(),
            "b owns it for 10s only"
        );
        time.advance(1);
        b.reconcile().await;
        let d = stored(&kv).await;
        assert!(d.partitions[&1].is_active());
        assert_eq!(d.partitions[&1].state_timestamp, T + 16);
        assert_eq!(
            b.get_partition_state().await.unwrap(),
            (PartitionState::PartitionActive, T + 16)
        );

        // Scale-down: the partition goes INACTIVE, both owners leave on shutdown.
        time.advance(1);
        assert!(
            a.change_partition_state(PartitionState::PartitionInactive)
                .await
                .unwrap()
        );
        assert!(
            !a.change_partition_state(PartitionState::PartitionInactive)
                .await
                .unwrap()
        );
        let e = a
            .change_partition_state(PartitionState::PartitionPending)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("from Inactive to Pending"), "{e}");
        for l in [&a, &b] {
            l.set_remove_owner_on_shutdown(true);
            l.stop().await.unwrap();
        }
        let d = stored(&kv).await;
        assert!(d.owners.is_empty());
        assert!(
            d.partitions[&1].is_inactive(),
            "stopping leaves the state alone"
        );

        // Another ingester deletes it once it is inactive for longer than 60s.
        let other = lifecycler(&kv, "ingester-zone-a-0", &clock);
        other.start(&cancel).await.unwrap();
        time.advance(60);
        other.reconcile().await;
        assert!(stored(&kv).await.has_partition(1), "exactly 60s: not yet");
        time.advance(1);
        other.reconcile().await;
        let d = stored(&kv).await;
        assert!(!d.has_partition(1));
        assert!(d.has_partition(0));
        let counts = other.reconciles();
        assert_eq!(counts.total, [2, 2]);
        assert_eq!(counts.failed, [0, 0]);
    }

    #[tokio::test]
    async fn a_missing_owned_partition_fails_the_reconcile_and_is_not_recreated() {
        let kv = store();
        let (_time, clock) = FakeClock::new();
        let a = lifecycler(&kv, "ingester-zone-a-2", &clock);
        a.start(&CancellationToken::new()).await.unwrap();
        kv.cas("ingester-partitions", &mut |v: Option<
            PartitionRingValue,
        >| {
            let mut d = v.unwrap().0;
            d.remove_partition(2);
            CasDecision::Write(PartitionRingValue(d))
        })
        .await
        .unwrap();
        a.reconcile().await;
        assert_eq!(a.reconciles().failed, [1, 0]);
        assert!(!stored(&kv).await.has_partition(2));
        assert!(matches!(
            a.get_partition_state().await,
            Err(PartitionLifecyclerError::Rule(
                PartitionRingError::PartitionDoesNotExist
            ))
        ));
    }

    #[tokio::test]
    async fn state_changes_need_a_started_lifecycler() {
        let kv = store();
        let (_time, clock) = FakeClock::new();
        let a = lifecycler(&kv, "ingester-zone-a-0", &clock);
        assert!(matches!(
            a.change_partition_state(PartitionState::PartitionActive)
                .await,
            Err(PartitionLifecyclerError::NotRunning)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn wait_mode_registers_the_owner_only_once_the_partition_exists() {
        let kv = store();
        let (_time, clock) = FakeClock::new();
        let a = Arc::new(lifecycler(&kv, "ingester-zone-a-3", &clock));
        a.set_create_partition_on_startup(false);
        let cancel = CancellationToken::new();
        let starting = {
            let a = Arc::clone(&a);
            let cancel = cancel.clone();
            tokio::spawn(async move { a.start(&cancel).await })
        };
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(kv.get("ingester-partitions").await.unwrap().is_none());
        assert!(!starting.is_finished());
        kv.cas("ingester-partitions", &mut |_| {
            let mut d = PartitionRingDesc::new();
            d.add_partition(3, PartitionState::PartitionActive, T - 100)
                .unwrap();
            CasDecision::Write(PartitionRingValue(d))
        })
        .await
        .unwrap();
        starting.await.unwrap().unwrap();
        let d = stored(&kv).await;
        assert_eq!(
            d.owners["ingester-zone-a-3"].state(),
            OwnerState::OwnerActive
        );
        assert_eq!(d.partitions[&3].state_timestamp, T - 100);

        // Cancelled while waiting for a partition nobody creates.
        let b = lifecycler(&kv, "ingester-zone-a-4", &clock);
        b.set_create_partition_on_startup(false);
        let c = CancellationToken::new();
        c.cancel();
        assert!(matches!(
            b.start(&c).await,
            Err(PartitionLifecyclerError::Cancelled(4))
        ));
    }

    #[tokio::test]
    async fn watcher_builds_the_ring_without_tombstones() {
        let kv = store();
        let w = PartitionRingWatcher::new();
        let mut d = PartitionRingDesc::new();
        d.add_partition(0, PartitionState::PartitionActive, T)
            .unwrap();
        d.add_partition(1, PartitionState::PartitionDeleted, T)
            .unwrap();
        d.add_or_update_owner("gone", OwnerState::OwnerDeleted, 0, T);
        kv.cas("ingester-partitions", &mut |_| {
            CasDecision::Write(PartitionRingValue(d.clone()))
        })
        .await
        .unwrap();
        let cancel = CancellationToken::new();
        let mut updates = w.subscribe();
        let task =
            tokio::spawn(Arc::clone(&w).run(kv, "ingester-partitions".into(), cancel.clone()));
        updates.changed().await.unwrap();
        let ring = w.ring();
        assert_eq!(ring.partition_ids(), vec![0]);
        assert!(ring.partition_owner_ids(0).is_empty());
        cancel.cancel();
        task.await.unwrap();
    }
}
