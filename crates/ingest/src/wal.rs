//! The ingester's write-ahead log: append-only segment files of checksummed records.
//!
//! # On-disk format
//! A WAL is a directory of segment files named by an 8-digit, zero-padded decimal index
//! (`00000000`, `00000001`, ...), read in index order. Other file names are ignored (and counted).
//! A segment is a sequence of records:
//!
//! ```text
//! record  = len:u32le  crc:u32le  payload[len]
//!           crc = CRC-32 (IEEE, as zlib/Go's crc32.ChecksumIEEE) of payload
//! payload = kind:u8 = 1 (samples)
//!           tenant:bytes
//!           n_labels:uvarint  (name:bytes value:bytes){n_labels}
//!           n_samples:uvarint (timestamp_ms:i64le value_bits:u64le){n_samples}
//! bytes   = len:uvarint  utf8[len]
//! ```
//!
//! One record holds the samples one push appended to one series; all records of one
//! [`Wal::append`] call are written with a single `write` and, by default, one `fsync`.
//!
//! # Durability and cost
//! With [`WalConfig::sync_every_write`] (the default) `append` returns only after `fdatasync`, so
//! a sample acknowledged after `append` survives `kill -9` and power loss. That costs one disk
//! flush per push: the `wal_append` benchmark measured 0.65–3.6 ms per 500-sample push with
//! `fdatasync` against 0.3–0.5 ms without, on a shared VM (crate README); spinning disks take
//! ~10 ms per flush. Batching a whole push in one call is what keeps it
//! affordable. Without it, data sits in the page cache: it survives `kill -9` (the kernel still
//! writes it) but not a machine crash; call [`Wal::sync`] periodically then.
//!
//! # Replay
//! [`replay`] reads every segment in order. A record that is cut short (a torn write at a
//! crash), has an impossible length or a wrong checksum ends its segment: the file is truncated
//! there (so the next writer never appends after garbage) and the event is counted in
//! [`ReplayStats`]; the following segments are still read. A record with a good checksum but a
//! payload we cannot decode is skipped and counted. Garbage never panics; only I/O errors stop
//! replay. [`Wal::open`] always starts a fresh segment, so a writer never extends a segment that
//! might end in a torn record.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::prompb::{Label, Sample};
use crate::store::Store;

/// Segment name width (digits).
const SEGMENT_DIGITS: usize = 8;
/// Record header: length + checksum.
const HEADER_LEN: usize = 8;
/// Payload kind of a samples record.
const KIND_SAMPLES: u8 = 1;

/// WAL settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// Size at which a new segment is started, in bytes. Default 128 MiB, Prometheus' WAL segment
    /// size; smaller segments only matter once old segments get deleted after a checkpoint.
    pub segment_size: u64,
    /// `fdatasync` after every [`Wal::append`] (default `true`): see the module doc for what it
    /// buys and costs.
    pub sync_every_write: bool,
}

impl Default for WalConfig {
    fn default() -> Self {
        WalConfig {
            segment_size: 128 << 20,
            sync_every_write: true,
        }
    }
}

/// A WAL failure. Only I/O errors exist: bad bytes on disk are counted by [`replay`], never
/// returned. After a failed [`Wal::append`] the samples of that call must be treated as not
/// logged (answer 5xx); the next append starts a new segment so later records stay readable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// A file-system operation failed.
    #[error("wal: cannot {op} {path}: {source}")]
    Io {
        /// What was attempted.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// One record would exceed the 4 GiB the length field can describe.
    #[error("wal: record of {0} bytes is too large")]
    RecordTooLarge(usize),
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(io::Error) -> WalError + 'p {
    move |source| WalError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// The samples of one series, borrowed, as handed to [`Wal::append`].
#[derive(Clone, Copy, Debug)]
pub struct WalEntry<'a> {
    /// Tenant id.
    pub tenant: &'a str,
    /// The series' labels (sorted, as stored).
    pub labels: &'a [Label],
    /// The samples to log.
    pub samples: &'a [Sample],
}

/// One record read back by [`replay`].
#[derive(Clone, Debug, PartialEq)]
pub struct WalRecord {
    /// Tenant id.
    pub tenant: String,
    /// The series' labels.
    pub labels: Vec<Label>,
    /// The logged samples.
    pub samples: Vec<Sample>,
}

/// An open WAL for appending. Not internally synchronised: an ingester keeps it behind a
/// `Mutex` (a std one: `append` blocks on the disk and is called from blocking code).
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    file: File,
    path: PathBuf,
    index: u64,
    len: u64,
    /// Set after a failed write: the segment may end in a partial record.
    broken: bool,
    /// Reused encoding buffer.
    buf: Vec<u8>,
}

fn segment_name(index: u64) -> String {
    format!("{index:0SEGMENT_DIGITS$}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    if name.len() == SEGMENT_DIGITS && name.bytes().all(|b| b.is_ascii_digit()) {
        name.parse().ok()
    } else {
        None
    }
}

/// Segment indices in `dir`, sorted, and the number of other entries.
fn list_segments(dir: &Path) -> Result<(Vec<u64>, usize), WalError> {
    let mut segments = Vec::new();
    let mut others = 0;
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((segments, 0)),
        Err(e) => return Err(io_err("list", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", dir))?;
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        match entry.file_name().to_str().and_then(parse_segment_name) {
            Some(i) if is_file => segments.push(i),
            _ => others += 1,
        }
    }
    segments.sort_unstable();
    Ok((segments, others))
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    // Makes a new segment's directory entry durable; without it a crash could lose the file.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

impl Wal {
    /// Opens the WAL in `dir` (created if missing) for appending, in a new segment after the
    /// existing ones. Run [`replay`] first: opening does not read old segments.
    pub fn open(dir: impl AsRef<Path>, config: WalConfig) -> Result<Wal, WalError> {
        let dir = dir.as_ref().to_owned();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        let (segments, _) = list_segments(&dir)?;
        let index = segments.last().map_or(0, |last| last + 1);
        let (file, path) = Self::create_segment(&dir, index)?;
        Ok(Wal {
            dir,
            config,
            file,
            path,
            index,
            len: 0,
            broken: false,
            buf: Vec::new(),
        })
    }

    fn create_segment(dir: &Path, index: u64) -> Result<(File, PathBuf), WalError> {
        let path = dir.join(segment_name(index));
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("create segment", &path))?;
        sync_dir(dir)?;
        Ok((file, path))
    }

    fn rotate(&mut self) -> Result<(), WalError> {
        if !self.broken {
            // The old segment is complete: make it durable before moving on.
            self.file
                .sync_data()
                .map_err(io_err("sync segment", &self.path))?;
        }
        let (file, path) = Self::create_segment(&self.dir, self.index + 1)?;
        self.index += 1;
        self.file = file;
        self.path = path;
        self.len = 0;
        self.broken = false;
        Ok(())
    }

    /// The index of the segment being written.
    pub fn segment_index(&self) -> u64 {
        self.index
    }

    /// Logs `entries` as one write (and one `fdatasync` when `sync_every_write`). When this
    /// returns `Ok`, the records are on disk as far as the config promises. Entries without
    /// samples are skipped.
    pub fn append(&mut self, entries: &[WalEntry<'_>]) -> Result<(), WalError> {
        self.buf.clear();
        for e in entries.iter().filter(|e| !e.samples.is_empty()) {
            encode_record(&mut self.buf, e)?;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if self.broken
            || (self.len > 0 && self.len + self.buf.len() as u64 > self.config.segment_size)
        {
            self.rotate()?;
        }
        let result = self
            .file
            .write_all(&self.buf)
            .map_err(io_err("write segment", &self.path))
            .and_then(|()| {
                if self.config.sync_every_write {
                    self.file
                        .sync_data()
                        .map_err(io_err("sync segment", &self.path))
                } else {
                    Ok(())
                }
            });
        match result {
            Ok(()) => {
                self.len += self.buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }

    /// Flushes everything appended so far to disk (for `sync_every_write = false`).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(io_err("sync segment", &self.path))
    }
}

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    put_uvarint(buf, b.len() as u64);
    buf.extend_from_slice(b);
}

fn encode_record(buf: &mut Vec<u8>, e: &WalEntry<'_>) -> Result<(), WalError> {
    let start = buf.len();
    buf.extend_from_slice(&[0; HEADER_LEN]);
    buf.push(KIND_SAMPLES);
    put_bytes(buf, e.tenant.as_bytes());
    put_uvarint(buf, e.labels.len() as u64);
    for l in e.labels {
        put_bytes(buf, l.name.as_bytes());
        put_bytes(buf, l.value.as_bytes());
    }
    put_uvarint(buf, e.samples.len() as u64);
    for s in e.samples {
        buf.extend_from_slice(&s.timestamp.to_le_bytes());
        buf.extend_from_slice(&s.value.to_bits().to_le_bytes());
    }
    let payload = &buf[start + HEADER_LEN..];
    let len = u32::try_from(payload.len()).map_err(|_| WalError::RecordTooLarge(payload.len()))?;
    let crc = crc32fast::hash(payload);
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// A bounds-checked reader over a payload; every method returns `None` past the end.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn uvarint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for i in 0..10 {
            let b = *self.take(1)?.first()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    fn string(&mut self) -> Option<String> {
        let n = usize::try_from(self.uvarint()?).ok()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn u64le(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn decode_payload(payload: &[u8]) -> Option<WalRecord> {
    let mut c = Cursor(payload);
    if *c.take(1)?.first()? != KIND_SAMPLES {
        return None;
    }
    let tenant = c.string()?;
    let n_labels = c.uvarint()?;
    let mut labels = Vec::new();
    for _ in 0..n_labels {
        // Each label needs at least 2 bytes, so a lying count runs out of input quickly.
        let name = c.string()?;
        let value = c.string()?;
        labels.push(Label { name, value });
    }
    let n_samples = usize::try_from(c.uvarint()?).ok()?;
    if n_samples.checked_mul(16)? != c.0.len() {
        return None;
    }
    let mut samples = Vec::with_capacity(n_samples);
    for _ in 0..n_samples {
        let timestamp = c.u64le()? as i64;
        let value = f64::from_bits(c.u64le()?);
        samples.push(Sample { value, timestamp });
    }
    Some(WalRecord {
        tenant,
        labels,
        samples,
    })
}

/// What [`replay`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read.
    pub segments: usize,
    /// Records decoded and handed to the callback.
    pub records: usize,
    /// Samples in those records.
    pub samples: usize,
    /// Segments that ended in a torn or corrupt record and were truncated there.
    pub truncated_segments: usize,
    /// Bytes cut off by those truncations.
    pub truncated_bytes: u64,
    /// Records with a valid checksum whose payload could not be decoded (skipped).
    pub undecodable_records: usize,
    /// Directory entries that are not segments (ignored).
    pub skipped_files: usize,
}

/// Why a segment's record stream ended.
enum SegmentEnd {
    /// Clean end of file.
    Clean,
    /// A bad record starts at this offset.
    BadAt(u64),
}

fn replay_segment(
    path: &Path,
    stats: &mut ReplayStats,
    f: &mut dyn FnMut(WalRecord),
) -> Result<SegmentEnd, WalError> {
    let file = File::open(path).map_err(io_err("open segment", path))?;
    let size = file.metadata().map_err(io_err("stat segment", path))?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut offset = 0u64;
    let mut payload = Vec::new();
    loop {
        let remaining = size - offset;
        if remaining == 0 {
            return Ok(SegmentEnd::Clean);
        }
        if remaining < HEADER_LEN as u64 {
            return Ok(SegmentEnd::BadAt(offset));
        }
        let mut header = [0u8; HEADER_LEN];
        r.read_exact(&mut header)
            .map_err(io_err("read segment", path))?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        // The length is trusted only as far as the file goes, so garbage cannot make us allocate.
        if u64::from(len) > remaining - HEADER_LEN as u64 {
            return Ok(SegmentEnd::BadAt(offset));
        }
        payload.resize(len as usize, 0);
        r.read_exact(&mut payload)
            .map_err(io_err("read segment", path))?;
        if crc32fast::hash(&payload) != crc {
            return Ok(SegmentEnd::BadAt(offset));
        }
        match decode_payload(&payload) {
            Some(rec) => {
                stats.records += 1;
                stats.samples += rec.samples.len();
                f(rec);
            }
            None => stats.undecodable_records += 1,
        }
        offset += HEADER_LEN as u64 + u64::from(len);
    }
}

/// Reads every segment of the WAL in `dir` in order and hands each record to `f` (see the
/// module doc for what happens to torn and corrupt data). A missing directory is an empty WAL.
pub fn replay(
    dir: impl AsRef<Path>,
    mut f: impl FnMut(WalRecord),
) -> Result<ReplayStats, WalError> {
    let dir = dir.as_ref();
    let (segments, others) = list_segments(dir)?;
    let mut stats = ReplayStats {
        skipped_files: others,
        ..Default::default()
    };
    for index in segments {
        let path = dir.join(segment_name(index));
        stats.segments += 1;
        if let SegmentEnd::BadAt(offset) = replay_segment(&path, &mut stats, &mut f)? {
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(io_err("open segment for repair", &path))?;
            let size = file
                .metadata()
                .map_err(io_err("stat segment", &path))?
                .len();
            file.set_len(offset)
                .map_err(io_err("truncate segment", &path))?;
            file.sync_all().map_err(io_err("sync segment", &path))?;
            stats.truncated_segments += 1;
            stats.truncated_bytes += size.saturating_sub(offset);
        }
    }
    Ok(stats)
}

/// Replays the WAL in `dir` into `store` with [`Store::append_replayed`].
pub fn replay_into(dir: impl AsRef<Path>, store: &Store) -> Result<ReplayStats, WalError> {
    replay(dir, |rec| {
        store.append_replayed(&rec.tenant, &rec.labels, &rec.samples);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry_data(i: usize) -> (Vec<Label>, Vec<Sample>) {
        let labels = vec![Label::new("__name__", "m"), Label::new("i", i.to_string())];
        let samples = (0..3)
            .map(|k| Sample {
                value: (i * 10 + k) as f64,
                timestamp: 1000 + k as i64,
            })
            .collect();
        (labels, samples)
    }

    fn write_series(wal: &mut Wal, range: std::ops::Range<usize>) {
        let data: Vec<_> = range.map(entry_data).collect();
        let entries: Vec<_> = data
            .iter()
            .map(|(labels, samples)| WalEntry {
                tenant: "t",
                labels,
                samples,
            })
            .collect();
        wal.append(&entries).unwrap();
    }

    fn replay_all(dir: &Path) -> (Vec<WalRecord>, ReplayStats) {
        let mut recs = Vec::new();
        let stats = replay(dir, |r| recs.push(r)).unwrap();
        (recs, stats)
    }

    #[test]
    fn records_written_then_dropped_without_close_replay_into_the_same_store() {
        let dir = tempfile::tempdir().unwrap();
        let before = Store::default();
        {
            let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
            for i in 0..20 {
                let (labels, samples) = entry_data(i);
                let out = before.append("t", &labels, &samples);
                wal.append(&[WalEntry {
                    tenant: "t",
                    labels: &labels,
                    samples: &out.to_log,
                }])
                .unwrap();
            }
            // Dropped here without any close or flush: the "crash".
        }
        let after = Store::default();
        let stats = replay_into(dir.path(), &after).unwrap();
        assert_eq!(stats.records, 20);
        assert_eq!(stats.samples, 60);
        assert_eq!(stats.truncated_segments, 0);
        assert_eq!(
            after.query("t", &[], i64::MIN, i64::MAX),
            before.query("t", &[], i64::MIN, i64::MAX)
        );
    }

    #[test]
    fn a_second_replay_of_the_same_log_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..5);
        let store = Store::default();
        replay_into(dir.path(), &store).unwrap();
        replay_into(dir.path(), &store).unwrap();
        assert_eq!(store.sample_count("t"), 15);
    }

    #[test]
    fn a_corrupt_last_byte_keeps_every_record_before_it_and_truncates_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..10);
        drop(wal);
        let seg = dir.path().join("00000000");
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(recs.len(), 9);
        assert_eq!(recs[8], {
            let (labels, samples) = entry_data(8);
            WalRecord {
                tenant: "t".into(),
                labels,
                samples,
            }
        });
        assert_eq!(stats.truncated_segments, 1);
        assert!(stats.truncated_bytes > 0);
        // The repair is durable: a second replay finds a clean log with the same 9 records.
        let (again, stats) = replay_all(dir.path());
        assert_eq!((again.len(), stats.truncated_segments), (9, 0));
    }

    #[test]
    fn a_torn_write_in_the_middle_of_a_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..4);
        drop(wal);
        let seg = dir.path().join("00000000");
        let len = fs::metadata(&seg).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&seg)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(recs.len(), 3);
        assert_eq!(stats.truncated_segments, 1);
    }

    #[test]
    fn reopening_starts_a_new_segment_and_both_are_replayed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..2);
        drop(wal);
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        assert_eq!(wal.segment_index(), 1);
        write_series(&mut wal, 2..4);
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(stats.segments, 2);
        let order: Vec<_> = recs.iter().map(|r| r.labels[1].value.clone()).collect();
        assert_eq!(order, ["0", "1", "2", "3"]);
    }

    #[test]
    fn segments_rotate_at_the_configured_size() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            segment_size: 200,
            sync_every_write: false,
        };
        let mut wal = Wal::open(dir.path(), config).unwrap();
        for i in 0..10 {
            write_series(&mut wal, i..i + 1);
        }
        wal.sync().unwrap();
        assert!(wal.segment_index() >= 3, "{}", wal.segment_index());
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(recs.len(), 10);
        assert_eq!(stats.segments as u64, wal.segment_index() + 1);
    }

    #[test]
    fn a_garbage_segment_is_truncated_and_counted_while_others_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..3);
        drop(wal);
        fs::write(
            dir.path().join("00000001"),
            b"this is not a wal segment at all",
        )
        .unwrap();
        fs::write(dir.path().join("README"), b"not a segment name").unwrap();
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(recs.len(), 3);
        assert_eq!(stats.truncated_segments, 1);
        assert_eq!(stats.skipped_files, 1);
        // A writer opened afterwards goes to a new segment after the garbage one.
        assert_eq!(
            Wal::open(dir.path(), WalConfig::default())
                .unwrap()
                .segment_index(),
            2
        );
    }

    #[test]
    fn a_record_with_a_valid_checksum_but_unknown_payload_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let payload = [9u8, 1, 2, 3];
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
        fs::write(dir.path().join("00000000"), &bytes).unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..1);
        let (recs, stats) = replay_all(dir.path());
        assert_eq!((recs.len(), stats.undecodable_records), (1, 1));
    }

    #[test]
    fn a_missing_directory_is_an_empty_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (recs, stats) = replay_all(&dir.path().join("nope"));
        assert!(recs.is_empty());
        assert_eq!(stats, ReplayStats::default());
    }

    #[test]
    fn nan_bit_patterns_and_extreme_timestamps_survive_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        let labels = [Label::new("__name__", "ünïcode")];
        let samples = [
            Sample {
                value: f64::from_bits(0x7ff0_0000_0000_0002),
                timestamp: i64::MIN,
            },
            Sample {
                value: -0.0,
                timestamp: i64::MAX,
            },
        ];
        wal.append(&[WalEntry {
            tenant: "",
            labels: &labels,
            samples: &samples,
        }])
        .unwrap();
        let (recs, _) = replay_all(dir.path());
        assert_eq!(recs[0].samples[0].value.to_bits(), 0x7ff0_0000_0000_0002);
        assert_eq!(recs[0].samples[1].value.to_bits(), (-0.0f64).to_bits());
        assert_eq!(recs[0].samples[1].timestamp, i64::MAX);
        assert_eq!(recs[0].labels, labels);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic_the_replay(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("00000000"), &bytes).unwrap();
            let (recs, stats) = replay_all(dir.path());
            prop_assert_eq!(recs.len() + stats.undecodable_records, stats.records + stats.undecodable_records);
            prop_assert!(stats.truncated_bytes <= bytes.len() as u64);
        }

        #[test]
        fn random_payloads_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_payload(&bytes);
        }

        #[test]
        fn a_valid_log_with_random_bytes_appended_keeps_all_valid_records(
            n in 1usize..20,
            tail in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), WalConfig { sync_every_write: false, ..Default::default() }).unwrap();
            write_series(&mut wal, 0..n);
            drop(wal);
            let seg = dir.path().join("00000000");
            let mut bytes = fs::read(&seg).unwrap();
            bytes.extend_from_slice(&tail);
            fs::write(&seg, &bytes).unwrap();
            let (recs, _) = replay_all(dir.path());
            // The tail could by chance be a valid record only if its CRC matched; it never
            // decodes to one of ours with tenant "t" and a 3-sample series, so n records remain.
            prop_assert!(recs.len() >= n);
            prop_assert_eq!(recs[..n].iter().filter(|r| r.tenant == "t").count(), n);
        }
    }
}
