#![doc = include_str!("../README.md")]
//! A memberlist node that joins a Grafana Mimir / Loki / Cortex gossip cluster (dskit's TCP
//! transport) or a plain hashicorp memberlist cluster (UDP + TCP, e.g. Alertmanager), and
//! dskit's gossip key-value store on top of it, implementing [`ringkit_kv::Client`]
//! (`spec/memberlist.md` §1–2).
//!
//! ## Contract
//!
//! `wire`, `swim`, `sim` and `kv::KvState` are sans-IO: functions take byte slices (and
//! `now`) and return values or errors; only `runtime` and the `kv` client touch tokio.
//! Decoding never panics on peer input, never allocates more than the input (or
//! the configured decompression limit) justifies, and bounds recursion. Encoding in
//! the peer's [`wire::Dialect`] reproduces Go's bytes exactly; see
//! `tests/captures.rs` for the known exceptions.
//!
//! ## Stability
//!
//! The supported API is [`kv`] (the gossip store) and [`runtime`] (a node). [`swim`] (the
//! sans-IO core, for simulators and custom drivers), [`wire`] (the codec, public for the
//! golden and capture tests, benches and the fuzz targets in `ringkit-fuzz-bodies`) and
//! [`sim`] (test support for the integration tests and the `sim_scale` example) are public
//! internals: they may change in any release.
//!
//! ## Layers
//!
//! - [`wire`]: the codec (bytes ⇄ [`wire::Message`]).
//! - [`swim`]: [`swim::Core`], memberlist's SWIM + Lifeguard state machine, sans
//!   I/O: decoded messages and `now` in, messages to send, events and one
//!   deadline out.
//! - [`sim`]: a deterministic simulator running many cores over the real codec on
//!   a lossy, partitionable virtual network (tests, examples and numbers).
//! - [`runtime`]: the tokio driver: sockets for both transports, the task owning the
//!   core, join and leave ([`runtime::Memberlist`]).
//! - [`kv`]: the gossip KV ([`kv::GossipKv`]); its merge rules ([`kv::KvState`]) are
//!   sans-IO like the core.
#![deny(missing_docs)]

pub mod kv;
pub mod runtime;
pub mod sim;
pub mod swim;
pub mod wire;
