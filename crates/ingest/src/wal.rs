//! A tenant head's write-ahead log: append-only segment files of checksummed records.
//!
//! # On-disk format
//! A WAL is a directory of segment files named by an 8-digit, zero-padded decimal index
//! (`00000000`, `00000001`, ...), read in index order, plus at most one complete checkpoint
//! (`checkpoint.NNNNNNNN`, see [`crate::checkpoint`]). Other names are ignored (and counted).
//! A segment is a sequence of framed records:
//!
//! ```text
//! record = len:u32le  crc:u32le  payload[len]
//!          crc = CRC-32 (IEEE, as zlib/Go's crc32.ChecksumIEEE) of payload
//! ```
//!
//! The payloads are [`crate::record`]s: series records (once per series, with its reference)
//! and samples records (by reference, coded against the series' previous sample in the same
//! segment, snappy-compressed). All records of one [`Wal::log`] call are written with a single
//! `write` and, by default, one `fdatasync`.
//!
//! # Durability and cost
//! With [`WalConfig::sync_every_write`] (the default) `log` returns only after `fdatasync`, so
//! a sample acknowledged after `log` survives `kill -9` and power loss. That costs one disk
//! flush per push; batching a whole push in one call is what keeps it affordable. Without it,
//! data sits in the page cache: it survives `kill -9` but not a machine crash.
//!
//! # Failures
//! A failed write or flush (a full disk, typically) cuts the segment back to the end of the
//! last good record and undoes the sample-coding state of the lost records, so the segment
//! stays readable and the next `log` goes on in the **same** file: a full disk no longer
//! opens a segment per push, and writing resumes by itself once space returns. If even the cut
//! fails, every later `log` retries it first and fails until it works.
//!
//! # Replay
//! [`replay`] reads segments in order, each from its start with a fresh sample-coding state. A
//! record that is cut short (a torn write at a crash), has an impossible length or a wrong
//! checksum ends its segment: the file is truncated there (so nothing is ever appended after
//! garbage) and the event is counted in [`ReplayStats`]; the following segments are still
//! read. A record with a good checksum that does not decode also ends its segment (later
//! samples would be decoded against a wrong state) and is counted. Garbage never panics; only
//! I/O errors stop replay. [`Wal::open`] always starts a fresh segment.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::labels::PackedLabels;
use crate::record::{self, Encoder, Record, RefSample, SampleCoder};

/// Segment name width (digits).
const SEGMENT_DIGITS: usize = 8;
/// Record header: length + checksum.
const HEADER_LEN: usize = 8;

/// WAL settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalConfig {
    /// Size at which a new segment is started, in bytes (Mimir's
    /// `-blocks-storage.tsdb.wal-segment-size-bytes`, default 128 MiB). Checkpoints delete whole
    /// segments, so smaller segments free disk sooner.
    pub segment_size: u64,
    /// `fdatasync` after every [`Wal::log`] (default `true`): see the module doc for what it
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
/// returned. After a failed [`Wal::log`] the records of that call are not in the log (answer
/// 5xx so the sender retries).
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

pub(crate) fn io_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(io::Error) -> WalError + 'p {
    move |source| WalError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// An open WAL for appending. Not internally synchronised: a tenant head keeps it behind the
/// `Mutex` that also orders its appends.
pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    file: File,
    path: PathBuf,
    index: u64,
    /// End of the last good record in the current segment.
    len: u64,
    /// A failed write could not be cut back yet: the segment may end in a partial record.
    needs_repair: bool,
    /// Reused framing buffer.
    buf: Vec<u8>,
    /// Reused payload buffer.
    payload: Vec<u8>,
    enc: Encoder,
    coder: SampleCoder,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("path", &self.path)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

pub(crate) fn segment_name(index: u64) -> String {
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
pub(crate) fn list_segments(dir: &Path) -> Result<(Vec<u64>, usize), WalError> {
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

pub(crate) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    // Makes a new entry of the directory durable; without it a crash could lose the file.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync directory", dir))
}

/// Frames `payload` (header + payload) onto `out`.
pub(crate) fn frame(out: &mut Vec<u8>, payload: &[u8]) -> Result<(), WalError> {
    let len = u32::try_from(payload.len()).map_err(|_| WalError::RecordTooLarge(payload.len()))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    Ok(())
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
            needs_repair: false,
            buf: Vec::new(),
            payload: Vec::new(),
            enc: Encoder::default(),
            coder: SampleCoder::default(),
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

    /// Closes the current segment (made durable) and starts the next one; returns the index
    /// of the closed segment. Everything logged before this call is in segments up to that
    /// index, which a checkpoint may then replace.
    pub fn cut_segment(&mut self) -> Result<u64, WalError> {
        self.repair()?;
        self.file
            .sync_data()
            .map_err(io_err("sync segment", &self.path))?;
        let (file, path) = Self::create_segment(&self.dir, self.index + 1)?;
        let closed = self.index;
        self.index += 1;
        self.file = file;
        self.path = path;
        self.len = 0;
        self.coder.reset();
        Ok(closed)
    }

    /// The index of the segment being written.
    pub fn segment_index(&self) -> u64 {
        self.index
    }

    /// The directory of this WAL.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn repair(&mut self) -> Result<(), WalError> {
        if self.needs_repair {
            self.file
                .set_len(self.len)
                .map_err(io_err("cut back segment", &self.path))?;
            self.needs_repair = false;
        }
        Ok(())
    }

    /// Logs new `series` (reference and labels) and then `samples` as one write (and one
    /// `fdatasync` when `sync_every_write`). When this returns `Ok`, the records are on disk as
    /// far as the config promises; on `Err` none of them is (see the module doc).
    pub fn log(
        &mut self,
        series: &[(u64, &PackedLabels)],
        samples: &[RefSample],
    ) -> Result<(), WalError> {
        if series.is_empty() && samples.is_empty() {
            return Ok(());
        }
        self.repair()?;
        self.buf.clear();
        let encoded = self.encode(series, samples);
        if let Err(e) = encoded {
            self.coder.rollback();
            return Err(e);
        }
        if self.len > 0 && self.len + self.buf.len() as u64 > self.config.segment_size {
            // The samples were coded against this segment's state: start the next segment and
            // code them again from a clean state.
            self.coder.rollback();
            self.cut_segment()?;
            self.buf.clear();
            if let Err(e) = self.encode(series, samples) {
                self.coder.rollback();
                return Err(e);
            }
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
                self.coder.commit();
                Ok(())
            }
            Err(e) => {
                self.coder.rollback();
                self.needs_repair = true;
                // Best effort now; `repair` retries before the next write.
                let _ = self.repair();
                Err(e)
            }
        }
    }

    fn encode(
        &mut self,
        series: &[(u64, &PackedLabels)],
        samples: &[RefSample],
    ) -> Result<(), WalError> {
        if !series.is_empty() {
            self.payload.clear();
            self.enc
                .series(series.iter().map(|(r, l)| (*r, *l)), &mut self.payload);
            frame(&mut self.buf, &self.payload)?;
        }
        if !samples.is_empty() {
            self.payload.clear();
            self.enc
                .samples(samples, &mut self.coder, &mut self.payload);
            frame(&mut self.buf, &self.payload)?;
        }
        Ok(())
    }

    /// Flushes everything logged so far to disk (for `sync_every_write = false`).
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.file
            .sync_data()
            .map_err(io_err("sync segment", &self.path))
    }

    /// Bytes in the segments and checkpoint of this WAL (for the size metric).
    pub fn disk_size(&self) -> u64 {
        dir_size(&self.dir)
    }
}

/// Total size of the files under `dir` (recursively; errors count as empty).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// What [`replay`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments read (checkpoint segments included).
    pub segments: usize,
    /// Records decoded and handed to the callback.
    pub records: usize,
    /// Samples in those records (chunk records count their samples at the head, not here).
    pub samples: usize,
    /// Segments that ended in a torn or corrupt record and were truncated there.
    pub truncated_segments: usize,
    /// Bytes cut off by those truncations.
    pub truncated_bytes: u64,
    /// Records with a valid checksum whose payload could not be decoded (each ends its
    /// segment).
    pub undecodable_records: usize,
    /// Directory entries that are neither segments nor the checkpoint (ignored).
    pub skipped_files: usize,
}

impl ReplayStats {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ReplayStats) {
        self.segments += other.segments;
        self.records += other.records;
        self.samples += other.samples;
        self.truncated_segments += other.truncated_segments;
        self.truncated_bytes += other.truncated_bytes;
        self.undecodable_records += other.undecodable_records;
        self.skipped_files += other.skipped_files;
    }
}

/// Why a segment's record stream ended.
enum SegmentEnd {
    /// Clean end of file (or an undecodable record: nothing to repair).
    Clean,
    /// A bad record starts at this offset.
    BadAt(u64),
}

fn replay_segment(
    path: &Path,
    stats: &mut ReplayStats,
    f: &mut dyn FnMut(Record),
) -> Result<SegmentEnd, WalError> {
    let file = File::open(path).map_err(io_err("open segment", path))?;
    let size = file.metadata().map_err(io_err("stat segment", path))?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut offset = 0u64;
    let mut payload = Vec::new();
    let mut scratch = Vec::new();
    let mut coder = SampleCoder::default();
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
        match record::decode(&payload, &mut coder, &mut scratch) {
            Ok(rec) => {
                stats.records += 1;
                if let Record::Samples(s) = &rec {
                    stats.samples += s.len();
                }
                f(rec);
            }
            Err(_) => {
                stats.undecodable_records += 1;
                return Ok(SegmentEnd::Clean);
            }
        }
        offset += HEADER_LEN as u64 + u64::from(len);
    }
}

/// Reads one segment file (see the module doc for torn and corrupt data), truncating it at a
/// torn or corrupt record.
pub(crate) fn replay_file(
    path: &Path,
    stats: &mut ReplayStats,
    f: &mut dyn FnMut(Record),
) -> Result<(), WalError> {
    stats.segments += 1;
    if let SegmentEnd::BadAt(offset) = replay_segment(path, stats, f)? {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(io_err("open segment for repair", path))?;
        let size = file.metadata().map_err(io_err("stat segment", path))?.len();
        file.set_len(offset)
            .map_err(io_err("truncate segment", path))?;
        file.sync_all().map_err(io_err("sync segment", path))?;
        stats.truncated_segments += 1;
        stats.truncated_bytes += size.saturating_sub(offset);
    }
    Ok(())
}

/// Reads the segments of the WAL in `dir` with an index above `after` (all when `None`) in
/// order and hands each record to `f`. A missing directory is an empty WAL. The checkpoint is
/// not read here: see [`crate::checkpoint::replay`].
pub fn replay(
    dir: impl AsRef<Path>,
    after: Option<u64>,
    mut f: impl FnMut(Record),
) -> Result<ReplayStats, WalError> {
    let dir = dir.as_ref();
    let (segments, others) = list_segments(dir)?;
    let mut stats = ReplayStats {
        skipped_files: others,
        ..Default::default()
    };
    let last = segments.last().copied();
    for index in segments {
        if after.is_some_and(|a| index <= a) {
            continue;
        }
        replay_file(&dir.join(segment_name(index)), &mut stats, &mut f)?;
        // Progress for long replays, as Prometheus logs each loaded segment.
        tracing::info!(
            dir = %dir.display(),
            segment = index,
            max_segment = last,
            samples_so_far = stats.samples,
            "WAL segment replayed"
        );
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::Label;
    use crate::record::RefSeries;
    use proptest::prelude::*;

    fn labels(i: u64) -> PackedLabels {
        PackedLabels::new(&[Label::new("__name__", "m"), Label::new("i", i.to_string())])
    }

    fn samples(i: u64, k0: i64) -> Vec<RefSample> {
        (0..3)
            .map(|k| RefSample {
                series_ref: i,
                t: 1000 + k0 + k,
                v: (i as i64 * 10 + k) as f64,
            })
            .collect()
    }

    /// Logs series `range` (series record + 3 samples each) in one call.
    fn write_series(wal: &mut Wal, range: std::ops::Range<u64>) {
        let ls: Vec<_> = range.clone().map(labels).collect();
        let series: Vec<_> = range.clone().zip(&ls).collect();
        let s: Vec<_> = range.flat_map(|i| samples(i, 0)).collect();
        wal.log(&series, &s).unwrap();
    }

    fn replay_all(dir: &Path) -> (Vec<Record>, ReplayStats) {
        let mut recs = Vec::new();
        let stats = replay(dir, None, |r| recs.push(r)).unwrap();
        (recs, stats)
    }

    fn series_refs(recs: &[Record]) -> Vec<u64> {
        recs.iter()
            .flat_map(|r| match r {
                Record::Series(s) => s.iter().map(|x| x.series_ref).collect(),
                _ => Vec::new(),
            })
            .collect()
    }

    fn all_samples(recs: &[Record]) -> Vec<RefSample> {
        recs.iter()
            .flat_map(|r| match r {
                Record::Samples(s) => s.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn series_then_samples_by_reference_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
            write_series(&mut wal, 0..5);
            // Later samples of known series: no series record.
            let more: Vec<_> = (0..5).flat_map(|i| samples(i, 100)).collect();
            wal.log(&[], &more).unwrap();
            // Dropped here without any close or flush: the "crash".
        }
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(stats.records, 3);
        assert_eq!(stats.samples, 30);
        assert_eq!(
            recs[0],
            Record::Series(
                (0..5)
                    .map(|i| RefSeries {
                        series_ref: i,
                        labels: labels(i)
                    })
                    .collect()
            )
        );
        let want: Vec<_> = (0..5)
            .flat_map(|i| samples(i, 0))
            .chain((0..5).flat_map(|i| samples(i, 100)))
            .collect();
        assert_eq!(all_samples(&recs), want);
    }

    #[test]
    fn a_corrupt_last_byte_keeps_every_record_before_it_and_truncates_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        for i in 0..10 {
            write_series(&mut wal, i..i + 1);
        }
        drop(wal);
        let seg = dir.path().join("00000000");
        let mut bytes = fs::read(&seg).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(series_refs(&recs), (0..10).collect::<Vec<_>>());
        assert_eq!(
            all_samples(&recs).len(),
            27,
            "the last samples record is lost"
        );
        assert_eq!(stats.truncated_segments, 1);
        assert!(stats.truncated_bytes > 0);
        // The repair is durable: a second replay finds a clean log with the same records.
        let (again, stats) = replay_all(dir.path());
        assert_eq!((again.len(), stats.truncated_segments), (recs.len(), 0));
    }

    #[test]
    fn a_torn_write_in_the_middle_of_a_record_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        for i in 0..4 {
            write_series(&mut wal, i..i + 1);
        }
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
        assert_eq!(all_samples(&recs).len(), 9);
        assert_eq!(stats.truncated_segments, 1);
    }

    #[test]
    fn reopening_starts_a_new_segment_whose_samples_decode_from_a_fresh_state() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..2);
        drop(wal);
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        assert_eq!(wal.segment_index(), 1);
        let more: Vec<_> = (0..2).flat_map(|i| samples(i, 50)).collect();
        wal.log(&[], &more).unwrap();
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(stats.segments, 2);
        let got = all_samples(&recs);
        assert_eq!(got[6..], more[..]);
    }

    #[test]
    fn segments_rotate_at_the_configured_size_and_replay_reads_after_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            segment_size: 120,
            sync_every_write: false,
        };
        let mut wal = Wal::open(dir.path(), config).unwrap();
        for i in 0..10 {
            write_series(&mut wal, i..i + 1);
        }
        wal.sync().unwrap();
        assert!(wal.segment_index() >= 3, "{}", wal.segment_index());
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(series_refs(&recs), (0..10).collect::<Vec<_>>());
        assert_eq!(all_samples(&recs).len(), 30);
        assert_eq!(stats.segments as u64, wal.segment_index() + 1);
        let mut late = 0;
        replay(dir.path(), Some(wal.segment_index() - 1), |_| late += 1).unwrap();
        assert!(late >= 1 && late < recs.len());
    }

    #[test]
    fn a_cut_segment_holds_everything_logged_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..3);
        assert_eq!(wal.cut_segment().unwrap(), 0);
        let more: Vec<_> = (0..3).flat_map(|i| samples(i, 10)).collect();
        wal.log(&[], &more).unwrap();
        let mut after = Vec::new();
        replay(dir.path(), Some(0), |r| after.push(r)).unwrap();
        assert_eq!(all_samples(&after), more);
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
        assert_eq!(all_samples(&recs).len(), 9);
        assert_eq!(stats.truncated_segments, 1);
        assert_eq!(stats.skipped_files, 1);
        assert_eq!(
            Wal::open(dir.path(), WalConfig::default())
                .unwrap()
                .segment_index(),
            2
        );
    }

    #[test]
    fn a_record_with_a_valid_checksum_but_unknown_payload_ends_its_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = Vec::new();
        frame(&mut bytes, &[9u8, 1, 2, 3]).unwrap();
        fs::write(dir.path().join("00000000"), &bytes).unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..1);
        let (recs, stats) = replay_all(dir.path());
        assert_eq!((recs.len(), stats.undecodable_records), (2, 1));
    }

    #[test]
    fn a_missing_directory_is_an_empty_wal() {
        let dir = tempfile::tempdir().unwrap();
        let (recs, stats) = replay_all(&dir.path().join("nope"));
        assert!(recs.is_empty());
        assert_eq!(stats, ReplayStats::default());
    }

    #[test]
    fn a_failed_write_is_cut_back_and_writing_goes_on_in_the_same_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        write_series(&mut wal, 0..2);
        let good = wal.len;
        // A write that fails half way, as on a full disk: the file gets garbage after `len`
        // and the coding state has moved on.
        let lost: Vec<_> = (0..2).flat_map(|i| samples(i, 10)).collect();
        wal.buf.clear();
        wal.encode(&[], &lost).unwrap();
        let half = wal.buf.len() / 2;
        wal.file.write_all(&wal.buf[..half]).unwrap();
        wal.coder.rollback();
        wal.needs_repair = true;
        // The next log repairs first, in the same segment.
        let next: Vec<_> = (0..2).flat_map(|i| samples(i, 20)).collect();
        wal.log(&[], &next).unwrap();
        assert_eq!(wal.segment_index(), 0);
        assert!(wal.len > good);
        let (recs, stats) = replay_all(dir.path());
        assert_eq!(stats.truncated_segments, 0);
        let got = all_samples(&recs);
        assert_eq!(got[6..], next[..]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_bytes_never_panic_the_replay(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let dir = tempfile::tempdir().unwrap();
            fs::write(dir.path().join("00000000"), &bytes).unwrap();
            let (_, stats) = replay_all(dir.path());
            prop_assert!(stats.truncated_bytes <= bytes.len() as u64);
        }

        #[test]
        fn a_valid_log_with_random_bytes_appended_keeps_all_valid_records(
            n in 1u64..20,
            tail in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = Wal::open(dir.path(), WalConfig { sync_every_write: false, ..Default::default() }).unwrap();
            for i in 0..n {
                write_series(&mut wal, i..i + 1);
            }
            drop(wal);
            let seg = dir.path().join("00000000");
            let mut bytes = fs::read(&seg).unwrap();
            bytes.extend_from_slice(&tail);
            fs::write(&seg, &bytes).unwrap();
            let (recs, _) = replay_all(dir.path());
            prop_assert_eq!(series_refs(&recs), (0..n).collect::<Vec<_>>());
            prop_assert_eq!(all_samples(&recs).len() as u64, 3 * n);
        }
    }
}
