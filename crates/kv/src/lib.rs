#![doc = include_str!("../README.md")]
//! The ring lives in a key-value store under one key (`ring`, stored as `collectors/ring`
//! with the default prefix). This crate is the interface to that store, with the semantics
//! of dskit's KV client (`spec/memberlist.md` §3.3–3.4), made typed: a [`Client<V>`] reads
//! and writes values of type `V` through a [`Codec<V>`], never `Any`.
//!
//! ## Layout
//!
//! - [`client`]: the [`Client`] trait (list, get, delete, CAS, watches), [`CasDecision`] and
//!   the shared [`ClientOptions`] (value size limit, CAS attempts).
//! - [`codec`]: [`Codec`], the [`CodecRegistry`] by id, and the `string` / bytes codecs.
//! - [`mergeable`]: [`Mergeable`], the CRDT contract of values kept by the gossip store.
//! - [`memory`]: [`MemoryStore`], the in-process store (the embedded default).
//! - `etcd` (feature `etcd`): `EtcdStore`, etcd v3 through tonic over our own minimal proto of etcd's
//!   gRPC API, compiled by protox. Not the `etcd-client` crate: it needs `protoc` at build
//!   time, and we use five RPCs (details in the module doc).
//! - [`multi`]: [`MultiClient`], a primary plus mirrors, switchable at run time.
//! - [`prefix`]: [`PrefixClient`], the `--kv.prefix` key namespace.
//! - [`metrics`]: Prometheus metrics with dskit's names, via [`InstrumentedClient`].
//! - `testsuite` (feature `testsuite`): the behaviour suite every store must pass, and a
//!   throwaway etcd server for tests.
//!
//! This crate knows no ring type and picks no backend from configuration: the binary
//! builds the store it wants (flags in the crate's README) and hands out clients.
//!
//! ## Contract
//!
//! Failed calls never write, and bad bytes never panic: they are [`Error`]s saying what
//! happened. Watches run until their callback returns `false` or their
//! [`tokio_util::sync::CancellationToken`] fires, and survive store outages by re-reading.
#![deny(missing_docs)]

mod cas;
pub mod client;
pub mod codec;
pub mod error;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;
pub mod mergeable;
pub mod metrics;
pub mod multi;
pub mod prefix;
#[cfg(feature = "testsuite")]
pub mod testsuite;

pub use client::{CasDecision, CasFn, Client, ClientOptions, Value, WatchKeyFn, WatchPrefixFn};
pub use codec::{BytesCodec, Codec, CodecRegistry, EncodedMerge, MergeScratch, StringCodec};
pub use error::{BoxError, CodecError, Error};
#[cfg(feature = "etcd")]
pub use etcd::{EtcdClient, EtcdConfig, EtcdStore};
pub use memory::{MemoryClient, MemoryStore};
pub use mergeable::{Mergeable, TombstoneCount};
pub use metrics::{ClientLabels, InstrumentedClient, KvMetrics};
pub use multi::{MultiClient, MultiConfig, MultiRuntimeConfig};
pub use prefix::{DEFAULT_PREFIX, PrefixClient};
pub use tokio_util::sync::CancellationToken;
