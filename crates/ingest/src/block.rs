//! Where the head's cut ranges go: persistent blocks, behind a small trait.
//!
//! The head decides *when* a range is cut and *what* goes in it ([`crate::store::BlockSeries`]);
//! a [`BlockStore`] decides how a block is laid out on disk (Prometheus' format, written by
//! `ringkit-tsdb`) and reads it back for queries. A block lives in `<tenant dir>/<name>/`
//! (`<name>` a ULID for Prometheus blocks, Mimir's layout) and must appear atomically: a
//! directory that is not complete must not carry a final name.

use std::path::Path;

use crate::prompb::TimeSeries;
use crate::store::{BlockSeries, Matcher};

/// A block's time range, from its metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    /// First timestamp covered (inclusive), ms.
    pub min_t: i64,
    /// End of the range (exclusive, as Prometheus' `maxTime`), ms.
    pub max_t: i64,
}

/// A block that cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[error("block {path}: {message}")]
pub struct BlockError {
    /// The block (or parent) directory.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

impl BlockError {
    /// An error about `path`.
    pub fn new(path: &Path, message: impl std::fmt::Display) -> Self {
        BlockError {
            path: path.display().to_string(),
            message: message.to_string(),
        }
    }
}

/// Writes and reads blocks (see the module doc).
pub trait BlockStore: Send + Sync {
    /// Writes `series` (sorted by labels, chunks inside `[min_t, max_t)`) as a new block in
    /// `parent`; returns the block's directory name. Either the block appears complete under
    /// that name or nothing does (a crash may leave a temporary directory that
    /// [`BlockStore::is_temporary`] recognises).
    fn write(
        &self,
        parent: &Path,
        min_t: i64,
        max_t: i64,
        series: &[BlockSeries],
    ) -> Result<String, BlockError>;

    /// Whether a directory name is a complete block of this store.
    fn is_block(&self, name: &str) -> bool;

    /// Whether a directory name is a block left half-written by a crash (removed at start).
    fn is_temporary(&self, name: &str) -> bool;

    /// The time range of the block in `dir`.
    fn meta(&self, dir: &Path) -> Result<BlockMeta, BlockError>;

    /// Series of the block in `dir` matching every matcher, with samples in
    /// `[start_ms, end_ms]`.
    fn query(
        &self,
        dir: &Path,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TimeSeries>, BlockError>;
}
