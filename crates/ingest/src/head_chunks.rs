//! Full head chunks on disk, memory-mapped: `<tenant>/chunks_head/000001, 000002, ...` in
//! Prometheus' head-chunk file format (`tsdb/docs/format/head_chunks.md`).
//!
//! When a series' open chunk is full (or reaches a block-range boundary) it never changes
//! again, so the head writes it to the tenant's current chunk file and keeps only a small
//! reference to it: 8 bytes of location plus its time range. Reads go through a read-only
//! memory map of the file, so the bytes cost page cache, not the process' own memory, and
//! are paged in only when a query, a block cut or a checkpoint reads them.
//!
//! # Format (Prometheus' own, byte for byte)
//! ```text
//! file  = magic 0x0130BC91 (4, BE) │ version 1 (1) │ 3 zero bytes │ chunk*
//! chunk = series ref (8, BE) │ min t (8, BE) │ max t (8, BE) │ encoding (1, XOR = 1)
//!         │ data length (uvarint) │ data │ CRC32 Castagnoli of everything before it (4, BE)
//! ref   = file number << 32 │ byte offset of the chunk in the file
//! ```
//! A file grows to at most [`DEFAULT_FILE_SIZE`] (128 MiB, Prometheus' size); the next
//! chunk starts a new file. Each chunk is written with one `pwrite` (no user-space buffer,
//! so a read never has to look anywhere but the map). The file being written is extended
//! (sparse) to the full size and mapped once; a finished file is cut back to its length and
//! mapped at that length.
//!
//! # Not the source of truth
//! The files are not synced: the WAL and its checkpoint hold every sample of the head, so
//! these files only save memory and replay work. At start-up [`HeadChunks::open`] reads the
//! files in order and keeps the longest valid prefix of what was written: the first chunk
//! that is cut short or fails its checksum ends the file there, and every later file is
//! deleted, so for any series the chunks that survive are its oldest ones without a gap, and
//! the WAL replay adds what follows. A file whose header is wrong is handled the same way.
//!
//! # Bounded
//! Files are deleted when the head is truncated past them ([`HeadChunks::truncate`]): the
//! oldest files whose newest chunk ends before the truncation time, in order (the file
//! sequence never has a gap). Only the file being written is open (one descriptor per
//! tenant); finished files are held as maps only.
//!
//! # SIGBUS
//! As in Prometheus, an I/O error while the kernel pages a mapped file in kills the process
//! with SIGBUS. The files are private to the ingester and never shrunk below a chunk that is
//! still referenced, which is the other way a map can fault.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use memmap2::Mmap;

/// First 4 bytes of a head chunk file (Prometheus' `MagicHeadChunks`).
pub const MAGIC: u32 = 0x0130_BC91;
/// The only file version.
pub const VERSION: u8 = 1;
/// File header: magic, version, padding.
pub const FILE_HEADER_LEN: u64 = 8;
/// Prometheus' largest head chunk file, 128 MiB.
pub const DEFAULT_FILE_SIZE: u64 = 128 << 20;
/// The encoding byte of an XOR chunk.
pub const ENCODING_XOR: u8 = 1;
/// Series ref, min t, max t, encoding: the fixed part before the length.
const ENTRY_FIXED: usize = 8 + 8 + 8 + 1;
/// Fixed part, the longest length varint and the checksum.
const ENTRY_MAX_META: usize = ENTRY_FIXED + 10 + 4;

/// One chunk found in the files at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveredChunk {
    /// The series reference the chunk was written for.
    pub series_ref: u64,
    /// First sample's timestamp.
    pub min_t: i64,
    /// Last sample's timestamp.
    pub max_t: i64,
    /// Where it is ([`HeadChunks::read`]).
    pub chunk_ref: u64,
}

/// What [`HeadChunks::open`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Valid chunks, in the order they were written.
    pub chunks: Vec<RecoveredChunk>,
    /// Files kept.
    pub files: usize,
    /// Whether a torn or corrupt chunk (or file) was found and the files cut back there.
    pub repaired: bool,
    /// Files deleted because they came after the first corruption.
    pub files_dropped: usize,
}

/// The bytes of one chunk, read from a mapped file (the map stays alive while they do).
#[derive(Clone)]
pub struct ChunkBytes {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl Deref for ChunkBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

struct MappedFile {
    map: Arc<Mmap>,
    /// Newest sample of any chunk in the file (`i64::MIN` while empty).
    max_t: i64,
}

struct Writer {
    /// The file being written: its number and handle.
    file: Option<(u32, File)>,
    /// Bytes of the current file in use (header included).
    size: u64,
    /// Newest sample written to the current file.
    max_t: i64,
    /// Number of the next file.
    next_seq: u32,
    /// Reused entry buffer.
    buf: Vec<u8>,
}

/// Counters of the chunk files (for metrics).
#[derive(Debug, Default)]
pub struct HeadChunkCounters {
    /// Chunks written.
    pub chunks_written: AtomicU64,
    /// Chunk writes that failed (the chunk then stays in memory).
    pub write_failures: AtomicU64,
    /// Files deleted by truncation.
    pub files_deleted: AtomicU64,
}

/// One tenant's head chunk files (see the module doc).
pub struct HeadChunks {
    dir: PathBuf,
    max_file_size: u64,
    writer: Mutex<Writer>,
    files: RwLock<BTreeMap<u32, MappedFile>>,
    counters: HeadChunkCounters,
}

impl std::fmt::Debug for HeadChunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadChunks")
            .field("dir", &self.dir)
            .field("files", &self.file_count())
            .finish_non_exhaustive()
    }
}

fn file_name(seq: u32) -> String {
    format!("{seq:06}")
}

/// Maps `len` bytes of `file` read-only.
#[allow(unsafe_code)]
fn map(file: &File, len: u64) -> io::Result<Mmap> {
    // SAFETY: memmap2 asks that the file not be truncated or changed underneath the map in a
    // way the program relies on. These files belong to this head alone: a range is only read
    // after its pwrite returned, written bytes are never rewritten, and a file is shrunk only
    // to past its last chunk (reads never reach beyond that). Deleting a file keeps its
    // pages alive until the last map of it goes.
    unsafe { memmap2::MmapOptions::new().len(len as usize).map(file) }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn uvarint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte < 0x80 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Parses the chunk entry at `off`: `(series ref, min t, max t, data range, entry end)`.
/// `None` when it is cut short, malformed or fails its checksum.
fn parse_entry(b: &[u8], off: usize) -> Option<(u64, i64, i64, usize, usize, usize)> {
    let fixed = b.get(off..off.checked_add(ENTRY_FIXED)?)?;
    let series_ref = u64::from_be_bytes(fixed[0..8].try_into().ok()?);
    let min_t = u64::from_be_bytes(fixed[8..16].try_into().ok()?) as i64;
    let max_t = u64::from_be_bytes(fixed[16..24].try_into().ok()?) as i64;
    if fixed[24] != ENCODING_XOR || series_ref == 0 {
        return None;
    }
    let (len, n) = uvarint(b.get(off + ENTRY_FIXED..)?)?;
    let start = off + ENTRY_FIXED + n;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    if len < 2 {
        return None;
    }
    let crc_end = end.checked_add(4)?;
    let stored = u32::from_be_bytes(b.get(end..crc_end)?.try_into().ok()?);
    (crc32c::crc32c(&b[off..end]) == stored)
        .then_some((series_ref, min_t, max_t, start, end, crc_end))
}

impl HeadChunks {
    /// Opens (creating it if needed) the chunk directory `dir`: reads every file, keeps the
    /// valid prefix (see the module doc) and returns the chunks found. New chunks go to a
    /// new file after the last one. `max_file_size` is clamped to at least 1 KiB and at most
    /// 4 GiB (a reference holds a 32-bit offset).
    pub fn open(dir: &Path, max_file_size: u64) -> io::Result<(HeadChunks, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut seqs: Vec<u32> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if let Some(seq) = entry
                .file_name()
                .to_str()
                .filter(|n| n.len() >= 6 && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|&s| s > 0)
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut rec = Recovery::default();
        let mut files = BTreeMap::new();
        let mut broken = false;
        let mut last_seq = 0;
        for seq in seqs {
            let path = dir.join(file_name(seq));
            last_seq = last_seq.max(seq);
            if broken {
                fs::remove_file(&path)?;
                rec.files_dropped += 1;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let len = file.metadata()?.len();
            let header_ok = len >= FILE_HEADER_LEN && {
                let mut h = [0u8; 8];
                file.read_exact_at(&mut h, 0).is_ok()
                    && u32::from_be_bytes([h[0], h[1], h[2], h[3]]) == MAGIC
                    && h[4] == VERSION
            };
            if !header_ok {
                drop(file);
                fs::remove_file(&path)?;
                rec.files_dropped += 1;
                rec.repaired = true;
                broken = true;
                continue;
            }
            let whole = map(&file, len)?;
            let mut off = FILE_HEADER_LEN as usize;
            let mut max_t = i64::MIN;
            while let Some((series_ref, min_t, mt, _, _, next)) = parse_entry(&whole, off) {
                rec.chunks.push(RecoveredChunk {
                    series_ref,
                    min_t,
                    max_t: mt,
                    chunk_ref: (u64::from(seq) << 32) | off as u64,
                });
                max_t = max_t.max(mt);
                off = next;
            }
            drop(whole);
            if (off as u64) < len {
                // A torn or corrupt entry, or the zeros of a file that was never cut back:
                // everything from here on is gone, in this file and the later ones.
                let rest_is_zero = {
                    let m = map(&file, len)?;
                    m[off..].iter().all(|&b| b == 0)
                };
                if !rest_is_zero {
                    rec.repaired = true;
                    broken = true;
                }
                file.set_len(off as u64)?;
            }
            let map = Arc::new(map(&file, off as u64)?);
            files.insert(seq, MappedFile { map, max_t });
            rec.files += 1;
        }
        let hc = HeadChunks {
            dir: dir.to_owned(),
            max_file_size: max_file_size.clamp(1 << 10, u64::from(u32::MAX)),
            writer: Mutex::new(Writer {
                file: None,
                size: 0,
                max_t: i64::MIN,
                next_seq: last_seq + 1,
                buf: Vec::with_capacity(512),
            }),
            files: RwLock::new(files),
            counters: HeadChunkCounters::default(),
        };
        Ok((hc, rec))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What was written, failed and deleted.
    pub fn counters(&self) -> &HeadChunkCounters {
        &self.counters
    }

    /// Number of chunk files (the one being written included).
    pub fn file_count(&self) -> usize {
        self.files
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Bytes of chunk data on disk (the file being written counted at its used length).
    pub fn disk_bytes(&self) -> u64 {
        let w = lock(&self.writer);
        let current = w.file.as_ref().map(|(s, _)| *s);
        let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
        files
            .iter()
            .map(|(s, f)| {
                if Some(*s) == current {
                    w.size
                } else {
                    f.map.len() as u64
                }
            })
            .sum()
    }

    /// Finishes the current file: cut back to its used length and mapped at that length.
    fn seal(&self, w: &mut Writer) -> io::Result<()> {
        let Some((seq, file)) = w.file.take() else {
            return Ok(());
        };
        file.set_len(w.size)?;
        let m = Arc::new(map(&file, w.size)?);
        let mut files = self.files.write().unwrap_or_else(PoisonError::into_inner);
        files.insert(
            seq,
            MappedFile {
                map: m,
                max_t: w.max_t,
            },
        );
        Ok(())
    }

    fn cut(&self, w: &mut Writer) -> io::Result<()> {
        self.seal(w)?;
        let seq = w.next_seq;
        let path = self.dir.join(file_name(seq));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        let mut header = [0u8; FILE_HEADER_LEN as usize];
        header[..4].copy_from_slice(&MAGIC.to_be_bytes());
        header[4] = VERSION;
        let made = file
            .write_all_at(&header, 0)
            // Sparse: blocks are used only as chunks are written.
            .and_then(|()| file.set_len(self.max_file_size))
            .and_then(|()| map(&file, self.max_file_size));
        let m = match made {
            Ok(m) => m,
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(&path);
                return Err(e);
            }
        };
        w.next_seq += 1;
        w.size = FILE_HEADER_LEN;
        w.max_t = i64::MIN;
        self.files
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                seq,
                MappedFile {
                    map: Arc::new(m),
                    max_t: i64::MIN,
                },
            );
        w.file = Some((seq, file));
        Ok(())
    }

    /// Writes a full chunk of `series_ref` and returns its reference. On error nothing is
    /// referenced (the caller keeps the chunk in memory) and the next write goes to the same
    /// place.
    pub fn write(&self, series_ref: u64, min_t: i64, max_t: i64, data: &[u8]) -> io::Result<u64> {
        let r = self.write_inner(series_ref, min_t, max_t, data);
        let c = match r {
            Ok(_) => &self.counters.chunks_written,
            Err(_) => &self.counters.write_failures,
        };
        c.fetch_add(1, Ordering::Relaxed);
        r
    }

    fn write_inner(&self, series_ref: u64, min_t: i64, max_t: i64, data: &[u8]) -> io::Result<u64> {
        let mut guard = lock(&self.writer);
        let w = &mut *guard;
        let need = (data.len() + ENTRY_MAX_META) as u64;
        if FILE_HEADER_LEN + need > self.max_file_size {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk larger than a head chunk file",
            ));
        }
        if w.file.is_none() || w.size + need > self.max_file_size {
            self.cut(w)?;
        }
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        buf.extend_from_slice(&series_ref.to_be_bytes());
        buf.extend_from_slice(&(min_t as u64).to_be_bytes());
        buf.extend_from_slice(&(max_t as u64).to_be_bytes());
        buf.push(ENCODING_XOR);
        crate::labels::put_uvarint(&mut buf, data.len() as u64);
        buf.extend_from_slice(data);
        let crc = crc32c::crc32c(&buf);
        buf.extend_from_slice(&crc.to_be_bytes());
        let offset = w.size;
        let result = match &w.file {
            Some((seq, file)) => file
                .write_all_at(&buf, offset)
                .map(|()| (u64::from(*seq) << 32) | offset),
            None => Err(io::Error::other("no head chunk file")),
        };
        if result.is_ok() {
            w.size += buf.len() as u64;
            w.max_t = w.max_t.max(max_t);
        }
        w.buf = buf;
        result
    }

    /// The data of the chunk at `chunk_ref` (checksum verified); `None` when the reference
    /// points nowhere valid.
    pub fn read(&self, chunk_ref: u64) -> Option<ChunkBytes> {
        let seq = (chunk_ref >> 32) as u32;
        let off = (chunk_ref & 0xffff_ffff) as usize;
        let map = {
            let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(&files.get(&seq)?.map)
        };
        let (_, _, _, start, end, _) = parse_entry(&map, off)?;
        Some(ChunkBytes { map, start, end })
    }

    /// Deletes the oldest files whose chunks all end before `before_ms`, in order, stopping
    /// at the first file that still holds a newer chunk (or the file being written, which is
    /// finished first when it is old too). The caller has dropped every reference to chunks
    /// ending before `before_ms`. Returns how many files went.
    pub fn truncate(&self, before_ms: i64) -> io::Result<usize> {
        let mut w = lock(&self.writer);
        if w.file.is_some() && w.max_t < before_ms {
            self.seal(&mut w)?;
        }
        let current = w.file.as_ref().map(|(s, _)| *s);
        let doomed: Vec<u32> = {
            let files = self.files.read().unwrap_or_else(PoisonError::into_inner);
            files
                .iter()
                .take_while(|(s, f)| Some(**s) != current && f.max_t < before_ms)
                .map(|(s, _)| *s)
                .collect()
        };
        for seq in &doomed {
            let path = self.dir.join(file_name(*seq));
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            self.files
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(seq);
        }
        self.counters
            .files_deleted
            .fetch_add(doomed.len() as u64, Ordering::Relaxed);
        Ok(doomed.len())
    }
}

impl Drop for HeadChunks {
    fn drop(&mut self) {
        // Cut the file being written back to its length, so a clean stop leaves no sparse
        // tail to scan at the next start.
        let w = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, file)) = &w.file {
            let _ = file.set_len(w.size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8) -> Vec<u8> {
        let mut c = ringkit_tsdb::XorChunk::new();
        for k in 0..=i64::from(n) {
            c.append(k * 1000, k as f64);
        }
        c.bytes().to_vec()
    }

    #[test]
    fn chunks_written_read_back_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (hc, rec) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        assert_eq!(rec, Recovery::default());
        let mut refs = Vec::new();
        for i in 0..40u8 {
            let data = chunk(i);
            let r = hc
                .write(u64::from(i) + 1, 0, i64::from(i) * 1000, &data)
                .unwrap();
            assert_eq!(&*hc.read(r).unwrap(), &data[..]);
            refs.push((r, data));
        }
        assert!(hc.file_count() > 1, "1 KiB files: several were cut");
        // A file is exactly Prometheus' layout.
        let first = fs::read(dir.path().join("000001")).unwrap();
        assert_eq!(&first[..8], &[0x01, 0x30, 0xBC, 0x91, 1, 0, 0, 0]);
        assert_eq!(&first[8..16], &1u64.to_be_bytes());
        drop(hc);
        let (hc, rec) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        assert!(!rec.repaired);
        assert_eq!(rec.chunks.len(), 40);
        for (k, c) in rec.chunks.iter().enumerate() {
            assert_eq!(c.series_ref, k as u64 + 1);
            assert_eq!(c.chunk_ref, refs[k].0);
            assert_eq!(&*hc.read(c.chunk_ref).unwrap(), &refs[k].1[..]);
        }
        // New chunks go to a new file after the old ones.
        let r = hc.write(99, 0, 1, &chunk(1)).unwrap();
        assert!(r >> 32 > refs.last().unwrap().0 >> 32);
    }

    #[test]
    fn a_torn_chunk_ends_the_files_there() {
        let dir = tempfile::tempdir().unwrap();
        let (hc, _) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        let refs: Vec<u64> = (0..30u8)
            .map(|i| hc.write(u64::from(i) + 1, 0, 0, &chunk(i)).unwrap())
            .collect();
        drop(hc);
        // Flip a byte inside the 5th chunk: it and everything written after it is dropped.
        let victim = refs[4];
        let path = dir.path().join(file_name((victim >> 32) as u32));
        let mut bytes = fs::read(&path).unwrap();
        let at = (victim & 0xffff_ffff) as usize + ENTRY_FIXED + 3;
        bytes[at] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (hc, rec) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        assert!(rec.repaired);
        assert_eq!(rec.chunks.len(), 4);
        assert!(rec.files_dropped > 0);
        assert!(hc.read(refs[4]).is_none());
        assert!(hc.read(refs[3]).is_some());
        // Cut mid-chunk (a torn write): the same.
        drop(hc);
        let r3 = refs[3];
        let path = dir.path().join(file_name((r3 >> 32) as u32));
        let len = fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_, rec) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        assert_eq!(rec.chunks.len(), 3);
    }

    #[test]
    fn truncation_deletes_old_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (hc, _) = HeadChunks::open(dir.path(), 1 << 10).unwrap();
        let refs: Vec<u64> = (0..30u8)
            .map(|i| {
                let t = i64::from(i) * 1000;
                hc.write(1, t, t + 999, &chunk(50 + i % 8)).unwrap()
            })
            .collect();
        let files = hc.file_count();
        let gone = hc.truncate(15_000).unwrap();
        assert!(gone > 0 && gone < files);
        assert!(hc.read(refs[0]).is_none());
        assert!(hc.read(refs[15]).is_some());
        // Everything old, the file being written included.
        hc.truncate(i64::MAX).unwrap();
        assert_eq!(hc.file_count(), 0);
        let r = hc.write(1, 0, 1, &chunk(3)).unwrap();
        assert!(hc.read(r).is_some());
    }
}
