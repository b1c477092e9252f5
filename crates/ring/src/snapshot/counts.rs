//! Instance counts: [`StateCounts`] and the per-zone and per-state counters of a snapshot.

use super::*;

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

    pub(super) fn add(&mut self, raw: i32) {
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
impl RingSnapshot {
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
}
