//! Being a member: [`MemberBuilder`] registers an instance, claims its tokens and keeps it
//! alive with heartbeats; [`Member`] is the running handle and [`Member::leave`] the clean
//! way out.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), ringkit_member::Error> {
//! use ringkit_member::{Member, Store};
//!
//! let member = Member::builder(Store::memory(), "ingester-1", "127.0.0.1:9095")
//!     .zone("zone-a")
//!     .tokens(128)
//!     .local_testing()
//!     .join()
//!     .await?;
//! assert_eq!(member.snapshot().instances_count(), 1);
//! member.leave().await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringkit_kv::{BoxError, CancellationToken};
use ringkit_lifecycle::{Lifecycler, LifecyclerConfig};
use ringkit_memberlist::runtime::Memberlist;
use ringkit_ring::tokens::{RandomTokenGenerator, TokenGenerator};
use ringkit_ring::{InstanceState, RingConfig, RingSnapshot};
use tokio::task::JoinHandle;

use crate::reader::{ReaderBuilder, RingChanges, RingReader, RingView};
use crate::{Error, Store};

/// How long `join` waits for the ring watch to deliver our own entry before reading the
/// store directly.
const JOIN_VISIBLE_WAIT: Duration = Duration::from_secs(5);

/// Settings of one ring member. Start with [`Member::builder`]; every setting has dskit's
/// default unless [`MemberBuilder::local_testing`] changed it.
#[derive(Clone)]
pub struct MemberBuilder {
    reader: ReaderBuilder,
    lifecycler: LifecyclerConfig,
    generator: Arc<dyn TokenGenerator + Send + Sync>,
    seed: Option<u64>,
}

impl std::fmt::Debug for MemberBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberBuilder")
            .field("reader", &self.reader)
            .field("lifecycler", &self.lifecycler)
            .finish_non_exhaustive()
    }
}

impl MemberBuilder {
    /// Instance `id` (the key of its ring entry, unique in the ring), reachable by clients
    /// at `addr` (`host:port`), in the ring held by `store`.
    pub fn new(store: Store, id: impl Into<String>, addr: impl Into<String>) -> MemberBuilder {
        MemberBuilder {
            reader: ReaderBuilder::new(store),
            lifecycler: LifecyclerConfig {
                id: id.into(),
                addr: addr.into(),
                ..LifecyclerConfig::default()
            },
            generator: Arc::new(RandomTokenGenerator::new()),
            seed: None,
        }
    }

    /// Availability zone (`-ingester.availability-zone`); with zone awareness on, replicas
    /// of a key go to different zones.
    pub fn zone(mut self, zone: impl Into<String>) -> MemberBuilder {
        self.lifecycler.zone = zone.into();
        self
    }

    /// Number of tokens to own (`-ingester.num-tokens`, default 128).
    pub fn tokens(mut self, n: usize) -> MemberBuilder {
        self.lifecycler.num_tokens = n;
        self
    }

    /// Heartbeat every `period`; an instance silent for `timeout` counts as unhealthy
    /// (`-ingester.heartbeat-period`, default 5s; `-ring.heartbeat-timeout`, default 1m).
    /// The timeout is used both for this member's readiness and for lookups.
    pub fn heartbeat(mut self, period: Duration, timeout: Duration) -> MemberBuilder {
        self.lifecycler.heartbeat_period = period;
        self.lifecycler.heartbeat_timeout = timeout;
        self.reader.ring.heartbeat_timeout = timeout;
        self
    }

    /// Replication factor for lookups on this member's snapshots (default 3).
    pub fn replication_factor(mut self, rf: usize) -> MemberBuilder {
        self.reader.ring.replication_factor = rf;
        self
    }

    /// Zone-aware replication for lookups: one replica per zone (default off).
    pub fn zone_awareness(mut self, on: bool) -> MemberBuilder {
        self.reader.ring.zone_awareness_enabled = on;
        self
    }

    /// The full ring key (default [`crate::DEFAULT_RING_KEY`], `collectors/ring`).
    pub fn key(mut self, key: impl Into<String>) -> MemberBuilder {
        self.reader = self.reader.key(key);
        self
    }

    /// Keep tokens across restarts in this file (`-ingester.tokens-file-path`).
    pub fn tokens_file(mut self, path: impl Into<PathBuf>) -> MemberBuilder {
        self.lifecycler.tokens_file_path = Some(path.into());
        self
    }

    /// Replaces the random token generator (e.g. with
    /// `ringkit_ring::tokens::SpreadMinimizingTokenGenerator`).
    pub fn token_generator(
        mut self,
        generator: Arc<dyn TokenGenerator + Send + Sync>,
    ) -> MemberBuilder {
        self.generator = generator;
        self
    }

    /// Seeds token generation, for reproducible tests and demos.
    pub fn seed(mut self, seed: u64) -> MemberBuilder {
        self.seed = Some(seed);
        self
    }

    /// Any other lifecycler setting (observe period, final sleep, auto-forget...), edited
    /// in place. Runs on the settings as they are now: later builder calls win.
    pub fn configure(mut self, edit: impl FnOnce(&mut LifecyclerConfig)) -> MemberBuilder {
        edit(&mut self.lifecycler);
        self
    }

    /// Any other lookup setting (replication strategy, excluded zones), edited in place.
    pub fn configure_ring(mut self, edit: impl FnOnce(&mut RingConfig)) -> MemberBuilder {
        edit(&mut self.reader.ring);
        self
    }

    /// Timings for programs on one machine, where dskit's production waits only slow you
    /// down: heartbeat every 1 s, unhealthy after 10 s, ready at once; with gossip, leave
    /// in about 3 s instead of up to 30 s (queued changes 2 s, leave message 1 s) and
    /// notice a killed peer within seconds (1 s probes). Later builder calls win.
    pub fn local_testing(mut self) -> MemberBuilder {
        self.lifecycler.heartbeat_period = Duration::from_secs(1);
        self.lifecycler.heartbeat_timeout = Duration::from_secs(10);
        self.lifecycler.min_ready_duration = Duration::ZERO;
        self.reader.ring.heartbeat_timeout = Duration::from_secs(10);
        self.reader = self.reader.local_testing();
        self
    }

    /// Registers, claims tokens and goes ACTIVE at once: for services with nothing to load
    /// before taking traffic. See [`MemberBuilder::join_after`] otherwise.
    pub async fn join(self) -> Result<Member, Error> {
        let (member, ()) = self.join_after(async { Ok::<(), BoxError>(()) }).await?;
        Ok(member)
    }

    /// Registers with no tokens (so nothing is routed here yet), runs `load` (e.g. replay
    /// a write-ahead log), then claims tokens and goes ACTIVE. If `load` fails, the entry
    /// is removed again and the error is returned as [`Error::Lifecycle`].
    pub async fn join_after<T, E>(
        self,
        load: impl Future<Output = Result<T, E>>,
    ) -> Result<(Member, T), Error>
    where
        E: Into<BoxError>,
    {
        let MemberBuilder {
            reader,
            lifecycler: cfg,
            generator,
            seed,
        } = self;
        cfg.validate()
            .map_err(ringkit_lifecycle::LifecyclerError::from)?;
        reader.ring.validate().map_err(Error::RingConfig)?;
        let period = cfg.heartbeat_period;
        let opened = reader.store.open().await?;
        let client = Arc::clone(&opened.client);
        let mut ring = RingReader::start(opened, reader.key.clone(), reader.ring).await?;
        let mut lifecycler = Lifecycler::new(cfg, client, reader.key, generator)?;
        if let Some(seed) = seed {
            lifecycler = lifecycler.with_seed(seed);
        }
        let lifecycler = Arc::new(lifecycler);
        let loaded = match lifecycler.join(load).await {
            Ok(loaded) => loaded,
            Err(e) => {
                // Leave no half-registered entry behind.
                if let Err(e) = lifecycler.leave().await {
                    tracing::warn!(error = %e, "could not unregister after a failed join");
                }
                ring.stop().await;
                return Err(e.into());
            }
        };
        // Return only once our own snapshot shows us as written, so `snapshot()` right
        // after `join` includes this member.
        let (id, state) = (lifecycler.config().id.clone(), lifecycler.state());
        let shows_us = ring.wait_for(|r| {
            r.instance(&id)
                .is_ok_and(|i| i.state() == state && !i.tokens.is_empty())
        });
        if tokio::time::timeout(JOIN_VISIBLE_WAIT, shows_us)
            .await
            .is_err()
        {
            // A slow watch: read the store once ourselves.
            ring.refresh().await?;
        }
        let cancel = CancellationToken::new();
        let status = Arc::new(Mutex::new(HeartbeatStatus::default()));
        let heartbeat = tokio::spawn(heartbeat_loop(
            Arc::clone(&lifecycler),
            period,
            cancel.clone(),
            Arc::clone(&status),
        ));
        let member = Member {
            lifecycler,
            ring,
            cancel,
            heartbeat: Some(heartbeat),
            status,
        };
        Ok((member, loaded))
    }
}

/// How the background heartbeats are going; see [`Member::heartbeat_status`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeartbeatStatus {
    /// Heartbeats written since the member joined.
    pub written: u64,
    /// Heartbeats that failed since the last one that succeeded. Peers count this
    /// member unhealthy once no heartbeat has landed for the heartbeat timeout.
    pub failures_in_a_row: u32,
    /// The most recent failure, kept after later successes.
    pub last_error: Option<String>,
}

async fn heartbeat_loop(
    lifecycler: Arc<Lifecycler>,
    period: Duration,
    cancel: CancellationToken,
    status: Arc<Mutex<HeartbeatStatus>>,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = lifecycler.heartbeat().await;
        let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                s.written += 1;
                s.failures_in_a_row = 0;
            }
            Err(e) => {
                tracing::warn!(error = %e, "ring heartbeat failed; retrying next period");
                s.failures_in_a_row = s.failures_in_a_row.saturating_add(1);
                s.last_error = Some(e.to_string());
            }
        }
    }
}

/// A running ring member: registered, ACTIVE, heartbeating in the background.
///
/// Call [`Member::leave`] on shutdown (e.g. after Ctrl-C). A member that is dropped
/// instead stops heartbeating and stays in the ring until peers see it unhealthy and
/// auto-forget removes it, like a crashed process.
#[derive(Debug)]
pub struct Member {
    lifecycler: Arc<Lifecycler>,
    ring: RingReader,
    cancel: CancellationToken,
    heartbeat: Option<JoinHandle<()>>,
    /// std Mutex: held only for a field update, never across an await.
    status: Arc<Mutex<HeartbeatStatus>>,
}

impl Member {
    /// Starts the settings of instance `id`, which clients reach at `addr`, in the ring
    /// held by `store`.
    pub fn builder(store: Store, id: impl Into<String>, addr: impl Into<String>) -> MemberBuilder {
        MemberBuilder::new(store, id, addr)
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.lifecycler.config().id
    }

    /// The newest ring snapshot (this member included once its writes came back from the
    /// store). Never blocks.
    pub fn snapshot(&self) -> Arc<RingSnapshot> {
        self.ring.snapshot()
    }

    /// New snapshots from now on; see [`RingReader::changes`].
    pub fn changes(&self) -> RingChanges {
        self.ring.changes()
    }

    /// A cloneable handle on this member's snapshots, for request handlers; see
    /// [`RingReader::view`].
    pub fn view(&self) -> RingView {
        self.ring.view()
    }

    /// The reading half: wait for a ring shape, the store client, the gossip node.
    pub fn ring(&self) -> &RingReader {
        &self.ring
    }

    /// This instance's state as last written (ACTIVE after a successful join).
    pub fn state(&self) -> InstanceState {
        self.lifecycler.state()
    }

    /// This instance's tokens as last written.
    pub fn tokens(&self) -> Vec<u32> {
        self.lifecycler.tokens()
    }

    /// How the background heartbeats are going. Failures are also logged with
    /// `tracing` (install a subscriber, e.g. `tracing_subscriber::fmt::init()`, to see
    /// them); this is the way to read them without one.
    pub fn heartbeat_status(&self) -> HeartbeatStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lifecycler, for what this handle does not cover (read-only mode, readiness,
    /// state changes).
    pub fn lifecycler(&self) -> &Lifecycler {
        &self.lifecycler
    }

    /// The gossip node, when the store is [`Store::Gossip`].
    pub fn gossip(&self) -> Option<&Memberlist> {
        self.ring.gossip()
    }

    /// Leaves cleanly: stops heartbeating, goes LEAVING, removes the entry (a LEFT
    /// tombstone under gossip), then leaves the gossip cluster. The gossip node and the
    /// watch are stopped even when removing the entry fails; that error is returned.
    pub async fn leave(mut self) -> Result<(), Error> {
        self.cancel.cancel();
        let heartbeat = match self.heartbeat.take() {
            Some(task) => task.await,
            None => Ok(()),
        };
        let left = self.lifecycler.leave().await;
        self.ring.stop().await;
        heartbeat.map_err(|e| Error::Task(format!("heartbeat task: {e}")))?;
        left.map_err(Error::from)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
