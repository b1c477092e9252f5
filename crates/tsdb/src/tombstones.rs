//! The block `tombstones` file (Prometheus' `tsdb/docs/format/tombstones.md`):
//! `magic 0x0130BA30 (4) │ version 1 (1) │ {uvarint series ref, varint mint, varint maxt}... │
//! CRC32C of the entries (4)`. Blocks we write have none; blocks Prometheus wrote after a
//! delete-series call may, and the reader hides the deleted samples.

use std::collections::HashMap;

use crate::encoding::{Dec, crc32c};

/// Magic number at the start of a tombstones file.
pub const TOMBSTONES_MAGIC: u32 = 0x0130_BA30;

/// The bytes of a tombstones file with no entries.
pub(crate) fn empty_file() -> Vec<u8> {
    let mut out = TOMBSTONES_MAGIC.to_be_bytes().to_vec();
    out.push(1);
    out.extend_from_slice(&crc32c(&[]).to_be_bytes());
    out
}

/// Deleted time ranges (inclusive) per series ref.
pub(crate) type Tombstones = HashMap<u32, Vec<(i64, i64)>>;

/// Parses a tombstones file; `Err` carries a description of what is wrong.
pub(crate) fn parse(data: &[u8]) -> Result<Tombstones, String> {
    if data.len() < 9 {
        return Err(format!(
            "{} bytes, less than header and checksum",
            data.len()
        ));
    }
    let magic = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
    if magic != TOMBSTONES_MAGIC || data[4] != 1 {
        return Err(format!(
            "bad header (magic {magic:#010x}, version {})",
            data[4]
        ));
    }
    let body = &data[5..data.len() - 4];
    let tail = &data[data.len() - 4..];
    if crc32c(body) != u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) {
        return Err("checksum mismatch".to_string());
    }
    let mut out = Tombstones::new();
    let mut d = Dec::new(body);
    while d.remaining() > 0 {
        let entry = (|| Some((d.uvarint().ok()?, d.varint().ok()?, d.varint().ok()?)))();
        let Some((sref, mint, maxt)) = entry else {
            return Err(format!("entry cut short at byte {}", d.position() + 5));
        };
        let sref = u32::try_from(sref).map_err(|_| format!("series ref {sref} too large"))?;
        out.entry(sref).or_default().push((mint, maxt));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_what_prometheus_writes() {
        // The tombstones file of the promtool-made block in testdata.
        assert_eq!(empty_file(), [0x01, 0x30, 0xba, 0x30, 0x01, 0, 0, 0, 0]);
        assert!(parse(&empty_file()).unwrap().is_empty());
    }

    #[test]
    fn entries_parse_and_junk_is_an_error() {
        let mut body = Vec::new();
        crate::chunk::put_uvarint(&mut body, 7);
        crate::chunk::put_varint(&mut body, -5);
        crate::chunk::put_varint(&mut body, 100);
        let mut file = TOMBSTONES_MAGIC.to_be_bytes().to_vec();
        file.push(1);
        file.extend_from_slice(&body);
        file.extend_from_slice(&crc32c(&body).to_be_bytes());
        assert_eq!(parse(&file).unwrap()[&7], vec![(-5, 100)]);
        file[6] ^= 1;
        assert!(parse(&file).is_err());
        assert!(parse(&[1, 2, 3]).is_err());
    }
}
