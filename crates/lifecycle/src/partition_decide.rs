//! The partition instance lifecycler's decisions (dskit's `PartitionInstanceLifecycler`,
//! spec/partition-ring.md §6.2), each a pure function over the partition ring descriptor
//! inside one CAS, with the time passed in: table-tested with no store, clock or task.
//!
//! Every function returns whether it changed the descriptor; an unchanged descriptor is
//! not written back (dskit's `updateRing` skips the write too).

use std::time::Duration;

use ringkit_ring::partition::{
    OwnerState, PartitionRingDesc, PartitionRingError, PartitionState, multi_partition_owner_id,
};

/// What one partition owner does (dskit's `PartitionInstanceLifecyclerConfig`; Mimir's
/// `-ingester.partition-ring.*` flags fill it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionLifecyclerConfig {
    /// The partition this instance consumes (Mimir: the instance ID's trailing number).
    pub partition_id: i32,
    /// This instance's ID (the ingester ring ID).
    pub instance_id: String,
    /// Register as `<instance>/<partition>` so one instance may own several partitions.
    pub multi_partition_ownership: bool,
    /// Owners a PENDING partition waits for before it goes ACTIVE
    /// (`-ingester.partition-ring.min-partition-owners-count`, default 1).
    pub wait_owners_count_on_pending: usize,
    /// How long each of those owners must have been registered
    /// (`-ingester.partition-ring.min-partition-owners-duration`, default 10s).
    pub wait_owners_duration_on_pending: Duration,
    /// INACTIVE partitions with no owners are deleted this long after they went INACTIVE
    /// (`-ingester.partition-ring.delete-inactive-partition-after`, default 13h; zero:
    /// never).
    pub delete_inactive_partition_after: Duration,
    /// How often the lifecycler reconciles (dskit: 5s; not a Mimir flag).
    pub polling_interval: Duration,
}

impl PartitionLifecyclerConfig {
    /// dskit's and Mimir's defaults for `instance_id` owning `partition_id`.
    pub fn new(instance_id: &str, partition_id: i32) -> PartitionLifecyclerConfig {
        PartitionLifecyclerConfig {
            partition_id,
            instance_id: instance_id.to_owned(),
            multi_partition_ownership: false,
            wait_owners_count_on_pending: 1,
            wait_owners_duration_on_pending: Duration::from_secs(10),
            delete_inactive_partition_after: Duration::from_secs(13 * 3600),
            polling_interval: Duration::from_secs(5),
        }
    }

    /// The owner ID this instance registers under (dskit's `partitionOwnerID`).
    pub fn owner_id(&self) -> String {
        if self.multi_partition_ownership {
            multi_partition_owner_id(&self.instance_id, self.partition_id)
        } else {
            self.instance_id.clone()
        }
    }
}

/// Whole seconds of `d`, saturating (descriptor times are Unix seconds).
/// The timestamp for a state change of partition `id` made at `now`: at least one second
/// past the partition's stored state timestamp. Peers merge a partition only when its
/// state timestamp is strictly newer, and timestamps are whole seconds, so a change made in
/// the same second as the previous one (an operator's scale-down right after the
/// partition went ACTIVE) would stay on this node and never reach the others.
pub fn state_change_time(desc: &PartitionRingDesc, id: i32, now: i64) -> i64 {
    desc.partitions
        .get(&id)
        .map_or(now, |p| now.max(p.state_timestamp.saturating_add(1)))
}

/// The timestamp for a change of partition `id`'s state-change lock made at `now`: at
/// least one second past the stored lock timestamp, for the same reason as
/// [`state_change_time`] (the lock merges by its own timestamp).
pub fn lock_change_time(desc: &PartitionRingDesc, id: i32, now: i64) -> i64 {
    desc.partitions.get(&id).map_or(now, |p| {
        now.max(p.state_change_locked_timestamp.saturating_add(1))
    })
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Mimir's partition ID for an ingester: the number after the last `-` of its instance ID
/// (`ingester-zone-a-7` → 7), so the ingesters of every zone with the same ordinal own the
/// same partition. `None` when the ID does not end in `-<digits>` or the number does not
/// fit an `i32`.
pub fn partition_id_from_instance_id(instance_id: &str) -> Option<i32> {
    let (_, digits) = instance_id.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Startup with partition creation on (dskit's `createPartitionAndRegisterOwner`): adds
/// the partition PENDING when it is missing (an existing one keeps its state, INACTIVE
/// included) and registers this instance as an ACTIVE owner.
pub fn create_partition_and_register_owner(
    desc: &mut PartitionRingDesc,
    cfg: &PartitionLifecyclerConfig,
    now: i64,
) -> Result<bool, PartitionRingError> {
    let mut changed = false;
    if !desc.has_partition(cfg.partition_id) {
        desc.add_partition(cfg.partition_id, PartitionState::PartitionPending, now)?;
        changed = true;
    }
    changed |= register_owner(desc, cfg, now);
    Ok(changed)
}

/// Registers this instance as an ACTIVE owner of its partition (dskit keeps the old
/// timestamp when the entry is already that, so a restart does not restart the wait).
pub fn register_owner(
    desc: &mut PartitionRingDesc,
    cfg: &PartitionLifecyclerConfig,
    now: i64,
) -> bool {
    desc.add_or_update_owner(
        &cfg.owner_id(),
        OwnerState::OwnerActive,
        cfg.partition_id,
        now,
    )
}

/// One reconcile of the owned partition (dskit's `reconcileOwnedPartition`): a PENDING
/// partition goes ACTIVE once at least `wait_owners_count_on_pending` owners were last
/// updated strictly before `now - wait_owners_duration_on_pending`. A missing partition
/// is an error (it is never recreated while running).
pub fn reconcile_owned_partition(
    desc: &mut PartitionRingDesc,
    cfg: &PartitionLifecyclerConfig,
    now: i64,
) -> Result<bool, PartitionRingError> {
    let id = cfg.partition_id;
    let partition = desc
        .partitions
        .get(&id)
        .ok_or(PartitionRingError::PartitionDoesNotExist)?;
    if !partition.is_pending() {
        return Ok(false);
    }
    let before = now.saturating_sub(secs(cfg.wait_owners_duration_on_pending));
    if desc.partition_owners_count_updated_before(id, before) >= cfg.wait_owners_count_on_pending {
        let at = state_change_time(desc, id, now);
        return desc.update_partition_state(id, PartitionState::PartitionActive, at);
    }
    Ok(false)
}

/// One reconcile of the other partitions (dskit's `reconcileOtherPartitions`): with
/// deletion on, removes every partition other than ours that has been INACTIVE since
/// strictly before `now - delete_inactive_partition_after` and has no owner at all.
/// Returns the removed partition IDs (ascending).
pub fn reconcile_other_partitions(
    desc: &mut PartitionRingDesc,
    cfg: &PartitionLifecyclerConfig,
    now: i64,
) -> Vec<i32> {
    if cfg.delete_inactive_partition_after.is_zero() {
        return Vec::new();
    }
    let delete_before = now.saturating_sub(secs(cfg.delete_inactive_partition_after));
    let doomed: Vec<i32> = desc
        .partitions
        .iter()
        .filter(|(id, p)| {
            **id != cfg.partition_id
                && p.is_inactive_since(delete_before)
                && desc.partition_owners_count(**id) == 0
        })
        .map(|(id, _)| *id)
        .collect();
    for id in &doomed {
        desc.remove_partition(*id);
    }
    doomed
}

/// Shutdown with owner removal on (dskit's `stopping` with `RemoveOwnerOnShutdown`):
/// removes this instance's owner entry; the partition's state is left alone.
pub fn remove_owner(desc: &mut PartitionRingDesc, cfg: &PartitionLifecyclerConfig) -> bool {
    desc.remove_owner(&cfg.owner_id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000;

    fn cfg(id: i32) -> PartitionLifecyclerConfig {
        PartitionLifecyclerConfig::new(&format!("ingester-zone-a-{id}"), id)
    }

    #[test]
    fn a_state_change_in_the_same_second_is_stamped_one_second_later() {
        let mut d = PartitionRingDesc::new();
        d.add_partition(1, PartitionState::PartitionActive, T)
            .unwrap();
        // Same second as the ACTIVE change: one second past it, so peers take it.
        assert_eq!(state_change_time(&d, 1, T), T + 1);
        // The clock behind the stored time (another node's clock ahead): still newer.
        assert_eq!(state_change_time(&d, 1, T - 5), T + 1);
        // Later: the clock as it is.
        assert_eq!(state_change_time(&d, 1, T + 30), T + 30);
        // Unknown partition: the clock.
        assert_eq!(state_change_time(&d, 9, T), T);
        let at = state_change_time(&d, 1, T);
        assert!(
            d.change_partition_state(1, PartitionState::PartitionInactive, at)
                .unwrap()
        );
        let mut peer = PartitionRingDesc::new();
        peer.add_partition(1, PartitionState::PartitionActive, T)
            .unwrap();
        assert!(
            peer.merge(Some(&d), false, T + 1).is_some(),
            "the peer takes the change"
        );
        assert!(peer.partitions[&1].is_inactive());
    }

    #[test]
    fn partition_id_is_the_trailing_number_of_the_instance_id() {
        assert_eq!(partition_id_from_instance_id("ingester-zone-a-7"), Some(7));
        assert_eq!(partition_id_from_instance_id("ingester-zone-b-7"), Some(7));
        assert_eq!(partition_id_from_instance_id("ingester-0"), Some(0));
        assert_eq!(partition_id_from_instance_id("ingester-012"), Some(12));
        for bad in ["ingester", "ingester-", "ingester-a1", "7", "x-99999999999"] {
            assert_eq!(partition_id_from_instance_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn startup_creates_a_pending_partition_and_registers_the_owner_once() {
        let c = cfg(3);
        let mut d = PartitionRingDesc::new();
        assert!(create_partition_and_register_owner(&mut d, &c, T).unwrap());
        let p = &d.partitions[&3];
        assert!(p.is_pending());
        assert_eq!(p.state_timestamp, T);
        assert_eq!(p.tokens.len(), 512);
        assert_eq!(d.owners["ingester-zone-a-3"].updated_timestamp, T);
        // A restart later changes nothing: same state, the owner keeps its timestamp.
        assert!(!create_partition_and_register_owner(&mut d, &c, T + 100).unwrap());
        assert_eq!(d.owners["ingester-zone-a-3"].updated_timestamp, T);
    }

    #[test]
    fn startup_keeps_the_state_of_an_existing_partition() {
        let c = cfg(1);
        let mut d = PartitionRingDesc::new();
        d.add_partition(1, PartitionState::PartitionInactive, T - 50)
            .unwrap();
        assert!(create_partition_and_register_owner(&mut d, &c, T).unwrap());
        assert!(d.partitions[&1].is_inactive());
        assert_eq!(d.partitions[&1].state_timestamp, T - 50);
        assert_eq!(d.owners["ingester-zone-a-1"].owned_partition, 1);
    }

    #[test]
    fn multi_partition_owner_id_has_the_partition_suffix() {
        let mut c = cfg(4);
        c.multi_partition_ownership = true;
        let mut d = PartitionRingDesc::new();
        d.add_partition(4, PartitionState::PartitionActive, T)
            .unwrap();
        assert!(register_owner(&mut d, &c, T));
        assert!(d.has_owner("ingester-zone-a-4/4"));
        assert!(remove_owner(&mut d, &c));
        assert!(d.owners.is_empty());
    }

    #[test]
    fn pending_goes_active_once_enough_owners_are_old_enough() {
        let mut c = cfg(0);
        c.wait_owners_count_on_pending = 2;
        c.wait_owners_duration_on_pending = Duration::from_secs(10);
        let mut d = PartitionRingDesc::new();
        create_partition_and_register_owner(&mut d, &c, T).unwrap();
        // One owner only: stays pending however long it waits.
        assert!(!reconcile_owned_partition(&mut d, &c, T + 3600).unwrap());
        // A second owner (the other zone) arrives at T+100.
        d.add_or_update_owner("ingester-zone-b-0", OwnerState::OwnerActive, 0, T + 100);
        // Not yet 10s old: owner timestamps must be strictly before now - 10s.
        assert!(!reconcile_owned_partition(&mut d, &c, T + 110).unwrap());
        assert!(d.partitions[&0].is_pending());
        assert!(reconcile_owned_partition(&mut d, &c, T + 111).unwrap());
        let p = &d.partitions[&0];
        assert!(p.is_active());
        assert_eq!(p.state_timestamp, T + 111);
        // Active stays active.
        assert!(!reconcile_owned_partition(&mut d, &c, T + 500).unwrap());
    }

    #[test]
    fn zero_wait_still_needs_the_owner_from_an_earlier_second_and_zero_count_is_immediate() {
        let mut c = cfg(0);
        c.wait_owners_duration_on_pending = Duration::ZERO;
        let mut d = PartitionRingDesc::new();
        create_partition_and_register_owner(&mut d, &c, T).unwrap();
        assert!(!reconcile_owned_partition(&mut d, &c, T).unwrap());
        assert!(reconcile_owned_partition(&mut d, &c, T + 1).unwrap());

        let mut none = cfg(1);
        none.wait_owners_count_on_pending = 0;
        let mut d = PartitionRingDesc::new();
        d.add_partition(1, PartitionState::PartitionPending, T)
            .unwrap();
        assert!(reconcile_owned_partition(&mut d, &none, T).unwrap());
        assert!(d.partitions[&1].is_active());
    }

    #[test]
    fn owned_partition_is_never_recreated_while_running() {
        let c = cfg(2);
        let mut d = PartitionRingDesc::new();
        assert_eq!(
            reconcile_owned_partition(&mut d, &c, T),
            Err(PartitionRingError::PartitionDoesNotExist)
        );
        assert!(d.partitions.is_empty());
        // Inactive (scaled down by an operator) is left as it is.
        d.add_partition(2, PartitionState::PartitionInactive, T)
            .unwrap();
        assert!(!reconcile_owned_partition(&mut d, &c, T + 10_000).unwrap());
        assert!(d.partitions[&2].is_inactive());
    }

    #[test]
    fn inactive_partitions_without_owners_are_deleted_after_the_timeout() {
        let mut c = cfg(0);
        c.delete_inactive_partition_after = Duration::from_secs(3600);
        let mut d = PartitionRingDesc::new();
        d.add_partition(0, PartitionState::PartitionInactive, T)
            .unwrap(); // ours: never deleted
        d.add_partition(1, PartitionState::PartitionInactive, T)
            .unwrap(); // no owners: deleted
        d.add_partition(2, PartitionState::PartitionInactive, T)
            .unwrap(); // still owned
        d.add_partition(3, PartitionState::PartitionActive, T)
            .unwrap(); // active
        d.add_partition(4, PartitionState::PartitionInactive, T + 10)
            .unwrap(); // too recent
        d.add_or_update_owner("ingester-zone-a-2", OwnerState::OwnerActive, 2, T);
        // Exactly at the timeout: the state must be strictly older.
        assert!(reconcile_other_partitions(&mut d, &c, T + 3600).is_empty());
        assert_eq!(reconcile_other_partitions(&mut d, &c, T + 3601), vec![1]);
        assert_eq!(
            d.partitions.keys().copied().collect::<Vec<_>>(),
            [0, 2, 3, 4]
        );
        assert_eq!(reconcile_other_partitions(&mut d, &c, T + 3611), vec![4]);
        // The last owner of 2 leaves: 2 goes on the next reconcile.
        d.remove_owner("ingester-zone-a-2");
        assert_eq!(reconcile_other_partitions(&mut d, &c, T + 3612), vec![2]);
        assert_eq!(d.partitions.keys().copied().collect::<Vec<_>>(), [0, 3]);
    }

    #[test]
    fn deletion_off_with_a_zero_timeout() {
        let mut c = cfg(0);
        c.delete_inactive_partition_after = Duration::ZERO;
        let mut d = PartitionRingDesc::new();
        d.add_partition(1, PartitionState::PartitionInactive, 0)
            .unwrap();
        assert!(reconcile_other_partitions(&mut d, &c, T).is_empty());
        assert!(d.has_partition(1));
    }
}
