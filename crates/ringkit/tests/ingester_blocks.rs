//! A `ringkit node` cuts its head into Prometheus blocks that Prometheus' own tools read.
//!
//! One process (`--target=all`, in-memory ring, RF 1) with a 1 minute block range and a head
//! compaction every second takes 2.5 minutes of samples of a few series. Then:
//! - blocks appear in `<tsdb.dir>/<tenant>/<ULID>/` (Mimir's layout) and the WAL holds a
//!   checkpoint instead of the old segments;
//! - remote read returns every sample, from blocks and head together;
//! - `promtool tsdb dump` on the tenant directory prints exactly the samples of the blocks'
//!   ranges (skipped loudly without `/usr/bin/promtool` unless `RINGKIT_REQUIRE_PROMETHEUS`);
//! - after `kill -9` and a restart the node replays checkpoint + newer segments and still
//!   returns every sample, without cutting a range twice.

mod cluster;
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{Node, WAIT, eq, now_ms, post, read, series, write_body};

const PROMTOOL: &str = "/usr/bin/promtool";
const TENANT: &str = "team-blocks";
const STEP: i64 = 5_000;

fn node_args(dir: &Path) -> Vec<String> {
    vec![
        "--target=all".into(),
        "--kv.store=inmemory".into(),
        "--ingester.lifecycler.ID=ing-blocks".into(),
        "--distributor.replication-factor=1".into(),
        "--ingester.min-ready-duration=0s".into(),
        "--server.grpc-listen-port=0".into(),
        format!("--blocks-storage.tsdb.dir={}", dir.join("tsdb").display()),
        "--blocks-storage.tsdb.block-ranges-period=1m".into(),
        "--blocks-storage.tsdb.head-compaction-interval=1s".into(),
        "--blocks-storage.tsdb.retention-period=0s".into(),
        // Every finished block is shipped to a filesystem bucket.
        "--blocks-storage.backend=filesystem".into(),
        format!(
            "--blocks-storage.filesystem.dir={}",
            dir.join("bucket").display()
        ),
        "--blocks-storage.tsdb.ship-interval=1s".into(),
    ]
}

async fn wait_active(url: &str) {
    common::wait_for(url, "1 ACTIVE ingester", |r| {
        cluster::active_ids(r) == ["ing-blocks"]
    })
    .await;
}

/// ULID block directories of the tenant.
fn blocks(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("tsdb").join(TENANT))
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| {
                    n.len() == 26
                        && dir
                            .join("tsdb")
                            .join(TENANT)
                            .join(n)
                            .join("meta.json")
                            .exists()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

type Model = BTreeMap<String, Vec<(i64, f64)>>;

fn key(labels: &[(String, String)]) -> String {
    labels
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses `promtool tsdb dump` lines: `{a="b", c="d"} value timestamp`.
fn parse_dump(out: &str) -> Model {
    let mut got = Model::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (labels, rest) = line.rsplit_once("} ").expect("dump line");
        let mut parts = rest.split(' ');
        let v: f64 = parts.next().unwrap().parse().unwrap();
        let t: i64 = parts.next().unwrap().parse().unwrap();
        let mut pairs: Vec<(String, String)> = labels
            .trim_start_matches('{')
            .split(", ")
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        pairs.sort();
        got.entry(key(&pairs)).or_default().push((t, v));
    }
    for s in got.values_mut() {
        s.sort_by_key(|x| x.0);
    }
    got
}

async fn read_all(http: &reqwest::Client, url: &str) -> Model {
    let got = read(
        http,
        &format!("{url}/api/v1/read"),
        Some(TENANT),
        vec![eq("job", "blocks-test")],
        0,
        i64::MAX,
    )
    .await;
    got.into_iter()
        .map(|ts| {
            let pairs: Vec<(String, String)> =
                ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
            (
                key(&pairs),
                ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cuts_prometheus_blocks_that_promtool_reads_and_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("node.log");
    let mut node = Node::start(node_args(dir.path()), &log);
    wait_active(&node.url).await;
    let http = reqwest::Client::new();

    // 4 series, 2.5 minutes of 5 s samples ending now, pushed oldest first.
    let end = now_ms() / STEP * STEP;
    let start = end - 150_000;
    let mut want = Model::new();
    for t in (start..=end).step_by(STEP as usize) {
        let batch: Vec<_> = (0..4)
            .map(|i| {
                let v = (t / STEP * (i + 1)) as f64;
                let name = format!("blocks_test_{i}");
                let labels = [("__name__", name.as_str()), ("job", "blocks-test")];
                let pairs: Vec<(String, String)> = labels
                    .iter()
                    .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                    .collect();
                want.entry(key(&pairs)).or_default().push((t, v));
                series(&labels, &[(v, t)])
            })
            .collect();
        let (status, body) = post(
            &http,
            &format!("{}/api/v1/push", node.url),
            write_body(batch),
            Some(TENANT),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }

    // Compaction runs every second: wait (bounded) for the blocks and the checkpoint.
    let deadline = Instant::now() + WAIT;
    let wal = dir.path().join("tsdb").join(TENANT).join("wal");
    loop {
        let has_checkpoint = std::fs::read_dir(&wal).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("checkpoint.")
        });
        if !blocks(dir.path()).is_empty() && has_checkpoint {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no block cut; log:\n{}",
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cut = blocks(dir.path());
    assert_eq!(read_all(&http, &node.url).await, want);

    // promtool reads exactly the samples of the cut ranges.
    let metas: Vec<serde_json::Value> = cut
        .iter()
        .map(|b| {
            let p = dir
                .path()
                .join("tsdb")
                .join(TENANT)
                .join(b)
                .join("meta.json");
            serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
        })
        .collect();
    let lo = metas
        .iter()
        .map(|m| m["minTime"].as_i64().unwrap())
        .min()
        .unwrap();
    let hi = metas
        .iter()
        .map(|m| m["maxTime"].as_i64().unwrap())
        .max()
        .unwrap();
    assert!(
        metas
            .iter()
            .all(|m| m["thanos"]["labels"]["__org_id__"] == TENANT)
    );
    if std::path::Path::new(PROMTOOL).exists() {
        let out = Command::new(PROMTOOL)
            .args(["tsdb", "dump"])
            .arg(format!("--min-time={lo}"))
            .arg(format!("--max-time={}", hi - 1))
            .arg(dir.path().join("tsdb").join(TENANT))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let in_blocks: Model = want
            .iter()
            .map(|(k, s)| {
                (
                    k.clone(),
                    s.iter()
                        .copied()
                        .filter(|(t, _)| (lo..hi).contains(t))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        assert_eq!(parse_dump(&String::from_utf8_lossy(&out.stdout)), in_blocks);
    } else {
        ringkit_testkit::require::missing(
            "RINGKIT_REQUIRE_PROMETHEUS",
            &format!("{PROMTOOL} is missing for the promtool check (apt-get install prometheus)"),
        );
    }

    // kill -9, restart on the same directory: every sample is still there, no range cut twice.
    node.kill9();
    let mut node = Node::start(node_args(dir.path()), &log);
    wait_active(&node.url).await;
    assert_eq!(read_all(&http, &node.url).await, want);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(blocks(dir.path()), cut, "a restarted node cut again");
    assert!(node.log_text().contains("WAL checkpoint replayed"));

    // The shipper uploaded every cut block to the bucket, in Mimir's <tenant>/<ULID>/ layout,
    // byte for byte (meta.json gains the thanos section, so only its ULID is compared).
    let deadline = Instant::now() + WAIT;
    let bucket = dir.path().join("bucket").join(TENANT);
    while !cut
        .iter()
        .all(|b| bucket.join(b).join("meta.json").exists())
    {
        assert!(
            Instant::now() < deadline,
            "blocks {cut:?} not shipped; log:\n{}",
            node.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for b in &cut {
        let local = dir.path().join("tsdb").join(TENANT).join(b);
        for f in ["index", "chunks/000001", "tombstones"] {
            assert_eq!(
                std::fs::read(bucket.join(b).join(f)).unwrap(),
                std::fs::read(local.join(f)).unwrap(),
                "{b}/{f} differs in the bucket"
            );
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(bucket.join(b).join("meta.json")).unwrap())
                .unwrap();
        assert_eq!(meta["ulid"], b.as_str());
    }
    node.kill9();
}
