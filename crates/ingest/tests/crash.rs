//! `kill -9` in the middle of block cuts and checkpoints loses no acknowledged sample and leaves
//! no corrupt block.
//!
//! The parent test re-runs this test binary as a child (`child_writer`, enabled by an
//! environment variable) that pushes 1,000 series scraped every second into a head with a 20 s
//! block range and runs a head compaction after every push, so a block is cut, the head
//! truncated and a checkpoint written every 20 pushes. The child prints `ack <k>` after push
//! `k` returned, i.e. once it is durable. The parent SIGKILLs the child at a different moment
//! each round, then opens the directory itself and checks that every acknowledged sample is
//! there (from blocks and head) and that every block opens and reads; the next round's child
//! goes on from there in the same directory.
//!
//! Full chunks go to small `chunks_head/` files (each boundary push writes 1,000 chunks into
//! several files), some kills land in those pushes, and in some rounds the parent also tears
//! or corrupts the newest chunk file before reopening: the WAL and its checkpoint still hold
//! every acknowledged sample.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use ringkit_ingest::block::PrometheusBlocks;
use ringkit_ingest::head::{Head, HeadOptions};
use ringkit_ingest::prompb::{Label, Sample, TimeSeries};
use ringkit_ingest::store::StoreConfig;
use ringkit_ingest::wal::WalConfig;

const CHILD_DIR: &str = "RINGKIT_CRASH_CHILD_DIR";
const CHILD_FROM: &str = "RINGKIT_CRASH_CHILD_FROM";
const SERIES: usize = 1000;
const STEP_MS: i64 = 1000;

fn options() -> HeadOptions {
    HeadOptions {
        store: StoreConfig {
            block_range_ms: 20 * STEP_MS,
            shards: 4,
            // Small head chunk files: every chunk boundary (every 20 pushes) fills several.
            head_chunk_file_size: 16 << 10,
        },
        wal: WalConfig {
            // Small segments: checkpoints delete several of them.
            segment_size: 64 << 10,
            sync_every_write: true,
        },
        retention_ms: 0,
        blocks: Some(Arc::new(PrometheusBlocks)),
        ..HeadOptions::default()
    }
}

fn value(i: usize, k: i64) -> f64 {
    (k * 7 + i as i64) as f64
}

fn scrape(k: i64) -> Vec<TimeSeries> {
    (0..SERIES)
        .map(|i| TimeSeries {
            labels: vec![
                Label::new("__name__", "crash_test"),
                Label::new("series", i.to_string()),
            ],
            samples: vec![Sample {
                value: value(i, k),
                timestamp: k * STEP_MS,
            }],
            ..Default::default()
        })
        .collect()
}

/// The child: does nothing unless started by the parent test.
#[test]
fn child_writer() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let from: i64 = std::env::var(CHILD_FROM).unwrap().parse().unwrap();
    let (head, _) = Head::open_with(&dir, options()).unwrap();
    // Bounded: the parent kills us long before this ends.
    for k in from..from + 10_000 {
        let s = head.push("crash", &scrape(k)).unwrap();
        assert!(s.first_error.is_none(), "{:?}", s.first_error);
        println!("ack {k}");
        // The head spans more than 1.5 ranges from push 31 on, then every 20 pushes.
        let cuts = k >= 31 && (k - 31) % 20 == 0;
        if cuts {
            println!("cut {k}");
        }
        let started = std::time::Instant::now();
        let report = head.compact(k * STEP_MS);
        if cuts {
            println!("took {}", started.elapsed().as_micros());
        }
        assert!(report.errors.is_empty(), "{report:?}");
    }
}

/// Whether the directory shows the child died in the middle of a cut or a checkpoint (a
/// checkpoint being written, or written but the segments it replaces not deleted yet).
fn leftovers(tenant_dir: &Path) -> (bool, bool) {
    let names = |d: &Path| -> Vec<String> {
        std::fs::read_dir(d)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let block = names(tenant_dir)
        .iter()
        .any(|n| n.ends_with(ringkit_tsdb::block::TMP_SUFFIX));
    let wal = names(&tenant_dir.join("wal"));
    let tmp = wal
        .iter()
        .any(|n| n.starts_with("checkpoint.") && n.ends_with(".tmp"));
    let covered = wal
        .iter()
        .filter_map(|n| n.strip_prefix("checkpoint.")?.parse::<u64>().ok())
        .max()
        .is_some_and(|cp| {
            wal.iter()
                .filter_map(|n| n.parse::<u64>().ok())
                .any(|seg| seg <= cp)
        });
    (block, tmp || covered)
}

enum Damage {
    /// The last bytes cut off (a torn write).
    Tear,
    /// A byte in the middle changed (a bad block).
    Flip,
}

/// Damages the newest non-empty head chunk file of the tenant.
fn damage_newest_chunk_file(tenant_dir: &Path, how: Damage) {
    let dir = tenant_dir.join("chunks_head");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 64))
        .collect();
    files.sort();
    let Some(path) = files.last() else {
        return;
    };
    let mut bytes = std::fs::read(path).unwrap();
    // A file never cut back has a sparse zero tail: damage the written part.
    let used = bytes.iter().rposition(|&b| b != 0).unwrap() + 1;
    match how {
        Damage::Tear => bytes.truncate(used - 5),
        Damage::Flip => bytes[used / 2] ^= 0x10,
    }
    std::fs::write(path, bytes).unwrap();
    println!("damaged {}", path.display());
}

/// When the parent kills the child.
#[derive(Clone, Copy, Debug)]
enum KillAt {
    /// This many microseconds after the child announced a compaction that cuts a block (and
    /// then writes a checkpoint), once it acknowledged at least 15 pushes.
    Cut(u64),
    /// This many microseconds after the child acknowledged that many pushes.
    Acks(i64, u64),
}

/// Runs a child from push `from`, kills it as `at` says; returns the last acknowledged push
/// and the longest cutting compaction the child reported (µs).
fn run_and_kill(dir: &Path, from: i64, at: KillAt) -> (i64, u64) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_FROM, from.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let msg = if let Some(k) = line.strip_prefix("ack ") {
                Msg::Ack(k.parse().unwrap())
            } else if line.starts_with("cut ") {
                Msg::Cut
            } else if let Some(us) = line.strip_prefix("took ") {
                Msg::Took(us.parse().unwrap())
            } else {
                continue;
            };
            if tx.send(msg).is_err() {
                break;
            }
        }
    });
    let mut last = from - 1;
    let mut took = 0;
    let delay_us = loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Msg::Ack(k)) => {
                last = k;
                if let KillAt::Acks(n, us) = at
                    && last >= from + n - 1
                {
                    break us;
                }
            }
            Ok(Msg::Cut) => {
                if let KillAt::Cut(us) = at
                    && last >= from + 15
                {
                    break us;
                }
            }
            Ok(Msg::Took(us)) => took = took.max(us),
            Err(e) => {
                let _ = child.kill();
                panic!("child stopped acknowledging after push {last}: {e}");
            }
        }
    };
    std::thread::sleep(Duration::from_micros(delay_us));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // Acks printed before the kill still count.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Ack(k) = msg {
            last = k;
        }
    }
    drop(rx);
    reader.join().unwrap();
    (last, took)
}

/// A line from the child.
enum Msg {
    Ack(i64),
    Cut,
    Took(u64),
}

#[test]
fn kill_9_during_cuts_and_checkpoints_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let tenant_dir = dir.path().join("crash");
    let mut next = 0i64;
    let (mut mid_cut, mut mid_checkpoint) = (0, 0);
    // The first round runs through two cuts and measures how long a cutting compaction takes;
    // the later ones kill at points spread over that time (block write, truncation,
    // checkpoint), and two kill between cuts.
    let rounds = 16u64;
    let mut cut_us = 0;
    let mut chunk_files_seen = 0;
    for round in 0..rounds {
        let at = match round {
            0 => KillAt::Acks(55, 0),
            7 | 11 => KillAt::Acks(17 + round as i64, 500),
            // Right after the ack before a chunk boundary: the child is writing 1,000 full
            // chunks to the chunk files.
            14 | 15 => {
                let to_boundary = (19 - next).rem_euclid(20) + 1;
                KillAt::Acks(to_boundary + 20, 200 * (round - 13))
            }
            r => KillAt::Cut(cut_us * r / rounds),
        };
        let (last, took) = run_and_kill(dir.path(), next, at);
        cut_us = cut_us.max(took);
        let (b, c) = leftovers(&tenant_dir);
        mid_cut += usize::from(b);
        mid_checkpoint += usize::from(c);
        chunk_files_seen +=
            std::fs::read_dir(tenant_dir.join("chunks_head")).map_or(0, |d| d.count());
        match round {
            5 | 14 => damage_newest_chunk_file(&tenant_dir, Damage::Tear),
            9 | 15 => damage_newest_chunk_file(&tenant_dir, Damage::Flip),
            _ => {}
        }
        // Reopen as the restarted ingester would: leftovers are cleaned, nothing is lost.
        let (head, _) = Head::open_with(dir.path(), options()).unwrap();
        let all = head.query("crash", &[], i64::MIN, i64::MAX).unwrap();
        assert_eq!(all.len(), SERIES, "round {round}");
        for ts in &all {
            let i: usize = ts.labels[1].value.parse().unwrap();
            let got: Vec<(i64, u64)> = ts
                .samples
                .iter()
                .filter(|s| s.timestamp <= last * STEP_MS)
                .map(|s| (s.timestamp, s.value.to_bits()))
                .collect();
            let want: Vec<(i64, u64)> = (0..=last)
                .map(|k| (k * STEP_MS, value(i, k).to_bits()))
                .collect();
            assert_eq!(got, want, "round {round}, series {i}, last ack {last}");
        }
        let blocks = head.blocks("crash");
        for (path, meta) in &blocks {
            let b = ringkit_tsdb::block::Block::open(path).unwrap();
            assert_eq!(
                (b.meta().min_time, b.meta().max_time),
                (meta.min_t, meta.max_t)
            );
        }
        // Blocks never overlap (no block cut twice).
        assert!(blocks.windows(2).all(|w| w[0].1.max_t <= w[1].1.min_t));
        assert_eq!(leftovers(&tenant_dir), (false, false));
        assert!(
            head.store()
                .chunk_files("crash")
                .is_some_and(|f| f.unreadable == 0),
            "round {round}: the head uses chunk files"
        );
        drop(head);
        next = last + 1;
    }
    assert!(cut_us > 0);
    assert!(chunk_files_seen > 0, "the child wrote head chunk files");
    println!(
        "a cutting compaction took up to {cut_us} µs; kills in the middle of a block cut: \
         {mid_cut}, of a checkpoint: {mid_checkpoint}"
    );
}
