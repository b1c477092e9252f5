//! Immutable ring snapshot and lookups (spec/ring.md §3.1, §3.3-3.4).
//!
//! A [`RingSnapshot`] is built once per topology change from a [`Desc`] and is then only
//! read, so any number of threads can use it without locks (hold it in an `Arc` and swap
//! in a new one when the descriptor changes). Everything a lookup needs is precomputed:
//!
//! - the sorted token array with a parallel array of owner indices (instances are numbered
//!   in ID order), built with a radix sort;
//! - a bucket index over the top bits of the token space, so finding the first token greater
//!   than a key is one table read and a short scan instead of a binary search;
//! - per-instance "hot" data (zone index, state, heartbeat) packed for the walk;
//! - per-zone token arrays and per-instance ownership.
//!
//! Heartbeat-only changes (the common case) reuse the token tables: see
//! [`RingSnapshot::update`].
//!
//! Time is always an argument (`now`), never read from a clock.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::{Desc, InstanceDesc, InstanceState, token_distance};
use crate::op::Operation;
use crate::replication::ReplicationSet;
use crate::shuffle::ShuffleState;

/// How lookups behave: replication factor, zone awareness, health timeout.
///
/// `Default` gives dskit's defaults (spec/ring.md §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// `-distributor.replication-factor` / `replication_factor`, default 3. With zone
    /// awareness it is also the expected number of zones.
    pub replication_factor: usize,
    /// `-distributor.zone-awareness-enabled` / `zone_awareness_enabled`, default false:
    /// place each replica in a different zone.
    pub zone_awareness_enabled: bool,
    /// `-ring.heartbeat-timeout` / `heartbeat_timeout`, default 1m: an instance whose last
    /// heartbeat is older than this is unhealthy. Must be > 0.
    pub heartbeat_timeout: Duration,
    /// `-distributor.excluded-zones` / `excluded_zones`: instances in these zones are
    /// dropped from every descriptor the snapshot is built from.
    pub excluded_zones: Vec<String>,
    /// How unhealthy replicas are treated (dskit's `ReplicationStrategy`).
    pub strategy: ReplicationStrategy,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            replication_factor: 3,
            zone_awareness_enabled: false,
            heartbeat_timeout: Duration::from_secs(60),
            excluded_zones: Vec::new(),
            strategy: ReplicationStrategy::Default,
        }
    }
}

impl RingConfig {
    /// Checks the constraints dskit enforces at start-up: a replication factor and a
    /// heartbeat timeout above zero. dskit accepts fewer zones than the replication
    /// factor (and zones are only known at run time), so zone awareness adds no rule.
    /// [`RingSnapshot::new`] calls this, so a bad configuration fails when the first
    /// snapshot is built instead of dividing by zero on a lookup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replication_factor == 0 {
            return Err(ConfigError::ZeroReplicationFactor);
        }
        if self.heartbeat_timeout.is_zero() {
            return Err(ConfigError::ZeroHeartbeatTimeout);
        }
        Ok(())
    }
}

/// Why a [`RingConfig`] cannot be used. Kept apart from [`RingError`] (what a lookup
/// can meet) because it is found once, at start-up, and means the operator must change a
/// setting.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `replication_factor` is 0 (dskit: "ReplicationFactor must be greater than zero").
    #[error("invalid ring config: replication factor must be greater than 0")]
    ZeroReplicationFactor,
    /// `heartbeat_timeout` is 0 (dskit: "heartbeat timeout must be greater than 0").
    #[error("invalid ring config: heartbeat timeout must be greater than 0")]
    ZeroHeartbeatTimeout,
}

/// What a lookup does with unhealthy replicas (spec/ring.md §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReplicationStrategy {
    /// Quorum of `max(RF, set size) / 2 + 1` healthy replicas is required; unhealthy ones
    /// still count toward the set size.
    #[default]
    Default,
    /// Any healthy replica will do: at least one is required.
    IgnoreUnhealthy,
}

impl ReplicationStrategy {
    /// Whether a per-call replication factor above the configured one is allowed.
    pub fn supports_expanded_replication(self) -> bool {
        matches!(self, ReplicationStrategy::IgnoreUnhealthy)
    }
}

/// Why a lookup could not produce a replication set (configuration problems are
/// [`ConfigError`]s, found when the snapshot is built). Lookups never change the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RingError {
    /// No instance owns a token (or no instance at all for whole-ring calls).
    #[error("empty ring")]
    EmptyRing,
    /// The instance is not in the ring.
    #[error("instance not found in the ring")]
    InstanceNotFound,
    /// Too many instances (or zones) are unhealthy for a whole-ring operation.
    #[error("too many unhealthy instances in the ring")]
    TooManyUnhealthyInstances,
    /// The replica set for a key has fewer healthy members than the quorum needs.
    #[error("{}", not_enough_replicas_message(*.min_success, *.found, .unhealthy, *.zone_aware))]
    NotEnoughLiveReplicas {
        /// Healthy replicas the quorum needs.
        min_success: usize,
        /// Healthy replicas found.
        found: usize,
        /// Addresses of the unhealthy replicas that were met.
        unhealthy: Vec<String>,
        /// Whether zone awareness was on (changes the message, as in dskit).
        zone_aware: bool,
    },
    /// The ignore-unhealthy strategy found no healthy replica at all.
    #[error("at least 1 healthy replica required, could only find 0{}", unhealthy_suffix(.unhealthy))]
    NoHealthyReplica {
        /// Addresses of the unhealthy replicas that were met.
        unhealthy: Vec<String>,
    },
    /// A per-call replication factor above the configured one with a strategy that
    /// cannot honour it.
    #[error(
        "per-call replication factor {requested} cannot exceed the configured replication factor {configured} with this replication strategy"
    )]
    ReplicationFactorTooLarge {
        /// Requested per-call factor.
        requested: usize,
        /// Configured factor.
        configured: usize,
    },
    /// The instance's state is a wire value this crate does not know (for example
    /// Cortex's `READONLY = 5`); [`RingSnapshot::instance_at`] still shows the raw value.
    #[error("instance has an unknown state value {0}")]
    UnknownState(i32),
}

fn unhealthy_suffix(unhealthy: &[String]) -> String {
    if unhealthy.is_empty() {
        String::new()
    } else {
        format!(" - unhealthy instances: {}", unhealthy.join(","))
    }
}

fn not_enough_replicas_message(
    min_success: usize,
    found: usize,
    unhealthy: &[String],
    zone_aware: bool,
) -> String {
    let zones = if zone_aware {
        " across different availability zones"
    } else {
        ""
    };
    format!(
        "at least {min_success} live replicas required{zones}, could only find {found}{}",
        unhealthy_suffix(unhealthy)
    )
}

/// How many instances are in each state (see [`RingSnapshot::counts_by_state`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateCounts {
    /// ACTIVE instances.
    pub active: usize,
    /// LEAVING instances.
    pub leaving: usize,
    /// PENDING instances.
    pub pending: usize,
    /// JOINING instances.
    pub joining: usize,
    /// LEFT instances (tombstones; KV stores normally strip them before a reader sees them).
    pub left: usize,
    /// Instances whose wire state is none of the above (for example Cortex's `READONLY`).
    pub unknown: usize,
}

impl StateCounts {
    /// The count of `state`.
    pub fn get(&self, state: InstanceState) -> usize {
        match state {
            InstanceState::Active => self.active,
            InstanceState::Leaving => self.leaving,
            InstanceState::Pending => self.pending,
            InstanceState::Joining => self.joining,
            InstanceState::Left => self.left,
        }
    }

    /// The known states' counts indexed by wire value (`ACTIVE` = 0 ... `LEFT` = 4), the
    /// layout of a per-state metric.
    pub fn by_wire_value(&self) -> [usize; 5] {
        [
            self.active,
            self.leaving,
            self.pending,
            self.joining,
            self.left,
        ]
    }

    /// All instances counted, known states or not.
    pub fn total(&self) -> usize {
        self.active + self.leaving + self.pending + self.joining + self.left + self.unknown
    }

    fn add(&mut self, raw: i32) {
        let slot = match InstanceState::try_from(raw) {
            Ok(InstanceState::Active) => &mut self.active,
            Ok(InstanceState::Leaving) => &mut self.leaving,
            Ok(InstanceState::Pending) => &mut self.pending,
            Ok(InstanceState::Joining) => &mut self.joining,
            Ok(InstanceState::Left) => &mut self.left,
            Err(_) => &mut self.unknown,
        };
        *slot += 1;
    }
}

/// Index of an instance inside one snapshot (instances are numbered in ID order).
pub type InstanceIdx = u32;

/// Per-instance data the lookup walk touches, packed together.
#[derive(Clone, Copy, Debug)]
struct Hot {
    timestamp: i64,
    state: i32,
    zone: u32,
    /// Zone awareness ignores instances with an empty zone.
    zone_is_empty: bool,
    /// Shuffle sharding skips read-only instances.
    read_only: bool,
}

/// Per-instance and per-zone data derived from a snapshot's instances.
struct Indexed {
    zones: Vec<String>,
    hot: Vec<Hot>,
    zone_instances: Vec<u32>,
    zone_tokened: Vec<u32>,
    zone_states: Vec<u32>,
}

/// How [`RingSnapshot::find_instances`] produced its set.
#[derive(Clone, Copy, Debug)]
enum Walked {
    /// The set the full walk produces.
    Full,
    /// The full walk's set without the instances of dead zones, of which `unseen` (when
    /// known) would have been in it.
    SkippedDeadZones { unseen: Option<usize> },
}

/// [`Indexed`] for a sub-ring, whose zone names may be shared with its parent.
struct PickedIndex {
    zones: Arc<[String]>,
    hot: Vec<Hot>,
    zone_instances: Vec<u32>,
    zone_tokened: Vec<u32>,
    zone_states: Vec<u32>,
}

/// The bit of raw state `state` in a zone's state set: states 0-15 (the range an
/// [`Operation`] can name) have their own bit, any other value shares bit 31, which no
/// operation ever treats as "extend and drop".
#[inline]
fn state_bit(state: i32) -> u32 {
    if (0..16).contains(&state) {
        1 << state
    } else {
        1 << 31
    }
}

/// Sorts each instance's tokens and drops repeats (a descriptor from another writer may
/// hold them in any order).
fn normalize_tokens(instances: &mut [InstanceDesc]) {
    for d in instances {
        if !d.tokens.is_sorted() {
            d.tokens.sort_unstable();
        }
        d.tokens.dedup();
    }
}

/// Token tables: shared between snapshots whose topology is equal.
#[derive(Debug)]
struct TokenTable {
    /// All tokens, sorted, unique (a duplicated token keeps one deterministic owner).
    tokens: Vec<u32>,
    /// `owners[i]` owns `tokens[i]`.
    owners: Vec<InstanceIdx>,
    /// `bucket[b]` = index of the first token whose top `bits` bits are >= b.
    bucket: Vec<u32>,
    /// `32 - bits`.
    shift: u32,
    /// Per-zone tables, built on first use: lookups never need them, so a rebuild does not
    /// pay for them (status pages and shuffle sharding do, once per topology).
    zoned: OnceLock<ZoneTables>,
    /// The walk's answer for every start token when no instance met extends the set,
    /// built on the first lookup (see [`PrimaryWalks`]).
    walks: OnceLock<PrimaryWalks>,
    /// Keys owned per instance in the whole ring (first replica of each key), built on
    /// first use: only status pages and ownership queries read it.
    owned_global: OnceLock<Vec<u64>>,
    /// Whether no token is claimed by two instances. Then every subset of the instances
    /// has exactly its own tokens in its table, which lets shuffle-shard sub-rings skip
    /// duplicate resolution (see [`RingSnapshot::subring`]).
    unique: bool,
}

/// For each start token, the instances the ring walk picks when none of them extends the
/// replica set (the common case: every instance met is ACTIVE). A lookup whose picks
/// indeed do not extend for its operation uses them directly instead of walking.
///
/// Built backwards in one pass, O(tokens × RF): the walk from token `i` picks `owner(i)`,
/// then the walk from `i + 1` without the picks that `owner(i)` rules out (itself, and in a
/// zone-aware ring every other instance of its zone), cut to the set size. A snapshot's
/// tables depend only on its topology and configuration, which `update` keeps.
#[derive(Debug)]
struct PrimaryWalks {
    /// Picks per start token, `width` slots each; unused slots hold `u32::MAX`.
    picks: Vec<InstanceIdx>,
    width: usize,
}

/// A snapshot's precomputed walk picks, borrowed once per batch.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PrimaryPicks<'a> {
    tokens: &'a [u32],
    bucket: &'a [u32],
    shift: u32,
    picks: &'a [InstanceIdx],
    width: usize,
}

impl<'a> PrimaryPicks<'a> {
    /// Slots per key (unused ones hold `u32::MAX`).
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// The picks for `key`: the set [`RingSnapshot::get`] returns when none of them
    /// extends the walk for the operation and all are healthy.
    #[inline]
    pub(crate) fn get(&self, key: u32) -> &'a [InstanceIdx] {
        let start = search_indexed(self.tokens, self.bucket, self.shift, key);
        &self.picks[start * self.width..(start + 1) * self.width]
    }
}

/// Tables per zone, derived from the token table.
#[derive(Debug)]
pub(crate) struct ZoneTables {
    /// Tokens of each zone (in zone index order), sorted, with owners.
    pub(crate) zone_tokens: Vec<(Vec<u32>, Vec<InstanceIdx>)>,
    /// Keys owned per instance in its zone's ring (dskit's `CountTokens`).
    pub(crate) owned_in_zone: Vec<u64>,
    /// Bucket index and shift of each zone's tokens (see [`TokenTable::bucket`]), so the
    /// shard walk finds its start with one or two cache misses instead of a binary search.
    zone_index: Vec<(Vec<u32>, u32)>,
}

/// Caller-owned scratch space for [`RingSnapshot::get`], reused across calls so lookups
/// do not allocate once the buffer has grown to the ring's size.
#[derive(Debug, Default)]
pub struct GetBuffer {
    out: Vec<InstanceIdx>,
    seen: Vec<u64>,
    zone_found: Vec<u32>,
    zone_examined: Vec<u32>,
    /// Health deadline of the last call: batches look up many keys at one `now`.
    deadline: Option<(SystemTime, Duration, i64)>,
}

impl GetBuffer {
    /// An empty buffer; it grows on first use.
    pub fn new() -> GetBuffer {
        GetBuffer::default()
    }

    /// [`min_healthy_timestamp`], remembered for repeated calls at the same `now`.
    #[inline]
    fn min_healthy_timestamp(&mut self, now: SystemTime, timeout: Duration) -> i64 {
        match self.deadline {
            Some((n, t, ts)) if n == now && t == timeout => ts,
            _ => {
                let ts = min_healthy_timestamp(now, timeout);
                self.deadline = Some((now, timeout, ts));
                ts
            }
        }
    }

    #[inline]
    fn is_seen(&self, i: InstanceIdx) -> bool {
        self.seen[(i >> 6) as usize] & (1u64 << (i & 63)) != 0
    }

    #[inline]
    fn mark_seen(&mut self, i: InstanceIdx) {
        self.seen[(i >> 6) as usize] |= 1u64 << (i & 63);
    }

    fn clear_seen(&mut self) {
        for k in 0..self.out.len() {
            let i = self.out[k];
            self.seen[(i >> 6) as usize] = 0;
        }
    }
}

/// The replicas of one key, borrowed from the snapshot and the caller's buffer.
#[derive(Clone, Copy, Debug)]
pub struct KeyReplicas<'a> {
    ring: &'a RingSnapshot,
    indices: &'a [InstanceIdx],
    /// How many of these replicas may fail while the operation still succeeds.
    pub max_errors: usize,
}

impl<'a> KeyReplicas<'a> {
    /// Instance indices, in ring-walk order.
    pub fn indices(&self) -> &'a [InstanceIdx] {
        self.indices
    }

    /// Number of replicas.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the set is empty (never the case for a successful lookup).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The replicas' descriptors, in ring-walk order.
    pub fn instances(&self) -> impl ExactSizeIterator<Item = &'a InstanceDesc> + 'a {
        let ring = self.ring;
        self.indices.iter().map(move |&i| ring.instance_at(i))
    }

    /// Zones that may fail while the operation still succeeds: always 0 for a key's
    /// replicas, as in dskit (its `Get` never sets `MaxUnavailableZones`; a key's set
    /// tolerates [`Self::max_errors`] failed replicas instead). Present so code written
    /// against [`ReplicationSet`] reads the same.
    pub fn max_unavailable_zones(&self) -> usize {
        0
    }

    /// Minimum number of successful replicas for the operation to succeed.
    pub fn min_success(&self) -> usize {
        self.indices.len() - self.max_errors
    }

    /// An owned replication set (allocates; the hot path uses indices).
    pub fn to_replication_set(&self) -> ReplicationSet {
        ReplicationSet {
            instances: self.instances().cloned().collect(),
            max_errors: self.max_errors,
            max_unavailable_zones: 0,
            zone_awareness_enabled: false,
        }
    }
}

/// The instance descriptors of a snapshot, sorted by ID.
///
/// A shuffle-shard sub-ring does not copy its instances: it points into its parent's
/// descriptors by index, so cutting a shard costs no per-instance allocation. Lookups only
/// need single instances ([`RingSnapshot::instance_at`]); the contiguous slice
/// [`RingSnapshot::instances`] promises is copied on first request.
#[derive(Debug, Clone)]
enum Instances {
    /// A snapshot built from a descriptor.
    Own(Arc<Vec<InstanceDesc>>),
    /// A sub-ring: `all[picked[i]]` is instance `i`.
    Picked {
        all: Arc<Vec<InstanceDesc>>,
        picked: Arc<[InstanceIdx]>,
        copied: OnceLock<Vec<InstanceDesc>>,
    },
}

impl Instances {
    fn own(v: Vec<InstanceDesc>) -> Instances {
        Instances::Own(Arc::new(v))
    }

    /// The instances at `picked` (indices into `self`), sharing the descriptors (and, for
    /// a snapshot built from a descriptor, the index list too).
    fn pick(&self, picked: &Arc<[InstanceIdx]>) -> Instances {
        match self {
            Instances::Own(all) => Instances::Picked {
                all: Arc::clone(all),
                picked: Arc::clone(picked),
                copied: OnceLock::new(),
            },
            Instances::Picked {
                all, picked: mine, ..
            } => Instances::Picked {
                all: Arc::clone(all),
                picked: picked.iter().map(|&i| mine[i as usize]).collect(),
                copied: OnceLock::new(),
            },
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            Instances::Own(v) => v.len(),
            Instances::Picked { picked, .. } => picked.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn iter(&self) -> impl ExactSizeIterator<Item = &InstanceDesc> + '_ {
        (0..self.len()).map(move |i| &self[i])
    }

    fn as_slice(&self) -> &[InstanceDesc] {
        match self {
            Instances::Own(v) => v,
            Instances::Picked {
                all,
                picked,
                copied,
            } => copied.get_or_init(|| picked.iter().map(|&i| all[i as usize].clone()).collect()),
        }
    }
}

impl std::ops::Index<usize> for Instances {
    type Output = InstanceDesc;

    #[inline]
    fn index(&self, i: usize) -> &InstanceDesc {
        match self {
            Instances::Own(v) => &v[i],
            Instances::Picked { all, picked, .. } => &all[picked[i] as usize],
        }
    }
}

/// An immutable, read-optimised view of a ring descriptor.
#[derive(Debug, Clone)]
pub struct RingSnapshot {
    cfg: RingConfig,
    /// Instances sorted by ID; excluded zones removed.
    instances: Instances,
    hot: Vec<Hot>,
    /// Sorted zone names of all instances (the empty zone included if present); shared
    /// with the shuffle-shard sub-rings that span every zone.
    zones: Arc<[String]>,
    /// Instances per zone (with or without tokens).
    zone_instances: Vec<u32>,
    /// Instances per zone that own tokens (what a full walk can meet).
    zone_tokened: Vec<u32>,
    /// Per zone, the raw states its instances are in, one bit each (see [`state_bit`]):
    /// tells in a few instructions whether every instance of a zone would only extend a
    /// walk and then be dropped as unhealthy (see [`RingSnapshot::dead_zones`]).
    zone_states: Vec<u32>,
    table: Arc<TokenTable>,
    /// Shuffle-shard subring cache (see [`crate::shuffle`]).
    shuffle: ShuffleState,
}

impl RingSnapshot {
    /// Builds a snapshot. Instances of excluded zones are dropped, instance ids are
    /// back-filled from map keys, and each instance's tokens are sorted. LEFT tombstones are
    /// kept and treated exactly as dskit's ring treats them (counted, never healthy); KV
    /// stores strip them before a reader sees a value, so normally there are none.
    ///
    /// Every table a lookup needs is built here, the walk table included (see
    /// `PrimaryWalks`), so the first [`Self::get`] costs what every other one does and a
    /// rebuild's cost is paid by whoever publishes the snapshot (the ring watcher), not by
    /// a request. Tables only status pages and shuffle sharding read (per-zone tokens,
    /// ownership) are still built on first use.
    ///
    /// Fails only when `cfg` does not pass [`RingConfig::validate`].
    pub fn new(mut desc: Desc, cfg: RingConfig) -> Result<RingSnapshot, ConfigError> {
        cfg.validate()?;
        let mut instances = Self::collect_instances(&mut desc, &cfg);
        normalize_tokens(&mut instances);
        Ok(Self::build(instances, cfg, ShuffleState::fresh(true)))
    }

    /// A snapshot of prepared `instances` (sorted by ID, tokens sorted and unique) with all
    /// lookup tables built.
    fn build(instances: Vec<InstanceDesc>, cfg: RingConfig, shuffle: ShuffleState) -> RingSnapshot {
        let idx = Self::index_instances(&instances);
        let table = Arc::new(build_token_table(&instances, &idx.hot));
        let snapshot = RingSnapshot {
            cfg,
            instances: Instances::own(instances),
            hot: idx.hot,
            zones: idx.zones.into(),
            zone_instances: idx.zone_instances,
            zone_tokened: idx.zone_tokened,
            zone_states: idx.zone_states,
            table,
            shuffle,
        };
        snapshot.build_walks();
        snapshot
    }

    /// Builds the walk table now unless it exists (it is shared by snapshots of one
    /// topology) or the ring has no tokens.
    fn build_walks(&self) {
        if !self.table.tokens.is_empty() {
            self.table.walks.get_or_init(|| self.primary_walks());
        }
    }

    /// An empty ring (fails as [`Self::new`] does on a bad configuration).
    pub fn empty(cfg: RingConfig) -> Result<RingSnapshot, ConfigError> {
        RingSnapshot::new(Desc::default(), cfg)
    }

    /// Builds the snapshot of a newer descriptor, reusing this one's token tables when only
    /// states and heartbeats changed (dskit's `RingCompare` "equal but states and
    /// timestamps"): the common heartbeat update costs no token work.
    ///
    /// A states-only update compares each instance's tokens with the ones this snapshot
    /// holds (one `memcmp` each; equal tokens are known sorted and unique, so they are
    /// not checked again), keeps the zone names, per-zone counts, token table and walk
    /// table by reference, and only refreshes the per-instance state and heartbeat array.
    /// Any other change rebuilds every lookup table, as [`Self::new`] does.
    pub fn update(&self, mut desc: Desc) -> RingSnapshot {
        let mut instances = Self::collect_instances(&mut desc, &self.cfg);
        if !self.same_topology(&instances) || !self.same_token_owners(&instances) {
            normalize_tokens(&mut instances);
            return Self::build(instances, self.cfg.clone(), self.shuffle.successor(false));
        }
        let mut zone_states = vec![0u32; self.zones.len()];
        let hot = self
            .hot
            .iter()
            .zip(&instances)
            .map(|(h, d)| {
                zone_states[h.zone as usize] |= state_bit(d.state);
                Hot {
                    timestamp: d.timestamp,
                    state: d.state,
                    ..*h
                }
            })
            .collect();
        RingSnapshot {
            cfg: self.cfg.clone(),
            instances: Instances::own(instances),
            hot,
            zones: Arc::clone(&self.zones),
            zone_instances: self.zone_instances.clone(),
            zone_tokened: self.zone_tokened.clone(),
            zone_states,
            table: Arc::clone(&self.table),
            shuffle: self.shuffle.successor(true),
        }
    }

    /// Whether `instances` has the same topology as this snapshot: same instance set,
    /// addresses, zones, registration, read-only flags and tokens.
    /// Whether the token table's owners stay right for `instances` (same topology): a
    /// token claimed by two instances goes to the one that is not LEAVING, so when some
    /// token is claimed twice a change to or from LEAVING moves it.
    fn same_token_owners(&self, instances: &[InstanceDesc]) -> bool {
        let leaving = InstanceState::Leaving as i32;
        self.table.unique
            || self
                .hot
                .iter()
                .zip(instances)
                .all(|(h, d)| (h.state == leaving) == (d.state == leaving))
    }

    fn same_topology(&self, instances: &[InstanceDesc]) -> bool {
        self.instances.len() == instances.len()
            && self.instances.iter().zip(instances).all(|(a, b)| {
                a.id == b.id
                    && a.addr == b.addr
                    && a.zone == b.zone
                    && a.registered_timestamp == b.registered_timestamp
                    && a.read_only == b.read_only
                    && a.read_only_updated_timestamp == b.read_only_updated_timestamp
                    && a.tokens == b.tokens
            })
    }

    /// The descriptor's instances outside excluded zones, ids back-filled, sorted by ID.
    /// Tokens are left as they came (see [`normalize_tokens`]).
    fn collect_instances(desc: &mut Desc, cfg: &RingConfig) -> Vec<InstanceDesc> {
        let ingesters = std::mem::take(&mut desc.ingesters);
        let mut out = Vec::with_capacity(ingesters.len());
        for (id, mut d) in ingesters {
            // LEFT tombstones are kept, as dskit's ring keeps them: they count as instances
            // and are never healthy. KV stores strip tombstones before readers see a value.
            if cfg.excluded_zones.contains(&d.zone) {
                continue;
            }
            if d.id.is_empty() {
                d.id = id;
            }
            out.push(d);
        }
        // BTreeMap order is already sorted by key; ids equal keys after back-fill, but a
        // writer may have put a different id in the value, so sort by the id we show.
        if !out.is_sorted_by(|a, b| a.id <= b.id) {
            out.sort_by(|a, b| a.id.cmp(&b.id));
        }
        out
    }

    fn index_instances(instances: &[InstanceDesc]) -> Indexed {
        let mut zones: Vec<String> = instances.iter().map(|d| d.zone.clone()).collect();
        zones.sort_unstable();
        zones.dedup();
        let mut zone_instances = vec![0u32; zones.len()];
        let mut zone_tokened = vec![0u32; zones.len()];
        let mut zone_states = vec![0u32; zones.len()];
        let hot = instances
            .iter()
            .map(|d| {
                let zone = zones.binary_search(&d.zone).expect("zone listed") as u32;
                zone_instances[zone as usize] += 1;
                zone_tokened[zone as usize] += u32::from(!d.tokens.is_empty());
                zone_states[zone as usize] |= state_bit(d.state);
                Hot {
                    timestamp: d.timestamp,
                    state: d.state,
                    zone,
                    zone_is_empty: d.zone.is_empty(),
                    read_only: d.read_only,
                }
            })
            .collect();
        Indexed {
            zones,
            hot,
            zone_instances,
            zone_tokened,
            zone_states,
        }
    }

    /// The configuration lookups use.
    pub fn config(&self) -> &RingConfig {
        &self.cfg
    }

    /// The replication factor.
    pub fn replication_factor(&self) -> usize {
        self.cfg.replication_factor
    }

    /// A descriptor equal to the one this snapshot shows (tombstones and excluded zones
    /// removed).
    pub fn to_desc(&self) -> Desc {
        Desc {
            ingesters: self
                .instances
                .iter()
                .map(|d| (d.id.clone(), d.clone()))
                .collect(),
        }
    }

    /// All instances, sorted by ID; position = [`InstanceIdx`].
    pub fn instances(&self) -> &[InstanceDesc] {
        self.instances.as_slice()
    }

    /// The instance at `idx`. Panics if `idx` did not come from this snapshot.
    #[inline]
    pub fn instance_at(&self, idx: InstanceIdx) -> &InstanceDesc {
        &self.instances[idx as usize]
    }

    /// Index of the instance `id`.
    pub fn instance_index(&self, id: &str) -> Option<InstanceIdx> {
        self.instances()
            .binary_search_by(|d| d.id.as_str().cmp(id))
            .ok()
            .map(|i| i as InstanceIdx)
    }

    /// The instance `id`.
    pub fn instance(&self, id: &str) -> Result<&InstanceDesc, RingError> {
        self.instance_index(id)
            .map(|i| self.instance_at(i))
            .ok_or(RingError::InstanceNotFound)
    }

    /// Whether `id` is in the ring.
    pub fn has_instance(&self, id: &str) -> bool {
        self.instance_index(id).is_some()
    }

    /// State of `id` (dskit's `GetInstanceState`). A wire value outside
    /// [`InstanceState`] is [`RingError::UnknownState`].
    pub fn instance_state(&self, id: &str) -> Result<InstanceState, RingError> {
        let raw = self.instance(id)?.state;
        InstanceState::try_from(raw).map_err(|_| RingError::UnknownState(raw))
    }

    /// Sorted zone names (the empty zone included if some instance has none).
    pub fn zones(&self) -> &[String] {
        &self.zones
    }

    /// Number of zones.
    pub fn zones_count(&self) -> usize {
        self.zones.len()
    }

    /// Index of `zone` in [`Self::zones`].
    pub fn zone_index(&self, zone: &str) -> Option<usize> {
        self.zones.binary_search_by(|z| z.as_str().cmp(zone)).ok()
    }

    /// Whether an instance is read-only.
    #[inline]
    pub(crate) fn is_read_only(&self, idx: InstanceIdx) -> bool {
        self.hot[idx as usize].read_only
    }

    /// Zone index of an instance.
    #[inline]
    pub fn zone_of(&self, idx: InstanceIdx) -> usize {
        self.hot[idx as usize].zone as usize
    }

    /// Number of instances, with or without tokens.
    pub fn instances_count(&self) -> usize {
        self.instances.len()
    }

    /// Number of instances that own at least one token.
    pub fn instances_with_tokens_count(&self) -> usize {
        self.instances
            .iter()
            .filter(|d| !d.tokens.is_empty())
            .count()
    }

    /// Number of instances in `zone`.
    pub fn instances_in_zone_count(&self, zone: &str) -> usize {
        self.zone_index(zone)
            .map_or(0, |z| self.zone_instances[z] as usize)
    }

    /// Number of instances in `zone` that own tokens.
    pub fn instances_with_tokens_in_zone_count(&self, zone: &str) -> usize {
        self.instances
            .iter()
            .filter(|d| d.zone == zone && !d.tokens.is_empty())
            .count()
    }

    /// Number of instances that own tokens and are not read-only.
    pub fn writable_instances_with_tokens_count(&self) -> usize {
        self.instances
            .iter()
            .filter(|d| !d.read_only && !d.tokens.is_empty())
            .count()
    }

    /// Number of instances in `zone` that own tokens and are not read-only.
    pub fn writable_instances_with_tokens_in_zone_count(&self, zone: &str) -> usize {
        self.instances
            .iter()
            .filter(|d| d.zone == zone && !d.read_only && !d.tokens.is_empty())
            .count()
    }

    /// Instance counts per state (instances in a state this crate does not know are
    /// counted apart, in [`StateCounts::unknown`]).
    pub fn counts_by_state(&self) -> StateCounts {
        let mut counts = StateCounts::default();
        for h in &self.hot {
            counts.add(h.state);
        }
        counts
    }

    /// Instance counts per (zone, state), zones in [`Self::zones`] order.
    pub fn counts_by_zone_and_state(&self) -> Vec<(String, StateCounts)> {
        let mut out: Vec<(String, StateCounts)> = self
            .zones
            .iter()
            .map(|z| (z.clone(), StateCounts::default()))
            .collect();
        for h in &self.hot {
            out[h.zone as usize].1.add(h.state);
        }
        out
    }

    /// All tokens of the ring, sorted and unique.
    pub fn tokens(&self) -> &[u32] {
        &self.table.tokens
    }

    /// Owner index of each token in [`Self::tokens`].
    pub fn token_owners(&self) -> &[InstanceIdx] {
        &self.table.owners
    }

    /// Sorted tokens of zone `z` (index into [`Self::zones`]) and their owners.
    pub fn zone_tokens(&self, z: usize) -> (&[u32], &[InstanceIdx]) {
        let (t, o) = &self.zone_tables().zone_tokens[z];
        (t, o)
    }

    fn zone_tables(&self) -> &ZoneTables {
        self.table.zoned.get_or_init(|| {
            zone_tables(
                &self.table.tokens,
                &self.table.owners,
                &self.hot,
                self.zones.len(),
                self.instances.len(),
            )
        })
    }

    /// Keys (out of 2^32) owned by an instance in its own zone's ring: dskit's
    /// `CountTokens`, what the `/ring` page shows as ownership.
    pub fn owned_keys_in_zone(&self, idx: InstanceIdx) -> u64 {
        self.zone_tables().owned_in_zone[idx as usize]
    }

    fn owned_global(&self) -> &[u64] {
        self.table.owned_global.get_or_init(|| {
            owned_global(&self.table.tokens, &self.table.owners, self.instances.len())
        })
    }

    /// Keys (out of 2^32) for which the instance is the first owner in the whole ring.
    pub fn owned_keys(&self, idx: InstanceIdx) -> u64 {
        self.owned_global()[idx as usize]
    }

    /// Fraction of the keyspace owned by the instance in its zone's ring (0.0-1.0).
    pub fn ownership_in_zone(&self, idx: InstanceIdx) -> f64 {
        self.owned_keys_in_zone(idx) as f64 / KEYSPACE
    }

    /// Fraction of the whole keyspace for which the instance is the first owner (0.0-1.0).
    pub fn ownership(&self, idx: InstanceIdx) -> f64 {
        self.owned_keys(idx) as f64 / KEYSPACE
    }

    /// Fraction of the whole keyspace whose first owner is in zone `z` (0.0-1.0).
    pub fn zone_ownership(&self, z: usize) -> f64 {
        self.hot
            .iter()
            .enumerate()
            .filter(|(_, h)| h.zone as usize == z)
            .map(|(i, _)| self.owned_global()[i] as f64)
            .sum::<f64>()
            / KEYSPACE
    }

    /// Whether the instance is healthy for `op` at `now` (state allowed and heartbeat
    /// within the timeout).
    pub fn is_healthy(&self, idx: InstanceIdx, op: Operation, now: SystemTime) -> bool {
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let h = &self.hot[idx as usize];
        op.is_state_healthy(h.state) && h.timestamp >= min_ts
    }

    /// Index of the first token strictly greater than `key`, wrapping to 0 (dskit's
    /// `searchToken`). The ring must not be empty.
    #[inline]
    pub fn search_token(&self, key: u32) -> usize {
        let t = &*self.table;
        search_indexed(&t.tokens, &t.bucket, t.shift, key)
    }

    /// [`Self::search_token`] in zone `z`'s tokens ([`Self::zone_tokens`]), which must not
    /// be empty.
    #[inline]
    pub(crate) fn search_zone_token(&self, z: usize, key: u32) -> usize {
        let zt = self.zone_tables();
        let (bucket, shift) = &zt.zone_index[z];
        search_indexed(&zt.zone_tokens[z].0, bucket, *shift, key)
    }

    /// The replicas of `key` for `op` (dskit's `Ring.Get`): RF distinct instances walking
    /// clockwise from the first token greater than the key, one per zone when zone-aware,
    /// extended past instances whose state the operation extends on, then filtered by the
    /// replication strategy. Allocation-free once `buf` has grown.
    pub fn get<'a>(
        &'a self,
        key: u32,
        op: Operation,
        now: SystemTime,
        buf: &'a mut GetBuffer,
    ) -> Result<KeyReplicas<'a>, RingError> {
        self.get_with_replication_factor(key, op, 0, now, buf)
    }

    /// Like [`Self::get`] with a per-call replication factor (dskit's
    /// `GetWithOptions(WithReplicationFactor)`): 0 or less than configured means the
    /// configured one; more than configured needs a strategy that supports it.
    pub fn get_with_replication_factor<'a>(
        &'a self,
        key: u32,
        op: Operation,
        replication_factor: usize,
        now: SystemTime,
        buf: &'a mut GetBuffer,
    ) -> Result<KeyReplicas<'a>, RingError> {
        if self.table.tokens.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let configured = self.cfg.replication_factor;
        let rf = replication_factor.max(configured);
        if rf > configured && !self.cfg.strategy.supports_expanded_replication() {
            return Err(RingError::ReplicationFactorTooLarge {
                requested: rf,
                configured,
            });
        }
        let walked = self.find_instances(key, op, rf, buf);
        let min_ts = buf.min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        if let Walked::SkippedDeadZones { unseen } = walked {
            if let Some(max_errors) = self.filter_skipped(op, rf, min_ts, &mut buf.out, unseen) {
                return Ok(KeyReplicas {
                    ring: self,
                    indices: &buf.out,
                    max_errors,
                });
            }
            // The strategy needs what was skipped (a failed lookup's message names every
            // unhealthy replica): walk again in full. Only failing lookups get here.
            buf.out.clear();
            self.walk_from(self.search_token(key), op, rf, buf, 0);
        }
        let max_errors = self.filter(op, rf, min_ts, &mut buf.out)?;
        Ok(KeyReplicas {
            ring: self,
            indices: &buf.out,
            max_errors,
        })
    }

    /// The ring walk (dskit's `findInstancesForKey`), unfiltered; result in `buf.out`.
    ///
    /// Three ways, fastest first: the precomputed picks of the start token when none of
    /// them extends the set; a zone-aware walk that leaves out *dead zones* (every instance
    /// in a state that extends the set and is unhealthy for `op`, such as a zone being
    /// rolled out with all instances LEAVING for a write) when there are some; the full walk.
    fn find_instances(&self, key: u32, op: Operation, rf: usize, buf: &mut GetBuffer) -> Walked {
        buf.out.clear();
        let start = self.search_token(key);
        if rf == self.cfg.replication_factor {
            let walks = self.table.walks.get_or_init(|| self.primary_walks());
            let picks = &walks.picks[start * walks.width..(start + 1) * walks.width];
            let picks = &picks[..picks
                .iter()
                .position(|&p| p == u32::MAX)
                .unwrap_or(picks.len())];
            if picks
                .iter()
                .all(|&p| !op.extends_on(self.hot[p as usize].state))
            {
                buf.out.extend_from_slice(picks);
                return Walked::Full;
            }
        }
        let words = self.instances.len().div_ceil(64);
        if buf.seen.len() < words {
            buf.seen.resize(words, 0);
        }
        let dead = if self.cfg.zone_awareness_enabled {
            self.dead_zones(op)
        } else {
            0
        };
        let size_stop = self.walk_from(start, op, rf, buf, dead);
        if dead == 0 {
            return Walked::Full;
        }
        // Left out: the dead zones' instances the full walk would have met. It meets all
        // of them unless it stops on the set size first, and then how many is unknown.
        let unseen = (!size_stop).then(|| {
            (0..self.zones.len())
                .filter(|&z| dead >> z & 1 != 0)
                .map(|z| self.zone_tokened[z] as usize)
                .sum()
        });
        Walked::SkippedDeadZones { unseen }
    }

    /// The zones (as a bit set over zone indices) whose every instance is in a state that
    /// extends the set for `op` and is not healthy for it. A zone-aware walk meets every
    /// instance of such a zone (none is ever counted as found, so the zone only finishes
    /// when all of its instances were examined) and the strategy then drops them all;
    /// none of that changes what the walk does in the other zones. The empty zone never
    /// counts (zone awareness ignores it). Rings of more than 64 zones get none.
    fn dead_zones(&self, op: Operation) -> u64 {
        if self.zones.len() > 64 {
            return 0;
        }
        let dead_states = (op.0 >> 16) & !op.0 & 0xffff;
        let mut dead = 0u64;
        for (z, &states) in self.zone_states.iter().enumerate() {
            if states != 0 && states & !dead_states == 0 && !self.zones[z].is_empty() {
                dead |= 1 << z;
            }
        }
        dead
    }

    /// [`Self::filter`] after a walk that left out dead zones, with `unseen` of their
    /// replicas (all unhealthy) not in `out`. `None` when the strategy fails or needs the
    /// unknown set size: the caller then walks in full, so errors are always exact.
    fn filter_skipped(
        &self,
        op: Operation,
        rf: usize,
        min_ts: i64,
        out: &mut Vec<InstanceIdx>,
        unseen: Option<usize>,
    ) -> Option<usize> {
        let hot = &self.hot;
        let healthy = |i: &InstanceIdx| {
            let h = &hot[*i as usize];
            op.is_state_healthy(h.state) && h.timestamp >= min_ts
        };
        let healthy_count = out.iter().filter(|i| healthy(i)).count();
        let max_errors = match self.cfg.strategy {
            ReplicationStrategy::Default => {
                let set_size = out.len() + unseen?;
                healthy_count.checked_sub(rf.max(set_size) / 2 + 1)?
            }
            ReplicationStrategy::IgnoreUnhealthy => healthy_count.checked_sub(1)?,
        };
        if healthy_count != out.len() {
            out.retain(healthy);
        }
        Some(max_errors)
    }

    /// The full ring walk from token index `start` into `buf.out`, leaving out the
    /// instances of the zones in `dead` (see [`Self::dead_zones`]; 0 for none). Returns
    /// whether the walk stopped because the set reached its size.
    fn walk_from(
        &self,
        start: usize,
        op: Operation,
        rf: usize,
        buf: &mut GetBuffer,
        dead: u64,
    ) -> bool {
        let size_stop = if !self.cfg.zone_awareness_enabled {
            self.walk_plain(start, op, rf, buf);
            false
        } else if self.zones.len() <= STACK_ZONES {
            let mut found = [0u32; STACK_ZONES];
            let mut examined = [0u32; STACK_ZONES];
            self.walk_zoned(start, op, rf, buf, &mut found, &mut examined, dead)
        } else {
            let mut found = std::mem::take(&mut buf.zone_found);
            let mut examined = std::mem::take(&mut buf.zone_examined);
            found.clear();
            found.resize(self.zones.len(), 0);
            examined.clear();
            examined.resize(self.zones.len(), 0);
            let size_stop = self.walk_zoned(start, op, rf, buf, &mut found, &mut examined, dead);
            buf.zone_found = found;
            buf.zone_examined = examined;
            size_stop
        };
        buf.clear_seen();
        size_stop
    }

    /// Walk without zone awareness: the next distinct instances clockwise.
    fn walk_plain(&self, start: usize, op: Operation, rf: usize, buf: &mut GetBuffer) {
        let owners = &self.table.owners[..];
        let limit_instances = self.instances.len();
        let mut replica_set_size = rf;
        let mut i = start;
        for _ in 0..owners.len() {
            if buf.out.len() >= limit_instances.min(replica_set_size) {
                break;
            }
            let idx = owners[i];
            i += 1;
            if i == owners.len() {
                i = 0;
            }
            if buf.is_seen(idx) {
                continue;
            }
            buf.mark_seen(idx);
            if op.extends_on(self.hot[idx as usize].state) {
                replica_set_size += 1;
            }
            buf.out.push(idx);
        }
    }

    /// Zone-aware walk: at most `target` instances per zone; a zone is finished once it
    /// has its target or every instance of it was examined, and the walk stops when all
    /// zones are finished (a zone named "" never finishes, as in dskit). Zones in `dead`
    /// count as finished from the start and their instances are passed over. Returns
    /// whether the walk stopped because the set reached its size.
    #[allow(clippy::too_many_arguments)]
    fn walk_zoned(
        &self,
        start: usize,
        op: Operation,
        rf: usize,
        buf: &mut GetBuffer,
        found: &mut [u32],
        examined: &mut [u32],
        dead: u64,
    ) -> bool {
        let owners = &self.table.owners[..];
        let zones = self.zones.len();
        let total = &self.zone_instances[..];
        let target = (rf / self.cfg.replication_factor).max(1) as u32;
        let limit_instances = self.instances.len();
        let mut replica_set_size = rf;
        let mut finished = dead.count_ones() as usize;
        let mut i = start;
        for _ in 0..owners.len() {
            if buf.out.len() >= limit_instances.min(replica_set_size) {
                return true;
            }
            if finished == zones {
                break;
            }
            let idx = owners[i];
            i += 1;
            if i == owners.len() {
                i = 0;
            }
            if buf.is_seen(idx) {
                continue;
            }
            let h = &self.hot[idx as usize];
            let z = h.zone as usize;
            // `dead` is 0 for rings of more than 64 zones, so the masked shift is exact.
            if dead >> (z & 63) & 1 != 0 {
                continue;
            }
            let zoned = !h.zone_is_empty;
            if zoned {
                if found[z] >= target {
                    continue;
                }
                examined[z] += 1;
            }
            buf.mark_seen(idx);
            if op.extends_on(h.state) {
                replica_set_size += 1;
            } else if zoned {
                found[z] += 1;
            }
            buf.out.push(idx);
            // Past the `continue` above the zone was not finished: `found < target`, and
            // an unexamined instance of it existed. So this step finishes it at most once.
            if zoned && (found[z] >= target || examined[z] >= total[z]) {
                finished += 1;
            }
        }
        false
    }

    /// Builds [`PrimaryWalks`] for this snapshot's topology and configuration.
    fn primary_walks(&self) -> PrimaryWalks {
        let owners = &self.table.owners;
        let n = owners.len();
        let rf = self.cfg.replication_factor;
        let width = rf.min(self.instances.len()).max(1);
        let mut picks = vec![u32::MAX; n * width];
        if n == 0 {
            return PrimaryWalks { picks, width };
        }
        // The last start token: an explicit walk with an operation that never extends.
        let mut buf = GetBuffer::new();
        buf.seen.resize(self.instances.len().div_ceil(64), 0);
        self.walk_from(n - 1, Operation(0), rf, &mut buf, 0);
        buf.clear_seen();
        picks[(n - 1) * width..(n - 1) * width + buf.out.len()].copy_from_slice(&buf.out);
        match width {
            1 => self.fill_walks::<1>(&mut picks),
            2 => self.fill_walks::<2>(&mut picks),
            3 => self.fill_walks::<3>(&mut picks),
            4 => self.fill_walks::<4>(&mut picks),
            _ => self.fill_walks_any(&mut picks, width, buf.out.clone()),
        }
        PrimaryWalks { picks, width }
    }

    /// [`Self::primary_walks`] for `W` (at most 4) picks per token, the last row already
    /// filled. Branch-free: in a zone-aware ring exactly one of the next token's picks
    /// shares the owner's zone, and which one is random.
    fn fill_walks<const W: usize>(&self, picks: &mut [InstanceIdx]) {
        let owners = &self.table.owners;
        let zone_aware = self.cfg.zone_awareness_enabled;
        // Per instance, the key that rules out another instance with the same key: its
        // zone when zones count, else a value no other instance has. The extra last entry
        // stands for an empty pick slot.
        let no_zone = |i: usize| u32::MAX - 1 - i as u32;
        let mut key: Vec<u32> = self
            .hot
            .iter()
            .enumerate()
            .map(|(i, h)| {
                if zone_aware && !h.zone_is_empty {
                    h.zone
                } else {
                    no_zone(i)
                }
            })
            .collect();
        let empty = key.len();
        key.push(u32::MAX);
        let mut rows = picks.chunks_exact_mut(W).rev();
        let Some(last) = rows.next() else {
            return;
        };
        // The row after the current one and its keys, carried in registers: each row
        // depends on the next, so nothing on that chain goes through memory.
        let mut next = [u32::MAX; W];
        next.copy_from_slice(last);
        let mut next_key = next.map(|p| key[(p as usize).min(empty)]);
        for (row, &o) in rows.zip(owners.iter().rev().skip(1)) {
            let own_key = key[o as usize];
            let mut cur = [u32::MAX; W];
            let mut cur_key = [u32::MAX; W];
            cur[0] = o;
            cur_key[0] = own_key;
            let mut len = 1usize;
            for (&p, &k) in next.iter().zip(&next_key) {
                let keep = p != u32::MAX && p != o && k != own_key;
                for j in 1..W {
                    let put = keep && len == j;
                    cur[j] = if put { p } else { cur[j] };
                    cur_key[j] = if put { k } else { cur_key[j] };
                }
                len += usize::from(keep);
            }
            row.copy_from_slice(&cur);
            next = cur;
            next_key = cur_key;
        }
    }

    /// [`Self::fill_walks`] for any width.
    fn fill_walks_any(&self, picks: &mut [InstanceIdx], width: usize, last: Vec<InstanceIdx>) {
        let owners = &self.table.owners;
        let n = owners.len();
        let zone_aware = self.cfg.zone_awareness_enabled;
        let mut next: Vec<InstanceIdx> = last;
        let mut cur: Vec<InstanceIdx> = Vec::with_capacity(width);
        for i in (0..n - 1).rev() {
            let o = owners[i];
            let h = &self.hot[o as usize];
            cur.clear();
            cur.push(o);
            for &p in &next {
                if cur.len() == width {
                    break;
                }
                let q = &self.hot[p as usize];
                let ruled_out = p == o
                    || (zone_aware && !h.zone_is_empty && !q.zone_is_empty && q.zone == h.zone);
                if !ruled_out {
                    cur.push(p);
                }
            }
            picks[i * width..i * width + cur.len()].copy_from_slice(&cur);
            std::mem::swap(&mut cur, &mut next);
        }
    }

    /// The replication strategy's filter: drops unhealthy replicas in place and returns
    /// how many errors the operation tolerates.
    fn filter(
        &self,
        op: Operation,
        rf: usize,
        min_ts: i64,
        out: &mut Vec<InstanceIdx>,
    ) -> Result<usize, RingError> {
        let set_size = out.len();
        let hot = &self.hot;
        let healthy = |i: &InstanceIdx| {
            let h = &hot[*i as usize];
            op.is_state_healthy(h.state) && h.timestamp >= min_ts
        };
        let unhealthy_addrs = |out: &[InstanceIdx]| -> Vec<String> {
            out.iter()
                .filter(|i| !healthy(i))
                .map(|&i| self.instances[i as usize].addr.clone())
                .collect()
        };
        let healthy_count = out.iter().filter(|i| healthy(i)).count();
        let max_errors = match self.cfg.strategy {
            ReplicationStrategy::Default => {
                let min_success = rf.max(set_size) / 2 + 1;
                if healthy_count < min_success {
                    return Err(RingError::NotEnoughLiveReplicas {
                        min_success,
                        found: healthy_count,
                        unhealthy: unhealthy_addrs(out),
                        zone_aware: self.cfg.zone_awareness_enabled,
                    });
                }
                healthy_count - min_success
            }
            ReplicationStrategy::IgnoreUnhealthy => {
                if healthy_count == 0 {
                    return Err(RingError::NoHealthyReplica {
                        unhealthy: unhealthy_addrs(out),
                    });
                }
                healthy_count - 1
            }
        };
        if healthy_count != set_size {
            out.retain(healthy);
        }
        Ok(max_errors)
    }

    /// Every instance healthy for `op` (dskit's `GetAllHealthy`): no quorum check,
    /// `max_errors = 0`.
    pub fn get_all_healthy(
        &self,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, RingError> {
        if self.instances.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let instances = self
            .instances
            .iter()
            .zip(&self.hot)
            .filter(|(_, h)| op.is_state_healthy(h.state) && h.timestamp >= min_ts)
            .map(|(d, _)| d.clone())
            .collect();
        Ok(ReplicationSet {
            instances,
            max_errors: 0,
            max_unavailable_zones: 0,
            zone_awareness_enabled: false,
        })
    }

    /// Every instance an "ask everyone" operation should reach (dskit's
    /// `GetReplicationSetForOperation`), with the errors or zones it may lose.
    ///
    /// Zone-aware: up to `min(zones, RF) / 2` zones may hold unhealthy instances; all
    /// instances of such zones are dropped and the remaining budget is returned as
    /// `max_unavailable_zones`. Otherwise `max(instances, RF) - RF / 2` healthy instances
    /// are required and the surplus is `max_errors`.
    pub fn replication_set_for_operation(
        &self,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, RingError> {
        if self.table.tokens.is_empty() {
            return Err(RingError::EmptyRing);
        }
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let mut failing_zone = vec![false; self.zones.len()];
        let mut healthy: Vec<usize> = Vec::with_capacity(self.instances.len());
        for (i, h) in self.hot.iter().enumerate() {
            if op.is_state_healthy(h.state) && h.timestamp >= min_ts {
                healthy.push(i);
            } else {
                failing_zone[h.zone as usize] = true;
            }
        }
        let rf = self.cfg.replication_factor;
        if self.cfg.zone_awareness_enabled {
            let replicated_zones = self.zones.len().min(rf);
            let max_unavailable = replicated_zones / 2;
            let failing = failing_zone.iter().filter(|f| **f).count();
            if failing > max_unavailable {
                return Err(RingError::TooManyUnhealthyInstances);
            }
            let instances = healthy
                .into_iter()
                .filter(|&i| !failing_zone[self.hot[i].zone as usize])
                .map(|i| self.instances[i].clone())
                .collect();
            Ok(ReplicationSet {
                instances,
                max_errors: 0,
                max_unavailable_zones: max_unavailable - failing,
                zone_awareness_enabled: true,
            })
        } else {
            let required = self.instances.len().max(rf) - rf / 2;
            if healthy.len() < required {
                return Err(RingError::TooManyUnhealthyInstances);
            }
            let max_errors = healthy.len() - required;
            Ok(ReplicationSet {
                instances: healthy
                    .into_iter()
                    .map(|i| self.instances[i].clone())
                    .collect(),
                max_errors,
                max_unavailable_zones: 0,
                zone_awareness_enabled: false,
            })
        }
    }

    /// A snapshot holding only the instances whose *state* is healthy for `op` (no
    /// heartbeat check), as dskit's `GetSubringForOperationStates`.
    pub fn subring_for_operation_states(&self, op: Operation) -> RingSnapshot {
        let desc = Desc {
            ingesters: self
                .instances
                .iter()
                .filter(|d| op.is_state_healthy(d.state))
                .map(|d| (d.id.clone(), d.clone()))
                .collect(),
        };
        let mut desc = desc;
        let mut instances = Self::collect_instances(&mut desc, &self.cfg);
        normalize_tokens(&mut instances);
        Self::build(instances, self.cfg.clone(), ShuffleState::fresh(true))
    }
}

/// Crate-internal constructors and accessors used by shuffle sharding.
impl RingSnapshot {
    /// The sub-ring of this snapshot's instances at `picked` (sorted, unique indices), as
    /// shuffle sharding cuts it. The instances are already prepared (sorted by ID, tokens
    /// sorted), and zones and per-instance data are remapped from this snapshot instead of
    /// being derived again. When no token of this ring is claimed twice, neither is one of
    /// the sub-ring's, and its table is built without duplicate resolution.
    pub(crate) fn subring(
        &self,
        picked: &Arc<[InstanceIdx]>,
        shuffle: ShuffleState,
    ) -> RingSnapshot {
        let idx = self.picked_hot(picked);
        let instances = self.instances.pick(picked);
        let table = if self.table.unique {
            unique_token_table(picked.len(), |i| &instances[i].tokens)
        } else {
            let copied: Vec<InstanceDesc> = instances.iter().cloned().collect();
            build_token_table(&copied, &idx.hot)
        };
        RingSnapshot {
            cfg: self.cfg.clone(),
            instances,
            hot: idx.hot,
            zones: idx.zones,
            zone_instances: idx.zone_instances,
            zone_tokened: idx.zone_tokened,
            zone_states: idx.zone_states,
            table: Arc::new(table),
            shuffle,
        }
    }

    /// Zone names, per-instance data and per-zone counts of the instances at `picked`
    /// (sorted indices), remapped from this snapshot's: zones keep their sorted order.
    fn picked_hot(&self, picked: &[InstanceIdx]) -> PickedIndex {
        // Old zone index -> new one (u32::MAX: no picked instance), on the stack for the
        // usual handful of zones.
        let mut on_stack = [u32::MAX; STACK_ZONES];
        let mut on_heap = Vec::new();
        let zone_map: &mut [u32] = if self.zones.len() <= STACK_ZONES {
            &mut on_stack[..self.zones.len()]
        } else {
            on_heap.resize(self.zones.len(), u32::MAX);
            &mut on_heap
        };
        for &i in picked {
            zone_map[self.hot[i as usize].zone as usize] = 0;
        }
        let mut kept = 0u32;
        for m in zone_map.iter_mut().filter(|m| **m == 0) {
            *m = kept;
            kept += 1;
        }
        // A shard normally spans every zone: then it shares the names.
        let zones: Arc<[String]> = if kept as usize == self.zones.len() {
            Arc::clone(&self.zones)
        } else {
            zone_map
                .iter()
                .zip(self.zones.iter())
                .filter(|(m, _)| **m != u32::MAX)
                .map(|(_, z)| z.clone())
                .collect()
        };
        let mut zone_instances = vec![0u32; zones.len()];
        let mut zone_tokened = vec![0u32; zones.len()];
        let mut zone_states = vec![0u32; zones.len()];
        let hot: Vec<Hot> = picked
            .iter()
            .map(|&i| {
                let mut h = self.hot[i as usize];
                h.zone = zone_map[h.zone as usize];
                let z = h.zone as usize;
                zone_instances[z] += 1;
                zone_tokened[z] += u32::from(!self.instances[i as usize].tokens.is_empty());
                zone_states[z] |= state_bit(h.state);
                h
            })
            .collect();
        PickedIndex {
            zones,
            hot,
            zone_instances,
            zone_tokened,
            zone_states,
        }
    }

    /// The same subring with each instance's descriptor replaced by `parent`'s current
    /// one (`parent_indices[i]` is the parent index of this snapshot's instance `i`). Only
    /// valid when `parent` has the topology this subring was cut from: token tables are
    /// shared, only states and heartbeats change.
    pub(crate) fn refreshed_from(
        &self,
        parent: &RingSnapshot,
        parent_indices: &Arc<[InstanceIdx]>,
    ) -> RingSnapshot {
        let idx = parent.picked_hot(parent_indices);
        RingSnapshot {
            cfg: self.cfg.clone(),
            instances: parent.instances.pick(parent_indices),
            hot: idx.hot,
            zones: idx.zones,
            zone_instances: idx.zone_instances,
            zone_tokened: idx.zone_tokened,
            zone_states: idx.zone_states,
            table: Arc::clone(&self.table),
            shuffle: self.shuffle.successor(false),
        }
    }

    /// The walk's precomputed picks at the configured replication factor, for batches to
    /// skip the general lookup for most keys (see [`PrimaryPicks`]). `None` for a ring
    /// without tokens.
    pub(crate) fn primary_picks(&self) -> Option<PrimaryPicks<'_>> {
        if self.table.tokens.is_empty() {
            return None;
        }
        let walks = self.table.walks.get_or_init(|| self.primary_walks());
        Some(PrimaryPicks {
            tokens: &self.table.tokens,
            bucket: &self.table.bucket,
            shift: self.table.shift,
            picks: &walks.picks,
            width: walks.width,
        })
    }

    /// Fills `out[i]` with whether instance `i` can be taken straight from
    /// [`Self::primary_picks`] for `op` at `now`: its state does not extend the walk and
    /// it is healthy, so the strategy's filter keeps it.
    pub(crate) fn plain_healthy(&self, op: Operation, now: SystemTime, out: &mut Vec<bool>) {
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        out.clear();
        out.extend(self.hot.iter().map(|h| {
            !op.extends_on(h.state) && op.is_state_healthy(h.state) && h.timestamp >= min_ts
        }));
    }

    /// `max_errors` of a lookup at the configured replication factor that found `len`
    /// replicas, all healthy; `None` when such a set fails the strategy (the general
    /// lookup then reports the error).
    #[inline]
    pub(crate) fn healthy_set_max_errors(&self, len: usize) -> Option<usize> {
        match self.cfg.strategy {
            ReplicationStrategy::Default => {
                let min_success = self.cfg.replication_factor.max(len) / 2 + 1;
                len.checked_sub(min_success)
            }
            ReplicationStrategy::IgnoreUnhealthy => len.checked_sub(1),
        }
    }

    /// The shuffle-shard cache state of this snapshot.
    pub(crate) fn shuffle_state(&self) -> &ShuffleState {
        &self.shuffle
    }

    /// Replaces the shuffle-shard cache state (used to switch the cache off).
    pub(crate) fn set_shuffle_state(&mut self, shuffle: ShuffleState) {
        self.shuffle = shuffle;
    }

    /// Instances per zone, in [`Self::zones`] order (with or without tokens).
    pub(crate) fn zone_instance_counts(&self) -> &[u32] {
        &self.zone_instances
    }
}

const KEYSPACE: f64 = 4_294_967_296.0;

/// Zone counters live on the stack up to this many zones.
const STACK_ZONES: usize = 8;

/// Oldest heartbeat timestamp (Unix seconds) still healthy at `now`: dskit compares
/// `now - time.Unix(ts, 0) <= timeout` with nanosecond precision, which for whole-second
/// timestamps means `ts >= ceil((now - timeout) in seconds)`.
pub fn min_healthy_timestamp(now: SystemTime, timeout: Duration) -> i64 {
    // Whole seconds and nanoseconds of `now - timeout` relative to the epoch, without
    // 128-bit division (this runs once per lookup).
    let (mut secs, mut nanos) = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_nanos())),
        Err(e) => {
            let d = e.duration();
            let (s, n) = (-(d.as_secs() as i64), -i64::from(d.subsec_nanos()));
            if n < 0 {
                (s - 1, n + 1_000_000_000)
            } else {
                (s, n)
            }
        }
    };
    secs = secs.saturating_sub(i64::try_from(timeout.as_secs()).unwrap_or(i64::MAX));
    nanos -= i64::from(timeout.subsec_nanos());
    if nanos < 0 {
        nanos += 1_000_000_000;
        secs = secs.saturating_sub(1);
    }
    if nanos > 0 {
        secs.saturating_add(1)
    } else {
        secs
    }
}

/// `SystemTime` for a Unix-seconds timestamp (tests and tools).
pub fn unix_seconds(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

fn build_token_table(instances: &[InstanceDesc], hot: &[Hot]) -> TokenTable {
    let total: usize = instances.iter().map(|d| d.tokens.len()).sum();
    let bits = bucket_bits(total);
    let (pairs, bucket) = bucket_sort(instances, total, bits);

    // Resolve duplicated tokens deterministically: a non-LEAVING owner beats a LEAVING
    // one, then the lowest instance ID (= lowest index) wins (spec/ring.md §10.2).
    let leaving = |i: u32| hot[i as usize].state == InstanceState::Leaving as i32;
    let mut tokens: Vec<u32> = Vec::with_capacity(total);
    let mut owners: Vec<InstanceIdx> = Vec::with_capacity(total);
    for &p in &pairs {
        let token = (p >> 32) as u32;
        let idx = p as u32;
        if tokens.last() == Some(&token) {
            let cur = owners.last_mut().expect("parallel arrays");
            // Pairs with equal tokens arrive in index order, so `cur` < `idx`.
            if leaving(*cur) && !leaving(idx) {
                *cur = idx;
            }
            continue;
        }
        tokens.push(token);
        owners.push(idx);
    }
    drop(pairs);
    // The bucket starts counted pairs; with duplicates they must be recounted on tokens.
    let unique = tokens.len() == total;
    let index = unique.then_some((bucket, 32 - bits));
    finish_token_table(tokens, owners, index)
}

/// The token table of instances that claim no token twice (a subset of a ring whose
/// table is [`TokenTable::unique`]), built without pairs or duplicate checks: one counting
/// pass, one scatter pass straight into the token and owner arrays, and one insertion pass
/// that orders each bucket's few tokens. The bucket starts become the lookup index.
///
/// This is most of the cost of an uncached shuffle shard, so the loops are kept lean: bucket
/// numbers are masked to the counter table's length (no bounds checks), the prefix sums run
/// as two independent chains, and the insertion pass keeps the running maximum in a
/// register and only branches away for a token smaller than it.
fn unique_token_table<'a>(n: usize, tokens_of: impl Fn(usize) -> &'a [u32]) -> TokenTable {
    let total: usize = (0..n).map(|i| tokens_of(i).len()).sum();
    let bits = bucket_bits(total);
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mask = buckets - 1;
    // `counts[b]` counts bucket `b`, then (prefix sums) marks its end; the scatter below
    // fills each bucket backwards, leaving `counts[b]` at its start.
    let mut bucket = vec![0u32; buckets + 1];
    let counts = &mut bucket[..buckets];
    for i in 0..n {
        let mut quads = tokens_of(i).chunks_exact(4);
        for q in &mut quads {
            for &t in q {
                counts[(t >> shift) as usize & mask] += 1;
            }
        }
        for &t in quads.remainder() {
            counts[(t >> shift) as usize & mask] += 1;
        }
    }
    prefix_sums(counts);
    let mut tokens = vec![0u32; total];
    let mut owners = vec![0 as InstanceIdx; total];
    {
        let owners = &mut owners[..tokens.len()];
        // Backwards over instances and tokens, so each bucket ends up in (index, token) order.
        for i in (0..n).rev() {
            for &t in tokens_of(i).iter().rev() {
                let c = &mut counts[(t >> shift) as usize & mask];
                let p = *c - 1;
                *c = p;
                tokens[p as usize] = t;
                owners[p as usize] = i as InstanceIdx;
            }
        }
    }
    bucket[buckets] = total as u32;
    sort_bucketed(&mut tokens, &mut owners);
    TokenTable {
        tokens,
        owners,
        bucket,
        shift,
        zoned: OnceLock::new(),
        walks: OnceLock::new(),
        owned_global: OnceLock::new(),
        unique: true,
    }
}

/// In-place inclusive prefix sums, as two independent chains (the halves, the second
/// offset by the first's total) so that the additions overlap instead of waiting on each
/// other.
fn prefix_sums(v: &mut [u32]) {
    let (lo, hi) = v.split_at_mut(v.len() / 2);
    let mut a = 0u32;
    let mut b: u32 = lo.iter().sum();
    let (hi, tail) = hi.split_at_mut(lo.len());
    for (x, y) in lo.iter_mut().zip(hi.iter_mut()) {
        a += *x;
        *x = a;
        b += *y;
        *y = b;
    }
    for x in tail {
        b += *x;
        *x = b;
    }
}

/// Sorts `tokens` (moving `owners` along) when it is already in order but for short runs
/// (buckets of about one token). Insertion sort, with the largest token so far kept in a
/// register: an element at least as large, the common case, costs one comparison.
fn sort_bucketed(tokens: &mut [u32], owners: &mut [InstanceIdx]) {
    let Some(&first) = tokens.first() else {
        return;
    };
    let owners = &mut owners[..tokens.len()];
    let mut max = first;
    for k in 1..tokens.len() {
        let t = tokens[k];
        if t < max {
            // `t` belongs before `max`; the slot at `k` gets `max` back, so `max` stays.
            let o = owners[k];
            let mut j = k;
            while j > 0 && tokens[j - 1] > t {
                tokens[j] = tokens[j - 1];
                owners[j] = owners[j - 1];
                j -= 1;
            }
            tokens[j] = t;
            owners[j] = o;
        } else {
            max = t;
        }
    }
}

/// Sorts all `(token << 32 | instance index)` pairs by token, then index: one counting
/// pass and one scatter pass over buckets of the top `bits` token bits (about one token
/// per bucket), then an insertion sort of each tiny bucket. Tokens are uniform, so this is
/// linear; the bucket starts double as the lookup index (see [`TokenTable::bucket`]).
/// (A loser-tree merge of the sorted per-instance lists was measured slower: its matches
/// are unpredictable, and 256k × 9 of them cost more than two scatter passes.)
fn bucket_sort(instances: &[InstanceDesc], total: usize, bits: u32) -> (Vec<u64>, Vec<u32>) {
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mut bucket = vec![0u32; buckets + 1];
    for d in instances {
        for &t in &d.tokens {
            bucket[(t >> shift) as usize + 1] += 1;
        }
    }
    for b in 1..=buckets {
        bucket[b] += bucket[b - 1];
    }
    let mut cursor: Vec<u32> = bucket[..buckets].to_vec();
    let mut pairs = vec![0u64; total];
    for (i, d) in instances.iter().enumerate() {
        for &t in &d.tokens {
            let c = &mut cursor[(t >> shift) as usize];
            pairs[*c as usize] = (u64::from(t) << 32) | i as u64;
            *c += 1;
        }
    }
    drop(cursor);
    for b in 0..buckets {
        let (lo, hi) = (bucket[b] as usize, bucket[b + 1] as usize);
        if hi - lo > 1 {
            let run = &mut pairs[lo..hi];
            for k in 1..run.len() {
                let v = run[k];
                let mut j = k;
                while j > 0 && run[j - 1] > v {
                    run[j] = run[j - 1];
                    j -= 1;
                }
                run[j] = v;
            }
        }
    }
    (pairs, bucket)
}

/// The table of sorted `tokens` owned by `owners`, with its bucket index (`index`
/// when the caller already has it). `unique` = no token was claimed twice.
fn finish_token_table(
    tokens: Vec<u32>,
    owners: Vec<InstanceIdx>,
    index: Option<(Vec<u32>, u32)>,
) -> TokenTable {
    let unique = index.is_some();
    let (bucket, shift) = index.unwrap_or_else(|| bucket_index(&tokens));
    TokenTable {
        tokens,
        owners,
        bucket,
        shift,
        zoned: OnceLock::new(),
        walks: OnceLock::new(),
        owned_global: OnceLock::new(),
        unique,
    }
}

/// Keys owned per instance as first replica: the distance from each token's predecessor.
fn owned_global(tokens: &[u32], owners: &[InstanceIdx], n_instances: usize) -> Vec<u64> {
    let mut owned = vec![0u64; n_instances];
    let mut prev = tokens.last().copied().unwrap_or(0);
    for (&t, &o) in tokens.iter().zip(owners) {
        owned[o as usize] += token_distance(prev, t);
        prev = t;
    }
    owned
}

/// The per-zone token tables and zone-local ownership of a token table.
fn zone_tables(
    tokens: &[u32],
    owners: &[InstanceIdx],
    hot: &[Hot],
    zones: usize,
    n_instances: usize,
) -> ZoneTables {
    let mut per_zone = vec![0usize; zones];
    for &o in owners {
        per_zone[hot[o as usize].zone as usize] += 1;
    }
    let mut zone_tokens: Vec<(Vec<u32>, Vec<InstanceIdx>)> = per_zone
        .iter()
        .map(|&n| (Vec::with_capacity(n), Vec::with_capacity(n)))
        .collect();
    for (&t, &o) in tokens.iter().zip(owners) {
        let (zt, zo) = &mut zone_tokens[hot[o as usize].zone as usize];
        zt.push(t);
        zo.push(o);
    }
    let mut owned_in_zone = vec![0u64; n_instances];
    for (zt, zo) in &zone_tokens {
        let mut prev = zt.last().copied().unwrap_or(0);
        for (&t, &o) in zt.iter().zip(zo) {
            owned_in_zone[o as usize] += token_distance(prev, t);
            prev = t;
        }
    }
    let zone_index = zone_tokens.iter().map(|(zt, _)| bucket_index(zt)).collect();
    ZoneTables {
        zone_tokens,
        owned_in_zone,
        zone_index,
    }
}

/// The bucket index over sorted `tokens` and its shift (see [`TokenTable::bucket`]).
fn bucket_index(tokens: &[u32]) -> (Vec<u32>, u32) {
    let bits = bucket_bits(tokens.len());
    let shift = 32 - bits;
    let buckets = 1usize << bits;
    let mut bucket = vec![0u32; buckets + 1];
    // Count tokens per bucket, then prefix-sum into start indices.
    for &t in tokens {
        bucket[(t >> shift) as usize + 1] += 1;
    }
    for b in 1..=buckets {
        bucket[b] += bucket[b - 1];
    }
    (bucket, shift)
}

/// Index of the first of sorted `tokens` greater than `key`, wrapping to 0, through their
/// bucket index: one table read and a scan of about one token.
#[inline]
fn search_indexed(tokens: &[u32], bucket: &[u32], shift: u32, key: u32) -> usize {
    let b = (key >> shift) as usize;
    let mut i = bucket[b] as usize;
    let end = bucket[b + 1] as usize;
    while i < end && tokens[i] <= key {
        i += 1;
    }
    if i == tokens.len() { 0 } else { i }
}

/// Bucket index size: about one bucket per token, between 2^4 and 2^20 buckets.
fn bucket_bits(tokens: usize) -> u32 {
    let bits = usize::BITS - tokens.max(1).leading_zeros();
    bits.clamp(4, 20)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_table_is_sorted_unique_with_deterministic_owners_and_index() {
        let mut d = Desc::new();
        let mut x: u32 = 7;
        for i in 0..37 {
            let tokens: Vec<u32> = (0..100)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x % 20_000 // small range: many tokens shared between instances
                })
                .collect();
            let state = if i % 5 == 0 {
                InstanceState::Leaving
            } else {
                InstanceState::Active
            };
            d.add_instance(&format!("i{i:02}"), "a", "", tokens, state, 1, 1);
        }
        let instances: Vec<InstanceDesc> = d.ingesters.into_values().collect();
        let hot = RingSnapshot::index_instances(&instances).hot;
        let table = build_token_table(&instances, &hot);
        // Reference: every (token, index) pair sorted, first non-LEAVING claimant wins.
        let mut pairs: Vec<(u32, u32)> = instances
            .iter()
            .enumerate()
            .flat_map(|(i, d)| d.tokens.iter().map(move |&t| (t, i as u32)))
            .collect();
        pairs.sort_unstable();
        let mut want: Vec<(u32, u32)> = Vec::new();
        for (t, i) in pairs {
            let leaving = instances[i as usize].state == InstanceState::Leaving as i32;
            match want.last_mut() {
                Some(last) if last.0 == t => {
                    let cur_leaving =
                        instances[last.1 as usize].state == InstanceState::Leaving as i32;
                    if cur_leaving && !leaving {
                        last.1 = i;
                    }
                }
                _ => want.push((t, i)),
            }
        }
        let got: Vec<(u32, u32)> = table
            .tokens
            .iter()
            .copied()
            .zip(table.owners.iter().copied())
            .collect();
        assert_eq!(got, want);
        let (bucket, shift) = bucket_index(&table.tokens);
        assert_eq!((table.bucket.clone(), table.shift), (bucket, shift));
    }

    #[test]
    fn unique_token_table_matches_the_general_build() {
        let mut x: u32 = 11;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for n in [1usize, 2, 3, 7, 30] {
            let mut d = Desc::new();
            let mut taken = std::collections::HashSet::new();
            for i in 0..n {
                let mut tokens = Vec::new();
                while tokens.len() < 1 + (i * 37) % 200 {
                    let t = next();
                    if taken.insert(t) {
                        tokens.push(t);
                    }
                }
                d.add_instance(
                    &format!("i{i:02}"),
                    "a",
                    "z",
                    tokens,
                    InstanceState::Active,
                    1,
                    1,
                );
            }
            let instances: Vec<InstanceDesc> = d.ingesters.into_values().collect();
            let hot = RingSnapshot::index_instances(&instances).hot;
            let general = build_token_table(&instances, &hot);
            let lean = unique_token_table(instances.len(), |i| &instances[i].tokens);
            assert!(general.unique);
            assert_eq!(lean.tokens, general.tokens);
            assert_eq!(lean.owners, general.owners);
            assert_eq!((lean.bucket, lean.shift), (general.bucket, general.shift));
        }
    }

    #[test]
    fn fixed_width_walk_tables_match_the_general_build() {
        let mut x: u32 = 5;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for n in [1usize, 2, 3, 5, 9, 40] {
            for zone_aware in [false, true] {
                for rf in 1..=5 {
                    let mut d = Desc::new();
                    for i in 0..n {
                        let tokens: Vec<u32> = (0..1 + next() % 20).map(|_| next()).collect();
                        // Zones "", "a", "b", "c": the empty zone is never ruled out.
                        let zone = ["", "a", "b", "c"][next() as usize % 4];
                        d.add_instance(
                            &format!("i{i:02}"),
                            "addr",
                            zone,
                            tokens,
                            InstanceState::Active,
                            1,
                            1,
                        );
                    }
                    let cfg = RingConfig {
                        replication_factor: rf,
                        zone_awareness_enabled: zone_aware,
                        ..RingConfig::default()
                    };
                    let r = RingSnapshot::new(d, cfg).unwrap();
                    let fast = r.primary_walks();
                    let width = fast.width;
                    let len = r.table.tokens.len();
                    let mut slow = vec![u32::MAX; len * width];
                    let mut buf = GetBuffer::new();
                    buf.seen.resize(r.instances.len().div_ceil(64), 0);
                    r.walk_from(len - 1, Operation(0), rf, &mut buf, 0);
                    slow[(len - 1) * width..(len - 1) * width + buf.out.len()]
                        .copy_from_slice(&buf.out);
                    r.fill_walks_any(&mut slow, width, buf.out.clone());
                    assert_eq!(fast.picks, slow, "n {n} zone_aware {zone_aware} rf {rf}");
                }
            }
        }
    }

    #[test]
    fn prefix_sums_and_bucket_sort_match_the_plain_versions() {
        for len in [0usize, 1, 2, 3, 16, 17, 4096] {
            let v: Vec<u32> = (0..len as u32).map(|i| (i * 7919) % 5).collect();
            let mut got = v.clone();
            prefix_sums(&mut got);
            let want: Vec<u32> = v
                .iter()
                .scan(0u32, |s, &x| {
                    *s += x;
                    Some(*s)
                })
                .collect();
            assert_eq!(got, want, "len {len}");
        }
        // Runs of up to four out-of-order elements, owners moving along.
        let mut tokens = vec![3u32, 1, 2, 4, 9, 8, 7, 6, 10, 12, 11];
        let mut owners: Vec<InstanceIdx> = tokens.iter().map(|t| t + 100).collect();
        sort_bucketed(&mut tokens, &mut owners);
        assert!(tokens.is_sorted());
        assert!(tokens.iter().zip(&owners).all(|(t, o)| *o == t + 100));
        sort_bucketed(&mut [], &mut []);
    }

    #[test]
    fn min_healthy_timestamp_rounds_up_partial_seconds() {
        let t = |s: u64, n: u32| UNIX_EPOCH + Duration::new(s, n);
        assert_eq!(
            min_healthy_timestamp(t(100, 0), Duration::from_secs(60)),
            40
        );
        assert_eq!(
            min_healthy_timestamp(t(100, 1), Duration::from_secs(60)),
            41
        );
    }
}
