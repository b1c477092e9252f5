//! Sub-rings: the snapshot cut for shuffle sharding (sharing its parent's descriptors)
//! and the subring of instances healthy for an operation.

use super::*;

/// [`Indexed`] for a sub-ring, whose zone names may be shared with its parent.
pub(super) struct PickedIndex {
    pub(super) zones: Arc<[String]>,
    pub(super) hot: Vec<Hot>,
    pub(super) zone_instances: Vec<u32>,
    pub(super) zone_tokened: Vec<u32>,
    pub(super) zone_states: Vec<u32>,
}
impl RingSnapshot {
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
    pub(super) fn picked_hot(&self, picked: &[InstanceIdx]) -> PickedIndex {
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
