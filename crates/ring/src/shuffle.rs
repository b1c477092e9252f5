//! Shuffle sharding (spec/ring.md §3.5): each tenant gets a small, stable, pseudo-random
//! subset of the ring, the same subset dskit (Cortex, Mimir, Loki) picks.
//!
//! # How a shard is picked
//!
//! With zone awareness each zone is treated as its own ring and gets
//! `ceil(size / zones)` instances (zones in sorted order); without it there is one
//! pseudo-zone `""` over all tokens and `size` instances. A zone that would be taken whole
//! is taken whole (read-only instances aside). Otherwise a Go `math/rand` generator seeded
//! with the first 8 bytes of `MD5(tenant ‖ 0x00 ‖ zone)` (just `MD5(tenant)` for the
//! pseudo-zone) draws one `Uint32` per wanted instance; the walk starts at the first zone
//! token above it and takes the first owner not already in the shard. One generator per
//! zone keeps earlier picks when the size grows or a zone is added.
//!
//! Read-only instances are skipped. With a lookback window (reads that must see every
//! instance that owned the tenant's data recently), instances registered in the window,
//! read-only, or whose read-only flag flipped in the window are kept *and* the walk goes on
//! to the next instance, and read-only instances are only skipped when they became
//! read-only before the window.
//!
//! # Results and caching
//!
//! A shard is an `Arc<RingSnapshot>` with its own lookups. Snapshots are immutable, so
//! results are cached inside the snapshot they were cut from: per `(tenant, size)`, and per
//! `(tenant, size, lookback)` with the range of window starts the result is valid for
//! (as dskit). Replacing the snapshot after a topology change drops the cache with it.
//!
//! dskit keeps its cache across heartbeat-only changes and patches states and heartbeats
//! of cached subrings on each hit. Here [`RingSnapshot::update`] shares the cache with the
//! new snapshot when the topology (instances, zones, tokens, registration and read-only
//! data: everything a shard depends on) is unchanged; every snapshot has a generation
//! number and a cached subring from an older generation is refreshed on its first hit
//! (descriptors copied from the new parent, token tables shared, no token work) and
//! stored back. Heartbeat updates therefore neither recompute shards nor serve stale
//! health.
//!
//! # Known differences from dskit
//!
//! Only for rings with duplicated tokens, which dskit itself resolves by Go map order: the
//! snapshot keeps one deterministic owner per token (spec/ring.md §10.2) and a shard is
//! built from its own instances' tokens.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};

use crate::gorand::ShardRng;
use crate::model::InstanceDesc;
use crate::snapshot::{InstanceIdx, RingSnapshot};

/// Seed of the shard generator for `tenant` in `zone` (dskit's `ShuffleShardSeed`): the
/// first 8 bytes of `MD5(tenant ‖ 0x00 ‖ zone)`, big-endian, as a signed integer; the
/// separator and zone are left out when `zone` is empty.
pub fn shuffle_shard_seed(tenant: &str, zone: &str) -> i64 {
    let mut h = Md5::new();
    h.update(tenant.as_bytes());
    if !zone.is_empty() {
        h.update([0u8]);
        h.update(zone.as_bytes());
    }
    let sum = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&sum[..8]);
    i64::from_be_bytes(first)
}

/// Instances each zone contributes to a zone-aware shard of `size` over `zones` zones
/// (dskit's `ShuffleShardExpectedInstancesPerZone`): `ceil(size / zones)`.
pub fn shuffle_shard_expected_instances_per_zone(size: usize, zones: usize) -> usize {
    usize::try_from(per_zone_go(size, zones)).unwrap_or(0)
}

/// Instances a shard of `size` over `zones` zones holds in total (dskit's
/// `ShuffleShardExpectedInstances`): the per-zone count times `zones`; pass 1 zone when
/// zone awareness is off. Saturates at `usize::MAX` where Go's `int` would overflow.
pub fn shuffle_shard_expected_instances(size: usize, zones: usize) -> usize {
    shuffle_shard_expected_instances_per_zone(size, zones).saturating_mul(zones)
}

/// `ceil(size / zones)` computed as Go does it, in `float64`, so that sizes too large to
/// matter still round the same way; Go's `math.MaxInt` means "everything".
fn per_zone_go(size: usize, zones: usize) -> i64 {
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    if size == i64::MAX {
        return i64::MAX;
    }
    let f = (size as f64 / zones as f64).ceil();
    // Go's float-to-int conversion of an out-of-range value yields the minimum integer on
    // amd64; a negative count then picks nothing, as there.
    if f.is_nan() || f >= 2f64.powi(63) {
        i64::MIN
    } else {
        f as i64
    }
}

/// `now - lookback` in whole Unix seconds, rounded down as Go's `Time.Unix`.
fn window_start(now: SystemTime, lookback: Duration) -> i64 {
    let now_ns: i128 = match now.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let start = now_ns.saturating_sub(lookback.as_nanos().min(i128::MAX as u128) as i128);
    start
        .div_euclid(1_000_000_000)
        .clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// Whether a (possibly read-only) instance may be in a shard. `lookback_until` is the
/// window start, `None` without lookback.
#[inline]
fn include_read_only(d: &InstanceDesc, lookback_until: Option<i64>) -> bool {
    if !d.read_only {
        return true;
    }
    match lookback_until {
        // Without lookback read-only instances never receive a tenant's data.
        None => false,
        // With lookback they keep data written before they became read-only, unless that
        // happened before the window (an unknown time, 0, counts as recent).
        Some(until) => {
            !(d.read_only_updated_timestamp > 0 && d.read_only_updated_timestamp < until)
        }
    }
}

/// Source of snapshot generation numbers (only compared for order).
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// The shuffle-shard cache of a snapshot and the snapshot's generation (crate-internal:
/// stored in every [`RingSnapshot`]).
#[derive(Clone)]
pub(crate) struct ShuffleState {
    cache: Arc<ShuffleCache>,
    generation: u64,
}

impl std::fmt::Debug for ShuffleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShuffleState")
            .field("enabled", &self.cache.enabled)
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl ShuffleState {
    /// An empty cache (or none when `enabled` is false) and a new generation.
    pub(crate) fn fresh(enabled: bool) -> ShuffleState {
        let new_cache = || {
            Arc::new(ShuffleCache {
                enabled,
                plain: RwLock::default(),
                lookback: RwLock::default(),
            })
        };
        // A switched-off cache is never written, so one instance serves every snapshot
        // (uncached shards then allocate no cache of their own).
        static DISABLED: OnceLock<Arc<ShuffleCache>> = OnceLock::new();
        let cache = if enabled {
            new_cache()
        } else {
            Arc::clone(DISABLED.get_or_init(new_cache))
        };
        ShuffleState {
            cache,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The state of a snapshot built from this one: the same cache when the topology is
    /// unchanged (cached shards stay valid, their health is refreshed on hit), else an
    /// empty one.
    pub(crate) fn successor(&self, same_topology: bool) -> ShuffleState {
        if same_topology {
            ShuffleState {
                cache: Arc::clone(&self.cache),
                generation: GENERATION.fetch_add(1, Ordering::Relaxed),
            }
        } else {
            ShuffleState::fresh(self.cache.enabled)
        }
    }
}

/// Cached shards of one topology, keyed by tenant, then by size (and lookback).
#[derive(Default)]
struct ShuffleCache {
    enabled: bool,
    plain: RwLock<HashMap<String, Vec<Entry>>>,
    lookback: RwLock<HashMap<String, Vec<LookbackEntry>>>,
}

/// A cached shard.
#[derive(Clone)]
struct Entry {
    size: usize,
    /// Generation of the snapshot whose health data `ring` carries.
    generation: u64,
    ring: Arc<RingSnapshot>,
    /// Parent index of each shard instance, to refresh health data.
    parent_indices: Arc<[InstanceIdx]>,
}

/// A cached lookback shard: valid for window starts in `[valid_after, valid_before]`.
#[derive(Clone)]
struct LookbackEntry {
    lookback: Duration,
    valid_after: i64,
    valid_before: i64,
    entry: Entry,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl RingSnapshot {
    /// The shard of `tenant` with `size` instances (dskit's `ShuffleShard`): a subring
    /// with `ceil(size / zones)` instances per zone when zone-aware, `size` instances
    /// otherwise, never read-only instances. `size == 0` means no sharding: the ring
    /// without its read-only instances (this very snapshot when there are none).
    ///
    /// Results are cached in this snapshot unless the cache is off (see
    /// [`Self::without_subring_cache`]); a hit costs a map lookup and an `Arc` clone.
    pub fn shuffle_shard(self: &Arc<Self>, tenant: &str, size: usize) -> Arc<RingSnapshot> {
        let state = self.shuffle_state();
        let cache = &state.cache;
        if cache.enabled {
            let guard = read(&cache.plain);
            let hit = guard
                .get(tenant)
                .and_then(|v| v.iter().find(|e| e.size == size));
            if let Some(e) = hit {
                if e.generation == state.generation {
                    return Arc::clone(&e.ring);
                }
                let e = e.clone();
                drop(guard);
                return self.fresh_entry(e, |refreshed| {
                    let mut map = write(&cache.plain);
                    if let Some(slot) = map
                        .get_mut(tenant)
                        .and_then(|v| v.iter_mut().find(|e| e.size == size))
                        && slot.generation < refreshed.generation
                    {
                        *slot = refreshed.clone();
                    }
                });
            }
        }
        let picked = if size == 0 {
            match self.read_only_filter(None) {
                None => return Arc::clone(self),
                Some(p) => p,
            }
        } else {
            self.pick_shard(tenant, size, None)
        };
        let entry = self.entry_for(size, picked);
        if cache.enabled {
            let mut map = write(&cache.plain);
            let v = map.entry(tenant.to_owned()).or_default();
            match v.iter_mut().find(|e| e.size == size) {
                Some(slot) if slot.generation >= entry.generation => {}
                Some(slot) => *slot = entry.clone(),
                None => v.push(entry.clone()),
            }
        }
        entry.ring
    }

    /// The shard of `tenant` plus every instance that may have received the tenant's data
    /// during the last `lookback` before `now` (dskit's `ShuffleShardWithLookback`): the
    /// walk keeps instances registered or flipped read-only/read-write within the window
    /// and goes on past them. For reads only: the result may be unbalanced across zones.
    /// When every instance registered within the window the whole ring is returned.
    ///
    /// Cached per `(tenant, size, lookback)` for the window starts the result is valid for
    /// (until the earliest registration or read-only change inside the window ages out);
    /// the cache only helps when successive calls use increasing `now`.
    pub fn shuffle_shard_with_lookback(
        self: &Arc<Self>,
        tenant: &str,
        size: usize,
        lookback: Duration,
        now: SystemTime,
    ) -> Arc<RingSnapshot> {
        let start = window_start(now, lookback);
        let state = self.shuffle_state();
        let cache = &state.cache;
        let matches = |e: &LookbackEntry| e.entry.size == size && e.lookback == lookback;
        if cache.enabled {
            let hit = read(&cache.lookback).get(tenant).and_then(|v| {
                v.iter()
                    .find(|e| matches(e))
                    .filter(|e| e.valid_after <= start && start <= e.valid_before)
                    .map(|e| e.entry.clone())
            });
            if let Some(e) = hit {
                return self.fresh_entry(e, |refreshed| {
                    let mut map = write(&cache.lookback);
                    if let Some(slot) = map
                        .get_mut(tenant)
                        .and_then(|v| v.iter_mut().find(|e| matches(e)))
                        && slot.entry.generation < refreshed.generation
                        && slot.entry.parent_indices == refreshed.parent_indices
                    {
                        slot.entry = refreshed.clone();
                    }
                });
            }
        }
        let until = (!lookback.is_zero()).then_some(start);
        let picked = if size == 0 {
            self.read_only_filter(until)
        } else {
            self.pick_shard_or_whole(tenant, size, until)
        };
        let Some(picked) = picked else {
            return Arc::clone(self);
        };
        let entry = self.entry_for(size, picked);
        if cache.enabled {
            let valid_before = entry
                .ring
                .instances()
                .iter()
                .flat_map(|d| [d.registered_timestamp, d.read_only_updated_timestamp])
                .filter(|&t| t >= start)
                .min()
                .unwrap_or(i64::MAX);
            let new = LookbackEntry {
                lookback,
                valid_after: start,
                valid_before,
                entry: entry.clone(),
            };
            let mut map = write(&cache.lookback);
            let v = map.entry(tenant.to_owned()).or_default();
            match v.iter_mut().find(|e| matches(e)) {
                // Keep the entry whose window starts later (dskit's anti-thrash rule).
                Some(slot) if slot.valid_after < start => *slot = new,
                Some(_) => {}
                None => v.push(new),
            }
        }
        entry.ring
    }

    /// This snapshot with the shuffle-shard cache switched off (dskit's
    /// `SubringCacheDisabled`), for benchmarks and callers that cache elsewhere. Snapshots
    /// built from it with [`Self::update`] keep the setting.
    pub fn without_subring_cache(mut self) -> RingSnapshot {
        self.set_shuffle_state(ShuffleState::fresh(false));
        self
    }

    /// Whether shuffle-shard results are cached in this snapshot.
    pub fn subring_cache_enabled(&self) -> bool {
        self.shuffle_state().cache.enabled
    }

    /// Forgets the cached shards of `tenant` (dskit's `CleanupShuffleShardCache`), for
    /// example when the tenant is deleted.
    pub fn cleanup_shuffle_shard_cache(&self, tenant: &str) {
        let cache = &self.shuffle_state().cache;
        write(&cache.plain).remove(tenant);
        write(&cache.lookback).remove(tenant);
    }

    /// Parent indices (sorted) of the instances `shuffle_shard(tenant, size)` picks for
    /// `size > 0`, without building or caching a subring.
    pub fn shuffle_shard_indices(&self, tenant: &str, size: usize) -> Vec<InstanceIdx> {
        if size == 0 {
            return self
                .read_only_filter(None)
                .unwrap_or_else(|| (0..self.instances_count() as InstanceIdx).collect());
        }
        self.pick_shard(tenant, size, None)
    }

    /// A cache entry, refreshed to this snapshot's generation when it is older; `store`
    /// is called with the refreshed entry to put it back.
    fn fresh_entry(&self, e: Entry, store: impl FnOnce(&Entry)) -> Arc<RingSnapshot> {
        let generation = self.shuffle_state().generation;
        if e.generation == generation {
            return e.ring;
        }
        let refreshed = Entry {
            size: e.size,
            generation,
            ring: Arc::new(e.ring.refreshed_from(self, &e.parent_indices)),
            parent_indices: e.parent_indices,
        };
        if e.generation < generation {
            store(&refreshed);
        }
        refreshed.ring
    }

    fn entry_for(&self, size: usize, picked: Vec<InstanceIdx>) -> Entry {
        let picked: Arc<[InstanceIdx]> = picked.into();
        Entry {
            size,
            generation: self.shuffle_state().generation,
            ring: Arc::new(self.build_subring(&picked)),
            parent_indices: picked,
        }
    }

    /// `None` when every instance may stay (no read-only instance excluded), else the
    /// sorted indices of the instances that may (dskit's `filterOutReadOnlyInstances`).
    fn read_only_filter(&self, lookback_until: Option<i64>) -> Option<Vec<InstanceIdx>> {
        let instances = self.instances();
        let mut read_only = instances.iter().filter(|d| d.read_only).peekable();
        read_only.peek()?;
        if let Some(until) = lookback_until {
            let oldest = read_only
                .map(|d| d.read_only_updated_timestamp)
                .min()
                .unwrap_or(0);
            if oldest >= until {
                return None;
            }
        }
        Some(
            (0..instances.len() as InstanceIdx)
                .filter(|&i| include_read_only(&instances[i as usize], lookback_until))
                .collect(),
        )
    }

    /// The lookback fast path, then the walk: `None` means the whole ring.
    fn pick_shard_or_whole(
        &self,
        tenant: &str,
        size: usize,
        lookback_until: Option<i64>,
    ) -> Option<Vec<InstanceIdx>> {
        if let Some(until) = lookback_until {
            // Every instance registered within the window: all would be kept anyway. An
            // unknown registration time (0) disables the shortcut.
            let instances = self.instances();
            if !instances.is_empty() && instances.iter().all(|d| d.registered_timestamp != 0) {
                let oldest = instances
                    .iter()
                    .map(|d| d.registered_timestamp)
                    .min()
                    .unwrap_or(0);
                if oldest > 0 && oldest >= until {
                    return None;
                }
            }
        }
        Some(self.pick_shard(tenant, size, lookback_until))
    }

    /// The shard walk (dskit's `shuffleShard`); returns sorted parent indices.
    fn pick_shard(
        &self,
        tenant: &str,
        size: usize,
        lookback_until: Option<i64>,
    ) -> Vec<InstanceIdx> {
        let n = self.instances_count();
        let mut chosen = vec![0u64; n.div_ceil(64)];
        let mut picked: Vec<InstanceIdx> = Vec::with_capacity(size.min(n));
        let zone_aware = self.config().zone_awareness_enabled;
        let zones = if zone_aware { self.zones_count() } else { 1 };
        let per_zone = if zone_aware {
            per_zone_go(size, zones)
        } else {
            i64::try_from(size).unwrap_or(i64::MAX)
        };
        for z in 0..zones {
            let (tokens, owners, zone_name) = if zone_aware {
                if per_zone >= i64::from(self.zone_instance_counts()[z]) {
                    // The whole zone: no need to walk its tokens.
                    for i in 0..n {
                        if self.zone_of(i as InstanceIdx) == z
                            && include_read_only(self.instance_at(i as InstanceIdx), lookback_until)
                        {
                            picked.push(i as InstanceIdx);
                            chosen[i >> 6] |= 1 << (i & 63);
                        }
                    }
                    continue;
                }
                let (t, o) = self.zone_tokens(z);
                (t, o, self.zones()[z].as_str())
            } else {
                (self.tokens(), self.token_owners(), "")
            };
            let len = tokens.len();
            let mut rng = ShardRng::new(shuffle_shard_seed(tenant, zone_name));
            let mut remaining = per_zone;
            while remaining > 0 {
                remaining -= 1;
                let key = rng.uint32();
                if len == 0 {
                    // A zone (or ring) without tokens has nothing to walk.
                    break;
                }
                let mut p = if zone_aware {
                    self.search_zone_token(z, key)
                } else {
                    self.search_token(key)
                };
                let mut found = false;
                for _ in 0..len {
                    if p >= len {
                        p = 0;
                    }
                    let idx = owners[p];
                    p += 1;
                    let (w, bit) = ((idx >> 6) as usize, 1u64 << (idx & 63));
                    if chosen[w] & bit != 0 {
                        continue;
                    }
                    if let Some(until) = lookback_until {
                        let d = self.instance_at(idx);
                        if !include_read_only(d, lookback_until) {
                            continue;
                        }
                        chosen[w] |= bit;
                        picked.push(idx);
                        if d.registered_timestamp >= until
                            || d.read_only
                            || d.read_only_updated_timestamp >= until
                        {
                            // Registered or flipped read-only within the window: it may
                            // hold the tenant's data, and so may the next one.
                            continue;
                        }
                    } else {
                        // Without lookback only the read-only flag matters: read from the
                        // packed per-instance data, not the descriptor.
                        if self.is_read_only(idx) {
                            continue;
                        }
                        chosen[w] |= bit;
                        picked.push(idx);
                    }
                    found = true;
                    break;
                }
                if !found {
                    // No instance of this zone is left to pick.
                    break;
                }
            }
        }
        picked.sort_unstable();
        picked
    }

    /// A subring of the instances at `picked` (sorted parent indices), cut from this
    /// snapshot by [`RingSnapshot::subring`] with a cache of its own.
    fn build_subring(&self, picked: &Arc<[InstanceIdx]>) -> RingSnapshot {
        self.subring(picked, ShuffleState::fresh(self.subring_cache_enabled()))
    }
}
