#![doc = include_str!("../README.md")]
//! An instance's life in the ring (spec/ring.md §4), in ringkit's order:
//!
//! 1. **Register** with no tokens (new instance) so peers see it at once; a restarted
//!    instance that still owns tokens is marked JOINING, which keeps its ranges but makes
//!    writes extend past it and reads skip it until it has loaded its data.
//! 2. **Load**: the owner replays its write-ahead log (not this crate's business).
//! 3. **Claim**: keep the tokens the ring still holds for it, reuse the tokens file, top up
//!    with tokens nobody holds, and go ACTIVE (or JOINING first when an observe period is
//!    configured, to catch gossip token conflicts).
//! 4. **Heartbeat** every period, re-adding itself if it was forgotten.
//! 5. **Leave**: LEAVING, then unregister (a LEFT tombstone under gossip).
//!
//! ## Layout
//!
//! - [`config`]: [`LifecyclerConfig`] with dskit's names and defaults.
//! - [`decide`]: the pure decisions, each a function over the ring descriptor inside a CAS:
//!   table-tested without any store, clock or task.
//! - [`store`]: [`RingDesc`], the descriptor as a KV value (codec `ringDesc`, CRDT merge).
//! - [`lifecycler`]: [`Lifecycler`], which performs those decisions against a KV store.
//! - [`watcher`]: [`RingWatcher`], which follows the ring key and publishes snapshots.
//! - [`partition_store`]: [`PartitionRingValue`], dskit's partition ring as a KV value.
//! - [`partition_decide`] and [`partition_lifecycler`]: dskit's partition instance
//!   lifecycler (create and own a partition, Pending → Active, delete old Inactive ones)
//!   and the partition ring watcher.
#![deny(missing_docs)]

pub mod config;
pub mod decide;
pub mod lifecycler;
pub mod partition_decide;
pub mod partition_lifecycler;
pub mod partition_store;
pub mod store;
pub mod tokens_file;
pub mod watcher;

pub use config::LifecyclerConfig;
pub use decide::{Instance, LifecycleError};
pub use lifecycler::{Lifecycler, LifecyclerError};
pub use partition_decide::{PartitionLifecyclerConfig, partition_id_from_instance_id};
pub use partition_lifecycler::{
    PartitionInstanceLifecycler, PartitionLifecyclerError, PartitionRingWatcher, ReconcileCounts,
    ReconcileKind,
};
pub use partition_store::{PartitionRingCodec, PartitionRingValue};
pub use store::{RingDesc, RingDescCodec};
pub use tokens_file::TokensFileError;
pub use watcher::RingWatcher;
