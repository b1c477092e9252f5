//! Replication sets: the instances an operation must reach and how many may fail
//! (spec/ring.md §3.3, §3.4, §3.7).

use std::future::Future;

use crate::model::InstanceDesc;
use crate::quorum::{QuorumConfig, QuorumError};

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

impl ReplicationSet {
    /// IDs of the instances, in set order.
    pub fn ids(&self) -> Vec<&str> {
        self.instances.iter().map(|d| d.id.as_str()).collect()
    }

    /// Addresses of the instances except `exclude`, in set order (dskit's
    /// `GetAddressesWithout`: a querier that already asked itself skips its own address).
    pub fn addresses_without(&self, exclude: &str) -> Vec<&str> {
        self.instances
            .iter()
            .map(|d| d.addr.as_str())
            .filter(|a| *a != exclude)
            .collect()
    }

    /// Runs `f` for the instances concurrently until quorum is reached, then returns the
    /// results that make up the quorum; see [`crate::quorum::do_until_quorum`].
    pub async fn do_until_quorum<T, E, F, Fut, C>(
        &self,
        cfg: QuorumConfig<E>,
        f: F,
        cleanup: C,
    ) -> Result<Vec<T>, QuorumError<E>>
    where
        F: FnMut(&InstanceDesc) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnMut(T),
    {
        crate::quorum::do_until_quorum(self, cfg, f, cleanup).await
    }
}

/// Which fields a replication-set comparison ignores besides the heartbeat timestamp.
#[derive(Clone, Copy)]
struct Ignore {
    state: bool,
    addr: bool,
}

/// Whether two sets differ in anything but heartbeat timestamps (instance count, states,
/// tokens, zones, addresses, ...). Instances are matched by ID, whatever their order.
/// Queriers use it to notice that the instances behind a cached set changed.
pub fn has_replication_set_changed(before: &ReplicationSet, after: &ReplicationSet) -> bool {
    changed_ignoring(
        before,
        after,
        Ignore {
            state: false,
            addr: false,
        },
    )
}

/// Like [`has_replication_set_changed`], also ignoring instance states.
pub fn has_replication_set_changed_without_state(
    before: &ReplicationSet,
    after: &ReplicationSet,
) -> bool {
    changed_ignoring(
        before,
        after,
        Ignore {
            state: true,
            addr: false,
        },
    )
}

/// Like [`has_replication_set_changed`], also ignoring instance states and addresses (a
/// pod that restarted with a new IP is still the same member).
pub fn has_replication_set_changed_without_state_or_addr(
    before: &ReplicationSet,
    after: &ReplicationSet,
) -> bool {
    changed_ignoring(
        before,
        after,
        Ignore {
            state: true,
            addr: true,
        },
    )
}

fn changed_ignoring(before: &ReplicationSet, after: &ReplicationSet, ignore: Ignore) -> bool {
    if before.instances.len() != after.instances.len() {
        return true;
    }
    let (b, a) = (sorted_by_id(before), sorted_by_id(after));
    b.iter().zip(&a).any(|(x, y)| !same_instance(x, y, ignore))
}

fn sorted_by_id(s: &ReplicationSet) -> Vec<&InstanceDesc> {
    let mut v: Vec<&InstanceDesc> = s.instances.iter().collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

fn same_instance(x: &InstanceDesc, y: &InstanceDesc, ignore: Ignore) -> bool {
    // Destructured so that a field added to the descriptor must be considered here.
    let InstanceDesc {
        addr,
        timestamp: _,
        state,
        tokens,
        zone,
        registered_timestamp,
        id,
        read_only_updated_timestamp,
        read_only,
        versions,
    } = x;
    (ignore.addr || *addr == y.addr)
        && (ignore.state || *state == y.state)
        && *tokens == y.tokens
        && *zone == y.zone
        && *registered_timestamp == y.registered_timestamp
        && *id == y.id
        && *read_only_updated_timestamp == y.read_only_updated_timestamp
        && *read_only == y.read_only
        && *versions == y.versions
}
