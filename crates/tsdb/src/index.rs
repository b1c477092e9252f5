//! The block `index` file, format version 2 (Prometheus' `tsdb/docs/format/index.md`).
//!
//! ```text
//! magic 0xBAAAD700 (4) │ version 2 (1)
//! symbol table   len(4) #symbols(4) {uvarint len, bytes}... crc(4)       sorted, "" included
//! series         (each 16-byte aligned; series ref = offset / 16)
//!                uvarint len │ #labels, {name ref, value ref}... │ #chunks, chunk metas │ crc
//! label indices  (4-aligned) len(4) #names=1(4) #values(4) {value ref(4)}... crc   per name
//! postings       (4-aligned) len(4) #refs(4) {series ref(4)}... crc   first ("",""), then
//!                every (name, value) in sorted order
//! label offset table     len(4) #entries(4) {1, name, uvarint offset}... crc
//! postings offset table  len(4) #entries(4) {2, name, value, uvarint offset}... crc
//! TOC            six u64 section offsets + crc
//! ```
//! Chunk metas in a series: the first chunk as `varint mint, uvarint maxt-mint, uvarint ref`,
//! each later one as `uvarint mint-prev_maxt, uvarint maxt-mint, varint ref-prev_ref`. Every
//! `crc` is CRC32 Castagnoli over the `len` bytes it follows.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::encoding::{Dec, DecodeError, Enc, crc32c};
use crate::labels::Label;

/// Magic number at the start of an index file.
pub const INDEX_MAGIC: u32 = 0xBAAA_D700;
/// The index format version written and read here.
pub const INDEX_VERSION: u8 = 2;
const TOC_LEN: usize = 6 * 8 + 4;

/// Where a chunk of a series lies in time and in the chunk segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    /// Time of the chunk's first sample (ms).
    pub min_time: i64,
    /// Time of the chunk's last sample (ms, inclusive).
    pub max_time: i64,
    /// `segment index << 32 | byte offset` in the block's `chunks/` directory.
    pub chunk_ref: u64,
}

/// A series as the index stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSeries {
    /// Sorted labels.
    pub labels: Vec<Label>,
    /// Chunks in time order, not overlapping.
    pub chunks: Vec<ChunkMeta>,
}

/// Why an index file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    /// Not an index file, or a version this reader does not know.
    #[error("index: bad header (magic {magic:#010x}, version {version})")]
    BadHeader {
        /// Magic number found.
        magic: u32,
        /// Version byte found.
        version: u8,
    },
    /// A section's checksum does not match its bytes.
    #[error("index: checksum mismatch in {section} at offset {offset}")]
    Checksum {
        /// Which section.
        section: &'static str,
        /// Its offset in the file.
        offset: u64,
    },
    /// A section is cut short or holds an impossible value.
    #[error("index: corrupt {section} at offset {offset}: {detail}")]
    Corrupt {
        /// Which section.
        section: &'static str,
        /// Its offset in the file.
        offset: u64,
        /// What was wrong.
        detail: String,
    },
}

fn corrupt(section: &'static str, offset: u64, detail: impl Into<String>) -> IndexError {
    IndexError::Corrupt {
        section,
        offset,
        detail: detail.into(),
    }
}

fn dec_err(section: &'static str, offset: u64) -> impl Fn(DecodeError) -> IndexError {
    move |e| corrupt(section, offset, format!("{e:?}"))
}

/// Writes an index file for series that are already sorted by labels, with labels sorted
/// by name and chunks in time order. Returns the file size.
pub(crate) fn write_index(path: &Path, series: &[IndexSeries]) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut w = PosWriter {
        out: BufWriter::with_capacity(1 << 16, file),
        pos: 0,
    };
    w.write(&INDEX_MAGIC.to_be_bytes())?;
    w.write(&[INDEX_VERSION])?;

    // Symbol table: every name and value, plus "" for the all-postings key.
    let mut symbols: Vec<&str> = vec![""];
    for s in series {
        for l in &s.labels {
            symbols.push(&l.name);
            symbols.push(&l.value);
        }
    }
    symbols.sort_unstable();
    symbols.dedup();
    let sym_ref = |s: &str| -> u32 {
        // Every label string was put in the table above.
        symbols.binary_search(&s).unwrap_or(0) as u32
    };
    let toc_symbols = w.pos;
    let mut e = Enc::default();
    e.put_be32(symbols.len() as u32);
    for s in &symbols {
        e.put_uvarint_str(s);
    }
    w.section_be32_len(&e.buf)?;

    // Series, each 16-byte aligned; the TOC points at the section start before the first
    // padding, as Prometheus' writer does.
    let toc_series = w.pos;
    let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    let mut all = Vec::with_capacity(series.len());
    let mut values_of: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in series {
        w.pad_to(16)?;
        let sref = u32::try_from(w.pos / 16).map_err(|_| {
            std::io::Error::other("index too large: series reference does not fit 32 bits")
        })?;
        all.push(sref);
        let mut e = Enc::default();
        e.put_uvarint(s.labels.len() as u64);
        for l in &s.labels {
            e.put_uvarint(u64::from(sym_ref(&l.name)));
            e.put_uvarint(u64::from(sym_ref(&l.value)));
            postings.entry((&l.name, &l.value)).or_default().push(sref);
            values_of.entry(&l.name).or_default().push(&l.value);
        }
        e.put_uvarint(s.chunks.len() as u64);
        let mut prev: Option<&ChunkMeta> = None;
        for c in &s.chunks {
            match prev {
                None => {
                    e.put_varint(c.min_time);
                    e.put_uvarint(c.max_time.wrapping_sub(c.min_time) as u64);
                    e.put_uvarint(c.chunk_ref);
                }
                Some(p) => {
                    e.put_uvarint(c.min_time.wrapping_sub(p.max_time) as u64);
                    e.put_uvarint(c.max_time.wrapping_sub(c.min_time) as u64);
                    e.put_varint(c.chunk_ref.wrapping_sub(p.chunk_ref) as i64);
                }
            }
            prev = Some(c);
        }
        let mut head = Enc::default();
        head.put_uvarint(e.len() as u64);
        w.write(&head.buf)?;
        w.write(&e.buf)?;
        w.write(&crc32c(&e.buf).to_be_bytes())?;
    }

    // Label indices (no longer read by Prometheus, still written by it).
    let mut label_index_offsets = Vec::with_capacity(values_of.len());
    let toc_label_indices = if values_of.is_empty() { 0 } else { w.pos };
    for (name, values) in &mut values_of {
        values.sort_unstable();
        values.dedup();
        w.pad_to(4)?;
        label_index_offsets.push((*name, w.pos));
        let mut e = Enc::default();
        e.put_be32(1);
        e.put_be32(values.len() as u32);
        for v in values.iter() {
            e.put_be32(sym_ref(v));
        }
        w.section_be32_len(&e.buf)?;
    }

    // Postings: all series first under ("", ""), then each label pair.
    let mut postings_offsets = Vec::with_capacity(postings.len() + 1);
    w.pad_to(4)?;
    let toc_postings = w.pos;
    let mut lists: Vec<((&str, &str), &[u32])> = vec![(("", ""), &all)];
    lists.extend(postings.iter().map(|(k, v)| (*k, v.as_slice())));
    for ((name, value), refs) in lists {
        w.pad_to(4)?;
        postings_offsets.push((name, value, w.pos));
        let mut e = Enc::default();
        e.put_be32(refs.len() as u32);
        for r in refs {
            e.put_be32(*r);
        }
        w.section_be32_len(&e.buf)?;
    }

    let toc_label_offsets = w.pos;
    let mut e = Enc::default();
    e.put_be32(label_index_offsets.len() as u32);
    for (name, off) in &label_index_offsets {
        e.put_u8(1);
        e.put_uvarint_str(name);
        e.put_uvarint(*off);
    }
    w.section_be32_len(&e.buf)?;

    let toc_postings_offsets = w.pos;
    let mut e = Enc::default();
    e.put_be32(postings_offsets.len() as u32);
    for (name, value, off) in &postings_offsets {
        e.put_u8(2);
        e.put_uvarint_str(name);
        e.put_uvarint_str(value);
        e.put_uvarint(*off);
    }
    w.section_be32_len(&e.buf)?;

    let mut e = Enc::default();
    for off in [
        toc_symbols,
        toc_series,
        toc_label_indices,
        toc_label_offsets,
        toc_postings,
        toc_postings_offsets,
    ] {
        e.put_be64(off);
    }
    let crc = crc32c(&e.buf);
    e.put_be32(crc);
    w.write(&e.buf)?;

    let file = w.out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(w.pos)
}

/// A buffered writer that knows its position, for section offsets and alignment.
struct PosWriter {
    out: BufWriter<File>,
    pos: u64,
}

impl PosWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn pad_to(&mut self, align: u64) -> std::io::Result<()> {
        let rem = self.pos % align;
        if rem != 0 {
            let zeros = [0u8; 16];
            self.write(&zeros[..(align - rem) as usize])?;
        }
        Ok(())
    }
    /// Writes `len(4) body crc(4)`.
    fn section_be32_len(&mut self, body: &[u8]) -> std::io::Result<()> {
        let len = u32::try_from(body.len())
            .map_err(|_| std::io::Error::other("index section larger than 4 GiB"))?;
        self.write(&len.to_be_bytes())?;
        self.write(body)?;
        self.write(&crc32c(body).to_be_bytes())
    }
}

/// The offsets of an index's sections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Toc {
    symbols: u64,
    series: u64,
    postings_offset_table: u64,
}

/// A read index: symbols and the postings offset table are parsed up front; series and
/// postings lists are decoded on demand from the file bytes held in memory.
pub struct IndexReader {
    data: Vec<u8>,
    symbols: Vec<String>,
    /// name -> sorted (value, postings offset).
    postings: BTreeMap<String, Vec<(String, u64)>>,
}

impl std::fmt::Debug for IndexReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexReader")
            .field("bytes", &self.data.len())
            .field("symbols", &self.symbols.len())
            .field("label_names", &self.postings.len())
            .finish()
    }
}

impl IndexReader {
    /// Parses an index held in memory, checking header, TOC, symbols and postings table.
    pub fn new(data: Vec<u8>) -> Result<Self, IndexError> {
        if data.len() < 5 + TOC_LEN {
            return Err(corrupt("file", 0, format!("only {} bytes", data.len())));
        }
        let magic = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let version = data[4];
        if magic != INDEX_MAGIC || version != INDEX_VERSION {
            return Err(IndexError::BadHeader { magic, version });
        }
        let toc_at = data.len() - TOC_LEN;
        let toc_bytes = &data[toc_at..];
        if crc32c(&toc_bytes[..48])
            != u32::from_be_bytes([toc_bytes[48], toc_bytes[49], toc_bytes[50], toc_bytes[51]])
        {
            return Err(IndexError::Checksum {
                section: "toc",
                offset: toc_at as u64,
            });
        }
        let mut d = Dec::new(toc_bytes);
        let mut offs = [0u64; 6];
        for o in &mut offs {
            *o = d.be64().map_err(dec_err("toc", toc_at as u64))?;
        }
        let toc = Toc {
            symbols: offs[0],
            series: offs[1],
            postings_offset_table: offs[5],
        };
        for (name, off) in [
            ("symbols", toc.symbols),
            ("series", toc.series),
            ("postings offset table", toc.postings_offset_table),
        ] {
            if off > toc_at as u64 {
                return Err(corrupt(
                    "toc",
                    toc_at as u64,
                    format!("{name} offset {off} past the TOC"),
                ));
            }
        }
        let mut reader = Self {
            data,
            symbols: Vec::new(),
            postings: BTreeMap::new(),
        };

        let body = reader.be32_section("symbols", toc.symbols)?;
        let mut d = Dec::new(body);
        let n = d.be32().map_err(dec_err("symbols", toc.symbols))?;
        let mut symbols = Vec::with_capacity((n as usize).min(body.len()));
        for _ in 0..n {
            symbols.push(
                d.uvarint_str()
                    .map_err(dec_err("symbols", toc.symbols))?
                    .to_string(),
            );
        }

        let mut postings: BTreeMap<String, Vec<(String, u64)>> = BTreeMap::new();
        if toc.postings_offset_table != 0 {
            let at = toc.postings_offset_table;
            let body = reader.be32_section("postings offset table", at)?;
            let mut d = Dec::new(body);
            let n = d.be32().map_err(dec_err("postings offset table", at))?;
            for _ in 0..n {
                let keys = d.u8().map_err(dec_err("postings offset table", at))?;
                if keys != 2 {
                    return Err(corrupt(
                        "postings offset table",
                        at,
                        format!("entry with {keys} keys"),
                    ));
                }
                let name = d
                    .uvarint_str()
                    .map_err(dec_err("postings offset table", at))?;
                let value = d
                    .uvarint_str()
                    .map_err(dec_err("postings offset table", at))?;
                let off = d.uvarint().map_err(dec_err("postings offset table", at))?;
                postings
                    .entry(name.to_string())
                    .or_default()
                    .push((value.to_string(), off));
            }
        }
        for values in postings.values_mut() {
            values.sort();
        }
        reader.symbols = symbols;
        reader.postings = postings;
        Ok(reader)
    }

    /// The body of a `len(4) body crc(4)` section, checksum verified.
    fn be32_section(&self, section: &'static str, at: u64) -> Result<&[u8], IndexError> {
        let start = usize::try_from(at).map_err(|_| corrupt(section, at, "offset too large"))?;
        let mut d = Dec::new(
            self.data
                .get(start..)
                .ok_or_else(|| corrupt(section, at, "offset past end"))?,
        );
        let len = d.be32().map_err(dec_err(section, at))? as usize;
        let body = d.bytes(len).map_err(dec_err(section, at))?;
        let crc = d.be32().map_err(dec_err(section, at))?;
        if crc32c(body) != crc {
            return Err(IndexError::Checksum {
                section,
                offset: at,
            });
        }
        Ok(body)
    }

    fn symbol(&self, r: u64, at: u64) -> Result<&str, IndexError> {
        usize::try_from(r)
            .ok()
            .and_then(|i| self.symbols.get(i))
            .map(String::as_str)
            .ok_or_else(|| corrupt("series", at, format!("symbol ref {r} out of range")))
    }

    /// All label names, sorted.
    pub fn label_names(&self) -> Vec<&str> {
        self.postings
            .keys()
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// All values of a label name, sorted.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.postings
            .get(name)
            .map(|vs| vs.iter().map(|(v, _)| v.as_str()).collect())
            .unwrap_or_default()
    }

    /// Postings offsets of the values of `name` that satisfy `keep`.
    pub(crate) fn value_offsets<'s>(
        &'s self,
        name: &str,
        keep: impl Fn(&str) -> bool + 's,
    ) -> impl Iterator<Item = u64> + 's {
        self.postings
            .get(name)
            .into_iter()
            .flatten()
            .filter(move |(v, _)| keep(v))
            .map(|(_, off)| *off)
    }

    /// The offset of the all-series postings list.
    pub(crate) fn all_postings_offset(&self) -> Option<u64> {
        self.postings
            .get("")
            .and_then(|vs| vs.first())
            .map(|(_, o)| *o)
    }

    /// Reads the sorted series refs of a postings list.
    pub(crate) fn postings_at(&self, at: u64) -> Result<Vec<u32>, IndexError> {
        let body = self.be32_section("postings", at)?;
        let mut d = Dec::new(body);
        let n = d.be32().map_err(dec_err("postings", at))? as usize;
        if n.saturating_mul(4) != d.remaining() {
            return Err(corrupt(
                "postings",
                at,
                format!("{n} refs in {} bytes", d.remaining()),
            ));
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(d.be32().map_err(dec_err("postings", at))?);
        }
        if out.windows(2).any(|w| w[0] >= w[1]) {
            return Err(corrupt("postings", at, "refs not increasing"));
        }
        Ok(out)
    }

    /// Decodes the series with reference `sref` (its offset / 16).
    pub fn series(&self, sref: u32) -> Result<IndexSeries, IndexError> {
        let at = u64::from(sref) * 16;
        let start = at as usize;
        let mut d = Dec::new(
            self.data
                .get(start..)
                .ok_or_else(|| corrupt("series", at, "offset past end"))?,
        );
        let len = d.uvarint().map_err(dec_err("series", at))?;
        let len = usize::try_from(len).map_err(|_| corrupt("series", at, "length too large"))?;
        let body = d.bytes(len).map_err(dec_err("series", at))?;
        let crc = d.be32().map_err(dec_err("series", at))?;
        if crc32c(body) != crc {
            return Err(IndexError::Checksum {
                section: "series",
                offset: at,
            });
        }
        let mut d = Dec::new(body);
        let nl = d.uvarint().map_err(dec_err("series", at))?;
        let mut labels = Vec::with_capacity((nl as usize).min(body.len()));
        for _ in 0..nl {
            let n = d.uvarint().map_err(dec_err("series", at))?;
            let v = d.uvarint().map_err(dec_err("series", at))?;
            labels.push(Label::new(self.symbol(n, at)?, self.symbol(v, at)?));
        }
        let nc = d.uvarint().map_err(dec_err("series", at))?;
        let mut chunks: Vec<ChunkMeta> = Vec::with_capacity((nc as usize).min(body.len()));
        for i in 0..nc {
            let c = if i == 0 {
                let min_time = d.varint().map_err(dec_err("series", at))?;
                let span = d.uvarint().map_err(dec_err("series", at))?;
                let chunk_ref = d.uvarint().map_err(dec_err("series", at))?;
                ChunkMeta {
                    min_time,
                    max_time: min_time.wrapping_add(span as i64),
                    chunk_ref,
                }
            } else {
                let p = chunks[chunks.len() - 1];
                let gap = d.uvarint().map_err(dec_err("series", at))?;
                let span = d.uvarint().map_err(dec_err("series", at))?;
                let dref = d.varint().map_err(dec_err("series", at))?;
                let min_time = p.max_time.wrapping_add(gap as i64);
                ChunkMeta {
                    min_time,
                    max_time: min_time.wrapping_add(span as i64),
                    chunk_ref: p.chunk_ref.wrapping_add(dref as u64),
                }
            };
            chunks.push(c);
        }
        Ok(IndexSeries { labels, chunks })
    }
}
