//! WAL checkpoints: what a tenant head still needs, so older segments can be deleted.
//!
//! After a block is cut and the head truncated, [`write()`] saves every live series (a series
//! record with its reference) and its chunks (chunk records, Prometheus' XOR bytes) into
//! `checkpoint.NNNNNNNN/00000000` inside the WAL directory, where `NNNNNNNN` is the last segment
//! it replaces, then deletes those segments and any older checkpoint. It is the role of
//! Prometheus' `checkpoint.NNNNNN` directory; ours is written from the head in memory rather
//! than by filtering the old segments, which also makes replay cheap: closed chunks are taken
//! over as they are instead of being re-encoded sample by sample.
//!
//! # Crash safety
//! The checkpoint is written as `checkpoint.NNNNNNNN.tmp`, flushed, renamed and the rename
//! flushed; only then are segments deleted. [`prepare`] (run before replay) removes leftover
//! `.tmp` directories, older checkpoints and segments a complete checkpoint already covers, so
//! a crash at any step leaves either the old segments or the new checkpoint to replay.
//!
//! Samples appended while the checkpoint is written may land both in it and in the segment
//! after it; replay skips the second copy (same timestamp), so nothing is lost or doubled.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::record::{Encoder, Record};
use crate::store::Store;
use crate::wal::{self, ReplayStats, WalError, io_err, segment_name, sync_dir};

const PREFIX: &str = "checkpoint.";
const TMP_SUFFIX: &str = ".tmp";
/// Series (and chunks) per record.
const BATCH: usize = 1000;

fn name(index: u64) -> String {
    format!("{PREFIX}{}", segment_name(index))
}

fn parse(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(PREFIX)?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// What [`write()`] saved and removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Series saved.
    pub series: usize,
    /// Chunks saved.
    pub chunks: usize,
    /// Bytes of the checkpoint file.
    pub bytes: u64,
    /// Segments deleted.
    pub segments_deleted: usize,
}

/// Writes the checkpoint of `tenant`'s head replacing segments up to `last_segment` of the WAL
/// in `wal_dir`, then deletes those segments and older checkpoints. `last_segment` must be a
/// segment closed with [`crate::wal::Wal::cut_segment`] after the head was truncated.
pub fn write(
    wal_dir: &Path,
    last_segment: u64,
    store: &Store,
    tenant: &str,
) -> Result<CheckpointStats, WalError> {
    let tmp = wal_dir.join(format!("{}{TMP_SUFFIX}", name(last_segment)));
    let result = write_tmp(wal_dir, &tmp, last_segment, store, tenant);
    if result.is_err() {
        // A failed attempt (a full disk, say) must not leave its partial copy taking space
        // until the next start; the next compaction tries again.
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_tmp(
    wal_dir: &Path,
    tmp: &Path,
    last_segment: u64,
    store: &Store,
    tenant: &str,
) -> Result<CheckpointStats, WalError> {
    let final_dir = wal_dir.join(name(last_segment));
    if tmp.exists() {
        fs::remove_dir_all(tmp).map_err(io_err("remove", tmp))?;
    }
    fs::create_dir_all(tmp).map_err(io_err("create directory", tmp))?;
    let path = tmp.join(segment_name(0));
    let file = File::create(&path).map_err(io_err("create checkpoint", &path))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut stats = CheckpointStats::default();
    let mut enc = Encoder::default();
    let mut payload = Vec::new();
    let mut framed = Vec::new();
    let mut series = Vec::with_capacity(BATCH);
    let mut chunks: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut err: Option<WalError> = None;
    let mut flush = |series: &mut Vec<(u64, crate::labels::PackedLabels)>,
                     chunks: &mut Vec<(u64, Vec<u8>)>,
                     stats: &mut CheckpointStats| {
        framed.clear();
        if !series.is_empty() {
            payload.clear();
            enc.series(series.iter().map(|(r, l)| (*r, l)), &mut payload);
            wal::frame(&mut framed, &payload)?;
        }
        if !chunks.is_empty() {
            payload.clear();
            enc.chunks(chunks.iter().map(|(r, b)| (*r, &b[..])), &mut payload);
            wal::frame(&mut framed, &payload)?;
        }
        stats.bytes += framed.len() as u64;
        series.clear();
        chunks.clear();
        out.write_all(&framed)
            .map_err(io_err("write checkpoint", &path))
    };
    store.for_each_series(tenant, |r, labels, cs| {
        if err.is_some() {
            return;
        }
        series.push((r, labels.clone()));
        stats.series += 1;
        for c in cs {
            let Some(c) = c else {
                // The checkpoint must hold every sample of the head: without this chunk it
                // would not, so the segments stay (the next compaction tries again).
                err = Some(WalError::Io {
                    op: "read head chunk for checkpoint",
                    path: wal_dir.to_owned(),
                    source: io::Error::new(io::ErrorKind::InvalidData, "head chunk unreadable"),
                });
                return;
            };
            chunks.push((r, c.to_vec()));
            stats.chunks += 1;
        }
        if series.len() >= BATCH
            && let Err(e) = flush(&mut series, &mut chunks, &mut stats)
        {
            err = Some(e);
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    flush(&mut series, &mut chunks, &mut stats)?;
    let file = out
        .into_inner()
        .map_err(|e| io_err("write checkpoint", &path)(e.into_error()))?;
    file.sync_all().map_err(io_err("sync checkpoint", &path))?;
    sync_dir(tmp)?;
    fs::rename(tmp, &final_dir).map_err(io_err("rename checkpoint", tmp))?;
    sync_dir(wal_dir)?;
    stats.segments_deleted = prepare(wal_dir)?.segments_deleted;
    Ok(stats)
}

/// What [`prepare`] found and cleaned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prepared {
    /// The newest complete checkpoint: the last segment it covers, and its directory.
    pub checkpoint: Option<(u64, PathBuf)>,
    /// Segments deleted because the checkpoint covers them.
    pub segments_deleted: usize,
    /// Unfinished or superseded checkpoint directories removed.
    pub checkpoints_removed: usize,
}

/// Cleans the WAL directory after a crash at any step of [`write()`] (see the module doc) and
/// finds the checkpoint to replay.
pub fn prepare(wal_dir: &Path) -> Result<Prepared, WalError> {
    let mut found = Vec::new();
    let mut tmps = Vec::new();
    let entries = match fs::read_dir(wal_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Prepared::default()),
        Err(e) => return Err(io_err("list", wal_dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err("list", wal_dir))?;
        let Some(n) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if n.starts_with(PREFIX) && n.ends_with(TMP_SUFFIX) {
            tmps.push(entry.path());
        } else if let Some(i) = parse(&n) {
            found.push((i, entry.path()));
        }
    }
    found.sort();
    let mut p = Prepared {
        checkpoint: found.pop(),
        ..Default::default()
    };
    for path in tmps.into_iter().chain(found.into_iter().map(|(_, p)| p)) {
        fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        p.checkpoints_removed += 1;
    }
    if let Some((last, _)) = &p.checkpoint {
        let (segments, _) = wal::list_segments(wal_dir)?;
        for i in segments.into_iter().filter(|i| i <= last) {
            let path = wal_dir.join(segment_name(i));
            fs::remove_file(&path).map_err(io_err("remove segment", &path))?;
            p.segments_deleted += 1;
        }
    }
    if p.segments_deleted + p.checkpoints_removed > 0 {
        sync_dir(wal_dir)?;
    }
    Ok(p)
}

/// Reads the checkpoint directory `dir` (from [`prepare`]) and hands each record to `f`.
pub fn replay(dir: &Path, mut f: impl FnMut(Record)) -> Result<ReplayStats, WalError> {
    let mut stats = ReplayStats::default();
    let (segments, _) = wal::list_segments(dir)?;
    for i in segments {
        wal::replay_file(&dir.join(segment_name(i)), &mut stats, &mut f)?;
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::PackedLabels;
    use crate::prompb::{Label, Sample};
    use crate::record::RefSample;
    use crate::wal::{Wal, WalConfig};

    fn up(i: usize) -> Vec<Label> {
        vec![Label::new("__name__", "up"), Label::new("i", i.to_string())]
    }

    #[test]
    fn a_checkpoint_replaces_old_segments_and_holds_every_series_with_its_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::default();
        let mut wal = Wal::open(dir.path(), WalConfig::default()).unwrap();
        for i in 0..2500 {
            let samples: Vec<Sample> = (0..130)
                .map(|k| Sample {
                    value: k as f64,
                    timestamp: k * 15_000,
                })
                .collect();
            let out = store.append("t", &up(i), &samples);
            let labels = out.new_series.unwrap();
            let refs: Vec<RefSample> = samples
                .iter()
                .map(|s| RefSample {
                    series_ref: out.series_ref,
                    t: s.timestamp,
                    v: s.value,
                })
                .collect();
            wal.log(&[(out.series_ref, &labels)], &refs).unwrap();
        }
        let last = wal.cut_segment().unwrap();
        let stats = write(dir.path(), last, &store, "t").unwrap();
        assert_eq!(
            (stats.series, stats.chunks, stats.segments_deleted),
            (2500, 5000, 1)
        );
        let p = prepare(dir.path()).unwrap();
        let (index, cp) = p.checkpoint.unwrap();
        assert_eq!(index, last);
        // Replay into a fresh store gives the same head.
        let again = Store::default();
        let mut refs = std::collections::HashMap::new();
        replay(&cp, |rec| match rec {
            Record::Series(s) => {
                for x in s {
                    again.replay_series("t", x.series_ref, &x.labels);
                    refs.insert(x.series_ref, x.labels);
                }
            }
            Record::Chunks(c) => {
                for x in c {
                    again.replay_chunk("t", &refs[&x.series_ref], &x.bytes);
                }
            }
            Record::Samples(_) => panic!("no samples in a checkpoint"),
        })
        .unwrap();
        assert_eq!(
            again.query("t", &[], i64::MIN, i64::MAX),
            store.query("t", &[], i64::MIN, i64::MAX)
        );
        // The live segment is still there and is the only one.
        assert_eq!(wal::list_segments(dir.path()).unwrap().0, vec![last + 1]);
        let _ = PackedLabels::new(&up(0));
    }

    #[test]
    fn leftovers_of_a_crash_are_cleaned_before_replay() {
        let dir = tempfile::tempdir().unwrap();
        for seg in ["00000000", "00000001", "00000002", "00000003"] {
            fs::write(dir.path().join(seg), b"").unwrap();
        }
        fs::create_dir(dir.path().join("checkpoint.00000000")).unwrap();
        fs::create_dir(dir.path().join("checkpoint.00000001")).unwrap();
        // Crashed while writing the next one.
        fs::create_dir(dir.path().join("checkpoint.00000002.tmp")).unwrap();
        let p = prepare(dir.path()).unwrap();
        assert_eq!(p.checkpoint.as_ref().map(|c| c.0), Some(1));
        assert_eq!((p.segments_deleted, p.checkpoints_removed), (2, 2));
        assert_eq!(wal::list_segments(dir.path()).unwrap().0, vec![2, 3]);
        assert!(!dir.path().join("checkpoint.00000002.tmp").exists());
        assert_eq!(prepare(dir.path()).unwrap().segments_deleted, 0);
    }
}
