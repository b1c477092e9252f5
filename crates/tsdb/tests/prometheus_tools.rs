//! Real Prometheus tools read the blocks we write (Debian's `prometheus` 2.42 package, which
//! ships `/usr/bin/promtool` and `/usr/bin/prometheus`):
//!
//! - `promtool tsdb list` shows our block with its ULID, range and stats, and `promtool tsdb
//!   analyze` reads its whole index;
//! - `promtool tsdb dump --min-time --max-time` prints exactly the samples we wrote;
//! - a real Prometheus started on a data directory holding the block answers PromQL over it
//!   (`/api/v1/query` with a range selector, `/api/v1/query_range`) with those samples.
//!
//! Skipped with a loud message when the binaries are absent, unless
//! `RINGKIT_REQUIRE_PROMETHEUS` is set (scripts/test.sh sets it, so CI fails instead).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_samples_eq, parse_series, same_value};
use ringkit_testkit::proc::Guard;
use ringkit_testkit::wait::http_get;
use ringkit_testkit::{port, require};
use ringkit_tsdb::{
    BlockOptions, BlockSeries, Label, ThanosMeta, XorChunk, labels_from_pairs, write_block_with,
};

const PROMTOOL: &str = "/usr/bin/promtool";
const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A 2 h block range on a 2 h boundary (2023-11-14 23:00 UTC).
const START: i64 = 1_700_002_800_000;
const END: i64 = START + 2 * 3600 * 1000;

/// True when `bin` exists; false (skip) when it does not and nothing requires it.
fn have(bin: &str) -> bool {
    require::binary(
        bin,
        None,
        "RINGKIT_REQUIRE_PROMETHEUS",
        "apt-get install prometheus",
    )
    .is_some()
}

type Model = BTreeMap<Vec<Label>, Vec<(i64, f64)>>;

/// 24 series of 15 s samples over the whole range: counters, gauges, negative and huge
/// values, and (when `specials`) NaN and infinities. Each series scrapes at a whole-second
/// phase so query_range steps can land on its samples.
fn model(specials: bool) -> Model {
    let mut m = Model::new();
    for i in 0..24i64 {
        let kind = ["counter", "gauge", "odd"][(i % 3) as usize];
        let labels = labels_from_pairs([
            ("__name__", format!("ringkit_test_{kind}")),
            ("instance", format!("host-{i:02}")),
            ("job", ["api", "db"][(i % 2) as usize].to_string()),
        ]);
        let mut samples = Vec::new();
        let mut t = START + (i % 15) * 1000;
        let mut k = 0i64;
        while t < END {
            let v = match kind {
                "counter" => (k * (i + 1) + k * k % 7) as f64,
                "gauge" => ((k * 37 + i) % 1000) as f64 / 8.0 - 50.0,
                _ => match k % 11 {
                    0 if specials => f64::NAN,
                    1 if specials => f64::INFINITY,
                    2 if specials => f64::NEG_INFINITY,
                    3 => 1e300,
                    4 => -1e-300,
                    5 => -0.0,
                    _ => k as f64 / 3.0,
                },
            };
            samples.push((t, v));
            t += 15_000;
            k += 1;
        }
        m.insert(labels, samples);
    }
    m
}

fn write_model(dir: &Path, m: &Model) -> String {
    write_model_with(dir, m, &BlockOptions::default())
}

fn write_model_with(dir: &Path, m: &Model, opts: &BlockOptions) -> String {
    let series = m
        .iter()
        .map(|(labels, samples)| BlockSeries {
            labels: labels.clone(),
            chunks: samples
                .chunks(120)
                .map(|part| {
                    let mut c = XorChunk::new();
                    for &(t, v) in part {
                        c.append(t, v);
                    }
                    c
                })
                .collect(),
        })
        .collect();
    write_block_with(dir, opts, START, END, series)
        .unwrap()
        .to_string()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn promtool_lists_our_block_with_its_range_and_stats() {
    if !have(PROMTOOL) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let m = model(true);
    let ulid = write_model(dir.path(), &m);
    let out = run(Command::new(PROMTOOL)
        .args(["tsdb", "list"])
        .arg(dir.path()));
    let line = out
        .lines()
        .find(|l| l.starts_with(&ulid))
        .unwrap_or_else(|| panic!("{ulid} not listed:\n{out}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    // ULID, MIN TIME, MAX TIME, DURATION, NUM SAMPLES, NUM CHUNKS, NUM SERIES, SIZE
    let samples: usize = m.values().map(Vec::len).sum();
    let chunks: usize = m.values().map(|s| s.len().div_ceil(120)).sum();
    assert_eq!(cols[1], START.to_string());
    assert_eq!(cols[2], END.to_string());
    assert_eq!(cols[3], "2h0m0s");
    assert_eq!(cols[4], samples.to_string());
    assert_eq!(cols[5], chunks.to_string());
    assert_eq!(cols[6], m.len().to_string());

    // `analyze` walks every postings list and series of the index with Prometheus' reader.
    let out = run(Command::new(PROMTOOL)
        .args(["tsdb", "analyze"])
        .arg(dir.path())
        .arg(&ulid));
    for want in [
        format!("Block ID: {ulid}"),
        "Duration: 2h0m0s".to_string(),
        format!("Series: {}", m.len()),
        "Label names: 3".to_string(),
        // 3 metric names + 24 instances + 2 jobs; 3 labels per series.
        "Postings (unique label pairs): 29".to_string(),
        format!("Postings entries (total label pairs): {}", 3 * m.len()),
    ] {
        assert!(out.lines().any(|l| l == want), "{want:?} not in:\n{out}");
    }
}

/// Parses `promtool tsdb dump` lines: `{a="b", c="d"} value timestamp`.
fn parse_dump(out: &str) -> Model {
    let mut got = Model::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (labels, rest) = line.rsplit_once("} ").expect("dump line");
        let mut parts = rest.split(' ');
        let v = match parts.next().unwrap() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            "NaN" => f64::NAN,
            other => other.parse::<f64>().unwrap(),
        };
        let t: i64 = parts.next().unwrap().parse().unwrap();
        let mut pairs = Vec::new();
        for kv in labels.trim_start_matches('{').split(", ") {
            let (k, v) = kv.split_once('=').unwrap();
            pairs.push((k.to_string(), v.trim_matches('"').to_string()));
        }
        got.entry(labels_from_pairs(pairs))
            .or_default()
            .push((t, v));
    }
    for samples in got.values_mut() {
        samples.sort_by_key(|s| s.0);
    }
    got
}

#[test]
fn promtool_dump_prints_exactly_the_samples_we_wrote() {
    if !have(PROMTOOL) {
        return;
    }
    let m = model(true);
    // The last case spreads the chunks over many small segment files (000001, 000002, ...).
    let small_segments = BlockOptions {
        segment_size: 4096,
        ..BlockOptions::default()
    };
    for (lo, hi, opts) in [
        (START, END - 1, BlockOptions::default()),
        (START + 600_000, START + 1_800_000, BlockOptions::default()),
        (START, END - 1, small_segments),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ulid = write_model_with(dir.path(), &m, &opts);
        let segments = std::fs::read_dir(dir.path().join(&ulid).join("chunks"))
            .unwrap()
            .count();
        assert!(
            segments == 1 || opts.segment_size == 4096 && segments > 5,
            "{segments} segments"
        );
        let out = run(Command::new(PROMTOOL)
            .args(["tsdb", "dump"])
            .arg(format!("--min-time={lo}"))
            .arg(format!("--max-time={hi}"))
            .arg(dir.path()));
        let got = parse_dump(&out);
        let want: Model = m
            .iter()
            .map(|(l, s)| {
                let inside = s.iter().copied().filter(|(t, _)| (lo..=hi).contains(t));
                (l.clone(), inside.collect::<Vec<_>>())
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>()
        );
        for (labels, samples) in &want {
            assert_samples_eq(
                samples,
                &got[labels],
                &format!("{labels:?} in [{lo}, {hi}]"),
            );
        }
    }
}

/// A Prometheus process, killed by pid (by its guard) when the test ends.
struct Prometheus {
    child: Guard,
    port: u16,
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The matrix result of a query as series -> samples (timestamps in ms).
fn matrix(prom: &Prometheus, path_and_query: &str) -> Model {
    let (status, body) = http_get(prom.port, path_and_query).expect("query answered");
    assert_eq!(status, 200, "{path_and_query}: {body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["data"]["resultType"], "matrix", "{body}");
    let mut out = Model::new();
    for r in json["data"]["result"].as_array().unwrap() {
        let pairs: Vec<(String, String)> = r["metric"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let samples = r["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
                let v = match p[1].as_str().unwrap() {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    "NaN" => f64::NAN,
                    other => other.parse().unwrap(),
                };
                (t, v)
            })
            .collect();
        out.insert(labels_from_pairs(pairs), samples);
    }
    out
}

#[test]
fn real_prometheus_answers_promql_from_our_block() {
    if !have(PROMETHEUS) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let m = model(false);
    // With a Mimir-style `thanos` section in meta.json, which Prometheus must ignore.
    let opts = BlockOptions {
        thanos: Some(ThanosMeta {
            labels: [("__org_id__".to_string(), "tenant-1".to_string())].into(),
            source: "receive".to_string(),
            ..ThanosMeta::default()
        }),
        ..BlockOptions::default()
    };
    write_model_with(&data, &m, &opts);
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        "global:\n  scrape_interval: 1m\nscrape_configs: []\n",
    )
    .unwrap();
    let port = port::free();
    let log = dir.path().join("prometheus.log");
    let child = Guard::spawn(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg("--storage.tsdb.retention.time=100y")
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
    )
    .expect("prometheus starts")
    .log_to(log);
    let prom = Prometheus { child, port };
    let log_text = || prom.child.log_text();

    // Bounded wait for readiness (the block is loaded before /-/ready answers 200).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if matches!(http_get(port, "/-/ready"), Some((200, _))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus not ready:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Raw samples through a range selector: every sample of every series.
    let at = END as f64 / 1000.0;
    for name in [
        "ringkit_test_counter",
        "ringkit_test_gauge",
        "ringkit_test_odd",
    ] {
        let q = url_encode(&format!("{name}[2h1m]"));
        let got = matrix(&prom, &format!("/api/v1/query?query={q}&time={at}"));
        let want: Model = m
            .iter()
            .filter(|(l, _)| l.iter().any(|l| l.name == "__name__" && l.value == name))
            .map(|(l, s)| (l.clone(), s.clone()))
            .collect();
        assert_eq!(got.len(), want.len(), "{name}: series\n{}", log_text());
        for (labels, samples) in &want {
            assert_samples_eq(samples, &got[labels], &format!("{labels:?}"));
        }
    }

    // A range query whose steps land on one series' samples returns their values.
    let labels = parse_series(r#"ringkit_test_gauge{instance="host-07",job="db"}"#);
    let samples = &m[&labels];
    let first = samples[10].0;
    let last = samples[100].0;
    let q = url_encode(r#"ringkit_test_gauge{instance="host-07"}"#);
    let got = matrix(
        &prom,
        &format!(
            "/api/v1/query_range?query={q}&start={}&end={}&step=15",
            first / 1000,
            last / 1000
        ),
    );
    let values = &got[&labels];
    assert_eq!(values.len(), 91);
    for (want, got) in samples[10..=100].iter().zip(values) {
        assert_eq!(want.0, got.0);
        assert!(
            same_value(want.1, got.1),
            "at {}: {} vs {}",
            want.0,
            want.1,
            got.1
        );
    }
}
