//! Descriptor-level helpers of the partition ring (spec/partition-ring.md §2, §3): what
//! the lifecycler, the editor and the gossip store do to a [`PartitionRingDesc`].
//!
//! Every function here mirrors the dskit method of the same name; times are Unix seconds,
//! as the descriptor stores them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::PartitionRingError;
use crate::model::{
    OwnerDesc, OwnerState, PartitionDesc, PartitionRingDesc, PartitionState, token_distance,
};
use crate::tokens::spread_minimizing::{SpreadMinimizingTokenGenerator, TOKENS_PER_INSTANCE};

impl PartitionState {
    /// Every state, in wire order.
    pub const ALL: [PartitionState; 5] = [
        PartitionState::PartitionUnknown,
        PartitionState::PartitionPending,
        PartitionState::PartitionActive,
        PartitionState::PartitionInactive,
        PartitionState::PartitionDeleted,
    ];

    /// The name without the `Partition` prefix (`Pending`, `Active`, ...), as dskit's
    /// `CleanName` shows it on pages and in metric labels.
    pub fn clean_name(self) -> &'static str {
        let full = self.as_str_name();
        full.strip_prefix("Partition").unwrap_or(full)
    }

    /// The explicit state changes an operator or lifecycler may make (dskit's
    /// `allowedPartitionStateChanges`): Pending→Active, Pending→Inactive, Active→Inactive,
    /// Inactive→Active. A change to the same state is not in this list (callers treat it
    /// as a no-op).
    pub fn can_change_to(self, to: PartitionState) -> bool {
        use PartitionState::*;
        matches!(
            (self, to),
            (PartitionPending, PartitionActive)
                | (PartitionPending, PartitionInactive)
                | (PartitionActive, PartitionInactive)
                | (PartitionInactive, PartitionActive)
        )
    }
}

impl std::fmt::Display for PartitionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.clean_name())
    }
}

impl PartitionDesc {
    /// The state; unknown wire values read as `PartitionUnknown`, as Go's enum does for
    /// comparisons.
    pub fn state_or_unknown(&self) -> PartitionState {
        PartitionState::try_from(self.state).unwrap_or(PartitionState::PartitionUnknown)
    }

    /// Whether the partition is PENDING (created, not yet readable or writable).
    pub fn is_pending(&self) -> bool {
        self.state == PartitionState::PartitionPending as i32
    }

    /// Whether the partition is ACTIVE (readable and writable).
    pub fn is_active(&self) -> bool {
        self.state == PartitionState::PartitionActive as i32
    }

    /// Whether the partition is INACTIVE (being scaled down: read, not written).
    pub fn is_inactive(&self) -> bool {
        self.state == PartitionState::PartitionInactive as i32
    }

    /// When the state last changed, as a time (dskit's `GetStateTime`).
    pub fn state_time(&self) -> SystemTime {
        crate::snapshot::unix_seconds(self.state_timestamp)
    }

    /// INACTIVE with a state change strictly before `since` (Unix seconds): old enough for
    /// the lifecycler to delete it.
    pub fn is_inactive_since(&self, since: i64) -> bool {
        self.is_inactive() && self.state_timestamp < since
    }
}

impl OwnerDesc {
    /// Whether the entry is a gossip tombstone.
    pub fn is_deleted(&self) -> bool {
        self.state == OwnerState::OwnerDeleted as i32
    }
}

/// Partitions whose tokens [`partition_tokens`] remembers (512 tokens, 2 KiB each: 8 MiB at
/// most). Larger IDs are computed on every call, as dskit always does.
pub const PARTITION_TOKENS_CACHE_IDS: usize = 4096;

/// Tokens dskit gives partition `id` (dskit's `AddPartition`): the spread-minimizing
/// generator's 512 tokens for ordinal `id` in zone 0, sorted. Deterministic, so every node
/// derives the same tokens; partitions never share tokens.
///
/// Computing ordinal `id` replays the joins of ordinals `0..id`, which yields the tokens of
/// all of them at once; they are remembered process-wide for IDs below
/// [`PARTITION_TOKENS_CACHE_IDS`], so building a ring of many partitions costs one replay.
pub fn partition_tokens(id: i32) -> Result<Vec<u32>, PartitionRingError> {
    static CACHE: Mutex<Vec<Arc<[u32]>>> = Mutex::new(Vec::new());
    let ordinal = usize::try_from(id).map_err(|_| PartitionRingError::InvalidPartitionId(id))?;
    let generator = SpreadMinimizingTokenGenerator::for_ordinal("", ordinal, 0, false)
        .map_err(|_| PartitionRingError::InvalidPartitionId(id))?;
    if ordinal >= PARTITION_TOKENS_CACHE_IDS {
        let tokens = generator
            .all_tokens()
            .map_err(|_| PartitionRingError::InvalidPartitionId(id))?;
        return Ok(tokens.to_vec());
    }
    // The lock is not held during the replay; two threads may replay at once, harmlessly.
    let cached = {
        let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(ordinal).cloned()
    };
    if let Some(tokens) = cached {
        return Ok(tokens.to_vec());
    }
    let all = generator
        .tokens_by_ordinal()
        .map_err(|_| PartitionRingError::InvalidPartitionId(id))?;
    let tokens = all[ordinal].clone();
    debug_assert_eq!(tokens.len(), TOKENS_PER_INSTANCE);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() < all.len() {
        *cache = all.into_iter().map(Arc::from).collect();
    }
    Ok(tokens)
}

/// Owner ID of `instance` for `partition` when one instance owns several partitions
/// (`<instance>/<partition>`, dskit's `multiPartitionOwnerInstanceID`).
pub fn multi_partition_owner_id(instance: &str, partition: i32) -> String {
    format!("{instance}/{partition}")
}

/// Whole seconds and sub-second nanoseconds of `t` relative to the epoch, floored (Go's
/// `Time.Unix` and `Time.Nanosecond`).
pub(crate) fn unix_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        ),
        Err(e) => {
            let d = e.duration();
            let secs = -i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            match d.subsec_nanos() {
                0 => (secs, 0),
                n => (secs.saturating_sub(1), 1_000_000_000 - n),
            }
        }
    }
}

impl PartitionRingDesc {
    /// An empty descriptor (what a missing KV key reads as: dskit's
    /// `GetOrCreatePartitionRingDesc`).
    pub fn new() -> PartitionRingDesc {
        PartitionRingDesc::default()
    }

    /// Adds partition `id` with `state`, its spread-minimizing tokens and
    /// `state_timestamp = now` (dskit's `AddPartition`). Replaces an existing entry, as
    /// dskit does. Negative IDs (a panic in dskit) and IDs beyond the generator's range are
    /// an error and change nothing.
    pub fn add_partition(
        &mut self,
        id: i32,
        state: PartitionState,
        now: i64,
    ) -> Result<&mut PartitionDesc, PartitionRingError> {
        let tokens = partition_tokens(id)?;
        let entry = PartitionDesc {
            tokens,
            state: state as i32,
            state_timestamp: now,
            id,
            ..PartitionDesc::default()
        };
        self.partitions.insert(id, entry);
        Ok(self.partitions.get_mut(&id).expect("just inserted"))
    }

    /// Sets the state of partition `id` and stamps `now`, only if the state differs
    /// (dskit's `UpdatePartitionState`). Returns whether anything changed; an unknown ID
    /// changes nothing; a different state while the partition's state change is locked
    /// is [`PartitionRingError::PartitionStateChangeLocked`].
    pub fn update_partition_state(
        &mut self,
        id: i32,
        state: PartitionState,
        now: i64,
    ) -> Result<bool, PartitionRingError> {
        match self.partitions.get_mut(&id) {
            Some(p) if p.state != state as i32 => {
                if p.state_change_locked {
                    return Err(PartitionRingError::PartitionStateChangeLocked);
                }
                p.state = state as i32;
                p.state_timestamp = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Locks (or unlocks) the state of partition `id` and stamps `now`, only if the lock
    /// differs (dskit's `UpdatePartitionStateChangeLock`). Returns whether anything
    /// changed; an unknown ID changes nothing. Used to keep a partition INACTIVE during a
    /// scale-down that must not be undone by an owner coming back.
    pub fn update_partition_state_change_lock(&mut self, id: i32, locked: bool, now: i64) -> bool {
        match self.partitions.get_mut(&id) {
            Some(p) if p.state_change_locked != locked => {
                p.state_change_locked = locked;
                p.state_change_locked_timestamp = now;
                true
            }
            _ => false,
        }
    }

    /// An operator's or lifecycler's explicit state change, with dskit's rules: a missing
    /// partition is [`PartitionRingError::PartitionDoesNotExist`], the same state is a no-op
    /// (`Ok(false)`), and only the transitions of [`PartitionState::can_change_to`] are
    /// allowed; a locked partition's state does not change
    /// ([`PartitionRingError::PartitionStateChangeLocked`]). Returns whether the
    /// descriptor changed.
    pub fn change_partition_state(
        &mut self,
        id: i32,
        to: PartitionState,
        now: i64,
    ) -> Result<bool, PartitionRingError> {
        let from = self
            .partitions
            .get(&id)
            .ok_or(PartitionRingError::PartitionDoesNotExist)?
            .state_or_unknown();
        if from == to {
            return Ok(false);
        }
        if !from.can_change_to(to) {
            return Err(PartitionRingError::PartitionStateChangeNotAllowed { from, to });
        }
        self.update_partition_state(id, to, now)
    }

    /// Removes partition `id` (dskit's `RemovePartition`); under gossip the local CAS
    /// turns the absence into a Deleted tombstone. Returns the removed entry.
    pub fn remove_partition(&mut self, id: i32) -> Option<PartitionDesc> {
        self.partitions.remove(&id)
    }

    /// Whether partition `id` exists (any state).
    pub fn has_partition(&self, id: i32) -> bool {
        self.partitions.contains_key(&id)
    }

    /// Adds or updates owner `id` (dskit's `AddOrUpdateOwner`): when `{state, partition}`
    /// equal the existing entry nothing changes and the old timestamp stays; otherwise the
    /// entry is written with `updated_timestamp = now`. Returns whether it changed.
    pub fn add_or_update_owner(
        &mut self,
        id: &str,
        state: OwnerState,
        owned_partition: i32,
        now: i64,
    ) -> bool {
        if let Some(prev) = self.owners.get(id)
            && prev.state == state as i32
            && prev.owned_partition == owned_partition
        {
            return false;
        }
        self.owners.insert(
            id.to_owned(),
            OwnerDesc {
                owned_partition,
                state: state as i32,
                updated_timestamp: now,
            },
        );
        true
    }

    /// Removes owner `id`; returns whether it existed.
    pub fn remove_owner(&mut self, id: &str) -> bool {
        self.owners.remove(id).is_some()
    }

    /// Whether owner `id` exists (any state).
    pub fn has_owner(&self, id: &str) -> bool {
        self.owners.contains_key(id)
    }

    /// Owners of `partition` in any owner state (dskit counts tombstones too, see spec
    /// trap 1).
    pub fn partition_owners_count(&self, partition: i32) -> usize {
        self.owners
            .values()
            .filter(|o| o.owned_partition == partition)
            .count()
    }

    /// Owners of `partition` last updated strictly before `before` (Unix seconds): the
    /// lifecycler's "owned long enough" count for Pending → Active.
    pub fn partition_owners_count_updated_before(&self, partition: i32, before: i64) -> usize {
        self.owners
            .values()
            .filter(|o| o.owned_partition == partition && o.updated_timestamp < before)
            .count()
    }

    /// A descriptor with only the partitions in `ids` and the owners pointing at them
    /// (dskit's `WithPartitions`).
    pub fn with_partitions(&self, ids: &BTreeSet<i32>) -> PartitionRingDesc {
        PartitionRingDesc {
            partitions: self
                .partitions
                .iter()
                .filter(|(id, _)| ids.contains(id))
                .map(|(id, p)| (*id, p.clone()))
                .collect(),
            owners: self
                .owners
                .iter()
                .filter(|(_, o)| ids.contains(&o.owned_partition))
                .map(|(id, o)| (id.clone(), *o))
                .collect(),
        }
    }

    /// Every token of every partition (any state), sorted; duplicates kept.
    pub fn tokens(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self
            .partitions
            .values()
            .flat_map(|p| p.tokens.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }

    /// Keys (out of 2^32) each partition owns, any state; partitions without tokens own 0
    /// (dskit's `countTokens`, the status page's ownership column).
    pub fn count_tokens(&self) -> BTreeMap<i32, u64> {
        let mut pairs: Vec<(u32, i32)> = self
            .partitions
            .iter()
            .flat_map(|(id, p)| p.tokens.iter().map(move |t| (*t, *id)))
            .collect();
        pairs.sort_unstable();
        let mut owned: BTreeMap<i32, u64> = self.partitions.keys().map(|id| (*id, 0)).collect();
        if let Some(&(last, _)) = pairs.last() {
            let mut prev = last;
            for &(token, id) in &pairs {
                *owned.entry(id).or_default() += token_distance(prev, token);
                prev = token;
            }
        }
        owned
    }

    /// Owner IDs by partition, each list sorted; any owner state.
    pub fn owners_by_partition(&self) -> BTreeMap<i32, Vec<String>> {
        let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
        // BTreeMap iteration is by owner ID, so each list comes out sorted.
        for (id, o) in &self.owners {
            out.entry(o.owned_partition).or_default().push(id.clone());
        }
        out
    }

    /// Partitions per state: Pending, Active and Inactive always present (0 if none);
    /// Unknown and Deleted only when such partitions exist (dskit's
    /// `countPartitionsByState`, the `partition_ring_partitions` gauge).
    pub fn count_partitions_by_state(&self) -> BTreeMap<PartitionState, usize> {
        let mut out: BTreeMap<PartitionState, usize> = [
            PartitionState::PartitionPending,
            PartitionState::PartitionActive,
            PartitionState::PartitionInactive,
        ]
        .into_iter()
        .map(|s| (s, 0))
        .collect();
        for p in self.partitions.values() {
            *out.entry(p.state_or_unknown()).or_default() += 1;
        }
        out
    }

    /// Number of ACTIVE partitions.
    pub fn active_partitions_count(&self) -> usize {
        self.partitions.values().filter(|p| p.is_active()).count()
    }

    /// Drops tombstones (Deleted partitions, OwnerDeleted owners) changed before `limit`;
    /// `None` drops them all (dskit's `RemoveTombstones` with a zero time). Returns
    /// (tombstones kept, tombstones removed).
    pub fn remove_tombstones(&mut self, limit: Option<SystemTime>) -> (usize, usize) {
        let before = |ts: i64| match limit {
            None => true,
            Some(limit) => {
                let (secs, nanos) = unix_parts(limit);
                ts < secs || (ts == secs && nanos > 0)
            }
        };
        let (mut kept, mut removed) = (0, 0);
        self.partitions.retain(|_, p| {
            if p.state != PartitionState::PartitionDeleted as i32 {
                return true;
            }
            if before(p.state_timestamp) {
                removed += 1;
                false
            } else {
                kept += 1;
                true
            }
        });
        self.owners.retain(|_, o| {
            if !o.is_deleted() {
                return true;
            }
            if before(o.updated_timestamp) {
                removed += 1;
                false
            } else {
                kept += 1;
                true
            }
        });
        (kept, removed)
    }

    /// What a change touched, for memberlist's invalidation of queued broadcasts (dskit's
    /// `MergeContent`): partition IDs in decimal, then owner IDs, preceded by as many
    /// empty strings as there are entries (dskit allocates the slice with that length and
    /// then appends; kept for answer compatibility).
    pub fn merge_content(&self) -> Vec<String> {
        let n = self.partitions.len() + self.owners.len();
        let mut out = vec![String::new(); n];
        out.extend(self.partitions.keys().map(|id| id.to_string()));
        out.extend(self.owners.keys().cloned());
        out
    }

    /// The gossip CRDT merge, exactly as dskit's `PartitionRingDesc.Merge` (spec §3).
    ///
    /// Mutates `self` and returns the change, or `None` when nothing changed (also for
    /// `other = None`). Partitions: an unknown one is stored as received (any state and
    /// timestamp); a known one takes the incoming state and timestamp when the timestamp is
    /// newer, or equal with the incoming state Deleted and the local one not, and the
    /// incoming state-change lock when its own timestamp is newer; tokens and ID are never
    /// merged. Owners: the incoming entry wins wholesale under the same rule
    /// against the local entry or the zero value. With `local_cas` (memberlist's local CAS
    /// path only; not commutative), every local partition or owner missing from `other`
    /// that is not already a tombstone becomes one, stamped `now` (Unix seconds).
    pub fn merge(
        &mut self,
        other: Option<&PartitionRingDesc>,
        local_cas: bool,
        now: i64,
    ) -> Option<PartitionRingDesc> {
        let other = other?;
        let deleted = PartitionState::PartitionDeleted as i32;
        let mut change = PartitionRingDesc::new();

        for (id, theirs) in &other.partitions {
            match self.partitions.get_mut(id) {
                None => {
                    self.partitions.insert(*id, theirs.clone());
                    change.partitions.insert(*id, theirs.clone());
                }
                Some(ours) => {
                    let newer = theirs.state_timestamp > ours.state_timestamp
                        || (theirs.state_timestamp == ours.state_timestamp
                            && theirs.state == deleted
                            && ours.state != deleted);
                    if newer {
                        ours.state = theirs.state;
                        ours.state_timestamp = theirs.state_timestamp;
                    }
                    // The lock has its own timestamp and merges on its own (dskit #799).
                    let lock_newer =
                        theirs.state_change_locked_timestamp > ours.state_change_locked_timestamp;
                    if lock_newer {
                        ours.state_change_locked = theirs.state_change_locked;
                        ours.state_change_locked_timestamp = theirs.state_change_locked_timestamp;
                    }
                    if newer || lock_newer {
                        change.partitions.insert(*id, ours.clone());
                    }
                }
            }
        }
        if local_cas {
            for (id, ours) in self.partitions.iter_mut() {
                if !other.partitions.contains_key(id) && ours.state != deleted {
                    ours.state = deleted;
                    ours.state_timestamp = now;
                    change.partitions.insert(*id, ours.clone());
                }
            }
        }

        let owner_deleted = OwnerState::OwnerDeleted as i32;
        for (id, theirs) in &other.owners {
            let ours = self.owners.get(id).copied().unwrap_or_default();
            let newer = theirs.updated_timestamp > ours.updated_timestamp
                || (theirs.updated_timestamp == ours.updated_timestamp
                    && theirs.state == owner_deleted
                    && ours.state != owner_deleted);
            if newer {
                self.owners.insert(id.clone(), *theirs);
                change.owners.insert(id.clone(), *theirs);
            }
        }
        if local_cas {
            for (id, ours) in self.owners.iter_mut() {
                if !other.owners.contains_key(id) && ours.state != owner_deleted {
                    ours.state = owner_deleted;
                    ours.updated_timestamp = now;
                    change.owners.insert(id.clone(), *ours);
                }
            }
        }

        if change.partitions.is_empty() && change.owners.is_empty() {
            None
        } else {
            Some(change)
        }
    }
}
