#![doc = include_str!("../README.md")]
//! Prometheus' on-disk TSDB formats, so ringkit's ingester stores what Prometheus, promtool,
//! Thanos and Mimir's store-gateways read.
//!
//! # Layout
//! - [`chunk`]: the XOR (Gorilla) chunk, byte-compatible with Prometheus' `chunkenc`.
//! - [`block`]: [`write_block`] writes a block directory atomically ([`BlockWriter`] does it
//!   series by series from already-encoded chunks); [`Block`] reads one (series by label
//!   matchers, samples in a time range).
//! - [`index`], [`segments`], [`tombstones`], [`meta`]: the block's files, one module each.
//! - [`labels`]: label pairs and PromQL-style matchers.
//!
//! Everything here is synchronous std code (no async runtime); decoders never panic on
//! corrupt input, they return errors. Sizes in memory: [`Block::open`] reads the index file
//! whole (as Prometheus maps it), chunks are read one at a time with positioned reads, and
//! [`write_block`] holds the postings lists of the block it writes.
//!
//! # Example
//! ```
//! use ringkit_tsdb::{Block, BlockSeries, Matcher, XorChunk, labels_from_pairs, write_block};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut chunk = XorChunk::new();
//! for i in 0..120 {
//!     chunk.append(1_700_000_000_000 + i * 15_000, i as f64);
//! }
//! let series = vec![BlockSeries {
//!     labels: labels_from_pairs([("__name__", "up"), ("job", "node")]),
//!     chunks: vec![chunk],
//! }];
//! let dir = tempfile::tempdir()?;
//! let (min, max) = (1_699_999_200_000, 1_700_006_400_000); // one 2 h range
//! let ulid = write_block(dir.path(), min, max, series)?;
//!
//! let block = Block::open(dir.path().join(ulid.to_string()))?;
//! assert_eq!(block.meta().stats.num_samples, 120);
//! let found = block.query(&[Matcher::equal("job", "node")], min, max)?;
//! assert_eq!(found[0].samples.len(), 120);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod block;
pub mod chunk;
mod encoding;
pub mod index;
pub mod labels;
pub mod meta;
pub mod segments;
pub mod tombstones;

pub use block::{
    Block, BlockError, BlockOptions, BlockSeries, BlockWriter, EncodedChunk, SeriesSamples,
    list_blocks, read_meta, remove_tmp_dirs, write_block, write_block_with,
};
pub use chunk::{ChunkError, XorChunk, XorIter, decode_xor};
pub use index::ChunkMeta;
pub use labels::{Label, MatchType, Matcher, labels_from_pairs};
pub use meta::{BlockMeta, BlockStats, ThanosFile, ThanosMeta};
pub use ulid::Ulid;
