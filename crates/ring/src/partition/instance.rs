//! Joining the partition ring with the instance ring (spec/partition-ring.md §5): which
//! instances serve a partition, as a [`ReplicationSet`].
//!
//! Why: with ingest storage, readers address partitions, but queries go to the ingesters
//! that own them. The owners come from the partition ring, their addresses, states and
//! heartbeats from the instance ring.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::PartitionRingError;
use super::model::unix_parts;
use super::ring::PartitionRing;
use crate::model::InstanceDesc;
use crate::op::Operation;
use crate::replication::ReplicationSet;
use crate::snapshot::RingSnapshot;

/// dskit's `InstanceDesc.IsHealthy(op, timeout, now)`: the state is healthy for `op` and
/// `now - heartbeat <= timeout`, compared at nanosecond precision. Read-only instances are
/// healthy.
pub fn instance_is_healthy(
    d: &InstanceDesc,
    op: Operation,
    heartbeat_timeout: Duration,
    now: SystemTime,
) -> bool {
    if !op.is_state_healthy(d.state) {
        return false;
    }
    let (secs, nanos) = unix_parts(now);
    let since_ns = (i128::from(secs) - i128::from(d.timestamp)) * 1_000_000_000 + i128::from(nanos);
    // Go's Time.Sub saturates at the Duration range; the comparison is the same.
    since_ns <= heartbeat_timeout.as_nanos().min(i64::MAX as u128) as i128
}

/// Distinct zones of `instances` in first-seen order (the empty zone counts as one).
fn unique_zones(instances: &[InstanceDesc]) -> Vec<&str> {
    let mut zones: Vec<&str> = Vec::new();
    for d in instances {
        if !zones.contains(&d.zone.as_str()) {
            zones.push(&d.zone);
        }
    }
    zones
}

/// The owners of `ids` that exist in `instances` and are healthy for `op`, in `ids` order,
/// with the instance ID each was looked up by.
fn healthy_owners<'a>(
    ids: impl Iterator<Item = &'a str>,
    instances: &RingSnapshot,
    op: Operation,
    heartbeat_timeout: Duration,
    now: SystemTime,
) -> Vec<(&'a str, InstanceDesc)> {
    ids.filter_map(|id| {
        let d = instances.instance(id).ok()?;
        instance_is_healthy(d, op, heartbeat_timeout, now).then(|| (id, d.clone()))
    })
    .collect()
}

/// A partition ring joined with an instance ring (dskit's `PartitionInstanceRing`).
///
/// Both sides are snapshots: build a new one (cheap: two `Arc`s) when either changes.
#[derive(Clone, Debug)]
pub struct PartitionInstanceRing {
    partitions: Arc<PartitionRing>,
    instances: Arc<RingSnapshot>,
    heartbeat_timeout: Duration,
}

impl PartitionInstanceRing {
    /// Joins `partitions` and `instances`; instances whose heartbeat is older than
    /// `heartbeat_timeout` are not used (dskit passes the instance ring's timeout).
    pub fn new(
        partitions: Arc<PartitionRing>,
        instances: Arc<RingSnapshot>,
        heartbeat_timeout: Duration,
    ) -> PartitionInstanceRing {
        PartitionInstanceRing {
            partitions,
            instances,
            heartbeat_timeout,
        }
    }

    /// The partition ring snapshot.
    pub fn partition_ring(&self) -> &Arc<PartitionRing> {
        &self.partitions
    }

    /// The instance ring snapshot.
    pub fn instance_ring(&self) -> &Arc<RingSnapshot> {
        &self.instances
    }

    /// The replication set of one partition: its owners (sorted, any owner state) found in
    /// the instance ring and healthy for `op` at `now`, zone-aware with one zone's answer
    /// enough (`max_unavailable_zones` = zones − 1, `max_errors` = 0). No healthy owner is
    /// [`PartitionRingError::TooManyUnhealthyInstances`]. The partition's state is not
    /// checked.
    pub fn get_replication_set_for_partition(
        &self,
        partition: i32,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, PartitionRingError> {
        let owners = self.partitions.partition_owner_ids(partition);
        let healthy = healthy_owners(
            owners.iter().map(String::as_str),
            &self.instances,
            op,
            self.heartbeat_timeout,
            now,
        );
        if healthy.is_empty() {
            return Err(PartitionRingError::TooManyUnhealthyInstances { partition });
        }
        let instances: Vec<InstanceDesc> = healthy.into_iter().map(|(_, d)| d).collect();
        let zones = unique_zones(&instances).len();
        Ok(ReplicationSet {
            instances,
            max_errors: 0,
            max_unavailable_zones: zones - 1,
            zone_awareness_enabled: true,
        })
    }

    /// One replication set per partition in the partition ring, any partition state
    /// (dskit's `GetReplicationSetsForOperation`), paired with the partition ID, in
    /// ascending partition order (dskit's order is random). An empty partition ring is
    /// [`PartitionRingError::EmptyRing`]; any partition without a healthy owner fails the
    /// whole call.
    pub fn get_replication_sets_for_operation(
        &self,
        op: Operation,
        now: SystemTime,
    ) -> Result<Vec<(i32, ReplicationSet)>, PartitionRingError> {
        let ids = self.partitions.partition_ids();
        if ids.is_empty() {
            return Err(PartitionRingError::EmptyRing);
        }
        ids.into_iter()
            .map(|p| Ok((p, self.get_replication_set_for_partition(p, op, now)?)))
            .collect()
    }

    /// The join of the partition ring's shuffle shard with the same instance ring (dskit's
    /// `PartitionInstanceRing.ShuffleShard`).
    pub fn shuffle_shard(
        &self,
        identifier: &str,
        size: usize,
    ) -> Result<PartitionInstanceRing, PartitionRingError> {
        Ok(PartitionInstanceRing {
            partitions: self.partitions.shuffle_shard(identifier, size)?,
            instances: Arc::clone(&self.instances),
            heartbeat_timeout: self.heartbeat_timeout,
        })
    }

    /// The join of the partition ring's lookback shuffle shard with the same instance ring
    /// (dskit's `PartitionInstanceRing.ShuffleShardWithLookback`).
    pub fn shuffle_shard_with_lookback(
        &self,
        identifier: &str,
        size: usize,
        lookback: Duration,
        now: SystemTime,
    ) -> Result<PartitionInstanceRing, PartitionRingError> {
        Ok(PartitionInstanceRing {
            partitions: self
                .partitions
                .shuffle_shard_with_lookback(identifier, size, lookback, now)?,
            instances: Arc::clone(&self.instances),
            heartbeat_timeout: self.heartbeat_timeout,
        })
    }
}

/// Trailing decimal number of an instance ID; none (or too large) counts as the largest
/// (dskit's `indexFromInstanceSuffix`).
fn index_from_instance_suffix(id: &str) -> i64 {
    let digits = id.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return i64::MAX;
    }
    id[id.len() - digits..].parse::<i64>().unwrap_or(i64::MAX)
}

/// A partition ring whose owners are `<instance>/<partition>` joined with an instance ring
/// (dskit's `MultiPartitionInstanceRing`, used when one instance owns several partitions).
#[derive(Clone, Debug)]
pub struct MultiPartitionInstanceRing {
    partitions: Arc<PartitionRing>,
    instances: Arc<RingSnapshot>,
    heartbeat_timeout: Duration,
}

impl MultiPartitionInstanceRing {
    /// Joins `partitions` and `instances` (see [`PartitionInstanceRing::new`]).
    pub fn new(
        partitions: Arc<PartitionRing>,
        instances: Arc<RingSnapshot>,
        heartbeat_timeout: Duration,
    ) -> MultiPartitionInstanceRing {
        MultiPartitionInstanceRing {
            partitions,
            instances,
            heartbeat_timeout,
        }
    }

    /// The partition ring snapshot.
    pub fn partition_ring(&self) -> &Arc<PartitionRing> {
        &self.partitions
    }

    /// One instance per zone serving `partition` for `op` (dskit's
    /// `GetReplicationSetForPartitionAndOperation`): owners with the suffix stripped,
    /// looked up and health-filtered; then per zone (first-seen order) a non-read-only
    /// instance over a read-only one, and among equals the larger trailing number (the
    /// later one on a tie). No owner is [`PartitionRingError::NoOwners`]; no healthy one is
    /// [`PartitionRingError::TooManyUnhealthyInstances`].
    pub fn get_replication_set_for_partition_and_operation(
        &self,
        partition: i32,
        op: Operation,
        now: SystemTime,
    ) -> Result<ReplicationSet, PartitionRingError> {
        let owners = self.partitions.multi_partition_owner_ids(partition);
        if owners.is_empty() {
            return Err(PartitionRingError::NoOwners { partition });
        }
        let healthy = healthy_owners(
            owners.into_iter(),
            &self.instances,
            op,
            self.heartbeat_timeout,
            now,
        );
        if healthy.is_empty() {
            return Err(PartitionRingError::TooManyUnhealthyInstances { partition });
        }
        let all: Vec<InstanceDesc> = healthy.iter().map(|(_, d)| d.clone()).collect();
        let zones = unique_zones(&all);
        let mut picked = Vec::with_capacity(zones.len());
        for zone in &zones {
            let mut best: Option<usize> = None;
            for (i, (id, d)) in healthy.iter().enumerate() {
                if d.zone != *zone {
                    continue;
                }
                let Some(b) = best else {
                    best = Some(i);
                    continue;
                };
                let (best_id, best_d) = &healthy[b];
                if best_d.read_only && !d.read_only {
                    best = Some(i);
                    continue;
                }
                if d.read_only && !best_d.read_only {
                    continue;
                }
                if index_from_instance_suffix(id) < index_from_instance_suffix(best_id) {
                    continue;
                }
                best = Some(i);
            }
            picked.push(healthy[best.expect("every zone has an instance")].1.clone());
        }
        Ok(ReplicationSet {
            instances: picked,
            max_errors: 0,
            max_unavailable_zones: zones.len() - 1,
            zone_awareness_enabled: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_suffix_index_matches_dskit() {
        assert_eq!(index_from_instance_suffix("ingester-zone-a-7"), 7);
        assert_eq!(index_from_instance_suffix("x10"), 10);
        assert_eq!(index_from_instance_suffix("no-digits"), i64::MAX);
        assert_eq!(index_from_instance_suffix(""), i64::MAX);
        assert_eq!(
            index_from_instance_suffix("huge-99999999999999999999999"),
            i64::MAX
        );
    }
}
