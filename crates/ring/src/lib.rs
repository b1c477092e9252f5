//! # ringkit-ring: the consistent-hash ring of Cortex, Mimir and Loki, in Rust
//!
//! This crate is the pure bottom layer of ringkit. It has no sockets, no clock and no
//! threads: times come in as arguments (Unix seconds, as the descriptor stores them) and
//! randomness comes from a caller-supplied [`rand::Rng`]. That keeps every result
//! reproducible in tests and keeps benchmarks honest.
//!
//! ## Layout
//!
//! - [`model`]: [`Desc`], [`InstanceDesc`], [`InstanceState`] (our own `proto/ring.proto`,
//!   the dskit wire dialect; `InstanceDesc` is hand-written so that copies share their
//!   [`Tokens`]) and descriptor helpers.
//! - [`codec`]: the `ringDesc` KV codec (snappy block of protobuf) and the JSON form.
//! - [`merge`]: the gossip CRDT merge with LEFT tombstones and deterministic token
//!   conflict resolution.
//! - [`tokens`]: token generators and the tokens file.
//! - [`op`]: operations (Write, Read, Reporting, ...) and per-operation health.
//! - [`snapshot`]: [`RingSnapshot`], an immutable read-optimised view with `get`, whole-ring
//!   replication sets, ownership and counts.
//! - [`replication`]: [`ReplicationSet`], the instances an operation reaches, and its helpers.
//! - [`quorum`]: quorum tracking and `do_until_quorum` over a replication set.
//! - [`batch`]: `DoBatch`, one call per instance for many keyed items, with per-item quorum.
//! - [`shuffle`]: per-tenant shuffle shards (with lookback), picking the same instances as
//!   dskit (through a bit-exact copy of Go's `math/rand` source, kept internal).
//! - [`hash`]: FNV-1 32 series hashing as Cortex and Mimir shard series, and FNV-1a 32 for
//!   turning any other key into a ring key.
//! - [`partition`]: dskit's partition ring (ingest storage): model, `partitionRingDesc`
//!   codec, merge, [`partition::PartitionRing`] lookups and the partition-instance joins.
//! - [`token_ranges`]: the key ranges an instance or partition owns.
//!
//! ## Contract
//!
//! A [`RingSnapshot`] is built from a [`Desc`] once per topology change and then only read;
//! share it behind an `Arc` and swap in a new one when the descriptor changes. Lookups take
//! a caller-owned buffer so the hot path does not allocate.
#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod batch;
pub mod codec;
// Go's `math/rand` source: public only for the golden tests and benchmarks that check
// shuffle-shard picks bit for bit; not part of the supported API.
#[doc(hidden)]
pub mod gorand;
pub mod hash;
// The gossip receive fast path for one-instance heartbeats: public only for the KV
// store in ringkit-lifecycle and the decompression-bomb tests; not part of the supported
// API (use `merge` for descriptors).
#[doc(hidden)]
pub mod heartbeat;
pub mod merge;
pub mod model;
pub mod op;
pub mod partition;
pub mod quorum;
pub mod replication;
pub mod shuffle;
pub mod snapshot;
pub mod token_ranges;
pub mod tokens;

pub use batch::{BatchBuffers, BatchError, BatchOptions, BatchOutcome, do_batch};
pub use model::{Desc, InstanceBuilder, InstanceDesc, InstanceState, Tokens};
pub use op::Operation;
pub use quorum::{QuorumConfig, QuorumError};
pub use replication::ReplicationSet;
pub use snapshot::{
    ConfigError, GetBuffer, InstanceIdx, KeyReplicas, RingConfig, RingError, RingSnapshot,
    StateCounts,
};
