//! The async lifecycler: performs the decisions of [`crate::decide`] against a KV store.
//!
//! Call order (the seed's flow; [`Lifecycler::join`] runs steps 1 to 3 around a load
//! future):
//! 1. [`Lifecycler::register`]: visible at once, no tokens (or JOINING after a restart);
//! 2. the owner loads its data (WAL replay);
//! 3. [`Lifecycler::claim_tokens`]: tokens from the ring, the tokens file or the generator;
//!    ACTIVE (after the observe period, if configured);
//! 4. [`Lifecycler::run`] heartbeats (and auto-forgets dead members) until cancelled;
//! 5. [`Lifecycler::leave`]: LEAVING, final sleep, then unregister.
//!
//! Every write is one CAS on the whole descriptor. The instance's own view is kept in
//! memory so it can re-insert itself if the store is wiped or an operator forgets it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;
use ringkit_kv::{BoxError, CancellationToken, CasDecision, Client};
use ringkit_ring::model::{Desc, InstanceDesc, InstanceState};
use ringkit_ring::tokens::TokenGenerator;

use crate::config::LifecyclerConfig;
use crate::decide::{self, Instance, LifecycleError};
use crate::store::RingDesc;
use crate::tokens_file::{self, TokensFileError};

/// Source of wall-clock time (Unix timestamps go into the descriptor); replaceable in
/// tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Why a lifecycler step failed. The instance's in-memory view is only updated when the
/// store accepted the write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LifecyclerError {
    /// The KV store refused or failed the operation.
    #[error("ring KV store: {0}")]
    Kv(#[from] ringkit_kv::Error),
    /// The lifecycle rules refused the step (e.g. a disallowed state change).
    #[error(transparent)]
    Rule(#[from] LifecycleError),
    /// The tokens file could not be written or read.
    #[error("tokens file: {0}")]
    TokensFile(#[from] TokensFileError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The owner's load step (see [`Lifecycler::join`]) failed; the instance stays
    /// registered with the tokens it had, and claimed none.
    #[error("load step: {0}")]
    Load(BoxError),
}

/// Drives one instance through its life in the ring.
pub struct Lifecycler {
    cfg: LifecyclerConfig,
    kv: Arc<dyn Client<RingDesc>>,
    key: String,
    /// std Mutex: only locked inside synchronous CAS callbacks, never across an await.
    me: Mutex<Instance>,
    generator: Arc<dyn TokenGenerator + Send + Sync>,
    rng: Mutex<StdRng>,
    clock: Clock,
    /// When the readiness checks first passed in a row (None: not passing).
    ready_since: Mutex<Option<Instant>>,
    heartbeats: AtomicU64,
    /// Timestamp of our entry as last written (Unix seconds; 0 before the first write).
    last_written: AtomicI64,
    /// Starts as `cfg.unregister_on_shutdown`; Mimir's prepare-shutdown changes it at run time.
    unregister_on_shutdown: AtomicBool,
}

impl std::fmt::Debug for Lifecycler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycler")
            .field("id", &self.cfg.id)
            .field("key", &self.key)
            .field("state", &self.state())
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Callbacks never panic half-way through an update, so a poisoned lock is consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// What a successful CAS step leaves: the instance as written, the step's value, and
/// our entry's timestamp when the step wrote it.
type StepDone<T> = (Instance, T, Option<i64>);

/// Longest wait before unregistering for the clock to reach our entry's timestamp (see
/// `Lifecycler::leave`): a few writes within one second move it at most that far ahead.
const MAX_LEAVE_CLOCK_WAIT: Duration = Duration::from_secs(3);

/// Keeps the timestamp of instance `id` from going backwards, and moves it past the
/// stored one when the entry changed: `stored` is what the store held for it before this
/// write. A write that changes nothing but the timestamp (a heartbeat within the second
/// of the previous write) keeps the stored timestamp, so heartbeats faster than one per
/// second never run the timestamp ahead of the clock. Other instances' entries are left
/// alone. See [`Lifecycler::cas_step`].
///
/// A first registration (nothing stored) is dated one second back, so the ACTIVE write
/// that usually follows within the same second is newer at the clock's own time instead
/// of a second ahead of it. An entry ahead of the clock would beat a dskit `forget` (a
/// LEFT tombstone stamped with dskit's clock) made within that second.
fn newer_than_stored(desc: &mut Desc, id: &str, stored: Option<&InstanceDesc>) {
    let Some(d) = desc.ingesters.get_mut(id) else {
        return;
    };
    let Some(stored) = stored else {
        d.timestamp = d.timestamp.saturating_sub(1);
        return;
    };
    if d.timestamp > stored.timestamp {
        return;
    }
    let same = {
        let mut mine = d.clone();
        mine.timestamp = stored.timestamp;
        mine == *stored
    };
    d.timestamp = if same {
        stored.timestamp
    } else {
        stored.timestamp.saturating_add(1)
    };
}

impl Lifecycler {
    /// A lifecycler for `cfg.id` writing the ring under `key`. `generator` picks tokens
    /// (dskit's default is random).
    pub fn new(
        cfg: LifecyclerConfig,
        kv: Arc<dyn Client<RingDesc>>,
        key: impl Into<String>,
        generator: Arc<dyn TokenGenerator + Send + Sync>,
    ) -> Result<Lifecycler, LifecyclerError> {
        cfg.validate()?;
        let me = Instance::new(&cfg.id, &cfg.addr, &cfg.zone);
        Ok(Lifecycler {
            me: Mutex::new(me),
            kv,
            key: key.into(),
            generator,
            rng: Mutex::new(rand::make_rng::<StdRng>()),
            clock: Arc::new(SystemTime::now),
            ready_since: Mutex::new(None),
            heartbeats: AtomicU64::new(0),
            last_written: AtomicI64::new(0),
            unregister_on_shutdown: AtomicBool::new(cfg.unregister_on_shutdown),
            cfg,
        })
    }

    /// Replaces the wall clock (tests, simulations).
    pub fn with_clock(mut self, clock: Clock) -> Lifecycler {
        self.clock = clock;
        self
    }

    /// Seeds the token generator's randomness (tests, reproducible demos).
    pub fn with_seed(mut self, seed: u64) -> Lifecycler {
        self.rng = Mutex::new(StdRng::seed_from_u64(seed));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &LifecyclerConfig {
        &self.cfg
    }

    /// The instance's current state, as last written.
    pub fn state(&self) -> InstanceState {
        lock(&self.me).state
    }

    /// The instance's tokens, as last written.
    pub fn tokens(&self) -> Vec<u32> {
        lock(&self.me).tokens.clone()
    }

    /// Whether the entry is read-only and when that last changed (Unix seconds, 0 = never),
    /// as last written (dskit's `GetReadOnlyState`).
    pub fn read_only(&self) -> (bool, i64) {
        let me = lock(&self.me);
        (me.read_only, me.read_only_updated_at)
    }

    /// Sets or clears read-only in the ring (dskit's `ChangeReadOnlyState`; Mimir's
    /// prepare-instance-ring-downscale): a read-only instance gets no new series and leaves
    /// new shuffle shards, so it can be scaled down once its data ages out. Asking for the
    /// current value writes nothing and keeps the timestamp.
    pub async fn set_read_only(&self, read_only: bool) -> Result<(), LifecyclerError> {
        self.cas_step(move |desc, me, _, now| {
            Ok((decide::set_read_only(desc, me, read_only, now), ()))
        })
        .await
    }

    /// Whether [`Lifecycler::leave`] will remove the entry from the ring.
    pub fn unregister_on_shutdown(&self) -> bool {
        self.unregister_on_shutdown.load(Ordering::Relaxed)
    }

    /// Changes whether [`Lifecycler::leave`] removes the entry (dskit's
    /// `SetUnregisterOnShutdown`; Mimir's prepare-shutdown turns it on).
    pub fn set_unregister_on_shutdown(&self, on: bool) {
        self.unregister_on_shutdown.store(on, Ordering::Relaxed);
    }

    /// Number of heartbeats written so far.
    pub fn heartbeat_count(&self) -> u64 {
        self.heartbeats.load(Ordering::Relaxed)
    }

    fn now(&self) -> i64 {
        unix((self.clock)())
    }

    /// Runs `step` on a copy of the instance inside one CAS; the copy replaces the
    /// in-memory view only if the store accepted the write.
    ///
    /// When our own entry changes, it is written with a timestamp strictly newer than
    /// the one the store holds for it: `max(now, stored + 1)`. The ring merge (dskit's
    /// rule) keeps an entry only when its timestamp is strictly newer, and timestamps
    /// have one-second resolution, so two changes within one second (PENDING, then
    /// ACTIVE right after the load step) would otherwise lose the second one, in our own
    /// store and on every peer, until the next heartbeat. dskit peers accept the result
    /// as any newer heartbeat (a timestamp a second ahead is healthy for them). A write
    /// that changes only the timestamp never moves it ahead of the clock.
    async fn cas_step<T: Send + 'static>(
        &self,
        step: impl Fn(&mut Desc, &mut Instance, &mut StdRng, i64) -> Result<(bool, T), LifecycleError>
        + Send
        + Sync,
    ) -> Result<T, LifecyclerError> {
        let mut outcome: Option<Result<StepDone<T>, LifecycleError>> = None;
        let now = self.now();
        self.kv
            .cas(&self.key, &mut |current: Option<RingDesc>| {
                let mut desc = current.map(|v| v.0).unwrap_or_default();
                let mut me = lock(&self.me).clone();
                let mut rng = lock(&self.rng);
                let stored = desc.ingesters.get(&me.id).cloned();
                match step(&mut desc, &mut me, &mut rng, now) {
                    Ok((changed, value)) => {
                        let mut written = None;
                        if changed {
                            newer_than_stored(&mut desc, &me.id, stored.as_ref());
                            written = desc.ingesters.get(&me.id).map(|d| d.timestamp);
                        }
                        outcome = Some(Ok((me, value, written)));
                        if changed {
                            CasDecision::Write(RingDesc(desc))
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
            .await
            .map_err(|e| match outcome.take() {
                Some(Err(rule)) => LifecyclerError::Rule(rule),
                _ => LifecyclerError::Kv(e),
            })?;
        match outcome {
            Some(Ok((me, value, written))) => {
                *lock(&self.me) = me;
                if let Some(ts) = written {
                    self.last_written.store(ts, Ordering::Relaxed);
                }
                Ok(value)
            }
            Some(Err(e)) => Err(e.into()),
            None => unreachable!("a successful CAS ran its callback"),
        }
    }

    /// Step 1: registers the instance (no tokens if new; JOINING with its tokens after a
    /// restart), so peers see it before it loads its data.
    pub async fn register(&self) -> Result<(), LifecyclerError> {
        self.cas_step(|desc, me, _, now| Ok((decide::register(desc, me, now), ())))
            .await
    }

    /// Step 3: claims tokens (the ring's, the tokens file's, then fresh ones) and goes
    /// ACTIVE. With an observe period, stays JOINING and re-checks the tokens every period
    /// until no conflict took any, then goes ACTIVE. Persists the tokens file.
    pub async fn claim_tokens(&self) -> Result<(), LifecyclerError> {
        let file_tokens = match &self.cfg.tokens_file_path {
            Some(path) => match tokens_file::load(path) {
                Ok(t) => t,
                Err(TokensFileError::NotFound { .. }) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "ignoring unreadable tokens file");
                    Vec::new()
                }
            },
            None => Vec::new(),
        };
        let n = self.cfg.num_tokens;
        let observe = !self.cfg.observe_period.is_zero();
        let generator = Arc::clone(&self.generator);
        self.cas_step(move |desc, me, rng, now| {
            decide::claim_tokens(desc, me, n, &file_tokens, observe, &*generator, rng, now)
                .map(|c| (c, ()))
        })
        .await?;
        self.store_tokens_file()?;
        while observe && self.state() == InstanceState::Joining {
            tokio::time::sleep(self.cfg.observe_period).await;
            let generator = Arc::clone(&self.generator);
            self.cas_step(move |desc, me, rng, now| {
                decide::verify_tokens(desc, me, n, &*generator, rng, now).map(|_| (true, ()))
            })
            .await?;
            self.store_tokens_file()?;
        }
        Ok(())
    }

    /// Steps 1 to 3 in dskit's order: [`Lifecycler::register`], then the owner's `load`
    /// step (e.g. WAL replay) while the entry holds no tokens (or is JOINING), then
    /// [`Lifecycler::claim_tokens`]. Claiming only after `load` succeeded means no write is
    /// routed to an instance that has not loaded its data. If `load` fails, no tokens are
    /// claimed and its error is returned as [`LifecyclerError::Load`].
    pub async fn join<T, E>(
        &self,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<T, LifecyclerError>
    where
        E: Into<BoxError>,
    {
        self.register().await?;
        tracing::info!(id = %self.cfg.id, state = %self.state(), "registered; loading data");
        let loaded = load.await.map_err(|e| LifecyclerError::Load(e.into()))?;
        self.claim_tokens().await?;
        Ok(loaded)
    }

    fn store_tokens_file(&self) -> Result<(), LifecyclerError> {
        if let Some(path) = &self.cfg.tokens_file_path {
            let tokens = self.tokens();
            if !tokens.is_empty() {
                tokens_file::store(path, &tokens)?;
            }
        }
        Ok(())
    }

    /// One heartbeat: rewrites the entry with `timestamp = now` (re-adding it if it was
    /// removed) and, when enabled, forgets members unhealthy for too long. Returns the ids
    /// auto-forget removed.
    pub async fn heartbeat(&self) -> Result<Vec<String>, LifecyclerError> {
        let forget_after = self.cfg.auto_forget_after().map(|d| d.as_secs() as i64);
        let forgotten = self
            .cas_step(move |desc, me, _, now| {
                decide::heartbeat(desc, me, now);
                let forgotten = match forget_after {
                    Some(after) => decide::auto_forget(desc, &me.id, after, now),
                    None => Vec::new(),
                };
                Ok((true, forgotten))
            })
            .await?;
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        for id in &forgotten {
            tracing::info!(instance = %id, "auto-forgot an instance unhealthy for too long");
        }
        Ok(forgotten)
    }

    /// Step 4: heartbeats every period until `cancel` fires. Errors are logged and the
    /// next period tries again (a store outage must not stop the instance).
    pub async fn run(&self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.heartbeat_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(e) = self.heartbeat().await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                }
            }
        }
    }

    /// Changes the state with dskit's allowed transitions, writing at once.
    pub async fn change_state(&self, to: InstanceState) -> Result<(), LifecyclerError> {
        self.cas_step(move |desc, me, _, now| {
            decide::change_state(desc, me, to, now).map(|c| (c, ()))
        })
        .await
    }

    /// Step 5: LEAVING (if ACTIVE), the configured final sleep, then unregister (unless
    /// `unregister_on_shutdown` is off, in which case the entry stays LEAVING).
    pub async fn leave(&self) -> Result<(), LifecyclerError> {
        if self.state() == InstanceState::Active {
            self.change_state(InstanceState::Leaving).await?;
        }
        if !self.cfg.final_sleep.is_zero() {
            tokio::time::sleep(self.cfg.final_sleep).await;
        }
        if self.unregister_on_shutdown() {
            self.wait_for_clock_to_reach_last_write().await;
            let id = self.cfg.id.clone();
            self.cas_step(move |desc, _, _, _| Ok((decide::unregister(desc, &id), ())))
                .await?;
        }
        Ok(())
    }

    /// The store turns our removal into a LEFT tombstone stamped with the current second
    /// (dskit's rule), and peers take a tombstone only if it is at least as new as the
    /// entry they hold. Right after a write that [`Lifecycler::cas_step`] moved ahead of
    /// the clock (two writes within one second), wait until the clock reaches it, so the
    /// tombstone wins everywhere. Bounded: never more than [`MAX_LEAVE_CLOCK_WAIT`].
    async fn wait_for_clock_to_reach_last_write(&self) {
        let last = self.last_written.load(Ordering::Relaxed);
        let Ok(last) = u64::try_from(last) else {
            return;
        };
        let target = UNIX_EPOCH + Duration::from_secs(last);
        if let Ok(ahead) = target.duration_since((self.clock)())
            && !ahead.is_zero()
        {
            if ahead > MAX_LEAVE_CLOCK_WAIT {
                tracing::warn!(
                    timestamp = last,
                    "our ring entry is stamped far ahead of the clock; unregistering anyway"
                );
                return;
            }
            tokio::time::sleep(ahead).await;
        }
    }

    /// Readiness (dskit's `CheckReady`): the checks of [`decide::check_ready`] must pass,
    /// then keep passing for `min_ready_duration`. `now` is a monotonic instant.
    pub async fn check_ready(&self, now: Instant) -> Result<(), String> {
        let desc = match self.kv.get(&self.key).await {
            Ok(v) => v.map(|v| v.0).unwrap_or_default(),
            Err(e) => return Err(format!("error talking to the KV store: {e}")),
        };
        let timeout = self.cfg.heartbeat_timeout.as_secs() as i64;
        let result = decide::check_ready(
            &desc,
            &self.cfg.id,
            timeout,
            self.cfg.readiness_check_ring_health,
            self.now(),
        );
        let mut since = lock(&self.ready_since);
        match result {
            Err(e) => {
                *since = None;
                Err(e)
            }
            Ok(()) => {
                let first = *since.get_or_insert(now);
                let waited = now.saturating_duration_since(first);
                if waited < self.cfg.min_ready_duration {
                    Err(format!(
                        "waiting for {:?} after being ready",
                        self.cfg.min_ready_duration - waited
                    ))
                } else {
                    Ok(())
                }
            }
        }
    }
}
