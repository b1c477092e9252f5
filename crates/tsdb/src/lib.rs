//! Prometheus' on-disk TSDB formats, so ringkit's ingester stores what Prometheus, promtool,
//! Thanos and Mimir's store-gateways read.
//!
//! # Layout
//! - [`chunk`]: the XOR (Gorilla) chunk, byte-compatible with Prometheus' `chunkenc`.
//!
//! Everything here is synchronous std code: no async runtime, and decoders never panic on
//! corrupt input (they return errors).
#![deny(missing_docs)]

pub mod chunk;

pub use chunk::{ChunkError, XorChunk, XorIter, decode_xor};
