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

mod config;
mod counts;
mod error;
mod ownership;
mod subring;
mod token_index;
mod walk;

pub use config::{ConfigError, ReplicationStrategy, RingConfig};
pub use counts::StateCounts;
pub use error::RingError;

pub(crate) use ownership::ZoneTables;

use token_index::*;
pub(crate) use walk::PrimaryPicks;
use walk::*;
pub use walk::{GetBuffer, KeyReplicas};

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
        d.tokens.normalize();
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

    /// An empty ring (fails as [`Self::new`] does on a bad configuration).
    pub fn empty(cfg: RingConfig) -> Result<RingSnapshot, ConfigError> {
        RingSnapshot::new(Desc::default(), cfg)
    }

    /// Builds the snapshot of a newer descriptor, reusing this one's token tables when only
    /// states and heartbeats changed (dskit's `RingCompare` "equal but states and
    /// timestamps"): the common heartbeat update costs no token work.
    ///
    /// A states-only update compares each instance's tokens with the ones this snapshot
    /// holds: a list that shares storage with ours (a copy of the same descriptor, see
    /// [`crate::Tokens`]) is equal without reading it, any other costs one `memcmp`
    /// (equal tokens are known sorted and unique, so they are not checked again). It
    /// keeps the zone names, per-zone counts, token table and walk table by reference,
    /// and only refreshes the per-instance state and heartbeat array.
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
        let backfill = |(id, mut d): (String, InstanceDesc)| {
            if d.id.is_empty() {
                d.id = id;
            }
            d
        };
        // LEFT tombstones are kept, as dskit's ring keeps them: they count as instances
        // and are never healthy. KV stores strip tombstones before readers see a value.
        // `extend` over the map moves each entry once, straight into place.
        let mut out = Vec::with_capacity(ingesters.len());
        if cfg.excluded_zones.is_empty() {
            out.extend(ingesters.into_iter().map(backfill));
        } else {
            out.extend(
                ingesters
                    .into_iter()
                    .filter(|(_, d)| !cfg.excluded_zones.contains(&d.zone))
                    .map(backfill),
            );
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

    /// Whether the instance is healthy for `op` at `now` (state allowed and heartbeat
    /// within the timeout).
    pub fn is_healthy(&self, idx: InstanceIdx, op: Operation, now: SystemTime) -> bool {
        let min_ts = min_healthy_timestamp(now, self.cfg.heartbeat_timeout);
        let h = &self.hot[idx as usize];
        op.is_state_healthy(h.state) && h.timestamp >= min_ts
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

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
