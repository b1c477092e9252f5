//! The ring descriptor as a stored, mergeable KV value (design.md: the adapter lives here,
//! one layer above both the ring and the KV crates, so neither knows the other).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkit_kv::{Codec, CodecError, EncodedMerge, MergeScratch, Mergeable, TombstoneCount};
use ringkit_ring::codec as ring_codec;
use ringkit_ring::heartbeat::{self, HeartbeatCache, HeartbeatMerge};
use ringkit_ring::merge;
use ringkit_ring::model::{Desc, InstanceState};

/// A ring descriptor stored in a KV store under codec `ringDesc`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RingDesc(pub Desc);

/// The `ringDesc` codec: snappy block of the `ring.Desc` protobuf, as dskit stores it.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingDescCodec;

impl RingDescCodec {
    /// The codec as the KV clients take it.
    pub fn shared() -> Arc<dyn Codec<RingDesc>> {
        Arc::new(RingDescCodec)
    }
}

impl Codec<RingDesc> for RingDescCodec {
    fn id(&self) -> &str {
        ring_codec::RING_DESC_CODEC_ID
    }

    fn encode(&self, value: &RingDesc) -> Vec<u8> {
        ring_codec::encode(&value.0)
    }

    fn decode(&self, bytes: &[u8]) -> Result<RingDesc, CodecError> {
        ring_codec::decode(bytes)
            .map(RingDesc)
            .map_err(|e| CodecError::Invalid {
                codec: ring_codec::RING_DESC_CODEC_ID.to_owned(),
                reason: e.to_string(),
            })
    }

    /// Heartbeats (one instance, newer timestamp, same tokens) merge from the bytes.
    /// The scratch keeps a [`HeartbeatCache`], so repeated heartbeats skip the token
    /// comparison.
    fn merge_encoded(
        &self,
        current: &mut RingDesc,
        bytes: &[u8],
        scratch: &mut MergeScratch,
    ) -> Option<EncodedMerge> {
        let cache = scratch.get_or_default::<HeartbeatCache>()?;
        let merged = heartbeat::merge_heartbeat_cached(&mut current.0, bytes, cache)?;
        Some(match merged {
            HeartbeatMerge::Unchanged => EncodedMerge::Unchanged,
            HeartbeatMerge::AppliedVerbatim => EncodedMerge::AppliedVerbatim {
                content: vec![cache.last_applied_id().to_owned()],
            },
        })
    }
}

fn unix_secs(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

impl Mergeable for RingDesc {
    fn merge(&mut self, other: Self, local_cas: Option<SystemTime>) -> Option<Self> {
        let now = local_cas.map_or(0, unix_secs);
        merge::merge(&mut self.0, other.0, local_cas.is_some(), now).map(RingDesc)
    }

    fn merge_verbatim(
        &mut self,
        other: Self,
        local_cas: Option<SystemTime>,
    ) -> (Option<Self>, bool) {
        let now = local_cas.map_or(0, unix_secs);
        let out = merge::merge_with_options(
            &mut self.0,
            other.0,
            local_cas.is_some(),
            now,
            &merge::MergeOptions::default(),
        );
        (out.change.map(RingDesc), out.change_is_incoming)
    }

    fn merge_content(&self) -> Vec<String> {
        self.0.ingesters.keys().cloned().collect()
    }

    fn remove_tombstones(&mut self, limit: Option<SystemTime>) -> TombstoneCount {
        let total = self
            .0
            .ingesters
            .values()
            .filter(|d| d.state == InstanceState::Left as i32)
            .count();
        let (_, removed) = merge::remove_tombstones(&mut self.0, limit.map_or(0, unix_secs));
        TombstoneCount { total, removed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_round_trips_and_rejects_garbage() {
        let mut d = Desc::new();
        d.add_instance("a", "h:1", "z", vec![3, 1], InstanceState::Active, 1, 2);
        let c = RingDescCodec;
        assert_eq!(c.id(), "ringDesc");
        let back = c.decode(&c.encode(&RingDesc(d.clone()))).unwrap();
        assert_eq!(back.0, d);
        assert!(c.decode(b"\xff\xff\xff").is_err());
    }

    #[test]
    fn local_cas_turns_removed_instances_into_tombstones_that_can_be_purged() {
        let mut d = Desc::new();
        d.add_instance("a", "h:1", "", vec![1], InstanceState::Active, 1, 10);
        d.add_instance("b", "h:2", "", vec![2], InstanceState::Active, 1, 10);
        let mut stored = RingDesc(d.clone());
        let mut wanted = d;
        wanted.remove_instance("b");
        let now = UNIX_EPOCH + std::time::Duration::from_secs(20);
        let change = stored.merge(RingDesc(wanted), Some(now)).expect("a change");
        assert_eq!(change.merge_content(), vec!["b".to_string()]);
        assert_eq!(stored.0.ingesters["b"].state(), InstanceState::Left);
        let count = stored.remove_tombstones(None);
        assert_eq!(
            count,
            TombstoneCount {
                total: 1,
                removed: 1
            }
        );
        assert!(!stored.0.ingesters.contains_key("b"));
    }
}
