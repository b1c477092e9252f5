//! Helpers for tests that run real `ringkit node` processes: a cluster of ingesters and a
//! distributor sharing a ring in a real etcd on 127.0.0.1, remote write/read clients, and
//! bounded waits. Processes are started and killed by pid only. Built on `common` (every
//! test binary that uses this module declares both).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;
use ringkit_ingest::decode::{DecodeLimits, decompress, encode_snappy};
use ringkit_ingest::prompb::{
    Label, LabelMatcher, MatcherType, Query, ReadRequest, ReadResponse, Sample, TimeSeries,
    WriteRequest,
};
use ringkit_kv::testsuite::EtcdServer;
use ringkit_testkit::proc::Guard;

use crate::common::{ring, signal, spawn_node};

/// Longest any wait of these tests lasts.
pub(crate) const WAIT: Duration = Duration::from_secs(40);

/// One `ringkit node` process, killed (by pid) when dropped.
pub(crate) struct Node {
    pub(crate) child: Guard,
    /// `http://127.0.0.1:port`.
    pub(crate) url: String,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
}

impl Node {
    /// Starts `ringkit node ARGS` (HTTP on a free port) and waits for its listen line.
    /// Its stderr goes to `log`.
    pub(crate) fn start(args: Vec<String>, log: &Path) -> Node {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let (child, url) = spawn_node(&args, stderr.into(), Some(log));
        Node {
            child,
            url,
            args,
            log: log.to_owned(),
        }
    }

    /// Sends a signal (`-KILL`, `-TERM`) to this process only.
    pub(crate) fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// SIGKILL and reap.
    pub(crate) fn kill9(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// The process' log so far.
    pub(crate) fn log_text(&self) -> String {
        self.child.log_text()
    }
}

/// Whether etcd-backed process tests should be skipped (`RINGKIT_SKIP_ETCD`).
pub(crate) fn skip() -> bool {
    if ringkit_kv::testsuite::skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return true;
    }
    false
}

/// 3 ingesters (`ing-0..2`, RF 3, no zones) and one distributor sharing a ring in etcd.
pub(crate) struct Cluster {
    pub(crate) etcd: EtcdServer,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ingesters: Vec<Node>,
    pub(crate) distributor: Node,
}

impl Cluster {
    /// Starts etcd, the ingesters and the distributor, and waits until the distributor sees
    /// three ACTIVE ingesters with tokens.
    pub(crate) async fn start() -> Cluster {
        let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
        let dir = tempfile::tempdir().unwrap();
        let ingesters = (0..3)
            .map(|i| {
                Node::start(
                    ingester_args(&etcd.endpoint(), dir.path(), i),
                    &dir.path().join(format!("ing-{i}.log")),
                )
            })
            .collect();
        let distributor = Node::start(
            vec![
                "--target=distributor".into(),
                "--kv.store=etcd".into(),
                format!("--etcd.endpoints={}", etcd.endpoint()),
                "--ring.heartbeat-timeout=2s".into(),
            ],
            &dir.path().join("distributor.log"),
        );
        let c = Cluster {
            etcd,
            dir,
            ingesters,
            distributor,
        };
        c.wait_ring("3 ACTIVE ingesters", |r| active_ids(r).len() == 3)
            .await;
        c
    }

    /// `/api/v1/push` of the distributor.
    pub(crate) fn push_url(&self) -> String {
        format!("{}/api/v1/push", self.distributor.url)
    }

    /// `/api/v1/read` of the distributor.
    pub(crate) fn read_url(&self) -> String {
        format!("{}/api/v1/read", self.distributor.url)
    }

    /// Waits (bounded) until the distributor's ring view satisfies `ok`.
    pub(crate) async fn wait_ring(&self, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = ring(&self.distributor.url).await;
            if ok(&r) {
                return;
            }
            if Instant::now() > deadline {
                self.dump_logs();
                panic!("timed out waiting for {what}: {r}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Prints every process' log (on failures).
    pub(crate) fn dump_logs(&self) {
        for n in self.ingesters.iter().chain([&self.distributor]) {
            eprintln!("--- {} ---\n{}", n.log.display(), n.log_text());
        }
    }
}

/// Flags of ingester `i` of a cluster: WAL and tokens file under `dir`, gRPC on a free port,
/// fast heartbeats, forgotten after 2 s unhealthy.
pub(crate) fn ingester_args(etcd: &str, dir: &Path, i: usize) -> Vec<String> {
    vec![
        "--target=ingester".into(),
        "--kv.store=etcd".into(),
        format!("--etcd.endpoints={etcd}"),
        format!("--ingester.lifecycler.ID=ing-{i}"),
        "--ingester.num-tokens=64".into(),
        "--ingester.heartbeat-period=200ms".into(),
        "--ingester.heartbeat-timeout=1s".into(),
        "--ingester.auto-forget-unhealthy-periods=2".into(),
        "--ingester.min-ready-duration=0s".into(),
        "--ring.heartbeat-timeout=2s".into(),
        "--server.grpc-listen-port=0".into(),
        format!(
            "--ingester.wal-dir={}",
            dir.join(format!("wal-{i}")).display()
        ),
        format!(
            "--ingester.tokens-file-path={}",
            dir.join(format!("tokens-{i}.json")).display()
        ),
    ]
}

/// Ids of the ACTIVE instances that hold tokens, sorted.
pub(crate) fn active_ids(r: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "ACTIVE" && s["tokens"].as_u64() > Some(0))
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// The ring address of instance `id`.
pub(crate) fn addr_of(r: &serde_json::Value, id: &str) -> Option<String> {
    r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .map(|s| s["address"].as_str().unwrap().to_owned())
}

/// POSTs `body` as a remote-write request; returns status and body text.
pub(crate) async fn post(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
    tenant: Option<&str>,
) -> (u16, String) {
    let mut req = http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body);
    if let Some(t) = tenant {
        req = req.header("X-Scope-OrgID", t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// A snappy remote-write body of `series`.
pub(crate) fn write_body(series: Vec<TimeSeries>) -> Vec<u8> {
    encode_snappy(&WriteRequest {
        timeseries: series,
        metadata: Vec::new(),
    })
}

/// A series from `(name, value)` pairs, in the order given, with samples `(value, ts)`.
pub(crate) fn series(labels: &[(&str, &str)], samples: &[(f64, i64)]) -> TimeSeries {
    TimeSeries {
        labels: labels.iter().map(|(n, v)| Label::new(*n, *v)).collect(),
        samples: samples
            .iter()
            .map(|&(value, timestamp)| Sample { value, timestamp })
            .collect(),
        ..Default::default()
    }
}

/// An equality matcher.
pub(crate) fn eq(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: MatcherType::Eq as i32,
        name: name.into(),
        value: value.into(),
    }
}

/// A regex matcher.
pub(crate) fn re(name: &str, value: &str) -> LabelMatcher {
    LabelMatcher {
        r#type: MatcherType::Re as i32,
        name: name.into(),
        value: value.into(),
    }
}

/// Remote-reads the series matching `matchers` in `[start, end]`; panics unless 200.
pub(crate) async fn read(
    http: &reqwest::Client,
    url: &str,
    tenant: Option<&str>,
    matchers: Vec<LabelMatcher>,
    start: i64,
    end: i64,
) -> Vec<TimeSeries> {
    let req = ReadRequest {
        queries: vec![Query {
            start_timestamp_ms: start,
            end_timestamp_ms: end,
            matchers,
            hints: None,
        }],
        accepted_response_types: Vec::new(),
    };
    let mut r = http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Read-Version", "0.1.0")
        .body(encode_snappy(&req));
    if let Some(t) = tenant {
        r = r.header("X-Scope-OrgID", t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(status, 200, "read: {}", String::from_utf8_lossy(&bytes));
    let raw = decompress(&bytes, &DecodeLimits::default()).unwrap();
    let mut resp = ReadResponse::decode(&raw[..]).unwrap();
    assert_eq!(resp.results.len(), 1);
    resp.results.remove(0).timeseries
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Reads a fixture from `crates/ingest/testdata/` (captured Prometheus 2.42 bodies).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ingest/testdata/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}
