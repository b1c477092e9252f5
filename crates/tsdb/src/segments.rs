//! The chunk segment files of a block, `chunks/000001`, `chunks/000002`, ...
//! (Prometheus' `tsdb/docs/format/chunks.md`).
//!
//! A segment is `magic 0x85BD40DD (4) │ version 1 (1) │ 3 zero bytes`, then per chunk
//! `uvarint len │ encoding (1) │ data │ CRC32C(encoding ‖ data) (4)`. A chunk reference is
//! `segment index << 32 | byte offset`; a new segment starts before one would pass 512 MiB.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::encoding::{Dec, crc32c};

/// Magic number at the start of a chunk segment file.
pub const SEGMENT_MAGIC: u32 = 0x85BD_40DD;
/// Segment header: magic, version, padding.
pub const SEGMENT_HEADER_LEN: u64 = 8;
/// The largest segment Prometheus writes (and so do we, by default).
pub const DEFAULT_SEGMENT_SIZE: u64 = 512 * 1024 * 1024;
/// The encoding byte of an XOR chunk.
pub const ENCODING_XOR: u8 = 1;

/// The checksum of a chunk entry: CRC32C over the encoding byte, then the data.
fn chunk_crc(encoding: u8, data: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c(&[encoding]), data)
}

/// File name of the segment with 0-based index `i` (`000001` for 0).
pub(crate) fn segment_name(i: u32) -> String {
    format!("{:06}", u64::from(i) + 1)
}

/// Writes chunks into consecutive segment files of a `chunks/` directory.
#[derive(Debug)]
pub(crate) struct SegmentWriter {
    dir: PathBuf,
    max_size: u64,
    current: Option<(u32, BufWriter<File>)>,
    pos: u64,
    next_index: u32,
}

impl SegmentWriter {
    pub(crate) fn new(dir: &Path, max_size: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            max_size: max_size.max(SEGMENT_HEADER_LEN + 1),
            current: None,
            pos: 0,
            next_index: 0,
        })
    }

    fn cut(&mut self) -> std::io::Result<()> {
        self.finish_current()?;
        let index = self.next_index;
        self.next_index += 1;
        let file = File::create(self.dir.join(segment_name(index)))?;
        let mut w = BufWriter::with_capacity(1 << 16, file);
        w.write_all(&SEGMENT_MAGIC.to_be_bytes())?;
        w.write_all(&[1, 0, 0, 0])?;
        self.current = Some((index, w));
        self.pos = SEGMENT_HEADER_LEN;
        Ok(())
    }

    fn finish_current(&mut self) -> std::io::Result<()> {
        if let Some((_, w)) = self.current.take() {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
        }
        Ok(())
    }

    /// Appends one chunk and returns its reference.
    pub(crate) fn write_chunk(&mut self, encoding: u8, data: &[u8]) -> std::io::Result<u64> {
        let mut head = Vec::with_capacity(11);
        crate::chunk::put_uvarint(&mut head, data.len() as u64);
        head.push(encoding);
        let entry_len = head.len() as u64 + data.len() as u64 + 4;
        let full = self.pos + entry_len > self.max_size && self.pos > SEGMENT_HEADER_LEN;
        if self.current.is_none() || full {
            self.cut()?;
        }
        if self.pos > u64::from(u32::MAX) {
            return Err(std::io::Error::other("chunk segment offset past 4 GiB"));
        }
        let Some((index, w)) = self.current.as_mut() else {
            return Err(std::io::Error::other("no open chunk segment"));
        };
        let chunk_ref = (u64::from(*index) << 32) | self.pos;
        let crc = chunk_crc(encoding, data);
        w.write_all(&head)?;
        w.write_all(data)?;
        w.write_all(&crc.to_be_bytes())?;
        self.pos += entry_len;
        Ok(chunk_ref)
    }

    /// Flushes and fsyncs the last segment; returns the number of segments written.
    pub(crate) fn finish(mut self) -> std::io::Result<u32> {
        self.finish_current()?;
        Ok(self.next_index)
    }
}

/// Why a chunk could not be read from the segment files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// The reference names a segment the block does not have.
    #[error("chunk ref {0:#x}: no such segment")]
    NoSegment(u64),
    /// A segment file has a bad header.
    #[error("chunk segment {file}: bad header")]
    BadHeader {
        /// The file name.
        file: String,
    },
    /// The chunk entry runs past the end of the file or has a bad length.
    #[error("chunk ref {0:#x}: entry cut short or bad length")]
    Truncated(u64),
    /// The chunk's checksum does not match.
    #[error("chunk ref {0:#x}: checksum mismatch")]
    Checksum(u64),
    /// Reading the file failed.
    #[error("chunk segment I/O: {0}")]
    Io(String),
}

/// Reads chunks by reference with positioned reads (no file is loaded whole).
pub(crate) struct SegmentReader {
    files: Vec<(File, u64)>,
}

impl SegmentReader {
    /// Opens `chunks/000001`, `000002`, ... in order until one is missing.
    pub(crate) fn open(dir: &Path) -> Result<Self, SegmentError> {
        let mut files = Vec::new();
        for i in 0u32.. {
            let path = dir.join(segment_name(i));
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(e) => return Err(SegmentError::Io(format!("{}: {e}", path.display()))),
            };
            let size = file
                .metadata()
                .map_err(|e| SegmentError::Io(e.to_string()))?
                .len();
            let mut header = [0u8; 8];
            if size < SEGMENT_HEADER_LEN
                || file.read_exact_at(&mut header, 0).is_err()
                || u32::from_be_bytes([header[0], header[1], header[2], header[3]]) != SEGMENT_MAGIC
                || header[4] != 1
            {
                return Err(SegmentError::BadHeader {
                    file: path.display().to_string(),
                });
            }
            files.push((file, size));
        }
        Ok(Self { files })
    }

    /// The encoding byte and data of the chunk at `chunk_ref`, checksum verified.
    pub(crate) fn read(&self, chunk_ref: u64) -> Result<(u8, Vec<u8>), SegmentError> {
        let index = (chunk_ref >> 32) as usize;
        let offset = chunk_ref & 0xffff_ffff;
        let (file, size) = self
            .files
            .get(index)
            .ok_or(SegmentError::NoSegment(chunk_ref))?;
        if offset < SEGMENT_HEADER_LEN || offset >= *size {
            return Err(SegmentError::Truncated(chunk_ref));
        }
        let mut head = [0u8; 11];
        let head_len = (size - offset).min(11) as usize;
        file.read_exact_at(&mut head[..head_len], offset)
            .map_err(|e| SegmentError::Io(e.to_string()))?;
        let mut d = Dec::new(&head[..head_len]);
        let len = d
            .uvarint()
            .map_err(|_| SegmentError::Truncated(chunk_ref))?;
        let encoding = d.u8().map_err(|_| SegmentError::Truncated(chunk_ref))?;
        let data_at = offset + d.position() as u64;
        if len > size.saturating_sub(data_at).saturating_sub(4) {
            return Err(SegmentError::Truncated(chunk_ref));
        }
        let mut buf = vec![0u8; len as usize + 4];
        file.read_exact_at(&mut buf, data_at)
            .map_err(|e| SegmentError::Io(e.to_string()))?;
        let crc_at = len as usize;
        let want = u32::from_be_bytes([
            buf[crc_at],
            buf[crc_at + 1],
            buf[crc_at + 2],
            buf[crc_at + 3],
        ]);
        buf.truncate(crc_at);
        if chunk_crc(encoding, &buf) != want {
            return Err(SegmentError::Checksum(chunk_ref));
        }
        Ok((encoding, buf))
    }
}
