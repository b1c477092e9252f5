//! dskit's partition ring descriptor as a stored, mergeable KV value (codec
//! `partitionRingDesc`), the partition-ring counterpart of [`crate::store`]: with it a
//! partition ring travels over memberlist gossip and lives in etcd under the same key and
//! bytes dskit uses (Mimir: `collectors/ingester-partitions`).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkit_kv::{Codec, CodecError, Mergeable, TombstoneCount};
use ringkit_ring::partition::PartitionRingDesc;
use ringkit_ring::partition::codec::{self as partition_codec, PARTITION_RING_DESC_CODEC_ID};

/// A partition ring descriptor stored in a KV store under codec `partitionRingDesc`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionRingValue(pub PartitionRingDesc);

/// The `partitionRingDesc` codec: snappy block of the `ring.PartitionRingDesc` protobuf,
/// byte for byte as dskit stores it.
#[derive(Clone, Copy, Debug, Default)]
pub struct PartitionRingCodec;

impl PartitionRingCodec {
    /// The codec as the KV clients take it.
    pub fn shared() -> Arc<dyn Codec<PartitionRingValue>> {
        Arc::new(PartitionRingCodec)
    }
}

impl Codec<PartitionRingValue> for PartitionRingCodec {
    fn id(&self) -> &str {
        PARTITION_RING_DESC_CODEC_ID
    }

    fn encode(&self, value: &PartitionRingValue) -> Vec<u8> {
        partition_codec::encode(&value.0)
    }

    fn decode(&self, bytes: &[u8]) -> Result<PartitionRingValue, CodecError> {
        partition_codec::decode(bytes)
            .map(PartitionRingValue)
            .map_err(|e| CodecError::Invalid {
                codec: PARTITION_RING_DESC_CODEC_ID.to_owned(),
                reason: e.to_string(),
            })
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl Mergeable for PartitionRingValue {
    /// dskit's `PartitionRingDesc.Merge`; with `local_cas`, entries missing from `other`
    /// become tombstones stamped with that time.
    fn merge(&mut self, other: Self, local_cas: Option<SystemTime>) -> Option<Self> {
        let now = local_cas.map_or(0, unix_secs);
        self.0
            .merge(Some(&other.0), local_cas.is_some(), now)
            .map(PartitionRingValue)
    }

    /// dskit's `MergeContent` (partition ids in decimal, then owner ids), so queued
    /// broadcasts are invalidated exactly as in a dskit node.
    fn merge_content(&self) -> Vec<String> {
        self.0.merge_content()
    }

    fn remove_tombstones(&mut self, limit: Option<SystemTime>) -> TombstoneCount {
        let (kept, removed) = self.0.remove_tombstones(limit);
        TombstoneCount {
            total: kept + removed,
            removed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ring::partition::{OwnerState, PartitionState};

    fn ring(now: i64) -> PartitionRingDesc {
        let mut d = PartitionRingDesc::new();
        for id in 0..2 {
            d.add_partition(id, PartitionState::PartitionActive, now)
                .unwrap();
            d.add_or_update_owner(&format!("ing-{id}"), OwnerState::OwnerActive, id, now);
        }
        d
    }

    #[test]
    fn codec_is_dskits_and_rejects_garbage() {
        let c = PartitionRingCodec;
        assert_eq!(c.id(), "partitionRingDesc");
        let d = ring(1_700_000_000);
        let bytes = c.encode(&PartitionRingValue(d.clone()));
        assert_eq!(bytes, partition_codec::encode(&d));
        assert_eq!(c.decode(&bytes).unwrap().0, d);
        assert!(c.decode(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn local_cas_turns_a_removed_partition_into_a_tombstone_that_can_be_purged() {
        let d = ring(100);
        let mut stored = PartitionRingValue(d.clone());
        let mut wanted = d;
        wanted.remove_partition(1);
        let now = UNIX_EPOCH + std::time::Duration::from_secs(200);
        let change = stored
            .merge(PartitionRingValue(wanted), Some(now))
            .expect("a change");
        assert!(change.merge_content().contains(&"1".to_owned()));
        let p1 = &stored.0.partitions[&1];
        assert_eq!(p1.state(), PartitionState::PartitionDeleted);
        assert_eq!(p1.state_timestamp, 200);
        let count = stored.remove_tombstones(None);
        assert_eq!(
            count,
            TombstoneCount {
                total: 1,
                removed: 1
            }
        );
        assert!(!stored.0.partitions.contains_key(&1));
        assert!(stored.0.partitions.contains_key(&0));
    }

    #[test]
    fn gossip_merge_takes_the_newer_state_and_ignores_an_older_one() {
        let mut ours = PartitionRingValue(ring(100));
        let mut theirs = ring(100);
        theirs
            .change_partition_state(0, PartitionState::PartitionInactive, 150)
            .unwrap();
        let change = ours
            .merge(PartitionRingValue(theirs.clone()), None)
            .unwrap();
        assert_eq!(change.0.partitions.len(), 1);
        assert_eq!(
            ours.0.partitions[&0].state(),
            PartitionState::PartitionInactive
        );
        assert!(
            ours.merge(PartitionRingValue(ring(100)), None).is_none(),
            "older: no change"
        );
        assert_eq!(ours.0, theirs);
    }
}
