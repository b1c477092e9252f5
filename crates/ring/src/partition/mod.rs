//! dskit's **partition ring** (spec/partition-ring.md), as used by Mimir's ingest storage,
//! Tempo 3 and Loki's Kafka path.
//!
//! Writes go to *partitions* (Kafka partitions), not instances: each partition has 512
//! deterministic tokens, a state (Pending → Active → Inactive) and owners (the ingesters
//! that consume it). Everything here answers exactly as dskit at 6cdb4f7b does.
//!
//! - Model: [`PartitionRingDesc`], [`PartitionDesc`], [`OwnerDesc`], [`PartitionState`],
//!   [`OwnerState`] (prost types from `proto/partition_ring.proto`, dskit's field numbers)
//!   with dskit's editing methods ([`PartitionRingDesc::add_partition`],
//!   [`PartitionRingDesc::change_partition_state`],
//!   [`PartitionRingDesc::add_or_update_owner`], ...) and the gossip CRDT
//!   [`PartitionRingDesc::merge`] (see [`model`]).
//! - [`codec`]: the `partitionRingDesc` KV codec, byte-identical to dskit's.
//! - [`PartitionRing`]: the read-only snapshot with
//!   [`PartitionRing::active_partition_for_key`], [`PartitionRing::shuffle_shard`],
//!   [`PartitionRing::shuffle_shard_with_lookback`], counts, IDs, owners and
//!   [`PartitionRing::get_token_ranges_for_partition`].
//! - [`PartitionInstanceRing`] / [`MultiPartitionInstanceRing`]: a partition's
//!   replication set from its owners in the instance ring.
//!
//! ```
//! use std::sync::Arc;
//! use ringkit_ring::partition::{PartitionRing, PartitionRingDesc, PartitionState, OwnerState};
//!
//! let now = 1_700_000_000;
//! let mut desc = PartitionRingDesc::new();
//! for id in 0..3 {
//!     desc.add_partition(id, PartitionState::PartitionActive, now).unwrap();
//!     desc.add_or_update_owner(&format!("ingester-zone-a-{id}"), OwnerState::OwnerActive, id, now);
//! }
//! // An operator scales partition 2 down: still read (with lookback), no longer written.
//! desc.change_partition_state(2, PartitionState::PartitionInactive, now + 60).unwrap();
//!
//! let ring = Arc::new(PartitionRing::new(desc));
//! let p = ring.active_partition_for_key(123_456_789).unwrap();
//! assert!(p == 0 || p == 1);
//! let shard = ring.shuffle_shard("tenant-a", 1).unwrap();
//! assert_eq!(shard.partitions_count(), 1);
//! let ranges = ring.get_token_ranges_for_partition(p).unwrap();
//! assert!(ranges.includes_key(123_456_789));
//! ```

pub mod codec;
pub mod instance;
pub mod model;
pub mod ring;

pub use crate::model::{OwnerDesc, OwnerState, PartitionDesc, PartitionRingDesc, PartitionState};
pub use crate::token_ranges::TokenRanges;
pub use instance::{MultiPartitionInstanceRing, PartitionInstanceRing};
pub use model::{multi_partition_owner_id, partition_tokens};
pub use ring::{PartitionRing, ShuffleShardCacheStats};

/// Why a partition ring operation failed. Messages are dskit's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PartitionRingError {
    /// No ACTIVE partition owns a token (dskit's `ErrNoActivePartitionFound`).
    #[error("no active partition found")]
    NoActivePartitionFound,
    /// A token or partition lookup found inconsistent data, e.g. a partition whose tokens
    /// are not sorted (dskit's `ErrInconsistentTokensInfo`).
    #[error("inconsistent ring tokens information")]
    InconsistentTokensInfo,
    /// The partition is not in the ring (dskit's `ErrPartitionDoesNotExist`).
    #[error("the partition does not exist")]
    PartitionDoesNotExist,
    /// The explicit state change is not one dskit allows.
    #[error("change partition state from {from} to {to}: partition state change not allowed")]
    PartitionStateChangeNotAllowed {
        /// Current state.
        from: PartitionState,
        /// Requested state.
        to: PartitionState,
    },
    /// The partition's state is locked (dskit's `ErrPartitionStateChangeLocked`): clear
    /// the lock first.
    #[error("partition state change is locked")]
    PartitionStateChangeLocked,
    /// Partition IDs must be non-negative and small enough for the token generator
    /// (dskit panics on negative IDs).
    #[error("invalid partition ID {0}: tokens can be generated for IDs 0 to 1048575")]
    InvalidPartitionId(i32),
    /// The partition ring has no partition (dskit's `ErrEmptyRing`).
    #[error("empty ring")]
    EmptyRing,
    /// No owner of the partition (multi-partition ring).
    #[error("empty ring: no owners found for partition {partition}")]
    NoOwners {
        /// The partition looked up.
        partition: i32,
    },
    /// No owner of the partition is in the instance ring and healthy.
    #[error("partition {partition}: too many unhealthy instances in the ring")]
    TooManyUnhealthyInstances {
        /// The partition looked up.
        partition: i32,
    },
}
