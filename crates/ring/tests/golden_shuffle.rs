//! Golden vectors for shuffle sharding.
//!
//! The JSON files in `tests/golden/shuffle_*.json` hold the instance sets recorded from
//! dskit's Go ring (`ShuffleShard`, `ShuffleShardWithLookback`) for seeded descriptors
//! with unique tokens, read-only instances and varied registration and read-only update
//! times. This test recomputes each shard with [`RingSnapshot`] and compares the sorted
//! instance ids.
//!
//! Pending: this file needs `RingSnapshot::shuffle_shard` and
//! `RingSnapshot::shuffle_shard_with_lookback`, which are not on main yet. Once they are,
//! move it to `crates/ring/tests/golden_shuffle.rs` (the vectors are already in
//! `crates/ring/tests/golden/`). It passes against the `shuffle` branch at b101a38.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{RingConfig, RingSnapshot};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    replication_factor: usize,
    zone_awareness_enabled: bool,
    heartbeat_timeout_secs: u64,
    excluded_zones: Vec<String>,
}

#[derive(Deserialize)]
struct Shard {
    tenant: String,
    size: usize,
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct Lookback {
    tenant: String,
    size: usize,
    lookback_secs: u64,
    now: i64,
    ids: Vec<String>,
}

#[derive(Deserialize)]
struct ShuffleCase {
    name: String,
    config: Config,
    instances: Vec<common::Instance>,
    shards: Vec<Shard>,
    lookback: Vec<Lookback>,
}

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/golden exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("shuffle_"))
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> ShuffleCase {
    common::load(path)
}

fn snapshot_of(case: &ShuffleCase) -> Arc<RingSnapshot> {
    let d = common::desc_of(&case.instances);
    let cfg = RingConfig {
        replication_factor: case.config.replication_factor,
        zone_awareness_enabled: case.config.zone_awareness_enabled,
        heartbeat_timeout: Duration::from_secs(case.config.heartbeat_timeout_secs),
        excluded_zones: case.config.excluded_zones.clone(),
        ..RingConfig::default()
    };
    Arc::new(RingSnapshot::new(d, cfg).expect("valid ring config"))
}

fn ids(ring: &RingSnapshot) -> Vec<String> {
    let mut ids: Vec<String> = ring.instances().iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids
}

#[test]
fn shuffle_shard_matches_dskit_golden_vectors() {
    let files = golden_files();
    assert!(files.len() >= 8, "expected the golden set, found {files:?}");
    let mut mismatches = Vec::new();
    let (mut shards, mut lookbacks) = (0, 0);
    for f in &files {
        let case = load(f);
        let ring = snapshot_of(&case);
        assert!(!case.shards.is_empty(), "{}: no shards", case.name);
        for s in &case.shards {
            shards += 1;
            let got = ids(&ring.shuffle_shard(&s.tenant, s.size));
            if got != s.ids {
                mismatches.push(format!(
                    "{} ShuffleShard({:?}, {}): dskit {:?}, ringkit {:?}",
                    case.name, s.tenant, s.size, s.ids, got
                ));
            }
        }
        for l in &case.lookback {
            lookbacks += 1;
            let got = ids(&ring.shuffle_shard_with_lookback(
                &l.tenant,
                l.size,
                Duration::from_secs(l.lookback_secs),
                unix_seconds(l.now),
            ));
            if got != l.ids {
                mismatches.push(format!(
                    "{} ShuffleShardWithLookback({:?}, {}, {}s, now={}): dskit {:?}, ringkit {:?}",
                    case.name, l.tenant, l.size, l.lookback_secs, l.now, l.ids, got
                ));
            }
        }
    }
    assert!(shards >= 5_000, "only {shards} shards checked");
    assert!(
        lookbacks >= 1_000,
        "only {lookbacks} lookback shards checked"
    );
    assert!(
        mismatches.is_empty(),
        "{} of {} shards differ from dskit; first ones:\n{}",
        mismatches.len(),
        shards + lookbacks,
        mismatches
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The same answers when every shard is asked twice (the second time from the subring
/// cache) and in a different order.
#[test]
fn shuffle_shard_cache_returns_the_golden_answers() {
    let files = golden_files();
    let f = files
        .iter()
        .find(|f| f.to_string_lossy().contains("shuffle_90i_3z.json"))
        .expect("shuffle_90i_3z.json");
    let case = load(f);
    let ring = snapshot_of(&case);
    for _ in 0..2 {
        for s in case.shards.iter().rev() {
            assert_eq!(
                ids(&ring.shuffle_shard(&s.tenant, s.size)),
                s.ids,
                "{} {}",
                s.tenant,
                s.size
            );
        }
        for l in &case.lookback {
            let got = ids(&ring.shuffle_shard_with_lookback(
                &l.tenant,
                l.size,
                Duration::from_secs(l.lookback_secs),
                unix_seconds(l.now),
            ));
            assert_eq!(got, l.ids, "{} {} {}", l.tenant, l.size, l.lookback_secs);
        }
    }
}
