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
        /// Where the chunk is (0 for a chunk handed to [`BlockWriter::add_series`]).
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
    for s in &series {
        check_labels(&s.labels)?;
    }
    series.retain(|s| {
        s.chunks.iter().any(|c| {
            matches!((c.min_time(), c.max_time()), (Some(lo), Some(hi)) if hi >= min_time && lo < max_time)
        })
    });
    if series.is_empty() {
        return Err(BlockError::Empty { min_time, max_time });
    }
    series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
    let mut writer = BlockWriter::new(parent, opts, min_time, max_time)?;
    // Series are consumed one by one, so each one's chunks are freed once written.
    for s in series {
        let chunks = s.chunks.iter().filter_map(|c| {
            Some(EncodedChunk {
                min_time: c.min_time()?,
                max_time: c.max_time()?,
                data: c.bytes(),
            })
        });
        writer.add_series(s.labels, chunks)?;
    }
    writer.finish()
}

/// An XOR chunk already encoded, with the times of its first and last samples (what a head
/// keeps for its closed chunks), as [`BlockWriter::add_series`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct EncodedChunk<'a> {
    /// Time of the first sample.
    pub min_time: i64,
    /// Time of the last sample.
    pub max_time: i64,
    /// The chunk bytes as [`XorChunk::bytes`] gives them.
    pub data: &'a [u8],
}

/// Writes a block series by series, for callers that hold many series and do not want to
/// gather them all first ([`write_block`] is the one-call form).
///
/// Series must come in strictly increasing label order (Prometheus' order: compare label by
/// label, name then value; a prefix sorts first). The block is built in
/// `<ULID>.tmp-for-creation` and appears under its final name only when
/// [`BlockWriter::finish`] succeeds; dropping an unfinished writer removes the directory.
#[derive(Debug)]
pub struct BlockWriter {
    parent: PathBuf,
    tmp: PathBuf,
    ulid: Ulid,
    min_time: i64,
    max_time: i64,
    thanos: Option<ThanosMeta>,
    segments: Option<SegmentWriter>,
    index_series: Vec<IndexSeries>,
    stats: BlockStats,
}

impl BlockWriter {
    /// Starts a block for `[min_time, max_time)` under `parent`.
    pub fn new(
        parent: &Path,
        opts: &BlockOptions,
        min_time: i64,
        max_time: i64,
    ) -> Result<Self, BlockError> {
        if min_time >= max_time {
            return Err(BlockError::BadRange { min_time, max_time });
        }
        // Not `unwrap_or_default`: `Ulid::default()` is the nil ULID, not a fresh one.
        let ulid = match opts.ulid {
            Some(u) => u,
            None => Ulid::generate(),
        };
        let tmp = parent.join(format!("{ulid}{TMP_SUFFIX}"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let chunks_dir = tmp.join("chunks");
        let segments = SegmentWriter::new(&chunks_dir, opts.segment_size);
        let mut writer = Self {
            parent: parent.to_path_buf(),
            tmp,
            ulid,
            min_time,
            max_time,
            thanos: opts.thanos.clone(),
            segments: None,
            index_series: Vec::new(),
            stats: BlockStats::default(),
        };
        // Assigned after `writer` exists, so its `Drop` cleans up if this fails.
        writer.segments = Some(segments.map_err(io_err(&chunks_dir))?);
        Ok(writer)
    }

    /// The ULID the block will have.
    pub fn ulid(&self) -> Ulid {
        self.ulid
    }

    /// Adds one series with its chunks in time order. Chunks reaching outside the block's
    /// range are trimmed to it (decoded and re-encoded); a series with no sample in the range
    /// is skipped. Labels that break the format's rules, a series out of order, or chunks that
    /// overlap are errors that leave the writer as it was.
    pub fn add_series<'a>(
        &mut self,
        labels: Vec<Label>,
        chunks: impl IntoIterator<Item = EncodedChunk<'a>>,
    ) -> Result<(), BlockError> {
        check_labels(&labels)?;
        if let Some(prev) = self.index_series.last()
            && prev.labels >= labels
        {
            return Err(BlockError::InvalidSeries {
                labels: labels_text(&labels),
                reason: "not after the previous series (sorted, unique order required)",
            });
        }
        // Check and trim everything before writing anything.
        let mut kept: Vec<(EncodedChunk<'a>, Option<XorChunk>)> = Vec::new();
        for c in chunks {
            if c.data.len() < 2 || c.min_time > c.max_time {
                return Err(BlockError::InvalidSeries {
                    labels: labels_text(&labels),
                    reason: "chunk without samples or with min_time > max_time",
                });
            }
            if c.max_time < self.min_time || c.min_time >= self.max_time {
                continue;
            }
            if c.min_time >= self.min_time && c.max_time < self.max_time {
                kept.push((c, None));
                continue;
            }
            let mut trimmed = XorChunk::new();
            let mut it = decode_xor(c.data).map_err(|source| BlockError::Chunk {
                chunk_ref: 0,
                source,
            })?;
            for (t, v) in it.by_ref() {
                if (self.min_time..self.max_time).contains(&t) {
                    trimmed.append(t, v);
                }
            }
            if let Some(source) = it.err() {
                return Err(BlockError::Chunk {
                    chunk_ref: 0,
                    source: source.clone(),
                });
            }
            if let (Some(min_time), Some(max_time)) = (trimmed.min_time(), trimmed.max_time()) {
                let trimmed_meta = EncodedChunk {
                    min_time,
                    max_time,
                    data: &[],
                };
                kept.push((trimmed_meta, Some(trimmed)));
            }
        }
        if kept.windows(2).any(|w| w[1].0.min_time <= w[0].0.max_time) {
            return Err(BlockError::InvalidSeries {
                labels: labels_text(&labels),
                reason: "chunks overlap or are not in time order",
            });
        }
        if kept.is_empty() {
            return Ok(());
        }
        let chunks_dir = self.tmp.join("chunks");
        let Some(segments) = self.segments.as_mut() else {
            return Err(io_err(&chunks_dir)(std::io::Error::other(
                "writer already failed",
            )));
        };
        let mut metas = Vec::with_capacity(kept.len());
        for (meta, owned) in &kept {
            let data = owned.as_ref().map_or(meta.data, XorChunk::bytes);
            let chunk_ref = segments
                .write_chunk(ENCODING_XOR, data)
                .map_err(io_err(&chunks_dir))?;
            metas.push(ChunkMeta {
                min_time: meta.min_time,
                max_time: meta.max_time,
                chunk_ref,
            });
            self.stats.num_samples += u64::from(u16::from_be_bytes([data[0], data[1]]));
            self.stats.num_chunks += 1;
        }
        self.stats.num_series += 1;
        self.index_series.push(IndexSeries {
            labels,
            chunks: metas,
        });
        Ok(())
    }

    /// Writes the index, tombstones and `meta.json`, fsyncs everything and renames the
    /// directory into place. A block without series is not written ([`BlockError::Empty`]).
    pub fn finish(mut self) -> Result<Ulid, BlockError> {
        if self.index_series.is_empty() {
            return Err(BlockError::Empty {
                min_time: self.min_time,
                max_time: self.max_time,
            });
        }
        let chunks_dir = self.tmp.join("chunks");
        if let Some(segments) = self.segments.take() {
            segments.finish().map_err(io_err(&chunks_dir))?;
        }
        sync_dir(&chunks_dir)?;

        let index_path = self.tmp.join("index");
        write_index(&index_path, &self.index_series).map_err(io_err(&index_path))?;
        write_synced(&self.tmp.join("tombstones"), &tombstones::empty_file())?;
        let name = self.ulid.to_string();
        let meta = BlockMeta {
            ulid: name.clone(),
            min_time: self.min_time,
            max_time: self.max_time,
            stats: self.stats,
            compaction: BlockCompaction {
                level: 1,
                sources: vec![name.clone()],
                parents: Vec::new(),
            },
            version: 1,
            thanos: self.thanos.take(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| BlockError::Meta(e.to_string()))?;
        write_synced(&self.tmp.join("meta.json"), &json)?;
        sync_dir(&self.tmp)?;
        let dest = self.parent.join(&name);
        std::fs::rename(&self.tmp, &dest).map_err(io_err(&dest))?;
        sync_dir(&self.parent)?;
        Ok(self.ulid)
    }
}

impl Drop for BlockWriter {
    fn drop(&mut self) {
        // After a successful `finish` the directory has been renamed and this finds nothing.
        // Otherwise, best effort: `remove_tmp_dirs` also removes leftovers on the next start.
        if self.tmp.exists() {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
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

fn sync_dir(dir: &Path) -> Result<(), BlockError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
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
