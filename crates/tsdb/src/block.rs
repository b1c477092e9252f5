//! Writing and reading whole blocks in Prometheus' directory layout:
//!
//! ```text
//! <ULID>/meta.json      block range, stats, lineage (see [`BlockMeta`])
//! <ULID>/index          series, labels, postings (see [`crate::index`])
//! <ULID>/chunks/000001  XOR chunks (see [`crate::segments`])
//! <ULID>/tombstones     deleted ranges (always empty in blocks we write)
//! ```
//!
//! [`write_block`] builds everything in `<ULID>.tmp-for-creation`, fsyncs every file and
//! directory, then renames the directory into place, so a crash leaves either a complete
//! block or a `.tmp-for-creation` leftover that Prometheus (and [`remove_tmp_dirs`]) deletes.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ulid::Ulid;

use crate::chunk::{ChunkError, XorChunk, decode_xor};
use crate::index::{ChunkMeta, IndexError, IndexReader, IndexSeries, write_index};
use crate::labels::{Label, Matcher};
use crate::meta::{BlockCompaction, BlockMeta, BlockStats, ThanosMeta};
use crate::segments::{
    DEFAULT_SEGMENT_SIZE, ENCODING_XOR, SegmentError, SegmentReader, SegmentWriter,
};
use crate::tombstones::{self, Tombstones};

/// Suffix of the directory a block is built in before it is renamed into place.
pub const TMP_SUFFIX: &str = ".tmp-for-creation";

/// One series to write: sorted labels and its chunks in time order.
#[derive(Debug, Clone)]
pub struct BlockSeries {
    /// Labels sorted by name, names unique, values non-empty.
    pub labels: Vec<Label>,
    /// Chunks in time order, not overlapping. Chunks that reach outside the block's range are
    /// trimmed to it (re-encoded); empty chunks are skipped.
    pub chunks: Vec<XorChunk>,
}

/// Choices for [`write_block_with`] beyond the range and the series.
#[derive(Debug, Clone)]
pub struct BlockOptions {
    /// The block's ULID; a new one (current time + randomness) when `None`.
    pub ulid: Option<Ulid>,
    /// A `thanos` section for `meta.json` (external labels such as `__org_id__`, source).
    pub thanos: Option<ThanosMeta>,
    /// Largest chunk segment file; Prometheus' 512 MiB by default.
    pub segment_size: u64,
}

impl Default for BlockOptions {
    fn default() -> Self {
        Self {
            ulid: None,
            thanos: None,
            segment_size: DEFAULT_SEGMENT_SIZE,
        }
    }
}

/// Why a block could not be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// A file or directory operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `min_time >= max_time`.
    #[error("empty block range [{min_time}, {max_time})")]
    BadRange {
        /// Range start (inclusive).
        min_time: i64,
        /// Range end (exclusive).
        max_time: i64,
    },
    /// No series has a sample in the range: Prometheus writes no block then, neither do we.
    #[error("no samples in [{min_time}, {max_time}): no block written")]
    Empty {
        /// Range start (inclusive).
        min_time: i64,
        /// Range end (exclusive).
        max_time: i64,
    },
    /// A series the caller passed breaks the format's rules.
    #[error("invalid series {labels}: {reason}")]
    InvalidSeries {
        /// The series' labels, for the log.
        labels: String,
        /// Which rule.
        reason: &'static str,
    },
    /// `meta.json` is missing fields or not JSON.
    #[error("meta.json: {0}")]
    Meta(String),
    /// The index file is corrupt.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// A chunk segment file is corrupt.
    #[error(transparent)]
    Segment(#[from] SegmentError),
    /// A chunk's data is corrupt.
    #[error("chunk {chunk_ref:#x}: {source}")]
    Chunk {
        /// Where the chunk is.
        chunk_ref: u64,
        /// What the decoder said.
        source: ChunkError,
    },
    /// A chunk in an encoding this crate does not decode (native histograms).
    #[error("chunk {chunk_ref:#x}: unsupported encoding {encoding}")]
    UnsupportedEncoding {
        /// Where the chunk is.
        chunk_ref: u64,
        /// Its encoding byte.
        encoding: u8,
    },
    /// The tombstones file is corrupt.
    #[error("tombstones: {0}")]
    Tombstones(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BlockError + '_ {
    move |source| BlockError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn labels_text(labels: &[Label]) -> String {
    let inner: Vec<String> = labels
        .iter()
        .map(|l| format!("{}={:?}", l.name, l.value))
        .collect();
    format!("{{{}}}", inner.join(", "))
}

/// Writes a block of the samples in `[min_time, max_time)` under `parent` and returns its
/// ULID. Series may come in any order (they are sorted here); see [`BlockSeries`] for the
/// rules each one must follow.
pub fn write_block(
    parent: &Path,
    min_time: i64,
    max_time: i64,
    series: Vec<BlockSeries>,
) -> Result<Ulid, BlockError> {
    write_block_with(parent, &BlockOptions::default(), min_time, max_time, series)
}

/// [`write_block`] with a chosen ULID, a `thanos` meta section or a segment size.
pub fn write_block_with(
    parent: &Path,
    opts: &BlockOptions,
    min_time: i64,
    max_time: i64,
    mut series: Vec<BlockSeries>,
) -> Result<Ulid, BlockError> {
    if min_time >= max_time {
        return Err(BlockError::BadRange { min_time, max_time });
    }
    for s in &mut series {
        check_labels(&s.labels)?;
        trim_chunks(s, min_time, max_time)?;
    }
    series.retain(|s| !s.chunks.is_empty());
    if series.is_empty() {
        return Err(BlockError::Empty { min_time, max_time });
    }
    series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    if let Some(w) = series.windows(2).find(|w| w[0].labels == w[1].labels) {
        return Err(BlockError::InvalidSeries {
            labels: labels_text(&w[0].labels),
            reason: "passed twice",
        });
    }

    // Not `unwrap_or_default`: `Ulid::default()` is the nil ULID, not a fresh one.
    let ulid = match opts.ulid {
        Some(u) => u,
        None => Ulid::new(),
    };
    let name = ulid.to_string();
    let tmp = parent.join(format!("{name}{TMP_SUFFIX}"));
    let dest = parent.join(&name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    let result = write_tmp(&tmp, &name, opts, min_time, max_time, series).and_then(|()| {
        std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(parent)
    });
    if result.is_err() {
        // Best effort: a leftover is also removed by `remove_tmp_dirs` on the next start.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result.map(|()| ulid)
}

fn check_labels(labels: &[Label]) -> Result<(), BlockError> {
    let bad = |reason| BlockError::InvalidSeries {
        labels: labels_text(labels),
        reason,
    };
    if labels.is_empty() {
        return Err(bad("no labels"));
    }
    if labels
        .iter()
        .any(|l| l.name.is_empty() || l.value.is_empty())
    {
        return Err(bad("empty label name or value"));
    }
    if labels.windows(2).any(|w| w[0].name >= w[1].name) {
        return Err(bad("labels not sorted by name or a name repeats"));
    }
    Ok(())
}

/// Drops empty chunks, re-encodes chunks that reach outside the range, checks time order.
fn trim_chunks(s: &mut BlockSeries, min_time: i64, max_time: i64) -> Result<(), BlockError> {
    let mut out = Vec::with_capacity(s.chunks.len());
    for c in s.chunks.drain(..) {
        let (Some(lo), Some(hi)) = (c.min_time(), c.max_time()) else {
            continue;
        };
        if hi < min_time || lo >= max_time {
            continue;
        }
        if lo >= min_time && hi < max_time {
            out.push(c);
            continue;
        }
        let mut trimmed = XorChunk::new();
        for (t, v) in c.iter().filter(|(t, _)| (min_time..max_time).contains(t)) {
            trimmed.append(t, v);
        }
        if trimmed.num_samples() > 0 {
            out.push(trimmed);
        }
    }
    let overlap = out.windows(2).any(|w| {
        let (Some(prev_max), Some(next_min)) = (w[0].max_time(), w[1].min_time()) else {
            return false;
        };
        next_min <= prev_max
    });
    if overlap {
        return Err(BlockError::InvalidSeries {
            labels: labels_text(&s.labels),
            reason: "chunks overlap or are not in time order",
        });
    }
    s.chunks = out;
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn write_tmp(
    tmp: &Path,
    name: &str,
    opts: &BlockOptions,
    min_time: i64,
    max_time: i64,
    series: Vec<BlockSeries>,
) -> Result<(), BlockError> {
    std::fs::create_dir_all(tmp).map_err(io_err(tmp))?;
    let chunks_dir = tmp.join("chunks");
    let mut segments =
        SegmentWriter::new(&chunks_dir, opts.segment_size).map_err(io_err(&chunks_dir))?;
    let mut stats = BlockStats::default();
    let mut index_series = Vec::with_capacity(series.len());
    // Series are consumed: each one's chunks are freed once written, its labels move into
    // the index entry.
    for s in series {
        let mut metas = Vec::with_capacity(s.chunks.len());
        for c in &s.chunks {
            let chunk_ref = segments
                .write_chunk(ENCODING_XOR, c.bytes())
                .map_err(io_err(&chunks_dir))?;
            metas.push(ChunkMeta {
                min_time: c.min_time().unwrap_or(min_time),
                max_time: c.max_time().unwrap_or(min_time),
                chunk_ref,
            });
            stats.num_samples += u64::from(c.num_samples());
            stats.num_chunks += 1;
        }
        stats.num_series += 1;
        index_series.push(IndexSeries {
            labels: s.labels,
            chunks: metas,
        });
    }
    segments.finish().map_err(io_err(&chunks_dir))?;
    sync_dir(&chunks_dir)?;

    let index_path = tmp.join("index");
    write_index(&index_path, &index_series).map_err(io_err(&index_path))?;

    let tomb_path = tmp.join("tombstones");
    write_synced(&tomb_path, &tombstones::empty_file())?;

    let meta = BlockMeta {
        ulid: name.to_string(),
        min_time,
        max_time,
        stats,
        compaction: BlockCompaction {
            level: 1,
            sources: vec![name.to_string()],
            parents: Vec::new(),
        },
        version: 1,
        thanos: opts.thanos.clone(),
    };
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| BlockError::Meta(e.to_string()))?;
    write_synced(&tmp.join("meta.json"), &json)?;
    sync_dir(tmp)
}

fn write_synced(path: &Path, data: &[u8]) -> Result<(), BlockError> {
    let mut f = File::create(path).map_err(io_err(path))?;
    f.write_all(data).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))
}

/// Removes `*.tmp-for-creation` directories a crash left under `parent`; returns how many.
pub fn remove_tmp_dirs(parent: &Path) -> Result<usize, BlockError> {
    let mut removed = 0;
    for entry in std::fs::read_dir(parent).map_err(io_err(parent))? {
        let entry = entry.map_err(io_err(parent))?;
        if entry.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
            std::fs::remove_dir_all(entry.path()).map_err(io_err(&entry.path()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Reads and checks a block's `meta.json`.
pub fn read_meta(dir: &Path) -> Result<BlockMeta, BlockError> {
    let meta_path = dir.join("meta.json");
    let raw = std::fs::read(&meta_path).map_err(io_err(&meta_path))?;
    let meta: BlockMeta =
        serde_json::from_slice(&raw).map_err(|e| BlockError::Meta(e.to_string()))?;
    if meta.version != 1 {
        return Err(BlockError::Meta(format!(
            "unknown version {}",
            meta.version
        )));
    }
    Ok(meta)
}

/// The complete blocks under `parent` (directories named by a ULID, holding a `meta.json`),
/// oldest range first: what retention and shipping walk over. Build leftovers
/// (`*.tmp-for-creation`) and other entries are skipped.
pub fn list_blocks(parent: &Path) -> Result<Vec<(PathBuf, BlockMeta)>, BlockError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(parent).map_err(io_err(parent))? {
        let entry = entry.map_err(io_err(parent))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if Ulid::from_string(name).is_err() || !entry.path().join("meta.json").is_file() {
            continue;
        }
        let meta = read_meta(&entry.path())?;
        out.push((entry.path(), meta));
    }
    out.sort_by(|a, b| (a.1.min_time, &a.1.ulid).cmp(&(b.1.min_time, &b.1.ulid)));
    Ok(out)
}

/// The samples of one series in a queried range.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSamples {
    /// The series' labels.
    pub labels: Vec<Label>,
    /// `(timestamp ms, value)` in time order.
    pub samples: Vec<(i64, f64)>,
}

/// A block opened for reading: meta and index in memory, chunks read on demand.
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    segments: SegmentReader,
    tombstones: Tombstones,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("dir", &self.dir)
            .field("meta", &self.meta)
            .finish()
    }
}

impl Block {
    /// Opens a block directory, checking `meta.json`, the index and segment headers.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, BlockError> {
        let dir = dir.as_ref().to_path_buf();
        let meta = read_meta(&dir)?;
        let index_path = dir.join("index");
        let index = IndexReader::new(std::fs::read(&index_path).map_err(io_err(&index_path))?)?;
        let segments = SegmentReader::open(&dir.join("chunks"))?;
        let tomb_path = dir.join("tombstones");
        let tombstones = match std::fs::read(&tomb_path) {
            Ok(data) => tombstones::parse(&data).map_err(BlockError::Tombstones)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Tombstones::new(),
            Err(e) => return Err(io_err(&tomb_path)(e)),
        };
        Ok(Self {
            dir,
            meta,
            index,
            segments,
            tombstones,
        })
    }

    /// The block's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `meta.json`.
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }

    /// All label names in the block, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.index.label_names()
    }

    /// All values of one label name, sorted.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.index.label_values(name)
    }

    /// The sorted refs of the series that satisfy every matcher (Prometheus' semantics: a
    /// matcher that matches `""` also selects series without the label).
    pub fn select(&self, matchers: &[Matcher]) -> Result<Vec<u32>, BlockError> {
        let mut positive: Option<Vec<u32>> = None;
        let mut negative: Vec<u32> = Vec::new();
        for m in matchers {
            let takes_empty = m.matches("");
            let mut set = Vec::new();
            let offsets: Vec<u64> = self
                .index
                .value_offsets(m.name(), |v| m.matches(v) != takes_empty)
                .collect();
            for off in offsets {
                set = union(&set, &self.index.postings_at(off)?);
            }
            if takes_empty {
                negative = union(&negative, &set);
            } else {
                positive = Some(match positive {
                    None => set,
                    Some(p) => intersect(&p, &set),
                });
            }
        }
        let base = match positive {
            Some(p) => p,
            None => match self.index.all_postings_offset() {
                Some(off) => self.index.postings_at(off)?,
                None => Vec::new(),
            },
        };
        Ok(subtract(&base, &negative))
    }

    /// The labels and chunk metas of one series.
    pub fn series(&self, series_ref: u32) -> Result<IndexSeries, BlockError> {
        Ok(self.index.series(series_ref)?)
    }

    /// The XOR chunk a chunk meta points to, checksum verified and fully decodable.
    pub fn chunk(&self, meta: &ChunkMeta) -> Result<XorChunk, BlockError> {
        let (encoding, data) = self.segments.read(meta.chunk_ref)?;
        if encoding != ENCODING_XOR {
            return Err(BlockError::UnsupportedEncoding {
                chunk_ref: meta.chunk_ref,
                encoding,
            });
        }
        XorChunk::from_bytes(&data).map_err(|source| BlockError::Chunk {
            chunk_ref: meta.chunk_ref,
            source,
        })
    }

    /// Samples of the matching series with `min_time <= t <= max_time` (both inclusive, as
    /// Prometheus queriers and remote read use them); series without such samples are left
    /// out. Deleted ranges from the tombstones file are hidden.
    pub fn query(
        &self,
        matchers: &[Matcher],
        min_time: i64,
        max_time: i64,
    ) -> Result<Vec<SeriesSamples>, BlockError> {
        let mut out = Vec::new();
        for sref in self.select(matchers)? {
            let s = self.series(sref)?;
            let deleted = self.tombstones.get(&sref).map(Vec::as_slice).unwrap_or(&[]);
            let mut samples = Vec::new();
            for meta in s
                .chunks
                .iter()
                .filter(|c| c.max_time >= min_time && c.min_time <= max_time)
            {
                let (encoding, data) = self.segments.read(meta.chunk_ref)?;
                if encoding != ENCODING_XOR {
                    return Err(BlockError::UnsupportedEncoding {
                        chunk_ref: meta.chunk_ref,
                        encoding,
                    });
                }
                let mut it = decode_xor(&data).map_err(|source| BlockError::Chunk {
                    chunk_ref: meta.chunk_ref,
                    source,
                })?;
                samples.extend(it.by_ref().filter(|(t, _)| {
                    *t >= min_time
                        && *t <= max_time
                        && !deleted.iter().any(|(lo, hi)| lo <= t && t <= hi)
                }));
                if let Some(e) = it.err() {
                    return Err(BlockError::Chunk {
                        chunk_ref: meta.chunk_ref,
                        source: e.clone(),
                    });
                }
            }
            if !samples.is_empty() {
                out.push(SeriesSamples {
                    labels: s.labels,
                    samples,
                });
            }
        }
        Ok(out)
    }
}

fn union(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => {
                out.push(a[i]);
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                out.push(b[j]);
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

fn subtract(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut out = Vec::with_capacity(a.len());
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        if j >= b.len() || b[j] != x {
            out.push(x);
        }
    }
    out
}
