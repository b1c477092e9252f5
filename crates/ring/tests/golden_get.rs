//! Golden vectors for key lookups and whole-ring replication sets.
//!
//! The JSON files in `tests/golden/get_*.json` hold answers recorded from dskit's Go ring
//! (`Ring.Get`, `GetReplicationSetForOperation`, `GetAllHealthy`) for seeded descriptors
//! with unique tokens. Only the data is kept here; this test recomputes every answer with
//! [`RingSnapshot`] and compares them key by key.
//!
//! Descriptors holding LEFT entries are compared too: like dskit's `Ring`, a snapshot keeps
//! them (they count as instances, per-zone totals and unhealthy members). KV stores strip
//! tombstones before readers see a value, so in practice rings rarely hold them; the files
//! `*_tombstones_removed.json` are dskit's answers for the same descriptors without them.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringkit_ring::snapshot::unix_seconds;
use ringkit_ring::{GetBuffer, Operation, ReplicationSet, RingConfig, RingError, RingSnapshot};
use serde::Deserialize;

#[derive(Deserialize)]
struct Config {
    replication_factor: usize,
    zone_awareness_enabled: bool,
    heartbeat_timeout_secs: u64,
    excluded_zones: Vec<String>,
    now: i64,
}

#[derive(Deserialize)]
struct KeyCase {
    key: u32,
    #[serde(default)]
    ids: Vec<String>,
    max_errors: usize,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize, Debug, PartialEq)]
struct SetCase {
    ids: Vec<String>,
    max_errors: usize,
    max_unavailable_zones: usize,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct OpCase {
    op: String,
    keys: Vec<KeyCase>,
    replication_set_for_operation: SetCase,
    all_healthy: SetCase,
}

#[derive(Deserialize)]
struct GetCase {
    name: String,
    config: Config,
    instances: Vec<common::Instance>,
    ops: Vec<OpCase>,
}

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Every golden file whose name starts with `prefix`, sorted by name.
fn golden_files(prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("tests/golden exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "json")
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> GetCase {
    common::load(path)
}

fn config_of(c: &Config) -> RingConfig {
    RingConfig {
        replication_factor: c.replication_factor,
        zone_awareness_enabled: c.zone_awareness_enabled,
        heartbeat_timeout: Duration::from_secs(c.heartbeat_timeout_secs),
        excluded_zones: c.excluded_zones.clone(),
        ..RingConfig::default()
    }
}

fn op_of(name: &str) -> Operation {
    match name {
        "WRITE" => Operation::WRITE,
        "WRITE_NO_EXTEND" => Operation::WRITE_NO_EXTEND,
        "READ" => Operation::READ,
        "REPORTING" => Operation::REPORTING,
        other => panic!("unknown operation {other}"),
    }
}

fn set_case(res: Result<ReplicationSet, RingError>) -> SetCase {
    match res {
        Ok(set) => {
            let mut ids: Vec<String> = set.instances.iter().map(|d| d.id.clone()).collect();
            ids.sort();
            SetCase {
                ids,
                max_errors: set.max_errors,
                max_unavailable_zones: set.max_unavailable_zones,
                error: None,
            }
        }
        Err(e) => SetCase {
            ids: Vec::new(),
            max_errors: 0,
            max_unavailable_zones: 0,
            error: Some(e.to_string()),
        },
    }
}

type Answer = Result<(Vec<String>, usize), String>;

fn expected(k: &KeyCase) -> Answer {
    match &k.error {
        Some(e) => Err(e.clone()),
        None => Ok((k.ids.clone(), k.max_errors)),
    }
}

fn has_left(case: &GetCase) -> bool {
    case.instances.iter().any(|i| i.state == "LEFT")
}

/// Checks one golden case; returns the mismatches found and the number of checks made.
fn check_case(case: &GetCase) -> (Vec<String>, usize) {
    assert!(!case.instances.is_empty(), "{}: no instances", case.name);
    let ring = RingSnapshot::new(common::desc_of(&case.instances), config_of(&case.config))
        .expect("valid ring config");
    let now = unix_seconds(case.config.now);
    let mut buf = GetBuffer::new();
    let mut mismatches = Vec::new();
    let mut checks = 0;
    for oc in &case.ops {
        let op = op_of(&oc.op);
        assert!(!oc.keys.is_empty(), "{}/{}: no keys", case.name, oc.op);
        for k in &oc.keys {
            let got: Answer = ring
                .get(k.key, op, now, &mut buf)
                .map(|set| {
                    (
                        set.instances().map(|d| d.id.clone()).collect(),
                        set.max_errors,
                    )
                })
                .map_err(|e| e.to_string());
            let want = expected(k);
            checks += 1;
            if got != want {
                mismatches.push(format!(
                    "{} {} key={}: dskit {:?}, ringkit {:?}",
                    case.name, oc.op, k.key, want, got
                ));
            }
        }
        for (what, want, got) in [
            (
                "replication_set_for_operation",
                &oc.replication_set_for_operation,
                set_case(ring.replication_set_for_operation(op, now)),
            ),
            (
                "all_healthy",
                &oc.all_healthy,
                set_case(ring.get_all_healthy(op, now)),
            ),
        ] {
            checks += 1;
            if *want != got {
                mismatches.push(format!(
                    "{} {} {what}: dskit {want:?}, ringkit {got:?}",
                    case.name, oc.op
                ));
            }
        }
    }
    (mismatches, checks)
}

/// Checks every `get_*` case selected by `with_left`; panics listing the mismatches.
fn check_all(with_left: bool, min_cases: usize, min_checks: usize) {
    let files = golden_files("get_");
    let mut all = Vec::new();
    let mut per_case = BTreeMap::new();
    let mut checks = 0;
    let mut cases = 0;
    for f in &files {
        let case = load(f);
        if has_left(&case) != with_left {
            continue;
        }
        cases += 1;
        let (m, n) = check_case(&case);
        checks += n;
        if !m.is_empty() {
            per_case.insert(case.name.clone(), m.len());
        }
        all.extend(m);
    }
    assert!(cases >= min_cases, "only {cases} golden cases in {files:?}");
    assert!(checks >= min_checks, "only {checks} checks");
    assert!(
        all.is_empty(),
        "{} of {checks} answers differ from dskit; per file: {per_case:?}\nfirst ones:\n{}",
        all.len(),
        all.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn get_matches_dskit_golden_vectors() {
    check_all(false, 40, 50_000);
}

#[test]
fn get_with_left_entries_matches_dskit_golden_vectors() {
    check_all(true, 4, 4_000);
}

/// The golden descriptors obey the rule they were generated under: no token is owned by
/// two instances (dskit resolves such duplicates by Go map order, which no test can pin).
/// Only the instance-ring cases (`get_*`, `shuffle_*`) hold instance lists; the partition
/// ring's golden files have other shapes.
#[test]
fn golden_descriptors_have_unique_tokens() {
    for f in golden_files("get_")
        .into_iter()
        .chain(golden_files("shuffle_"))
    {
        let text = std::fs::read_to_string(&f).unwrap();
        #[derive(Deserialize)]
        struct Only {
            instances: Vec<common::Instance>,
        }
        let only: Only = serde_json::from_str(&text).unwrap();
        let mut tokens: Vec<u32> = only
            .instances
            .iter()
            .flat_map(|i| i.tokens.iter().copied())
            .collect();
        let n = tokens.len();
        tokens.sort_unstable();
        tokens.dedup();
        assert_eq!(tokens.len(), n, "{f:?} has duplicate tokens");
    }
}
