//! Replication sets: the instances an operation must reach and how many may fail
//! (spec/ring.md §3.3, §3.4, §3.7).

use crate::model::InstanceDesc;

/// Instances to call for one operation, with the failure budget.
///
/// `max_errors` and `max_unavailable_zones` are exclusive: a zone-aware whole-ring set
/// tolerates whole zones failing, any other set tolerates a number of instances failing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicationSet {
    /// The instances to call.
    pub instances: Vec<InstanceDesc>,
    /// How many instances may fail while the operation still succeeds.
    pub max_errors: usize,
    /// How many zones may fail while the operation still succeeds (zone-aware sets).
    pub max_unavailable_zones: usize,
    /// Whether the set was built with zone awareness (results are then counted per zone).
    pub zone_awareness_enabled: bool,
}

impl ReplicationSet {
    /// Whether the instance with address `addr` is part of the set.
    pub fn includes(&self, addr: &str) -> bool {
        self.instances.iter().any(|d| d.addr == addr)
    }

    /// Number of distinct zones among the instances.
    pub fn zone_count(&self) -> usize {
        let mut zones: Vec<&str> = self.instances.iter().map(|d| d.zone.as_str()).collect();
        zones.sort_unstable();
        zones.dedup();
        zones.len()
    }

    /// Addresses of the instances, in set order.
    pub fn addresses(&self) -> Vec<&str> {
        self.instances.iter().map(|d| d.addr.as_str()).collect()
    }
}
