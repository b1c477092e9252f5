//! The in-memory, per-tenant series head of an ingester, in the Prometheus TSDB model.
//!
//! # Series and chunks
//! A series gets a reference (`u64`, unique within its tenant) when it is created; the WAL
//! names it by that reference after logging its labels once. Its labels are packed into one
//! allocation ([`PackedLabels`]) and its samples live in Prometheus' XOR chunks
//! (`ringkit-tsdb`): one open head chunk in memory, and full chunks written to the tenant's
//! `chunks_head/` files ([`crate::head_chunks`], memory-mapped) of which the series keeps a
//! 32-byte reference (a store without a directory keeps them in memory). A chunk is cut, as
//! Prometheus cuts them, when it holds [`CHUNK_SAMPLES`] samples or when a sample reaches the
//! end of the block range the chunk started in, so a chunk never straddles two blocks.
//!
//! # Append answers
//! A sample appended to a series gets the answer Prometheus 2.42's TSDB head gives for a
//! per-series append (checked in this order):
//!
//! | case | answer |
//! |---|---|
//! | `ts < max ts of the tenant's head − 1 h`, or below the last block cut | [`AppendError::OutOfBounds`], "out of bounds" |
//! | `ts > last ts of the series` | accepted |
//! | `ts == last ts`, same value bits (NaN patterns included) | accepted silently, not stored twice |
//! | `ts == last ts`, other value | [`AppendError::DuplicateTimestamp`], "duplicate sample for timestamp" |
//! | `ts < last ts` | [`AppendError::OutOfOrder`], "out of order sample" |
//!
//! The 1 h is half of the 2 h block range: the head's appendable window. An empty head
//! accepts any timestamp. Each tenant is its own head, as in Mimir's ingesters.
//!
//! Unlike Prometheus' receiver, which rolls back a whole request on the first such error, a
//! refused sample does not undo the others (Mimir's ingester behaviour): the caller gets the
//! accepted samples to log and the first error to answer 400 with.
//!
//! # Memory per series
//! Each shard keeps its series in a slab of 64-series pages (no doubling) with the labels
//! stored once, beside the series, and a hash index of 4-byte slab positions. A series holds
//! its reference, newest timestamp, the open chunk's appender (which also holds the newest
//! value) and an exact-size list of full-chunk references: about 120 bytes plus its labels
//! and the open chunk's bytes (whose buffer grows by a quarter, not by doubling).
//!
//! # Concurrency
//! A std `RwLock` over the tenant map (read-locked except to add a tenant) and, per tenant, a fixed
//! number of shards, each a `RwLock` over its part of the series map, chosen by a hash of the
//! labels. Appends to different shards run in parallel; queries read-lock one shard at a time.
//! All code is synchronous, so no lock is ever held across an `.await`; std locks are the right
//! tool. A poisoned lock (a panic elsewhere while holding it) is entered anyway: the maps are
//! never left half-updated by the code below.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use regex::Regex;
use ringkit_tsdb::XorChunk;

use crate::head_chunks::{ChunkBytes, HeadChunks, RecoveredChunk};
use crate::labels::{LabelPair, PackedLabels, cmp_label_sets, pack_into};
use crate::prompb::{Label, LabelMatcher, MatcherType, Sample, TimeSeries};

/// Samples per chunk before a new one is cut (Prometheus' target).
pub const CHUNK_SAMPLES: u16 = 120;

/// Store settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Width of a TSDB block in ms (`-blocks-storage.tsdb.block-ranges-period`, default 2 h).
    /// Samples older than the tenant's newest sample minus half of this are "out of bounds";
    /// chunks are cut at multiples of it.
    pub block_range_ms: i64,
    /// Series-map shards per tenant (lock striping). 16 keeps contention low on small machines;
    /// more helps only with many cores pushing the same tenant.
    pub shards: usize,
    /// Largest head chunk file (`chunks_head/NNNNNN`), Prometheus' 128 MiB by default; used
    /// only by a store with a directory ([`Store::with_chunk_dir`]).
    pub head_chunk_file_size: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            // -blocks-storage.tsdb.block-ranges-period default (2h).
            block_range_ms: 2 * 3600 * 1000,
            shards: 16,
            head_chunk_file_size: crate::head_chunks::DEFAULT_FILE_SIZE,
        }
    }
}

/// Why one sample was refused. The series and the other samples are unaffected; the caller
/// answers 400 (bad input). Each message starts with Prometheus' exact error string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// Older than the head's appendable window.
    #[error(
        "out of bounds: timestamp {timestamp} is older than the head's appendable window (min {min_valid})"
    )]
    OutOfBounds {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// Oldest timestamp the head accepted at that moment.
        min_valid: i64,
    },
    /// Older than the series' newest sample.
    #[error(
        "out of order sample: timestamp {timestamp} is older than the series' last sample at {last}"
    )]
    OutOfOrder {
        /// The sample's timestamp, ms.
        timestamp: i64,
        /// The series' newest timestamp.
        last: i64,
    },
    /// Same timestamp as the series' newest sample but another value.
    #[error("duplicate sample for timestamp {timestamp} with a different value")]
    DuplicateTimestamp {
        /// The sample's timestamp, ms.
        timestamp: i64,
    },
}

impl AppendError {
    /// The HTTP status to answer with: 400, as Prometheus does.
    pub fn http_status(&self) -> u16 {
        400
    }
}

/// What [`Store::append`] did with one series' samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AppendOutcome {
    /// Samples the caller must write to the WAL before acknowledging: the newly stored ones *and*
    /// exact duplicates. Logging duplicates costs little (they are rare: retries) and closes a
    /// hole: a retry after a failed WAL write finds its samples already in memory, and must still
    /// make them durable before it is acknowledged.
    pub to_log: Vec<Sample>,
    /// The series' reference (0 when no series exists: every sample was refused).
    pub series_ref: u64,
    /// The series' labels when its series record is not in the WAL yet: log it before the
    /// samples (the store counts it as logged from now on; see [`Store::mark_unlogged`]).
    pub new_series: Option<PackedLabels>,
    /// Newly stored samples.
    pub appended: usize,
    /// Exact duplicates, accepted without storing them again.
    pub duplicates: usize,
    /// Refused samples.
    pub rejected: usize,
    /// The first refusal.
    pub first_error: Option<AppendError>,
}

/// A full chunk: its bytes (Prometheus' XOR encoding) and time range.
#[derive(Clone, Debug)]
pub struct ClosedChunk {
    /// First sample's timestamp.
    pub min_t: i64,
    /// Last sample's timestamp.
    pub max_t: i64,
    /// The encoded chunk.
    pub bytes: Box<[u8]>,
}

impl ClosedChunk {
    fn from_xor(c: &XorChunk) -> Option<ClosedChunk> {
        Some(ClosedChunk {
            min_t: c.min_time()?,
            max_t: c.max_time()?,
            bytes: c.bytes().into(),
        })
    }
}

/// Where a full chunk's bytes are: in a head chunk file, or in memory (a store without a
/// directory, or a chunk whose file write failed).
enum ChunkLoc {
    File(u64),
    /// Boxed twice so the enum stays 16 bytes (a thin pointer) for the common file case.
    #[allow(clippy::box_collection, clippy::redundant_allocation)]
    Mem(Box<Box<[u8]>>),
}

/// A full chunk of a series: its time range and where its bytes are.
struct StoredChunk {
    min_t: i64,
    max_t: i64,
    loc: ChunkLoc,
}

/// The bytes of a chunk (Prometheus' XOR encoding), borrowed from memory or from a mapped
/// head chunk file.
pub enum ChunkData<'a> {
    /// In memory.
    Mem(&'a [u8]),
    /// In a mapped file.
    File(ChunkBytes),
}

impl Deref for ChunkData<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            ChunkData::Mem(b) => b,
            ChunkData::File(b) => b,
        }
    }
}

impl StoredChunk {
    /// The bytes; `None` when a file reference no longer reads (counted by the caller).
    fn bytes<'a>(&'a self, files: Option<&HeadChunks>) -> Option<ChunkData<'a>> {
        match &self.loc {
            ChunkLoc::Mem(b) => Some(ChunkData::Mem(b)),
            ChunkLoc::File(r) => files?.read(*r).map(ChunkData::File),
        }
    }
}

/// The end (exclusive) of the block range `t` falls in.
fn range_end(t: i64, range: i64) -> i64 {
    t.div_euclid(range)
        .checked_add(1)
        .and_then(|k| k.checked_mul(range))
        .unwrap_or(i64::MAX)
}

/// One series of the head. Kept small: the open chunk's appender holds the newest sample
/// (no copy of it here), full chunks are 32-byte references (to a file, normally), and the
/// list of them is an exact-size boxed slice.
struct MemSeries {
    series_ref: u64,
    /// Newest timestamp, `i64::MIN` while empty.
    last_t: i64,
    closed: Box<[StoredChunk]>,
    head: Option<XorChunk>,
    /// Whether the series record is (being) written to the WAL.
    logged: bool,
}

impl MemSeries {
    fn new(series_ref: u64) -> Self {
        MemSeries {
            series_ref,
            last_t: i64::MIN,
            closed: Box::new([]),
            head: None,
            logged: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.head.as_ref().is_none_or(|h| h.num_samples() == 0)
    }

    /// Bits of the newest value (read back from the last full chunk when no chunk is open,
    /// which happens only right after start-up); `None` when the series is empty or that
    /// chunk does not read.
    fn last_value_bits(&self, files: Option<&HeadChunks>) -> Option<u64> {
        if let Some((_, v)) = self.head.as_ref().and_then(XorChunk::last) {
            return Some(v.to_bits());
        }
        let bytes = self.closed.last()?.bytes(files)?;
        let (_, v) = ringkit_tsdb::decode_xor(&bytes).ok()?.last()?;
        Some(v.to_bits())
    }

    fn push_closed(&mut self, c: StoredChunk) {
        let mut v = std::mem::take(&mut self.closed).into_vec();
        v.reserve_exact(1);
        v.push(c);
        self.closed = v.into_boxed_slice();
    }

    /// Moves the open chunk to the full ones: into the tenant's chunk file when it has one
    /// (only a reference stays in memory), else (or when the write fails) in memory.
    fn close_head(&mut self, files: Option<&HeadChunks>) {
        let Some(h) = self.head.take() else {
            return;
        };
        let (Some(min_t), Some(max_t)) = (h.min_time(), h.max_time()) else {
            return;
        };
        let written = files.and_then(|f| f.write(self.series_ref, min_t, max_t, h.bytes()).ok());
        let loc = match written {
            Some(r) => ChunkLoc::File(r),
            None => ChunkLoc::Mem(Box::new(h.into_bytes().into_boxed_slice())),
        };
        self.push_closed(StoredChunk { min_t, max_t, loc });
    }

    /// Appends a sample newer than `last_t`, cutting a chunk first when due.
    fn push(&mut self, t: i64, v: f64, range: i64, files: Option<&HeadChunks>) {
        let cut = match &self.head {
            None => true,
            Some(h) => {
                h.num_samples() >= CHUNK_SAMPLES
                    || h.min_time().is_some_and(|m| t >= range_end(m, range))
            }
        };
        if cut {
            self.close_head(files);
            self.head = Some(XorChunk::new());
        }
        if let Some(h) = &mut self.head {
            h.append(t, v);
        }
        self.last_t = t;
    }

    /// Takes over a chunk read back from a checkpoint (all of it newer than `last_t`).
    fn adopt(&mut self, chunk: XorChunk, files: Option<&HeadChunks>) {
        let Some(max_t) = chunk.max_time() else {
            return;
        };
        self.close_head(files);
        self.head = Some(chunk);
        self.last_t = max_t;
    }

    /// Attaches chunks found in the tenant's chunk files at start-up (oldest first): each
    /// must start after what the series holds; the first that does not ends the run, so
    /// the WAL replay that follows fills in everything after the last one taken, without a
    /// gap. Chunks ending before `min_valid` (already in a block) are skipped.
    fn attach(&mut self, found: &[RecoveredChunk], min_valid: i64) -> usize {
        let mut n = 0;
        for c in found {
            if c.max_t < min_valid {
                continue;
            }
            if c.min_t < min_valid || (self.last_t != i64::MIN && c.min_t <= self.last_t) {
                break;
            }
            if self.head.is_some() {
                break;
            }
            self.push_closed(StoredChunk {
                min_t: c.min_t,
                max_t: c.max_t,
                loc: ChunkLoc::File(c.chunk_ref),
            });
            self.last_t = c.max_t;
            n += 1;
        }
        n
    }

    /// Every chunk, closed ones first, as `(min_t, max_t, bytes)`; the bytes are `None` for
    /// a file chunk that does not read.
    fn chunks<'a>(
        &'a self,
        files: Option<&'a HeadChunks>,
    ) -> impl Iterator<Item = (i64, i64, Option<ChunkData<'a>>)> {
        self.closed
            .iter()
            .map(move |c| (c.min_t, c.max_t, c.bytes(files)))
            .chain(self.head.iter().filter_map(|h| {
                Some((
                    h.min_time()?,
                    h.max_time()?,
                    Some(ChunkData::Mem(h.bytes())),
                ))
            }))
    }

    fn samples_in(&self, start: i64, end: i64, files: Option<&HeadChunks>, out: &mut Vec<Sample>) {
        for (min_t, max_t, bytes) in self.chunks(files) {
            if max_t < start || min_t > end {
                continue;
            }
            if let Some(bytes) = bytes
                && let Ok(it) = ringkit_tsdb::decode_xor(&bytes)
            {
                out.extend(
                    it.filter(|&(t, _)| t >= start && t <= end)
                        .map(|(timestamp, value)| Sample { value, timestamp }),
                );
            }
        }
    }

    fn min_t(&self) -> Option<i64> {
        self.closed
            .first()
            .map(|c| c.min_t)
            .or_else(|| self.head.as_ref().and_then(XorChunk::min_time))
    }

    /// Heap and inline bytes this series takes (chunk data in memory, labels excluded;
    /// chunks in files count their reference only).
    fn mem_size(&self) -> usize {
        std::mem::size_of::<MemSeries>()
            + self.closed.len() * std::mem::size_of::<StoredChunk>()
            + self
                .closed
                .iter()
                .map(|c| match &c.loc {
                    ChunkLoc::Mem(b) => b.len() + std::mem::size_of::<Box<[u8]>>(),
                    ChunkLoc::File(_) => 0,
                })
                .sum::<usize>()
            + self.head.as_ref().map_or(0, |h| h.capacity())
    }
}

/// Series slots per slab page: the slab grows a page at a time, never by doubling.
const PAGE: usize = 64;

/// The hash of a packed label set: picks the shard (high bits) and the slot in its index.
fn labels_hash(packed: &[u8]) -> u64 {
    foldhash::fast::FixedState::default().hash_one(packed)
}

/// A slab position: a series and its labels, or free.
type Slot = Option<(PackedLabels, MemSeries)>;

/// The series of one shard: a slab of fixed-size pages holding each series with its labels
/// (stored once), and a hash index of slab positions (4 bytes a slot; the hash is
/// recomputed from the labels when the index grows, which is rare).
#[derive(Default)]
struct SeriesMap {
    index: hashbrown::HashTable<u32>,
    pages: Vec<Box<[Slot]>>,
    /// Free slab positions.
    free: Vec<u32>,
    len: usize,
}

impl SeriesMap {
    fn slot(&self, i: u32) -> Option<&(PackedLabels, MemSeries)> {
        let i = i as usize;
        self.pages.get(i / PAGE)?.get(i % PAGE)?.as_ref()
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut (PackedLabels, MemSeries)> {
        let i = i as usize;
        self.pages.get_mut(i / PAGE)?.get_mut(i % PAGE)?.as_mut()
    }

    fn find(&self, packed: &[u8], hash: u64) -> Option<u32> {
        let pages = &self.pages;
        self.index
            .find(hash, |&i| {
                let i = i as usize;
                pages[i / PAGE][i % PAGE]
                    .as_ref()
                    .is_some_and(|(l, _)| l.as_bytes() == packed)
            })
            .copied()
    }

    fn get_mut(&mut self, packed: &[u8], hash: u64) -> Option<&mut MemSeries> {
        let i = self.find(packed, hash)?;
        self.slot_mut(i).map(|(_, s)| s)
    }

    fn insert(&mut self, labels: PackedLabels, series: MemSeries, hash: u64) -> u32 {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = (self.pages.len() * PAGE) as u32;
                self.pages.push((0..PAGE).map(|_| None).collect());
                self.free.extend((i + 1..i + PAGE as u32).rev());
                i
            }
        };
        let (p, o) = (i as usize / PAGE, i as usize % PAGE);
        self.pages[p][o] = Some((labels, series));
        let pages = &self.pages;
        self.index.insert_unique(hash, i, |&j| {
            let j = j as usize;
            pages[j / PAGE][j % PAGE]
                .as_ref()
                .map_or(0, |(l, _)| labels_hash(l.as_bytes()))
        });
        self.len += 1;
        i
    }

    fn remove(&mut self, i: u32, hash: u64) {
        if let Ok(e) = self.index.find_entry(hash, |&j| j == i) {
            e.remove();
        }
        let (p, o) = (i as usize / PAGE, i as usize % PAGE);
        if self.pages[p][o].take().is_some() {
            self.free.push(i);
            self.len -= 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&PackedLabels, &MemSeries)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .filter_map(|e| e.as_ref().map(|(l, s)| (l, s)))
    }

    fn values(&self) -> impl Iterator<Item = &MemSeries> {
        self.iter().map(|(_, s)| s)
    }

    /// Keeps the series for which `f` says so.
    fn retain(&mut self, mut f: impl FnMut(&PackedLabels, &mut MemSeries) -> bool) {
        let mut removed = false;
        for (p, page) in self.pages.iter_mut().enumerate() {
            for (o, e) in page.iter_mut().enumerate() {
                if let Some((l, s)) = e
                    && !f(l, s)
                {
                    *e = None;
                    self.free.push((p * PAGE + o) as u32);
                    self.len -= 1;
                    removed = true;
                }
            }
        }
        if removed {
            let pages = &self.pages;
            self.index.retain(|&mut i| {
                let i = i as usize;
                pages[i / PAGE][i % PAGE].is_some()
            });
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Bytes of the slab, the index and the free list (not what the series point to).
    fn heap_bytes(&self) -> usize {
        self.pages.len() * PAGE * std::mem::size_of::<Slot>()
            + self.pages.capacity() * std::mem::size_of::<usize>() * 2
            + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
            + self.free.capacity() * std::mem::size_of::<u32>()
    }
}

type Shard = RwLock<SeriesMap>;

struct Tenant {
    /// Newest timestamp stored for the tenant, `i64::MIN` while empty.
    max_t: AtomicI64,
    /// Samples below this are out of bounds whatever the window says: the end of the newest
    /// block cut from this head (exclusive), `i64::MIN` before the first cut.
    min_valid: AtomicI64,
    /// The next series reference to hand out.
    next_ref: AtomicU64,
    shards: Box<[Shard]>,
    /// Where full chunks go (`None`: in memory).
    files: Option<HeadChunks>,
    /// Chunks found in the files at start-up, by series reference, until the replay of the
    /// series' record attaches them ([`Store::replay_series`]).
    recovered: Mutex<HashMap<u64, Vec<RecoveredChunk>>>,
    /// File chunks that did not read back (skipped by queries; checkpoints fail on them).
    unreadable: AtomicU64,
}

/// One series' chunks in a time range, ready for a block (see [`Store::block_series`]).
#[derive(Clone, Debug)]
pub struct BlockSeries {
    /// The series' labels.
    pub labels: PackedLabels,
    /// Its chunks, oldest first, none straddling the range.
    pub chunks: Vec<ClosedChunk>,
}

/// A tenant's head chunk files, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChunkFilesInfo {
    /// Files on disk.
    pub files: usize,
    /// Bytes of chunks in them.
    pub bytes: u64,
    /// Chunks written since the head was opened.
    pub chunks_written: u64,
    /// Chunk writes that failed (those chunks stayed in memory).
    pub write_failures: u64,
    /// Files deleted by truncation.
    pub files_deleted: u64,
    /// File chunks that did not read back.
    pub unreadable: u64,
}

/// What [`Store::truncate`] removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Truncated {
    /// Chunks dropped.
    pub chunks: usize,
    /// Series dropped (no sample left).
    pub series: usize,
    /// Head chunk files deleted.
    pub files: usize,
}

/// Where a replayed series lives: its shard, its slab slot and its reference (to check
/// that the slot still holds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SeriesHandle {
    shard: u32,
    slot: u32,
    series_ref: u64,
}

/// One tenant's replay (see [`Store::replay_of`]).
pub(crate) struct TenantReplay<'s> {
    store: &'s Store,
    tenant: Arc<Tenant>,
}

impl TenantReplay<'_> {
    /// A series record: creates or finds the series, attaches its recovered head chunks.
    pub(crate) fn series(&self, series_ref: u64, labels: &PackedLabels) -> Option<SeriesHandle> {
        Store::replay_series_in(&self.tenant, series_ref, labels)
    }

    /// Samples of the series `h` (see [`Store::replay_samples`]).
    pub(crate) fn samples(&self, h: SeriesHandle, samples: &[(i64, f64)]) -> usize {
        self.store.replay_samples_in(
            &self.tenant,
            h.shard as usize,
            h.slot,
            Some(h.series_ref),
            samples,
        )
    }
}

/// The per-tenant series store. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Store {
    config: StoreConfig,
    tenants: RwLock<HashMap<String, Arc<Tenant>>>,
    /// The TSDB directory: full chunks of tenant `t` go to `<root>/<t>/chunks_head/`.
    chunk_root: Option<PathBuf>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    /// Reused buffer for packing the labels of an incoming series.
    static PACK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `labels` packed (sorted first when they are not).
fn with_packed<L: LabelPair, R>(labels: &[L], f: impl FnOnce(&[u8]) -> R) -> R {
    PACK_BUF.with(|b| {
        let mut buf = b.borrow_mut();
        fn key<L: LabelPair>(l: &L) -> (&str, &str) {
            (l.name(), l.value())
        }
        if labels.is_sorted_by(|a, b| key(a) <= key(b)) {
            pack_into(labels, &mut buf);
        } else {
            let mut v: Vec<&L> = labels.iter().collect();
            v.sort_by(|a, b| key(*a).cmp(&key(*b)));
            let v: Vec<Label> = v
                .into_iter()
                .map(|l| Label::new(l.name(), l.value()))
                .collect();
            pack_into(&v, &mut buf);
        }
        f(&buf)
    })
}

impl std::borrow::Borrow<[u8]> for PackedLabels {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new(StoreConfig::default())
    }
}

impl Store {
    /// An empty store.
    pub fn new(config: StoreConfig) -> Self {
        Store {
            config: StoreConfig {
                shards: config.shards.max(1),
                block_range_ms: config.block_range_ms.max(1),
                head_chunk_file_size: config.head_chunk_file_size,
            },
            tenants: RwLock::new(HashMap::new()),
            chunk_root: None,
        }
    }

    /// A store whose full chunks go to `<root>/<tenant>/chunks_head/` files (see
    /// [`crate::head_chunks`]) instead of memory. A tenant's files are read when the tenant
    /// is first used: call [`Store::replay_series`] for the tenant's series, then
    /// [`Store::end_replay`].
    pub fn with_chunk_dir(config: StoreConfig, root: impl Into<PathBuf>) -> Self {
        Store {
            chunk_root: Some(root.into()),
            ..Store::new(config)
        }
    }

    /// The settings in use.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    fn tenant(&self, tenant: &str) -> Arc<Tenant> {
        if let Some(t) = read(&self.tenants).get(tenant) {
            return Arc::clone(t);
        }
        let mut map = write(&self.tenants);
        Arc::clone(map.entry(tenant.to_owned()).or_insert_with(|| {
            let (files, recovered) = self.open_chunk_files(tenant);
            Arc::new(Tenant {
                max_t: AtomicI64::new(i64::MIN),
                min_valid: AtomicI64::new(i64::MIN),
                next_ref: AtomicU64::new(1),
                shards: (0..self.config.shards)
                    .map(|_| Shard::new(SeriesMap::default()))
                    .collect(),
                files,
                recovered: Mutex::new(recovered),
                unreadable: AtomicU64::new(0),
            })
        }))
    }

    /// Opens a tenant's chunk files; when that fails the tenant keeps its chunks in memory
    /// (logged: the WAL still holds everything, only memory is at stake).
    fn open_chunk_files(
        &self,
        tenant: &str,
    ) -> (Option<HeadChunks>, HashMap<u64, Vec<RecoveredChunk>>) {
        let Some(root) = &self.chunk_root else {
            return (None, HashMap::new());
        };
        let dir = root
            .join(crate::head::tenant_dir_name(tenant))
            .join("chunks_head");
        match HeadChunks::open(&dir, self.config.head_chunk_file_size) {
            Ok((files, rec)) => {
                if rec.repaired {
                    tracing::warn!(
                        tenant,
                        dir = %dir.display(),
                        chunks_kept = rec.chunks.len(),
                        files_dropped = rec.files_dropped,
                        "head chunk files were torn or corrupt: cut back to the last good chunk (the WAL replay fills in the rest)"
                    );
                }
                let mut by_series: HashMap<u64, Vec<RecoveredChunk>> = HashMap::new();
                for c in rec.chunks {
                    by_series.entry(c.series_ref).or_default().push(c);
                }
                (Some(files), by_series)
            }
            Err(e) => {
                tracing::error!(
                    tenant,
                    dir = %dir.display(),
                    error = %e,
                    "cannot open the head chunk files: this tenant keeps full chunks in memory"
                );
                (None, HashMap::new())
            }
        }
    }

    /// Ends a tenant's replay: chunks found in its files that no series took are forgotten
    /// (their files go with the next truncations). Returns how many.
    pub fn end_replay(&self, tenant: &str) -> usize {
        self.existing(tenant).map_or(0, |t| {
            let mut r = t.recovered.lock().unwrap_or_else(PoisonError::into_inner);
            let n = r.values().map(Vec::len).sum();
            *r = HashMap::new();
            n
        })
    }

    fn existing(&self, tenant: &str) -> Option<Arc<Tenant>> {
        read(&self.tenants).get(tenant).cloned()
    }

    /// The shard of a label set and its hash (the shard takes high bits, the shard's index
    /// the low ones, so the two choices stay independent).
    fn shard_of<'t>(t: &'t Tenant, packed: &[u8]) -> (&'t Shard, u64) {
        let (i, h) = Self::shard_index(t, packed);
        (&t.shards[i], h)
    }

    /// The shard of the series `packed` (by index) and the labels' hash.
    fn shard_index(t: &Tenant, packed: &[u8]) -> (usize, u64) {
        let h = labels_hash(packed);
        ((h >> 40) as usize % t.shards.len(), h)
    }

    /// Appends samples to the series `labels` of `tenant` with Prometheus' head answers (see the
    /// module doc). `labels` should be validated (sorted by name); they are sorted here if not,
    /// so one label set is always one series. Samples are handled in the order given.
    pub fn append<L: LabelPair>(
        &self,
        tenant: &str,
        labels: &[L],
        samples: &[Sample],
    ) -> AppendOutcome {
        let t = self.tenant(tenant);
        let range = self.config.block_range_ms;
        let half_block = range / 2;
        with_packed(labels, |packed| {
            let mut out = AppendOutcome::default();
            let (shard, hash) = Self::shard_of(&t, packed);
            let mut shard = write(shard);
            let (idx, created) = match shard.find(packed, hash) {
                Some(i) => (i, false),
                None => {
                    let r = t.next_ref.fetch_add(1, Ordering::Relaxed);
                    let key = PackedLabels::from_bytes(packed)
                        .unwrap_or_else(|| PackedLabels::new(labels));
                    (shard.insert(key, MemSeries::new(r), hash), true)
                }
            };
            let Some((_, series)) = shard.slot_mut(idx) else {
                return out;
            };
            for s in samples {
                let head_max = t.max_t.load(Ordering::Acquire);
                let window = if head_max == i64::MIN {
                    i64::MIN
                } else {
                    head_max.saturating_sub(half_block)
                };
                let min_valid = window.max(t.min_valid.load(Ordering::Acquire));
                let verdict = if s.timestamp < min_valid {
                    Err(AppendError::OutOfBounds {
                        timestamp: s.timestamp,
                        min_valid,
                    })
                } else if series.last_t == i64::MIN || s.timestamp > series.last_t {
                    Ok(true)
                } else if s.timestamp == series.last_t {
                    if series.last_value_bits(t.files.as_ref()) == Some(s.value.to_bits()) {
                        Ok(false)
                    } else {
                        Err(AppendError::DuplicateTimestamp {
                            timestamp: s.timestamp,
                        })
                    }
                } else {
                    Err(AppendError::OutOfOrder {
                        timestamp: s.timestamp,
                        last: series.last_t,
                    })
                };
                match verdict {
                    Ok(true) => {
                        series.push(s.timestamp, s.value, range, t.files.as_ref());
                        t.max_t.fetch_max(s.timestamp, Ordering::AcqRel);
                        out.appended += 1;
                        out.to_log.push(*s);
                    }
                    Ok(false) => {
                        out.duplicates += 1;
                        out.to_log.push(*s);
                    }
                    Err(e) => {
                        out.rejected += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            // A series created for samples that were all refused is not kept.
            if created && series.is_empty() {
                shard.remove(idx, hash);
                return out;
            }
            out.series_ref = series.series_ref;
            if !out.to_log.is_empty() && !series.logged {
                series.logged = true;
                out.new_series = shard.slot(idx).map(|(k, _)| k.clone());
            }
            out
        })
    }

    /// The WAL write that carried this series' record failed: log it again with the next
    /// sample.
    pub fn mark_unlogged(&self, tenant: &str, labels: &PackedLabels) {
        if let Some(t) = self.existing(tenant) {
            let (shard, hash) = Self::shard_of(&t, labels.as_bytes());
            if let Some(s) = write(shard).get_mut(labels.as_bytes(), hash) {
                s.logged = false;
            }
        }
    }

    /// Replay: creates (or finds) the series `labels` of `tenant` as logged under `series_ref`;
    /// returns the reference the head uses for it (another one when the labels already exist).
    pub fn replay_series(&self, tenant: &str, series_ref: u64, labels: &PackedLabels) -> u64 {
        let t = self.tenant(tenant);
        Self::replay_series_in(&t, series_ref, labels).map_or(series_ref, |h| h.series_ref)
    }

    /// [`Store::replay_series`] within a tenant already looked up; the handle finds the
    /// series again without its labels (`None` if its slot is gone).
    fn replay_series_in(
        t: &Tenant,
        series_ref: u64,
        labels: &PackedLabels,
    ) -> Option<SeriesHandle> {
        t.next_ref
            .fetch_max(series_ref.saturating_add(1), Ordering::Relaxed);
        let found = t
            .recovered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&series_ref);
        let (shard_idx, hash) = Self::shard_index(t, labels.as_bytes());
        let mut shard = write(&t.shards[shard_idx]);
        let idx = match shard.find(labels.as_bytes(), hash) {
            Some(i) => i,
            None => shard.insert(labels.clone(), MemSeries::new(series_ref), hash),
        };
        let (_, s) = shard.slot_mut(idx)?;
        s.logged = true;
        if let Some(found) = found {
            let min_valid = t.min_valid.load(Ordering::Acquire);
            if s.attach(&found, min_valid) > 0 {
                t.max_t.fetch_max(s.last_t, Ordering::AcqRel);
            }
        }
        Some(SeriesHandle {
            shard: shard_idx as u32,
            slot: idx,
            series_ref: s.series_ref,
        })
    }

    /// Replay: appends logged samples of the series `labels`. Samples at or before the
    /// series' newest one, or below the last block cut, are skipped (duplicates of a retry,
    /// or already in a block); returns how many were added.
    pub fn replay_samples(
        &self,
        tenant: &str,
        labels: &PackedLabels,
        samples: &[(i64, f64)],
    ) -> usize {
        let t = self.tenant(tenant);
        let (shard_idx, hash) = Self::shard_index(&t, labels.as_bytes());
        let slot = read(&t.shards[shard_idx]).find(labels.as_bytes(), hash);
        let Some(slot) = slot else {
            return 0;
        };
        self.replay_samples_in(&t, shard_idx, slot, None, samples)
    }

    /// Appends replayed samples to the series at `slot` of shard `shard_idx` (checked
    /// against `series_ref` when given); see [`Store::replay_samples`].
    fn replay_samples_in(
        &self,
        t: &Tenant,
        shard_idx: usize,
        slot: u32,
        series_ref: Option<u64>,
        samples: &[(i64, f64)],
    ) -> usize {
        let min_valid = t.min_valid.load(Ordering::Acquire);
        let range = self.config.block_range_ms;
        let mut shard = write(&t.shards[shard_idx]);
        let Some((_, series)) = shard.slot_mut(slot) else {
            return 0;
        };
        if series_ref.is_some_and(|r| r != series.series_ref) {
            return 0;
        }
        let mut added = 0;
        for &(ts, v) in samples {
            if ts < min_valid || (series.last_t != i64::MIN && ts <= series.last_t) {
                continue;
            }
            series.push(ts, v, range, t.files.as_ref());
            t.max_t.fetch_max(ts, Ordering::AcqRel);
            added += 1;
        }
        added
    }

    /// Replay of one tenant's WAL by series reference (module doc of `head`): a series'
    /// place is looked up once, at its series record, so samples records append without
    /// hashing and comparing labels again.
    pub(crate) fn replay_of(&self, tenant: &str) -> TenantReplay<'_> {
        TenantReplay {
            store: self,
            tenant: self.tenant(tenant),
        }
    }

    /// Replay: takes over a chunk of the series `labels` read from a checkpoint; returns the
    /// samples added. A chunk that does not decode is skipped (0); one that overlaps what the
    /// series holds already, or the last block, is appended sample by sample.
    pub fn replay_chunk(&self, tenant: &str, labels: &PackedLabels, bytes: &[u8]) -> usize {
        let Ok(chunk) = XorChunk::from_bytes(bytes) else {
            return 0;
        };
        let (Some(min_t), Some(max_t)) = (chunk.min_time(), chunk.max_time()) else {
            return 0;
        };
        let t = self.tenant(tenant);
        let min_valid = t.min_valid.load(Ordering::Acquire);
        {
            let (shard, hash) = Self::shard_of(&t, labels.as_bytes());
            let mut shard = write(shard);
            let Some(series) = shard.get_mut(labels.as_bytes(), hash) else {
                return 0;
            };
            if min_t >= min_valid && (series.last_t == i64::MIN || min_t > series.last_t) {
                let n = usize::from(chunk.num_samples());
                series.adopt(chunk, t.files.as_ref());
                t.max_t.fetch_max(max_t, Ordering::AcqRel);
                return n;
            }
        }
        let samples: Vec<(i64, f64)> = chunk.iter().collect();
        self.replay_samples(tenant, labels, &samples)
    }

    /// Series of `tenant` matching every matcher, with their samples in `[start_ms, end_ms]`
    /// (inclusive, as remote read), sorted by labels; series without samples in range are left
    /// out.
    pub fn query(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Vec<TimeSeries> {
        let Some(t) = self.existing(tenant) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in t.shards.iter() {
            let shard = read(shard);
            for (labels, series) in shard.iter() {
                if !matchers.iter().all(|m| m.matches_packed(labels)) {
                    continue;
                }
                let mut samples = Vec::new();
                series.samples_in(start_ms, end_ms, t.files.as_ref(), &mut samples);
                if samples.is_empty() {
                    continue;
                }
                out.push(TimeSeries {
                    labels: labels.to_labels(),
                    samples,
                    ..Default::default()
                });
            }
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// Number of series of `tenant`.
    pub fn series_count(&self, tenant: &str) -> usize {
        self.existing(tenant)
            .map_or(0, |t| t.shards.iter().map(|s| read(s).len()).sum())
    }

    /// Number of samples of `tenant`.
    pub fn sample_count(&self, tenant: &str) -> usize {
        self.existing(tenant).map_or(0, |t| {
            t.shards
                .iter()
                .map(|s| {
                    read(s)
                        .values()
                        .flat_map(|x| {
                            x.chunks(t.files.as_ref()).map(|(_, _, b)| {
                                b.and_then(|b| {
                                    ringkit_tsdb::decode_xor(&b)
                                        .ok()
                                        .map(|i| usize::from(i.num_samples()))
                                })
                                .unwrap_or(0)
                            })
                        })
                        .sum::<usize>()
                })
                .sum()
        })
    }

    /// Names of the tenants with a head, sorted.
    pub fn tenants(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.tenants).keys().cloned().collect();
        v.sort();
        v
    }

    /// Oldest and newest sample timestamps of `tenant`'s head, `None` when it holds none.
    pub fn time_bounds(&self, tenant: &str) -> Option<(i64, i64)> {
        let t = self.existing(tenant)?;
        let min = t
            .shards
            .iter()
            .filter_map(|s| read(s).values().filter_map(MemSeries::min_t).min())
            .min()?;
        Some((min, t.max_t.load(Ordering::Acquire)))
    }

    /// Refuses (out of bounds) every later sample of `tenant` older than `t_ms`, and drops such
    /// samples at replay: they belong to a block already cut.
    pub fn set_min_valid(&self, tenant: &str, t_ms: i64) {
        self.tenant(tenant)
            .min_valid
            .fetch_max(t_ms, Ordering::AcqRel);
    }

    /// The end of the newest block cut from `tenant`'s head (`i64::MIN` before any).
    pub fn min_valid(&self, tenant: &str) -> i64 {
        self.existing(tenant)
            .map_or(i64::MIN, |t| t.min_valid.load(Ordering::Acquire))
    }

    /// The chunks of `tenant`'s series with samples in `[min_t, max_t)`, sorted by labels, for a
    /// block. Chunks that reach outside the range are re-encoded with their samples inside it.
    pub fn block_series(&self, tenant: &str, min_t: i64, max_t: i64) -> Vec<BlockSeries> {
        let Some(t) = self.existing(tenant) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for shard in t.shards.iter() {
            let shard = read(shard);
            for (labels, series) in shard.iter() {
                let mut chunks = Vec::new();
                for (lo, hi, bytes) in series.chunks(t.files.as_ref()) {
                    if hi < min_t || lo >= max_t {
                        continue;
                    }
                    let Some(bytes) = bytes else {
                        t.unreadable.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    let bytes = &*bytes;
                    if lo >= min_t && hi < max_t {
                        chunks.push(ClosedChunk {
                            min_t: lo,
                            max_t: hi,
                            bytes: bytes.into(),
                        });
                        continue;
                    }
                    let Ok(it) = ringkit_tsdb::decode_xor(bytes) else {
                        continue;
                    };
                    let mut c = XorChunk::new();
                    for (ts, v) in it.filter(|&(ts, _)| ts >= min_t && ts < max_t) {
                        c.append(ts, v);
                    }
                    chunks.extend(ClosedChunk::from_xor(&c));
                }
                if !chunks.is_empty() {
                    out.push(BlockSeries {
                        labels: labels.clone(),
                        chunks,
                    });
                }
            }
        }
        out.sort_by(|a, b| cmp_label_sets(&a.labels, &b.labels));
        out
    }

    /// Drops `tenant`'s chunks that end before `before_ms`, and the series left with none
    /// (Prometheus' head truncation after a block cut). Returns what went.
    pub fn truncate(&self, tenant: &str, before_ms: i64) -> Truncated {
        let mut gone = Truncated::default();
        let Some(t) = self.existing(tenant) else {
            return gone;
        };
        for shard in t.shards.iter() {
            let mut shard = write(shard);
            shard.retain(|_, s| {
                let n = s.closed.len();
                if s.closed.iter().any(|c| c.max_t < before_ms) {
                    let mut v = std::mem::take(&mut s.closed).into_vec();
                    v.retain(|c| c.max_t >= before_ms);
                    s.closed = v.into_boxed_slice();
                }
                gone.chunks += n - s.closed.len();
                if s.head
                    .as_ref()
                    .and_then(XorChunk::max_time)
                    .is_some_and(|m| m < before_ms)
                {
                    s.head = None;
                    gone.chunks += 1;
                }
                if s.closed.is_empty() && s.head.is_none() {
                    gone.series += 1;
                    false
                } else {
                    true
                }
            });
        }
        // No series refers to a chunk ending before `before_ms` any more: files holding only
        // such chunks can go.
        if let Some(files) = &t.files {
            match files.truncate(before_ms) {
                Ok(n) => gone.files = n,
                Err(e) => tracing::warn!(
                    tenant,
                    dir = %files.dir().display(),
                    error = %e,
                    "cannot delete old head chunk files (retried at the next truncation)"
                ),
            }
        }
        gone
    }

    /// Visits every series of `tenant` with its reference and chunks (oldest first), one
    /// shard at a time (read-locked while visited), for a checkpoint. A chunk is `None` when
    /// its file no longer reads it back.
    pub fn for_each_series(
        &self,
        tenant: &str,
        mut f: impl FnMut(u64, &PackedLabels, &mut dyn Iterator<Item = Option<ChunkData<'_>>>),
    ) {
        let Some(t) = self.existing(tenant) else {
            return;
        };
        for shard in t.shards.iter() {
            let shard = read(shard);
            for (labels, s) in shard.iter() {
                f(
                    s.series_ref,
                    labels,
                    &mut s.chunks(t.files.as_ref()).map(|(_, _, b)| b),
                );
            }
        }
    }

    /// The head chunk files of `tenant`, when it has some.
    pub fn chunk_files(&self, tenant: &str) -> Option<ChunkFilesInfo> {
        let t = self.existing(tenant)?;
        let f = t.files.as_ref()?;
        Some(ChunkFilesInfo {
            files: f.file_count(),
            bytes: f.disk_bytes(),
            chunks_written: f.counters().chunks_written.load(Ordering::Relaxed),
            write_failures: f.counters().write_failures.load(Ordering::Relaxed),
            files_deleted: f.counters().files_deleted.load(Ordering::Relaxed),
            unreadable: t.unreadable.load(Ordering::Relaxed),
        })
    }

    /// Approximate bytes `tenant`'s head holds: series structs, packed labels, chunk data and
    /// the series maps (for the memory metric; allocator overhead not included).
    pub fn memory_bytes(&self, tenant: &str) -> usize {
        self.existing(tenant).map_or(0, |t| {
            t.shards
                .iter()
                .map(|s| {
                    let s = read(s);
                    s.heap_bytes()
                        + s.iter()
                            .map(|(l, x)| {
                                l.heap_size() + x.mem_size() - std::mem::size_of::<MemSeries>()
                            })
                            .sum::<usize>()
                })
                .sum()
        })
    }
}

/// A compiled label matcher. As in Prometheus, an absent label matches like an empty value,
/// and regexes are fully anchored (`=~"a|b"` means `^(?:a|b)$`).
#[derive(Clone, Debug)]
pub struct Matcher {
    kind: MatcherType,
    name: String,
    value: String,
    re: Option<Regex>,
}

/// A matcher that cannot be built: bad input (HTTP 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// The regex does not compile (or would be too large).
    #[error("invalid regular expression {pattern:?} for label {name:?}: {source}")]
    Regex {
        /// Label name.
        name: String,
        /// The pattern as sent.
        pattern: String,
        /// The compiler's message.
        #[source]
        source: Box<regex::Error>,
    },
    /// A matcher type number outside 0..=3.
    #[error("unknown label matcher type {0}")]
    UnknownType(i32),
}

impl MatcherError {
    /// The HTTP status to answer with: 400.
    pub fn http_status(&self) -> u16 {
        400
    }
}

impl Matcher {
    /// Builds a matcher; regex kinds compile `value` anchored at both ends.
    pub fn new(
        kind: MatcherType,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let name = name.into();
        let value = value.into();
        let re = match kind {
            MatcherType::Re | MatcherType::Nre => Some(
                regex::RegexBuilder::new(&format!("^(?:{value})$"))
                    // Bounded, so a hostile pattern costs at most a few MiB to compile.
                    .size_limit(4 << 20)
                    .build()
                    .map_err(|e| MatcherError::Regex {
                        name: name.clone(),
                        pattern: value.clone(),
                        source: Box::new(e),
                    })?,
            ),
            MatcherType::Eq | MatcherType::Neq => None,
        };
        Ok(Matcher {
            kind,
            name,
            value,
            re,
        })
    }

    /// Builds a matcher from its remote-read form.
    pub fn from_proto(m: &LabelMatcher) -> Result<Self, MatcherError> {
        let kind =
            MatcherType::try_from(m.r#type).map_err(|_| MatcherError::UnknownType(m.r#type))?;
        Matcher::new(kind, m.name.clone(), m.value.clone())
    }

    /// Whether a label value (empty when the label is absent) matches.
    pub fn matches(&self, value: &str) -> bool {
        match (self.kind, &self.re) {
            (MatcherType::Eq, _) => value == self.value,
            (MatcherType::Neq, _) => value != self.value,
            (MatcherType::Re, Some(re)) => re.is_match(value),
            (MatcherType::Nre, Some(re)) => !re.is_match(value),
            // Regex kinds always carry a compiled regex (see `new`).
            (MatcherType::Re | MatcherType::Nre, None) => false,
        }
    }

    /// The comparison.
    pub fn kind(&self) -> MatcherType {
        self.kind
    }

    /// The label name looked at.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value or pattern as given.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether a packed label set matches.
    pub fn matches_packed(&self, labels: &PackedLabels) -> bool {
        self.matches(labels.get(&self.name).unwrap_or(""))
    }

    /// Whether a sorted label set matches.
    pub fn matches_labels(&self, labels: &[Label]) -> bool {
        let value = labels
            .iter()
            .find(|l| l.name == self.name)
            .map_or("", |l| l.value.as_str());
        self.matches(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_546_100_000;
    const HOUR: i64 = 3_600_000;

    fn s(timestamp: i64, value: f64) -> Sample {
        Sample { value, timestamp }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<Label> {
        pairs.iter().map(|(n, v)| Label::new(*n, *v)).collect()
    }

    fn up() -> Vec<Label> {
        labels(&[("__name__", "up"), ("job", "a")])
    }

    #[test]
    fn append_answers_match_prometheus_head() {
        struct Case {
            what: &'static str,
            sample: Sample,
            want: Result<bool, &'static str>,
        }
        let nan_a = f64::from_bits(0x7ff8_0000_0000_0001);
        let nan_b = f64::from_bits(0x7ff8_0000_0000_0002);
        let cases = [
            Case {
                what: "first sample",
                sample: s(T0, 1.0),
                want: Ok(true),
            },
            Case {
                what: "exact duplicate",
                sample: s(T0, 1.0),
                want: Ok(false),
            },
            Case {
                what: "same ts, other value",
                sample: s(T0, 2.0),
                want: Err("duplicate sample for timestamp"),
            },
            Case {
                what: "60 s older",
                sample: s(T0 - 60_000, 3.0),
                want: Err("out of order sample"),
            },
            Case {
                what: "24 h older",
                sample: s(T0 - 24 * HOUR, 4.0),
                want: Err("out of bounds"),
            },
            Case {
                what: "newer",
                sample: s(T0 + 1000, 5.0),
                want: Ok(true),
            },
            Case {
                what: "NaN",
                sample: s(T0 + 2000, nan_a),
                want: Ok(true),
            },
            Case {
                what: "same NaN bits",
                sample: s(T0 + 2000, nan_a),
                want: Ok(false),
            },
            Case {
                what: "other NaN bits",
                sample: s(T0 + 2000, nan_b),
                want: Err("duplicate sample for timestamp"),
            },
            Case {
                what: "-0.0 after 0.0",
                sample: s(T0 + 3000, 0.0),
                want: Ok(true),
            },
            Case {
                what: "-0.0 is another value",
                sample: s(T0 + 3000, -0.0),
                want: Err("duplicate sample for timestamp"),
            },
        ];
        let store = Store::default();
        for c in cases {
            let out = store.append("t", &up(), &[c.sample]);
            match c.want {
                Ok(new) => {
                    assert!(
                        out.first_error.is_none(),
                        "{}: {:?}",
                        c.what,
                        out.first_error
                    );
                    assert_eq!(out.appended, usize::from(new), "{}", c.what);
                    assert_eq!(out.to_log.len(), 1, "{}: logged", c.what);
                }
                Err(msg) => {
                    let err = out.first_error.expect(c.what);
                    assert!(err.to_string().starts_with(msg), "{}: {err}", c.what);
                    assert!(out.to_log.is_empty(), "{}", c.what);
                }
            }
        }
        assert_eq!(store.sample_count("t"), 4);
    }

    #[test]
    fn out_of_bounds_is_relative_to_the_tenants_newest_sample_not_the_series() {
        let store = Store::default();
        store.append("t", &up(), &[s(T0, 1.0)]);
        let other = labels(&[("__name__", "other")]);
        // A new series may start up to 1 h behind the head...
        assert!(
            store
                .append("t", &other, &[s(T0 - HOUR, 1.0)])
                .first_error
                .is_none()
        );
        // ...but not further.
        let out = store.append("t", &other, &[s(T0 - HOUR - 1, 1.0)]);
        assert!(matches!(
            out.first_error,
            Some(AppendError::OutOfBounds { .. })
        ));
        // Another tenant has its own, empty head: anything goes.
        assert!(
            store
                .append("u", &other, &[s(0, 1.0)])
                .first_error
                .is_none()
        );
    }

    #[test]
    fn a_refused_sample_does_not_undo_the_others_of_the_batch() {
        let store = Store::default();
        let out = store.append("t", &up(), &[s(T0, 1.0), s(T0 - 1, 2.0), s(T0 + 1, 3.0)]);
        assert_eq!((out.appended, out.rejected), (2, 1));
        assert!(matches!(
            out.first_error,
            Some(AppendError::OutOfOrder { last: T0, .. })
        ));
    }

    #[test]
    fn a_series_whose_samples_were_all_refused_is_not_created() {
        let store = Store::default();
        store.append("t", &up(), &[s(T0, 1.0)]);
        let other = labels(&[("__name__", "other")]);
        store.append("t", &other, &[s(T0 - 2 * HOUR, 1.0)]);
        assert_eq!(store.series_count("t"), 1);
    }

    #[test]
    fn unsorted_labels_address_the_same_series() {
        let store = Store::default();
        store.append(
            "t",
            &labels(&[("job", "a"), ("__name__", "up")]),
            &[s(T0, 1.0)],
        );
        store.append("t", &up(), &[s(T0 + 1, 1.0)]);
        assert_eq!(store.series_count("t"), 1);
        assert_eq!(store.sample_count("t"), 2);
    }

    #[test]
    fn replayed_samples_skip_what_the_series_holds_and_what_a_block_holds() {
        let store = Store::default();
        let l = PackedLabels::new(&up());
        assert_eq!(store.replay_series("t", 7, &l), 7);
        assert_eq!(
            store.replay_samples("t", &l, &[(T0, 0.0), (T0 + 2, 2.0)]),
            2
        );
        // A retried duplicate and an older sample (logged out of order) add nothing.
        assert_eq!(
            store.replay_samples("t", &l, &[(T0 + 2, 2.0), (T0 + 1, 1.0)]),
            0
        );
        store.set_min_valid("t", T0 + 10);
        assert_eq!(
            store.replay_samples("t", &l, &[(T0 + 5, 5.0), (T0 + 10, 10.0)]),
            1
        );
        let got = store.query("t", &[], i64::MIN, i64::MAX);
        assert_eq!(
            got[0].samples,
            vec![s(T0, 0.0), s(T0 + 2, 2.0), s(T0 + 10, 10.0)]
        );
        // The next new series gets a reference past every replayed one.
        let out = store.append("t", &labels(&[("__name__", "new")]), &[s(T0 + 11, 1.0)]);
        assert_eq!(out.series_ref, 8);
    }

    #[test]
    fn chunks_are_cut_every_120_samples_and_at_block_range_boundaries() {
        let store = Store::new(StoreConfig {
            block_range_ms: 1000 * 15_000,
            shards: 1,
            ..StoreConfig::default()
        });
        // 15 s apart, starting at 0: a range boundary every 1000 samples.
        let samples: Vec<Sample> = (0..1100).map(|k| s(k * 15_000, k as f64)).collect();
        store.append("t", &up(), &samples);
        let mut lens = Vec::new();
        store.for_each_series("t", |_, _, chunks| {
            lens = chunks
                .map(|b| ringkit_tsdb::decode_xor(&b.unwrap()).unwrap().num_samples())
                .collect();
        });
        // 8 full chunks, then 40 up to the boundary at sample 1000, then 100 after it.
        assert_eq!(lens, [120, 120, 120, 120, 120, 120, 120, 120, 40, 100]);
        assert_eq!(store.sample_count("t"), 1100);
        let got = store.query("t", &[], 0, i64::MAX);
        assert_eq!(got[0].samples, samples);
    }

    #[test]
    fn a_block_takes_the_chunks_of_its_range_and_truncation_drops_them() {
        let range = 100_000;
        let store = Store::new(StoreConfig {
            block_range_ms: range,
            shards: 4,
            ..StoreConfig::default()
        });
        // An old series with nothing after the first range.
        store.append("t", &labels(&[("__name__", "old")]), &[s(50_000, 1.0)]);
        for i in 0..10 {
            let l = labels(&[("__name__", "m"), ("i", &i.to_string())]);
            let samples: Vec<Sample> = (0..30).map(|k| s(k * 5_000, (i * k) as f64)).collect();
            store.append("t", &l, &samples);
        }
        assert_eq!(store.time_bounds("t"), Some((0, 145_000)));
        let block = store.block_series("t", 0, range);
        assert_eq!(block.len(), 11);
        assert!(
            block
                .windows(2)
                .all(|w| cmp_label_sets(&w[0].labels, &w[1].labels).is_lt())
        );
        let m = &block[0];
        assert_eq!(m.labels.get("i"), Some("0"));
        let stamps: Vec<i64> = m
            .chunks
            .iter()
            .flat_map(|c| ringkit_tsdb::decode_xor(&c.bytes).unwrap().map(|(t, _)| t))
            .collect();
        assert_eq!(stamps, (0..20).map(|k| k * 5_000).collect::<Vec<_>>());
        let gone = store.truncate("t", range);
        assert_eq!(
            gone,
            Truncated {
                chunks: 11,
                series: 1,
                files: 0
            }
        );
        assert_eq!(store.series_count("t"), 10);
        assert_eq!(store.sample_count("t"), 100);
        assert_eq!(store.time_bounds("t"), Some((range, 145_000)));
        // Cut blocks are out of bounds for later appends.
        store.set_min_valid("t", range);
        let out = store.append("t", &labels(&[("__name__", "late")]), &[s(range - 1, 1.0)]);
        assert!(matches!(
            out.first_error,
            Some(AppendError::OutOfBounds { .. })
        ));
    }

    #[test]
    fn a_checkpointed_chunk_is_taken_over_and_appended_to() {
        let a = Store::default();
        let samples: Vec<Sample> = (0..50).map(|k| s(T0 + k * 15_000, k as f64)).collect();
        a.append("t", &up(), &samples);
        let mut chunks = Vec::new();
        a.for_each_series("t", |_, _, c| {
            chunks = c.map(|b| b.unwrap().to_vec()).collect::<Vec<Vec<u8>>>()
        });
        let b = Store::default();
        let l = PackedLabels::new(&up());
        b.replay_series("t", 1, &l);
        assert_eq!(b.replay_chunk("t", &l, &chunks[0]), 50);
        assert_eq!(b.replay_chunk("t", &l, &chunks[0]), 0, "already there");
        let next = s(T0 + 50 * 15_000, 50.0);
        assert_eq!(b.append("t", &up(), &[next]).appended, 1);
        let mut want = samples.clone();
        want.push(next);
        assert_eq!(b.query("t", &[], i64::MIN, i64::MAX)[0].samples, want);
    }

    #[test]
    fn a_new_series_is_reported_for_logging_once() {
        let store = Store::default();
        let first = store.append("t", &up(), &[s(T0, 1.0)]);
        assert_eq!(first.new_series, Some(PackedLabels::new(&up())));
        assert_eq!(store.append("t", &up(), &[s(T0 + 1, 1.0)]).new_series, None);
        store.mark_unlogged("t", &PackedLabels::new(&up()));
        assert!(
            store
                .append("t", &up(), &[s(T0 + 2, 1.0)])
                .new_series
                .is_some()
        );
    }

    fn query_store() -> Store {
        let store = Store::default();
        for (name, job, inst) in [
            ("up", "node", "a"),
            ("up", "node", "b"),
            ("up", "prom", "a"),
            ("http_requests_total", "prom", "a"),
        ] {
            let l = labels(&[("__name__", name), ("instance", inst), ("job", job)]);
            store.append("t", &l, &[s(T0, 1.0), s(T0 + 10, 2.0), s(T0 + 20, 3.0)]);
        }
        store.append("t", &labels(&[("__name__", "up")]), &[s(T0, 1.0)]);
        store
    }

    fn names(result: &[TimeSeries]) -> Vec<String> {
        result
            .iter()
            .map(|ts| {
                ts.labels
                    .iter()
                    .map(|l| l.value.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    }

    fn m(kind: MatcherType, name: &str, value: &str) -> Matcher {
        Matcher::new(kind, name, value).unwrap()
    }

    #[test]
    fn equality_matchers_select_series_sorted_by_labels() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Eq, "job", "node"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up,a,node", "up,b,node"]);
    }

    #[test]
    fn not_equal_matches_series_without_the_label() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Neq, "job", "node"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up", "up,a,prom"]);
    }

    #[test]
    fn regex_matchers_are_fully_anchored() {
        let store = query_store();
        let got = store.query("t", &[m(MatcherType::Re, "job", "pro")], i64::MIN, i64::MAX);
        assert!(got.is_empty());
        let got = store.query(
            "t",
            &[m(MatcherType::Re, "job", "pro.*|x")],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["http_requests_total,a,prom", "up,a,prom"]);
        let got = store.query(
            "t",
            &[
                m(MatcherType::Re, "__name__", "up"),
                m(MatcherType::Nre, "instance", "a|"),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up,b,node"]);
    }

    #[test]
    fn empty_regex_matches_series_missing_the_label() {
        let store = query_store();
        let got = store.query(
            "t",
            &[
                m(MatcherType::Eq, "__name__", "up"),
                m(MatcherType::Re, "job", ""),
            ],
            i64::MIN,
            i64::MAX,
        );
        assert_eq!(names(&got), ["up"]);
    }

    #[test]
    fn time_range_is_inclusive_and_drops_series_without_samples_in_it() {
        let store = query_store();
        let sel = [m(MatcherType::Eq, "__name__", "up")];
        let got = store.query("t", &sel, T0 + 10, T0 + 20);
        assert_eq!(got.len(), 3);
        assert!(
            got.iter()
                .all(|ts| ts.samples == vec![s(T0 + 10, 2.0), s(T0 + 20, 3.0)])
        );
        assert!(store.query("t", &sel, T0 + 21, T0 + 100).is_empty());
        assert!(
            store
                .query("other-tenant", &sel, i64::MIN, i64::MAX)
                .is_empty()
        );
    }

    #[test]
    fn a_bad_regex_or_matcher_type_is_a_400() {
        let err = Matcher::new(MatcherType::Re, "a", "(").unwrap_err();
        assert_eq!(err.http_status(), 400);
        assert!(err.to_string().contains("invalid regular expression"));
        let bad = LabelMatcher {
            r#type: 9,
            name: "a".into(),
            value: "b".into(),
        };
        assert!(matches!(
            Matcher::from_proto(&bad),
            Err(MatcherError::UnknownType(9))
        ));
    }

    proptest::proptest! {
        /// Against a simple model: a series keeps exactly the accepted samples, in order, and
        /// every answer is the one the rules in the module doc give.
        #[test]
        fn appends_agree_with_a_model_of_the_head_rules(
            steps in proptest::collection::vec((0i64..10_000_000, 0u8..3), 1..200)
        ) {
            let store = Store::default();
            let mut model: Vec<(i64, f64)> = Vec::new();
            let mut head_max = i64::MIN;
            for (ts, v) in steps {
                let value = f64::from(v);
                let out = store.append("t", &up(), &[s(ts, value)]);
                let min_valid = if head_max == i64::MIN { i64::MIN } else { head_max - HOUR };
                let want: Result<bool, ()> = if ts < min_valid {
                    Err(())
                } else {
                    match model.last() {
                        None => Ok(true),
                        Some(&(last, _)) if ts > last => Ok(true),
                        Some(&(last, lv)) if ts == last && lv.to_bits() == value.to_bits() => Ok(false),
                        _ => Err(()),
                    }
                };
                match want {
                    Ok(true) => {
                        proptest::prop_assert_eq!(out.appended, 1);
                        model.push((ts, value));
                        head_max = head_max.max(ts);
                    }
                    Ok(false) => proptest::prop_assert_eq!(out.duplicates, 1),
                    Err(()) => proptest::prop_assert_eq!(out.rejected, 1),
                }
            }
            let got: Vec<(i64, f64)> = store
                .query("t", &[], i64::MIN, i64::MAX)
                .first()
                .map(|t| t.samples.iter().map(|x| (x.timestamp, x.value)).collect())
                .unwrap_or_default();
            proptest::prop_assert_eq!(got, model);
        }
    }

    #[test]
    fn concurrent_appends_to_many_series_lose_nothing() {
        let store = Arc::new(Store::default());
        std::thread::scope(|scope| {
            for w in 0..4 {
                let store = Arc::clone(&store);
                scope.spawn(move || {
                    for i in 0..200 {
                        let l = labels(&[("__name__", "x"), ("i", &format!("{w}-{i}"))]);
                        for k in 0..10 {
                            store.append("t", &l, &[s(T0 + k, k as f64)]);
                        }
                    }
                });
            }
        });
        assert_eq!(store.series_count("t"), 800);
        assert_eq!(store.sample_count("t"), 8000);
    }
}
