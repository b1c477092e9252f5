//! An ingester's TSDB: one head per tenant (the [`Store`]), each with its own WAL, blocks cut
//! from it, checkpoints and retention, in Mimir's directory layout:
//!
//! ```text
//! <dir>/<tenant>/wal/00000012            segments (series once, then samples by reference)
//! <dir>/<tenant>/wal/checkpoint.00000011 what the head needed when segments ≤ 11 were dropped
//! <dir>/<tenant>/<ULID>/                 blocks cut from the head (written by a BlockStore)
//! ```
//!
//! # Push
//! [`Head::push`] takes the tenant's WAL lock, appends every series of a validated request to
//! the store, logs what the store accepted (series records for new series, then the samples
//! by reference; exact duplicates too, see [`crate::store::AppendOutcome::to_log`]) in **one**
//! WAL write, and only then returns. Holding the lock across both keeps the WAL in the order
//! the store saw, which replay relies on (a series' samples only ever go forward). The caller
//! acknowledges (2xx) only on `Ok` with no `first_error`; a [`WalError`] must become a 5xx so
//! the sender retries.
//!
//! # Bounded: cut, truncate, checkpoint, retention
//! [`Head::compact`] (run every minute or so) does, per tenant, what Prometheus' head
//! compaction does: while the head spans more than 1.5 block ranges, the oldest whole range is
//! written as a block, later samples of that range become out of bounds, and the head drops
//! the chunks that ended before the range's end. Then the WAL is cut at a new segment and a
//! checkpoint of the head replaces the older segments ([`crate::checkpoint`]). Blocks whose end
//! is older than the retention period are deleted. Memory and disk therefore follow the head
//! (1.5 to 2 ranges of samples) plus the retained blocks, not the uptime.
//!
//! # Open
//! [`Head::open_with`] replays every tenant: half-written blocks are removed, complete blocks
//! make their range out of bounds (their samples are not replayed into the head again), then
//! the checkpoint and the newer segments are read. Restart cost is bounded by the head.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Instant;

use crate::block::{BlockError, BlockMeta, BlockStore};
use crate::checkpoint;
use crate::labels::{LabelPair, PackedLabels};
use crate::prompb::{Sample, TimeSeries};
use crate::record::{Record, RefSample};
use crate::store::{AppendError, Matcher, SeriesHandle, Store, StoreConfig};
use crate::validate::SeriesText;
use crate::wal::{self, ReplayStats, Wal, WalConfig, WalError, io_err};

/// A refused sample and the series it belongs to: bad input, HTTP 400.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{error}, series: '{series}'")]
pub struct SampleError {
    /// Why.
    pub error: AppendError,
    /// Which series.
    pub series: SeriesText,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PushSummary {
    /// Newly stored samples.
    pub appended: usize,
    /// Exact duplicates accepted without storing them again.
    pub duplicates: usize,
    /// Refused samples.
    pub rejected: usize,
    /// The first refusal, to answer 400 with.
    pub first_error: Option<SampleError>,
}

/// Settings of a head with a directory.
#[derive(Clone)]
pub struct HeadOptions {
    /// Series store settings (block range, shards).
    pub store: StoreConfig,
    /// WAL settings.
    pub wal: WalConfig,
    /// Blocks older than this (their end before `now − retention`) are deleted by
    /// [`Head::compact`] (`-blocks-storage.tsdb.retention-period`, Mimir's default 13 h);
    /// 0 keeps them.
    pub retention_ms: i64,
    /// Where cut ranges go (default: Prometheus' block format). `None`: nothing is ever cut
    /// (the head keeps everything).
    pub blocks: Option<Arc<dyn BlockStore>>,
    /// Open block readers kept for queries (least recently used closed first; each holds
    /// its block's index in memory). 0 opens the block for every query.
    pub block_readers: usize,
    /// Retention deletes a block only once the shipper has recorded it as uploaded in the
    /// tenant's `mimir.shipper.json` (Mimir's rule when shipping is on).
    pub retention_waits_for_shipping: bool,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions {
            store: StoreConfig::default(),
            wal: WalConfig::default(),
            retention_ms: 13 * 3600 * 1000,
            blocks: Some(Arc::new(crate::block::PrometheusBlocks)),
            block_readers: 16,
            retention_waits_for_shipping: false,
        }
    }
}

impl std::fmt::Debug for HeadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadOptions")
            .field("store", &self.store)
            .field("wal", &self.wal)
            .field("retention_ms", &self.retention_ms)
            .field("blocks", &self.blocks.is_some())
            .field("block_readers", &self.block_readers)
            .field(
                "retention_waits_for_shipping",
                &self.retention_waits_for_shipping,
            )
            .finish()
    }
}

/// Why a head could not be opened or a tenant's storage could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HeadError {
    /// The WAL failed (I/O).
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A block could not be read or written.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The thread appending replayed samples panicked (a bug; the head is incomplete).
    #[error("WAL replay: the sample appender thread panicked")]
    ReplayPanicked,
}

/// Samples batches in flight from the WAL reader to the appender thread during replay
/// (each one WAL record, a few thousand samples at most).
const REPLAY_QUEUE: usize = 16;

/// What the WAL reader hands the appender thread during replay.
enum ReplayBatch {
    /// One samples record, references already mapped to series.
    Samples(Vec<(SeriesHandle, i64, f64)>),
    /// Answered once everything sent before is appended.
    Barrier(std::sync::mpsc::Sender<()>),
}

/// Counters of what the head did since it was opened (for metrics).
#[derive(Debug, Default)]
pub struct HeadCounters {
    /// Blocks written.
    pub blocks_cut: AtomicU64,
    /// Block writes that failed (retried at the next compaction).
    pub block_cut_failures: AtomicU64,
    /// Checkpoints written.
    pub checkpoints: AtomicU64,
    /// Checkpoints that failed (retried at the next compaction).
    pub checkpoint_failures: AtomicU64,
    /// WAL segments deleted by checkpoints.
    pub segments_deleted: AtomicU64,
    /// Series dropped by head truncation.
    pub series_removed: AtomicU64,
    /// Blocks deleted by retention.
    pub blocks_deleted: AtomicU64,
    /// Blocks past retention kept because they are not shipped yet (counted per compaction).
    pub blocks_waiting_for_shipping: AtomicU64,
    /// WAL writes that failed (pushes answered 5xx).
    pub wal_write_failures: AtomicU64,
}

/// Per-tenant storage beside the store's head.
struct TenantDb {
    dir: PathBuf,
    /// The tenant's WAL; the lock also orders store appends with their log records (see the
    /// module doc). A std `Mutex`: held only in blocking code, never across an `.await`.
    wal: Mutex<Wal>,
    /// Complete blocks, by directory name.
    blocks: RwLock<Vec<(String, BlockMeta)>>,
    /// Serialises compactions of this tenant.
    compacting: Mutex<()>,
}

/// Store + WAL + blocks of one ingester.
pub struct Head {
    store: Store,
    block_readers: crate::block::BlockReaderCache,
    dir: Option<PathBuf>,
    options: HeadOptions,
    tenants: RwLock<HashMap<String, Arc<TenantDb>>>,
    counters: HeadCounters,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("dir", &self.dir)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Block names the shipper recorded as uploaded in `<tenant dir>/mimir.shipper.json`
/// (Mimir's marker: `{"version": 1, "shipped": {"<ULID>": <unix seconds>}}`). A missing,
/// oversized or unreadable marker ships nothing (so nothing is deleted early).
fn shipped_blocks(tenant_dir: &Path) -> std::collections::HashSet<String> {
    let path = tenant_dir.join("mimir.shipper.json");
    let Ok(meta) = fs::metadata(&path) else {
        return Default::default();
    };
    if meta.len() > 16 << 20 {
        return Default::default();
    }
    let Ok(bytes) = fs::read(&path) else {
        return Default::default();
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) if v.get("version").and_then(serde_json::Value::as_u64) == Some(1) => v
            .get("shipped")
            .and_then(serde_json::Value::as_object)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default(),
        _ => {
            tracing::warn!(marker = %path.display(), "unreadable shipper marker: blocks past retention are kept");
            Default::default()
        }
    }
}

/// The directory name of a tenant. Valid tenant ids (see the dataplane's tenant rules) are used
/// as they are, as Mimir does; any other byte is written `%XX`, and the empty id as `%`, so every
/// id maps to one safe name and back.
pub fn tenant_dir_name(tenant: &str) -> String {
    if tenant.is_empty() {
        return "%".to_owned();
    }
    let plain = tenant != "." && tenant != "..";
    let mut s = String::with_capacity(tenant.len());
    for b in tenant.bytes() {
        let c = char::from(b);
        if plain && (c.is_ascii_alphanumeric() || "!-_.*'()".contains(c)) {
            s.push(c);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

/// The tenant id of a directory name from [`tenant_dir_name`]; `None` for other names.
pub fn tenant_of_dir_name(name: &str) -> Option<String> {
    if name == "%" {
        return Some(String::new());
    }
    let mut out = Vec::with_capacity(name.len());
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let id = String::from_utf8(out).ok()?;
    (tenant_dir_name(&id) == name).then_some(id)
}

impl Head {
    /// A head without a directory: nothing survives a restart, nothing is ever cut.
    pub fn in_memory(config: StoreConfig) -> Head {
        Head {
            store: Store::new(config),
            block_readers: crate::block::BlockReaderCache::new(0),
            dir: None,
            options: HeadOptions {
                store: config,
                ..HeadOptions::default()
            },
            tenants: RwLock::new(HashMap::new()),
            counters: HeadCounters::default(),
        }
    }

    /// [`Head::open_with`] without blocks or retention: replays and logs, never cuts.
    pub fn open(
        dir: impl AsRef<Path>,
        store_config: StoreConfig,
        wal_config: WalConfig,
    ) -> Result<(Head, ReplayStats), HeadError> {
        Head::open_with(
            dir,
            HeadOptions {
                store: store_config,
                wal: wal_config,
                retention_ms: 0,
                blocks: None,
                ..HeadOptions::default()
            },
        )
    }

    /// Opens the TSDB directory `dir` (created if missing): replays every tenant found (see
    /// the module doc) and opens their WALs for appending.
    pub fn open_with(
        dir: impl AsRef<Path>,
        options: HeadOptions,
    ) -> Result<(Head, ReplayStats), HeadError> {
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let head = Head {
            store: Store::with_chunk_dir(options.store, &dir),
            block_readers: crate::block::BlockReaderCache::new(options.block_readers),
            dir: Some(dir.clone()),
            options,
            tenants: RwLock::new(HashMap::new()),
            counters: HeadCounters::default(),
        };
        let mut stats = ReplayStats::default();
        let mut names = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("list", &dir))? {
            let entry = entry.map_err(io_err("list", &dir))?;
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            match entry.file_name().to_str().and_then(tenant_of_dir_name) {
                Some(tenant) if is_dir => names.push(tenant),
                _ => stats.skipped_files += 1,
            }
        }
        names.sort();
        for tenant in names {
            let started = Instant::now();
            let s = head.replay_tenant(&tenant)?;
            tracing::info!(
                tenant,
                segments = s.segments,
                records = s.records,
                samples = s.samples,
                truncated_segments = s.truncated_segments,
                series = head.store.series_count(&tenant),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "tenant WAL replayed"
            );
            stats.add(&s);
        }
        Ok((head, stats))
    }

    fn replay_tenant(&self, tenant: &str) -> Result<ReplayStats, HeadError> {
        let Some(root) = &self.dir else {
            return Ok(ReplayStats::default());
        };
        let tdir = root.join(tenant_dir_name(tenant));
        let mut blocks = Vec::new();
        if let Some(store) = &self.options.blocks {
            for entry in fs::read_dir(&tdir).map_err(io_err("list", &tdir))? {
                let entry = entry.map_err(io_err("list", &tdir))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                let path = entry.path();
                if store.is_temporary(&name) {
                    tracing::warn!(block = %path.display(), "removing a half-written block");
                    fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
                } else if store.is_block(&name) {
                    blocks.push((name, store.meta(&path)?));
                }
            }
        }
        blocks.sort_by_key(|(_, m)| m.min_t);
        if let Some(end) = blocks.iter().map(|(_, m)| m.max_t).max() {
            self.store.set_min_valid(tenant, end);
        }
        let wal_dir = tdir.join("wal");
        let prepared = checkpoint::prepare(&wal_dir)?;
        // Series by WAL reference: labels (for checkpoint chunks) and where the series lives,
        // so a samples record appends without hashing its labels again.
        let mut refs: HashMap<
            u64,
            (PackedLabels, Option<SeriesHandle>),
            foldhash::fast::RandomState,
        > = HashMap::default();
        let mut unknown = 0usize;
        let store = &self.store;
        let replay = store.replay_of(tenant);
        // Two threads, as Prometheus replays: this one reads and decodes records and maps
        // references to series; the other appends samples to the series' chunks. Samples go
        // over in record order, so each series gets its samples in order; a series record is
        // applied here before any later samples record can name it; a chunks record (only in
        // a checkpoint, before any samples) waits until the appender has caught up.
        let replay = &replay;
        let stats = std::thread::scope(|scope| -> Result<ReplayStats, HeadError> {
            // The sender lives inside the scope, so even an unwinding reader drops it and
            // the appender ends instead of waiting forever.
            let (tx, rx) = std::sync::mpsc::sync_channel::<ReplayBatch>(REPLAY_QUEUE);
            let appender = scope.spawn(move || {
                let mut run: Vec<(i64, f64)> = Vec::new();
                for batch in rx {
                    match batch {
                        ReplayBatch::Samples(samples) => {
                            for (i, &(h, t, v)) in samples.iter().enumerate() {
                                run.push((t, v));
                                if samples.get(i + 1).is_none_or(|n| n.0 != h) {
                                    replay.samples(h, &run);
                                    run.clear();
                                }
                            }
                        }
                        ReplayBatch::Barrier(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
            let mut sent_since_barrier = false;
            let mut apply = |rec: Record| match rec {
                Record::Series(series) => {
                    for s in series {
                        let handle = replay.series(s.series_ref, &s.labels);
                        refs.insert(s.series_ref, (s.labels, handle));
                    }
                }
                Record::Samples(samples) => {
                    let mut batch = Vec::with_capacity(samples.len());
                    for s in &samples {
                        match refs.get(&s.series_ref) {
                            Some((_, Some(h))) => batch.push((*h, s.t, s.v)),
                            Some((l, None)) => {
                                store.replay_samples(tenant, l, &[(s.t, s.v)]);
                            }
                            None => unknown += 1,
                        }
                    }
                    if !batch.is_empty() && tx.send(ReplayBatch::Samples(batch)).is_ok() {
                        sent_since_barrier = true;
                    }
                }
                Record::Chunks(chunks) => {
                    if std::mem::take(&mut sent_since_barrier) {
                        let (done, wait) = std::sync::mpsc::channel();
                        if tx.send(ReplayBatch::Barrier(done)).is_ok() {
                            let _ = wait.recv();
                        }
                    }
                    for c in chunks {
                        match refs.get(&c.series_ref) {
                            Some((l, _)) => {
                                store.replay_chunk(tenant, l, &c.bytes);
                            }
                            None => unknown += 1,
                        }
                    }
                }
            };
            let read = (|| {
                let mut stats = ReplayStats::default();
                let after = match &prepared.checkpoint {
                    Some((index, cp)) => {
                        stats.add(&checkpoint::replay(cp, &mut apply)?);
                        tracing::info!(tenant, checkpoint = %cp.display(), "WAL checkpoint replayed");
                        Some(*index)
                    }
                    None => None,
                };
                stats.add(&wal::replay(&wal_dir, after, &mut apply)?);
                Ok::<_, HeadError>(stats)
            })();
            drop(tx);
            appender.join().map_err(|_| HeadError::ReplayPanicked)?;
            read
        })?;
        let orphans = self.store.end_replay(tenant);
        if orphans > 0 {
            tracing::info!(
                tenant,
                chunks = orphans,
                "head chunks of series no longer in the WAL left for truncation"
            );
        }
        if unknown > 0 {
            tracing::warn!(
                tenant,
                samples = unknown,
                "WAL samples of unknown series skipped"
            );
        }
        let wal = Wal::open(&wal_dir, self.options.wal)?;
        write_lock(&self.tenants).insert(
            tenant.to_owned(),
            Arc::new(TenantDb {
                dir: tdir,
                wal: Mutex::new(wal),
                blocks: RwLock::new(blocks),
                compacting: Mutex::new(()),
            }),
        );
        Ok(stats)
    }

    /// The tenant's storage, created on its first push. `None` for an in-memory head.
    fn tenant_db(&self, tenant: &str) -> Result<Option<Arc<TenantDb>>, WalError> {
        let Some(root) = &self.dir else {
            return Ok(None);
        };
        if let Some(db) = read_lock(&self.tenants).get(tenant) {
            return Ok(Some(Arc::clone(db)));
        }
        let mut map = write_lock(&self.tenants);
        if let Some(db) = map.get(tenant) {
            return Ok(Some(Arc::clone(db)));
        }
        let tdir = root.join(tenant_dir_name(tenant));
        let wal = Wal::open(tdir.join("wal"), self.options.wal)?;
        let db = Arc::new(TenantDb {
            dir: tdir,
            wal: Mutex::new(wal),
            blocks: RwLock::new(Vec::new()),
            compacting: Mutex::new(()),
        });
        map.insert(tenant.to_owned(), Arc::clone(&db));
        Ok(Some(db))
    }

    /// The series store (the heads), for queries of recent data and counts.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The open block readers kept for queries (size and hit/miss/eviction counts).
    pub fn block_readers(&self) -> &crate::block::BlockReaderCache {
        &self.block_readers
    }

    /// What the head did since it was opened.
    pub fn counters(&self) -> &HeadCounters {
        &self.counters
    }

    /// Appends validated series of `tenant` and logs them (see the module doc).
    pub fn push(&self, tenant: &str, series: &[TimeSeries]) -> Result<PushSummary, WalError> {
        self.push_series(
            tenant,
            series
                .iter()
                .map(|ts| (ts.labels.as_slice(), ts.samples.as_slice())),
        )
    }

    /// [`Head::push`] of series given as (labels, samples), owned or borrowed from a request
    /// body ([`crate::validate::ValidSeries`]).
    pub fn push_series<'s, L: LabelPair + 's>(
        &self,
        tenant: &str,
        series: impl IntoIterator<Item = (&'s [L], &'s [Sample])>,
    ) -> Result<PushSummary, WalError> {
        let db = self.tenant_db(tenant)?;
        let mut wal = db.as_ref().map(|db| lock(&db.wal));
        let mut summary = PushSummary::default();
        let mut new_series = Vec::new();
        let mut samples = Vec::new();
        for (labels, series_samples) in series {
            let out = self.store.append(tenant, labels, series_samples);
            summary.appended += out.appended;
            summary.duplicates += out.duplicates;
            summary.rejected += out.rejected;
            if let (None, Some(error)) = (&summary.first_error, out.first_error) {
                summary.first_error = Some(SampleError {
                    error,
                    series: SeriesText::new(labels),
                });
            }
            if let Some(l) = out.new_series {
                new_series.push((out.series_ref, l));
            }
            samples.extend(out.to_log.iter().map(|s| RefSample {
                series_ref: out.series_ref,
                t: s.timestamp,
                v: s.value,
            }));
        }
        if let Some(wal) = &mut wal {
            let refs: Vec<(u64, &PackedLabels)> = new_series.iter().map(|(r, l)| (*r, l)).collect();
            if let Err(e) = wal.log(&refs, &samples) {
                self.counters
                    .wal_write_failures
                    .fetch_add(1, Ordering::Relaxed);
                for (_, l) in &new_series {
                    self.store.mark_unlogged(tenant, l);
                }
                return Err(e);
            }
        }
        Ok(summary)
    }

    /// Series of `tenant` matching every matcher with samples in `[start_ms, end_ms]`, from the
    /// blocks and the head, merged per series (sorted by labels, samples by time, each
    /// timestamp once).
    pub fn query(
        &self,
        tenant: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<TimeSeries>, BlockError> {
        let head = self.store.query(tenant, matchers, start_ms, end_ms);
        let (Some(blocks), Some(db)) = (
            &self.options.blocks,
            read_lock(&self.tenants).get(tenant).cloned(),
        ) else {
            return Ok(head);
        };
        let overlapping: Vec<String> = read_lock(&db.blocks)
            .iter()
            .filter(|(_, m)| m.max_t > start_ms && m.min_t <= end_ms)
            .map(|(n, _)| n.clone())
            .collect();
        if overlapping.is_empty() {
            return Ok(head);
        }
        let mut merged: std::collections::BTreeMap<Vec<crate::prompb::Label>, Vec<Sample>> =
            std::collections::BTreeMap::new();
        for name in overlapping {
            let dir = db.dir.join(&name);
            for ts in blocks.query_cached(&self.block_readers, &dir, matchers, start_ms, end_ms)? {
                merged.entry(ts.labels).or_default().extend(ts.samples);
            }
        }
        for ts in head {
            merged.entry(ts.labels).or_default().extend(ts.samples);
        }
        Ok(merged
            .into_iter()
            .map(|(labels, mut samples)| {
                samples.sort_by_key(|s| s.timestamp);
                samples.dedup_by_key(|s| s.timestamp);
                TimeSeries {
                    labels,
                    samples,
                    ..Default::default()
                }
            })
            .collect())
    }

    /// Cuts, truncates, checkpoints and applies retention for every tenant (see the module
    /// doc); `now_ms` is the wall clock, for retention. Errors are counted and reported; the
    /// work is retried at the next call.
    pub fn compact(&self, now_ms: i64) -> CompactReport {
        let mut report = CompactReport::default();
        let dbs: Vec<(String, Arc<TenantDb>)> = read_lock(&self.tenants)
            .iter()
            .map(|(t, db)| (t.clone(), Arc::clone(db)))
            .collect();
        for (tenant, db) in dbs {
            if let Err(e) = self.compact_tenant(&tenant, &db, now_ms, &mut report) {
                tracing::warn!(tenant, error = %e, "head compaction failed; retried next time");
                report.errors.push(format!("{tenant}: {e}"));
            }
        }
        report
    }

    fn compact_tenant(
        &self,
        tenant: &str,
        db: &TenantDb,
        now_ms: i64,
        report: &mut CompactReport,
    ) -> Result<(), HeadError> {
        let _one_at_a_time = lock(&db.compacting);
        let Some(blocks) = &self.options.blocks else {
            return Ok(());
        };
        let range = self.store.config().block_range_ms;
        let mut cut = false;
        while let Some((min_t, max_t)) = self.store.time_bounds(tenant) {
            if max_t.saturating_sub(min_t) <= range / 2 * 3 {
                break;
            }
            let lo = min_t.div_euclid(range) * range;
            let hi = lo.saturating_add(range);
            // From here on no push can add to the range being written.
            self.store.set_min_valid(tenant, hi);
            let series = self.store.block_series(tenant, lo, hi);
            if !series.is_empty() {
                let started = Instant::now();
                let written = match blocks.write(&db.dir, tenant, lo, hi, &series) {
                    Ok(n) => n,
                    Err(e) => {
                        self.counters
                            .block_cut_failures
                            .fetch_add(1, Ordering::Relaxed);
                        return Err(e.into());
                    }
                };
                if let Some(name) = written {
                    tracing::info!(
                        tenant,
                        block = name,
                        min_t = lo,
                        max_t = hi,
                        series = series.len(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "block cut from the head"
                    );
                    self.counters.blocks_cut.fetch_add(1, Ordering::Relaxed);
                    report.blocks_cut += 1;
                    write_lock(&db.blocks).push((
                        name,
                        BlockMeta {
                            min_t: lo,
                            max_t: hi,
                        },
                    ));
                }
            }
            let gone = self.store.truncate(tenant, hi);
            self.counters
                .series_removed
                .fetch_add(gone.series as u64, Ordering::Relaxed);
            cut = true;
        }
        if cut {
            let wal_dir = db.dir.join("wal");
            let result = lock(&db.wal)
                .cut_segment()
                .and_then(|last| checkpoint::write(&wal_dir, last, &self.store, tenant));
            match result {
                Ok(s) => {
                    self.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .segments_deleted
                        .fetch_add(s.segments_deleted as u64, Ordering::Relaxed);
                    report.checkpoints += 1;
                    tracing::info!(
                        tenant,
                        series = s.series,
                        chunks = s.chunks,
                        bytes = s.bytes,
                        segments_deleted = s.segments_deleted,
                        "WAL checkpoint written"
                    );
                }
                Err(e) => {
                    self.counters
                        .checkpoint_failures
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(e.into());
                }
            }
        }
        if self.options.retention_ms > 0 {
            let oldest = now_ms.saturating_sub(self.options.retention_ms);
            let mut expired: Vec<String> = read_lock(&db.blocks)
                .iter()
                .filter(|(_, m)| m.max_t < oldest)
                .map(|(n, _)| n.clone())
                .collect();
            if self.options.retention_waits_for_shipping && !expired.is_empty() {
                let shipped = shipped_blocks(&db.dir);
                let before = expired.len();
                expired.retain(|n| shipped.contains(n));
                let waiting = before - expired.len();
                if waiting > 0 {
                    self.counters
                        .blocks_waiting_for_shipping
                        .fetch_add(waiting as u64, Ordering::Relaxed);
                    tracing::info!(
                        tenant,
                        blocks = waiting,
                        "blocks past retention kept until they are shipped"
                    );
                }
            }
            for name in expired {
                let path = db.dir.join(&name);
                self.block_readers.forget(&path);
                fs::remove_dir_all(&path).map_err(io_err("remove block", &path))?;
                write_lock(&db.blocks).retain(|(n, _)| *n != name);
                self.counters.blocks_deleted.fetch_add(1, Ordering::Relaxed);
                report.blocks_deleted += 1;
                tracing::info!(tenant, block = name, "block past retention deleted");
            }
        }
        Ok(())
    }

    /// The complete blocks of `tenant`, oldest first: directory and time range.
    pub fn blocks(&self, tenant: &str) -> Vec<(PathBuf, BlockMeta)> {
        read_lock(&self.tenants)
            .get(tenant)
            .map_or_else(Vec::new, |db| {
                let mut v: Vec<_> = read_lock(&db.blocks)
                    .iter()
                    .map(|(n, m)| (db.dir.join(n), *m))
                    .collect();
                v.sort_by_key(|(_, m)| m.min_t);
                v
            })
    }

    /// Bytes of every tenant's WAL directory (segments and checkpoint) on disk.
    pub fn wal_disk_bytes(&self) -> u64 {
        read_lock(&self.tenants)
            .values()
            .map(|db| wal::dir_size(&db.dir.join("wal")))
            .sum()
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// What one [`Head::compact`] call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Blocks written.
    pub blocks_cut: usize,
    /// Checkpoints written.
    pub checkpoints: usize,
    /// Blocks deleted by retention.
    pub blocks_deleted: usize,
    /// Failures, one line per tenant (retried next time).
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::PrometheusBlocks;
    use crate::prompb::{Label, Sample};

    fn ts(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![Label::new("__name__", name)],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    const MIN: i64 = 60_000;

    fn options(range_min: i64) -> HeadOptions {
        HeadOptions {
            store: StoreConfig {
                block_range_ms: range_min * MIN,
                shards: 4,
                ..StoreConfig::default()
            },
            wal: WalConfig::default(),
            retention_ms: 0,
            blocks: Some(Arc::new(PrometheusBlocks)),
            ..HeadOptions::default()
        }
    }

    /// Pushes `n` series of tenant `t`, one sample each at `t_ms`, value `t_ms + i`.
    fn scrape(head: &Head, tenant: &str, n: usize, t_ms: i64) {
        let series: Vec<TimeSeries> = (0..n)
            .map(|i| TimeSeries {
                labels: vec![Label::new("__name__", "m"), Label::new("i", i.to_string())],
                samples: vec![Sample {
                    value: (t_ms + i as i64) as f64,
                    timestamp: t_ms,
                }],
                ..Default::default()
            })
            .collect();
        let s = head.push(tenant, &series).unwrap();
        assert_eq!(s.appended, n, "{:?}", s.first_error);
    }

    fn all(head: &Head, tenant: &str) -> Vec<TimeSeries> {
        head.query(tenant, &[], i64::MIN, i64::MAX).unwrap()
    }

    #[test]
    fn full_chunks_live_in_chunk_files_and_come_back_from_them_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let opts = HeadOptions {
            blocks: None,
            ..options(120)
        };
        let (head, _) = Head::open_with(dir.path(), opts.clone()).unwrap();
        // 50 series × 300 samples 15 s apart: two full chunks each, the third open.
        for k in 0..300 {
            scrape(&head, "t", 50, k * 15_000);
        }
        let files = head.store().chunk_files("t").unwrap();
        assert_eq!(files.chunks_written, 100);
        assert!(files.files == 1 && files.bytes > 0);
        let before = all(&head, "t");
        let mem_before = head.store().memory_bytes("t");
        drop(head);
        let (head, _) = Head::open_with(dir.path(), opts.clone()).unwrap();
        assert_eq!(all(&head, "t"), before);
        // The replay took the full chunks from the files instead of re-encoding them.
        assert!(head.store().memory_bytes("t") <= mem_before + 64 * 50);
        // Append answers still know the newest sample: the same value is a duplicate,
        // another one is refused.
        let last = 299 * 15_000;
        let same = TimeSeries {
            labels: vec![Label::new("__name__", "m"), Label::new("i", "3")],
            samples: vec![Sample {
                value: (last + 3) as f64,
                timestamp: last,
            }],
            ..Default::default()
        };
        assert_eq!(
            head.push("t", std::slice::from_ref(&same))
                .unwrap()
                .duplicates,
            1
        );
        let mut other = same;
        other.samples[0].value = 0.5;
        assert!(head.push("t", &[other]).unwrap().first_error.is_some());
        // Torn chunk files: the WAL still has every sample.
        drop(head);
        let cdir = dir.path().join("t").join("chunks_head");
        for e in fs::read_dir(&cdir).unwrap() {
            let p = e.unwrap().path();
            let len = fs::metadata(&p).unwrap().len();
            fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
        let (head, _) = Head::open_with(dir.path(), opts).unwrap();
        assert_eq!(all(&head, "t"), before);
    }

    #[test]
    fn a_push_reports_the_first_refused_sample_with_its_series() {
        let head = Head::in_memory(StoreConfig::default());
        let summary = head
            .push(
                "t",
                &[ts("a", &[(10, 1.0)]), ts("b", &[(5, 1.0), (4, 1.0)])],
            )
            .unwrap();
        assert_eq!((summary.appended, summary.rejected), (2, 1));
        let err = summary.first_error.unwrap();
        assert_eq!(
            err.to_string(),
            format!("{}, series: '{{__name__=\"b\"}}'", err.error)
        );
        assert!(err.to_string().starts_with("out of order sample"));
    }

    #[test]
    fn acknowledged_samples_of_every_tenant_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let (head, _) =
                Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
            head.push("t", &[ts("a", &[(10, 1.0), (20, 2.0)])]).unwrap();
            head.push("", &[ts("a", &[(10, 5.0)])]).unwrap();
            head.push("t", &[ts("a", &[(30, 3.0)]), ts("b", &[(30, f64::NAN)])])
                .unwrap();
            (all(&head, "t"), all(&head, ""))
        };
        assert!(dir.path().join("t/wal/00000000").exists());
        assert!(dir.path().join("%/wal/00000000").exists());
        let (head, stats) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        assert_eq!(stats.samples, 5);
        let after = (all(&head, "t"), all(&head, ""));
        assert_eq!(format!("{after:?}"), format!("{before:?}"));
        // Appends go on after the replayed ones, new series get fresh references.
        head.push("t", &[ts("a", &[(40, 4.0)]), ts("c", &[(40, 4.0)])])
            .unwrap();
        drop(head);
        let (head, _) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        assert_eq!(head.store().series_count("t"), 3);
        assert_eq!(head.store().sample_count("t"), 6);
    }

    #[test]
    fn a_retried_push_logs_its_duplicates_again() {
        let dir = tempfile::tempdir().unwrap();
        let (head, _) =
            Head::open(dir.path(), StoreConfig::default(), WalConfig::default()).unwrap();
        let push = [ts("a", &[(10, 1.0)])];
        head.push("t", &push).unwrap();
        let again = head.push("t", &push).unwrap();
        assert_eq!((again.appended, again.duplicates), (0, 1));
        drop(head);
        let stats = wal::replay(dir.path().join("t/wal"), None, |_| {}).unwrap();
        assert_eq!(stats.samples, 2);
    }

    #[test]
    fn the_head_is_cut_into_blocks_truncated_and_checkpointed_and_replays_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let (head, _) = Head::open_with(dir.path(), options(10)).unwrap();
        // 20 series scraped every 15 s for 16 minutes: more than 1.5 ranges of 10 minutes.
        for k in 0..64 {
            scrape(&head, "t", 20, k * 15_000);
        }
        let expected = all(&head, "t");
        let report = head.compact(0);
        assert_eq!(
            (report.blocks_cut, report.checkpoints),
            (1, 1),
            "{report:?}"
        );
        let blocks = head.blocks("t");
        assert_eq!(blocks.len(), 1);
        assert_eq!(
            blocks[0].1,
            BlockMeta {
                min_t: 0,
                max_t: 10 * MIN
            }
        );
        // The head kept only what is past the block; queries still see everything.
        assert_eq!(head.store().time_bounds("t"), Some((10 * MIN, 63 * 15_000)));
        assert_eq!(head.store().sample_count("t"), 20 * 24);
        assert_eq!(all(&head, "t"), expected);
        // The block's range is closed for writes.
        let late = head.push("t", &[ts("m", &[(10 * MIN - 1, 1.0)])]).unwrap();
        assert!(matches!(
            late.first_error.unwrap().error,
            AppendError::OutOfBounds { .. }
        ));
        // Old segments are gone, a checkpoint replaced them.
        let wal_dir = dir.path().join("t/wal");
        assert_eq!(wal::list_segments(&wal_dir).unwrap().0, vec![1]);
        assert!(wal_dir.join("checkpoint.00000000").is_dir());
        // More samples after the checkpoint, then a restart: checkpoint + newer segment.
        for k in 64..70 {
            scrape(&head, "t", 20, k * 15_000);
        }
        let expected = all(&head, "t");
        drop(head);
        let (head, stats) = Head::open_with(dir.path(), options(10)).unwrap();
        assert_eq!(
            stats.samples,
            20 * 6,
            "only the newer segment's samples are replayed"
        );
        assert_eq!(all(&head, "t"), expected);
        assert_eq!(head.store().sample_count("t"), 20 * 30);
        // Compaction with nothing to cut does nothing.
        assert_eq!(head.compact(0), CompactReport::default());
    }

    #[test]
    fn a_restart_after_a_cut_without_checkpoint_does_not_replay_the_blocks_samples() {
        let dir = tempfile::tempdir().unwrap();
        let (head, _) = Head::open_with(dir.path(), options(10)).unwrap();
        for k in 0..64 {
            scrape(&head, "t", 5, k * 15_000);
        }
        let expected = all(&head, "t");
        // As if the process died right after writing the block: write it by hand.
        let series = head.store().block_series("t", 0, 10 * MIN);
        let name = PrometheusBlocks
            .write(&dir.path().join("t"), "t", 0, 10 * MIN, &series)
            .unwrap()
            .unwrap();
        // And a half-written one, as a crash in the middle of a cut leaves it.
        let half = dir
            .path()
            .join("t/01KC0000000000000000000000.tmp-for-creation");
        fs::create_dir_all(half.join("chunks")).unwrap();
        drop(head);
        let (head, _) = Head::open_with(dir.path(), options(10)).unwrap();
        assert!(!half.exists());
        assert_eq!(head.blocks("t").len(), 1);
        assert!(head.blocks("t")[0].0.ends_with(&name));
        // The head holds only what the block does not, and nothing is cut twice.
        assert_eq!(head.store().time_bounds("t").unwrap().0, 10 * MIN);
        assert_eq!(head.compact(0).blocks_cut, 0);
        assert_eq!(all(&head, "t"), expected);
    }

    /// A head with 10 minute blocks and 30 minute retention, scraped for 62.25 minutes
    /// and compacted along the way and at the end: five blocks were cut, three of them
    /// end before now − retention.
    fn head_past_retention(dir: &Path, waits_for_shipping: bool) -> Head {
        let mut opts = options(10);
        opts.retention_ms = 30 * MIN;
        opts.retention_waits_for_shipping = waits_for_shipping;
        let (head, _) = Head::open_with(dir, opts).unwrap();
        for k in 0..(4 * 60 + 10) {
            scrape(&head, "t", 2, k * 15_000);
            if k % 40 == 0 {
                head.compact(k * 15_000);
            }
        }
        head.compact((4 * 60 + 9) * 15_000);
        head
    }

    #[test]
    fn blocks_past_retention_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // Ranges [0,10), [10,20), ... minutes; now = 62.25 min: blocks ending before
        // 32.25 min are gone.
        let head = head_past_retention(dir.path(), false);
        let kept: Vec<i64> = head
            .blocks("t")
            .iter()
            .map(|(_, m)| m.min_t / MIN)
            .collect();
        assert_eq!(kept, [30, 40]);
        assert_eq!(head.counters().blocks_deleted.load(Ordering::Relaxed), 3);
        let on_disk = fs::read_dir(dir.path().join("t"))
            .unwrap()
            .filter(|e| {
                PrometheusBlocks.is_block(e.as_ref().unwrap().file_name().to_str().unwrap())
            })
            .count();
        assert_eq!(on_disk, 2);
    }

    #[test]
    fn with_shipping_on_retention_keeps_a_block_until_it_is_shipped() {
        let dir = tempfile::tempdir().unwrap();
        let head = head_past_retention(dir.path(), true);
        // Nothing shipped yet: all five blocks stay, three of them past retention.
        assert_eq!(head.blocks("t").len(), 5);
        assert!(
            head.counters()
                .blocks_waiting_for_shipping
                .load(Ordering::Relaxed)
                >= 3
        );
        // The shipper records the two oldest: those go, the third waits.
        let names: Vec<String> = head
            .blocks("t")
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        let marker = format!(
            r#"{{"version":1,"shipped":{{"{}":1.5,"{}":2.5}}}}"#,
            names[0], names[1]
        );
        fs::write(dir.path().join("t").join("mimir.shipper.json"), marker).unwrap();
        head.compact((4 * 60 + 9) * 15_000);
        let kept: Vec<i64> = head
            .blocks("t")
            .iter()
            .map(|(_, m)| m.min_t / MIN)
            .collect();
        assert_eq!(kept, [20, 30, 40]);
    }

    #[test]
    fn block_readers_are_kept_open_between_queries_within_their_bound() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(10);
        opts.block_readers = 2;
        let (head, _) = Head::open_with(dir.path(), opts).unwrap();
        for k in 0..(4 * 60 + 10) {
            scrape(&head, "t", 2, k * 15_000);
            if k % 40 == 0 {
                head.compact(k * 15_000);
            }
        }
        let blocks = head.blocks("t").len();
        assert!(blocks > 2);
        let first = all(&head, "t");
        let cache = head.block_readers();
        assert_eq!(cache.len(), 2, "bounded");
        assert_eq!(cache.misses.load(Ordering::Relaxed), blocks as u64);
        assert_eq!(cache.evictions.load(Ordering::Relaxed), blocks as u64 - 2);
        // A query of the newest range only finds its reader open.
        let newest = head.blocks("t").last().unwrap().1;
        let again = head
            .query("t", &[], newest.min_t, newest.max_t - 1)
            .unwrap();
        assert!(!again.is_empty());
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
        assert_eq!(all(&head, "t"), first);
    }

    #[test]
    fn tenant_directory_names_are_safe_and_reversible() {
        for (id, name) in [
            ("team-a", "team-a"),
            ("", "%"),
            (".", "%2E"),
            ("..", "%2E%2E"),
            ("a/b", "a%2Fb"),
            ("x%y", "x%25y"),
        ] {
            assert_eq!(tenant_dir_name(id), name);
            assert_eq!(tenant_of_dir_name(name).as_deref(), Some(id));
        }
        assert_eq!(tenant_of_dir_name("%zz"), None);
        assert_eq!(
            tenant_of_dir_name("a%2fb"),
            None,
            "not the canonical spelling"
        );
    }
}
