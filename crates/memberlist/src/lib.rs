//! # ringkit-memberlist: hashicorp memberlist, as dskit runs it, in Rust
//!
//! This crate will hold a memberlist node able to join a Grafana Mimir / Loki /
//! Cortex gossip cluster. For now it holds the bottom layer: [`wire`], a pure codec
//! for every memberlist message and for dskit's TCP transport framing, byte-compatible
//! with the Go implementation (`spec/memberlist.md` §1, §2.2, §2.4–2.5).
//!
//! ## Contract
//!
//! Everything is sans-IO: functions take byte slices and return values or errors.
//! Decoding never panics on peer input, never allocates more than the input (or
//! the configured decompression limit) justifies, and bounds recursion. Encoding in
//! the peer's [`wire::Dialect`] reproduces Go's bytes exactly; see
//! `tests/captures.rs` for the known exceptions.
//!
//! ## Layers
//!
//! - [`wire`]: the codec (bytes ⇄ [`wire::Message`]).
//! - [`swim`]: [`swim::Core`], memberlist's SWIM + Lifeguard state machine, sans
//!   I/O: decoded messages and `now` in, messages to send, events and one
//!   deadline out.
//! - [`sim`]: a deterministic simulator running many cores over the real codec on
//!   a lossy, partitionable virtual network (tests, examples and numbers).
#![deny(missing_docs)]

pub mod kv;
pub mod runtime;
pub mod sim;
pub mod swim;
pub mod wire;
