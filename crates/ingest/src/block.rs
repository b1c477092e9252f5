//! Where the head's cut ranges go: persistent blocks, behind a small trait.
//!
//! The head decides *when* a range is cut and *what* goes in it ([`crate::store::BlockSeries`]);
//! a [`BlockStore`] decides how a block is laid out on disk (Prometheus' format, written by
//! `ringkit-tsdb`) and reads it back for queries. A block lives in `<tenant dir>/<name>/`
//! (`<name>` a ULID for Prometheus blocks, Mimir's layout) and must appear atomically: a
//! directory that is not complete must not carry a final name.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::prompb::{MatcherType, Sample, TimeSeries};
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

/// Open block readers kept between queries, least recently used first out, so a query does
/// not re-read a block's index each time. Bounded by a count (each reader holds its block's
/// index in memory); 0 keeps none.
#[derive(Debug, Default)]
pub struct BlockReaderCache {
    max: usize,
    /// Most recently used last; short (a handful of entries), so a scan is fine.
    open: Mutex<Vec<(PathBuf, Arc<ringkit_tsdb::Block>)>>,
    /// Queries served by a reader already open.
    pub hits: AtomicU64,
    /// Readers opened.
    pub misses: AtomicU64,
    /// Readers closed to stay within the bound.
    pub evictions: AtomicU64,
}

/// The remote-read matchers in the block reader's form; a bad regex is an error of `dir`'s
/// query.
fn tsdb_matchers(
    dir: &Path,
    matchers: &[Matcher],
) -> Result<Vec<ringkit_tsdb::Matcher>, BlockError> {
    matchers
        .iter()
        .map(to_tsdb_matcher)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BlockError::new(dir, e))
}

impl BlockReaderCache {
    /// A cache of at most `max` open readers.
    pub fn new(max: usize) -> Self {
        BlockReaderCache {
            max,
            ..Default::default()
        }
    }

    /// Readers open now.
    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no reader is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reader of the block in `dir`, opened if it is not open yet.
    pub fn get(&self, dir: &Path) -> Result<Arc<ringkit_tsdb::Block>, BlockError> {
        {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(i) = open.iter().position(|(p, _)| p == dir) {
                let e = open.remove(i);
                let b = Arc::clone(&e.1);
                open.push(e);
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok(b);
            }
        }
        // Opened without the lock held: reading an index can take a while.
        let block = Arc::new(ringkit_tsdb::block::Block::open(dir).map_err(tsdb_err(dir))?);
        self.misses.fetch_add(1, Ordering::Relaxed);
        if self.max > 0 {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.retain(|(p, _)| p != dir);
            while open.len() >= self.max {
                open.remove(0);
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
            open.push((dir.to_owned(), Arc::clone(&block)));
        }
        Ok(block)
    }

    /// Closes the reader of a block that is being deleted.
    pub fn forget(&self, dir: &Path) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(p, _)| p != dir);
    }
}

/// Writes and reads blocks (see the module doc).
pub trait BlockStore: Send + Sync {
    /// Writes `series` of `tenant` (sorted by labels, chunks inside `[min_t, max_t)`) as a new
    /// block in `parent`; returns the block's directory name, or `None` when no series could
    /// go in (nothing is written then). Either the block appears complete under that name or
    /// nothing does (a crash may leave a temporary directory that
    /// [`BlockStore::is_temporary`] recognises).
    fn write(
        &self,
        parent: &Path,
        tenant: &str,
        min_t: i64,
        max_t: i64,
        series: &[BlockSeries],
    ) -> Result<Option<String>, BlockError>;

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

    /// [`BlockStore::query`], reusing an open reader from `cache` when the store has
    /// readers to keep (by default it opens the block each time).
    fn query_cached(
        &self,
        cache: &BlockReaderCache,
        dir: &Path,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TimeSeries>, BlockError> {
        let _ = cache;
        self.query(dir, matchers, start_ms, end_ms)
    }
}

/// Blocks in Prometheus' on-disk format (`ringkit-tsdb`): `<ULID>/{meta.json, index,
/// chunks/000001, tombstones}`, built in `<ULID>.tmp-for-creation` and renamed into place.
/// `meta.json` carries a `thanos` section with the tenant as `__org_id__` and source
/// `receive`, as Mimir's ingesters write it, so Mimir and Thanos tools take the block as one of
/// theirs.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrometheusBlocks;

fn tsdb_err(path: &Path) -> impl FnOnce(ringkit_tsdb::BlockError) -> BlockError + '_ {
    move |e| BlockError::new(path, e)
}

fn to_tsdb_matcher(m: &Matcher) -> Result<ringkit_tsdb::Matcher, String> {
    let kind = match m.kind() {
        MatcherType::Eq => ringkit_tsdb::MatchType::Equal,
        MatcherType::Neq => ringkit_tsdb::MatchType::NotEqual,
        MatcherType::Re => ringkit_tsdb::MatchType::Regex,
        MatcherType::Nre => ringkit_tsdb::MatchType::NotRegex,
    };
    ringkit_tsdb::Matcher::new(kind, m.name(), m.value()).map_err(|e| e.to_string())
}

impl BlockStore for PrometheusBlocks {
    fn write(
        &self,
        parent: &Path,
        tenant: &str,
        min_t: i64,
        max_t: i64,
        series: &[BlockSeries],
    ) -> Result<Option<String>, BlockError> {
        let mut thanos = ringkit_tsdb::ThanosMeta {
            source: "receive".to_owned(),
            ..Default::default()
        };
        thanos
            .labels
            .insert("__org_id__".to_owned(), tenant.to_owned());
        let opts = ringkit_tsdb::block::BlockOptions {
            thanos: Some(thanos),
            ..Default::default()
        };
        let mut w = ringkit_tsdb::block::BlockWriter::new(parent, &opts, min_t, max_t)
            .map_err(tsdb_err(parent))?;
        let mut skipped = 0usize;
        for s in series {
            let labels = s
                .labels
                .iter()
                .map(|(n, v)| ringkit_tsdb::Label::new(n, v))
                .collect();
            let chunks = s.chunks.iter().map(|c| ringkit_tsdb::block::EncodedChunk {
                min_time: c.min_t,
                max_time: c.max_t,
                data: &c.bytes,
            });
            match w.add_series(labels, chunks) {
                Ok(()) => {}
                // A series the format cannot hold (an empty label value from an unvalidated
                // writer, say) is left out rather than holding the whole block back.
                Err(ringkit_tsdb::BlockError::InvalidSeries { labels, reason }) => {
                    tracing::warn!(tenant, series = labels, reason, "series left out of block");
                    skipped += 1;
                }
                Err(e) => return Err(tsdb_err(parent)(e)),
            }
        }
        match w.finish() {
            Ok(ulid) => Ok(Some(ulid.to_string())),
            Err(ringkit_tsdb::BlockError::Empty { .. }) => {
                tracing::warn!(tenant, skipped, "no series for a block; none written");
                Ok(None)
            }
            Err(e) => Err(tsdb_err(parent)(e)),
        }
    }

    fn is_block(&self, name: &str) -> bool {
        ringkit_tsdb::Ulid::from_string(name).is_ok()
    }

    fn is_temporary(&self, name: &str) -> bool {
        name.ends_with(ringkit_tsdb::block::TMP_SUFFIX)
    }

    fn meta(&self, dir: &Path) -> Result<BlockMeta, BlockError> {
        let m = ringkit_tsdb::block::read_meta(dir).map_err(tsdb_err(dir))?;
        Ok(BlockMeta {
            min_t: m.min_time,
            max_t: m.max_time,
        })
    }

    fn query(
        &self,
        dir: &Path,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TimeSeries>, BlockError> {
        let ms = tsdb_matchers(dir, matchers)?;
        let block = ringkit_tsdb::block::Block::open(dir).map_err(tsdb_err(dir))?;
        query_block(&block, dir, &ms, start_ms, end_ms)
    }

    fn query_cached(
        &self,
        cache: &BlockReaderCache,
        dir: &Path,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TimeSeries>, BlockError> {
        let ms = tsdb_matchers(dir, matchers)?;
        let block = cache.get(dir)?;
        query_block(&block, dir, &ms, start_ms, end_ms)
    }
}

fn query_block(
    block: &ringkit_tsdb::Block,
    dir: &Path,
    ms: &[ringkit_tsdb::Matcher],
    start_ms: i64,
    end_ms: i64,
) -> Result<Vec<TimeSeries>, BlockError> {
    {
        let found = block.query(ms, start_ms, end_ms).map_err(tsdb_err(dir))?;
        Ok(found
            .into_iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .into_iter()
                    .map(|l| crate::prompb::Label::new(l.name, l.value))
                    .collect(),
                samples: s
                    .samples
                    .into_iter()
                    .map(|(timestamp, value)| Sample { value, timestamp })
                    .collect(),
                ..Default::default()
            })
            .collect())
    }
}
