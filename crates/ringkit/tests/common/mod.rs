//! Helpers shared by the tests that run real `ringkit` processes: nodes on 127.0.0.1 free
//! ports sharing an etcd the test starts, the `/ring` JSON, bounded waits, and the CLI.
//!
//! Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ringkit_testkit::proc::Guard;

/// How a test node is configured beyond its id and store.
#[derive(Clone, Debug)]
pub(crate) struct NodeOpts {
    /// Availability zone ("" for none).
    pub(crate) zone: String,
    /// Heartbeat timeout of both the lifecycler and the ring client.
    pub(crate) heartbeat_timeout: &'static str,
    /// Auto-forget after this many heartbeat timeouts (0: never).
    pub(crate) auto_forget_periods: u32,
    /// Tokens per instance.
    pub(crate) num_tokens: usize,
}

impl Default for NodeOpts {
    fn default() -> Self {
        NodeOpts {
            zone: String::new(),
            heartbeat_timeout: "2s",
            auto_forget_periods: 2,
            num_tokens: 64,
        }
    }
}

/// A `ringkit node` child process; killed (by its pid) when dropped (by its [`Guard`]).
pub(crate) struct Node {
    pub(crate) child: Guard,
    pub(crate) url: String,
    pub(crate) id: String,
    /// The ingester's write-ahead log, removed with the node.
    _wal: tempfile::TempDir,
}

impl Node {
    /// Starts an ingester node on a free port against etcd and waits for its listen line.
    pub(crate) fn start(id: &str, etcd: &str, opts: &NodeOpts) -> Node {
        Node::start_with(
            id,
            &[
                "--kv.store=etcd".to_owned(),
                format!("--etcd.endpoints={etcd}"),
            ],
            opts,
        )
    }

    /// Starts an ingester node with the given store flags.
    pub(crate) fn start_with(id: &str, store: &[String], opts: &NodeOpts) -> Node {
        let wal = tempfile::tempdir().unwrap();
        let mut args = store.to_vec();
        args.extend([
            "--target=ingester".to_owned(),
            format!("--ingester.lifecycler.ID={id}"),
            format!("--ingester.availability-zone={}", opts.zone),
            format!("--ingester.num-tokens={}", opts.num_tokens),
            "--ingester.heartbeat-period=300ms".to_owned(),
            format!("--ingester.heartbeat-timeout={}", opts.heartbeat_timeout),
            format!(
                "--ingester.auto-forget-unhealthy-periods={}",
                opts.auto_forget_periods
            ),
            "--ingester.min-ready-duration=0s".to_owned(),
            format!("--ring.heartbeat-timeout={}", opts.heartbeat_timeout),
            "--server.grpc-listen-port=0".to_owned(),
            format!("--ingester.wal-dir={}", wal.path().display()),
        ]);
        let (child, url) = spawn_node(&args, Stdio::null(), None);
        Node {
            child,
            url,
            id: id.to_owned(),
            _wal: wal,
        }
    }

    /// Sends a signal (e.g. `-TERM`, `-KILL`) to this node's pid only.
    pub(crate) fn signal(&self, sig: &str) {
        signal(&self.child, sig);
    }

    /// SIGKILL, then reap the process so it is surely gone.
    pub(crate) fn kill(&mut self) {
        self.child.kill();
    }
}

/// Starts `ringkit node ARGS` with its HTTP server on a free port and waits for its
/// listen line; returns the guarded child and `http://127.0.0.1:port`. Its stderr goes to
/// `stderr`; `log` (where that is a file) is kept in the guard and shown if the listen
/// line never comes.
pub(crate) fn spawn_node(
    args: &[String],
    stderr: Stdio,
    log: Option<&std::path::Path>,
) -> (Guard, String) {
    let mut child = Guard::spawn(
        Command::new(env!("CARGO_BIN_EXE_ringkit"))
            .arg("node")
            .args(args)
            .arg("--server.http-listen-port=0")
            .stdout(Stdio::piped())
            .stderr(stderr),
    )
    .expect("ringkit binary starts");
    if let Some(log) = log {
        child = child.log_to(log);
    }
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let Some(url) = line.split_whitespace().find(|w| w.starts_with("http://")) else {
        child.kill();
        panic!("no listen line: {line:?}; log:\n{}", child.log_text());
    };
    (child, url.to_owned())
}

/// Sends a signal (`-TERM`, `-KILL`) to `child`'s pid only.
pub(crate) fn signal(child: &Child, sig: &str) {
    ringkit_testkit::proc::signal(child, sig);
}

/// A JSON answer of `url` (asking for JSON; 5 s timeout).
pub(crate) async fn get_json(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .header("Accept", "application/json")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The `/ring` page as JSON.
pub(crate) async fn ring(url: &str) -> serde_json::Value {
    get_json(&format!("{url}/ring")).await
}

/// Polls `/ring` until `ok` holds; fails after 30 s with the last answer.
pub(crate) async fn wait_for(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = ring(url).await;
        if ok(&r) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Instance ids listed in a `/ring` JSON answer, sorted.
pub(crate) fn ids(r: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// Whether every listed instance is ACTIVE with `tokens` tokens and there are `n`.
pub(crate) fn all_active(r: &serde_json::Value, n: usize, tokens: usize) -> bool {
    let shards = r["shards"].as_array().unwrap();
    shards.len() == n
        && shards
            .iter()
            .all(|s| s["state"] == "ACTIVE" && s["tokens"] == tokens)
}

/// Runs `ringkit ARGS` and returns its output; killed (by pid) if it runs past `limit`.
pub(crate) fn ringkit<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(
    args: &[S],
    limit: Duration,
) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkit"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ringkit binary starts");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let out = String::from_utf8_lossy(&out_t.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&err_t.join().unwrap()).into_owned();
            panic!(
                "ringkit {args:?} still running after {limit:?}\nstdout:\n{out}\nstderr:\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
    }
}

/// `ringkit node` flags for a memberlist store on 127.0.0.1:`port` with cluster `label`,
/// joining 127.0.0.1:`join` when given.
/// Runs `ringkit ring ARGS` as a temporary member of the gossip cluster that
/// 127.0.0.1:`join` belongs to (cluster label `label`); asserts it succeeded and returns
/// its stdout.
pub(crate) fn ring_cli_via_gossip(args: &[&str], join: u16, label: &str) -> Vec<u8> {
    let mut all: Vec<String> = std::iter::once("ring")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    all.extend([
        "--kv.store=memberlist".to_owned(),
        "--memberlist.bind-addr=127.0.0.1".to_owned(),
        format!("--memberlist.cluster-label={label}"),
        format!("--memberlist.join=127.0.0.1:{join}"),
        "--ring.heartbeat-timeout=2s".to_owned(),
    ]);
    let out = ringkit(&all, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "ringkit {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub(crate) fn gossip_flags(port: u16, join: Option<u16>, label: &str) -> Vec<String> {
    let mut v = vec![
        "--kv.store=memberlist".to_owned(),
        "--memberlist.bind-addr=127.0.0.1".to_owned(),
        format!("--memberlist.bind-port={port}"),
        format!("--memberlist.cluster-label={label}"),
        "--memberlist.pullpush-interval=2s".to_owned(),
    ];
    if let Some(j) = join {
        v.push(format!("--memberlist.join=127.0.0.1:{j}"));
    }
    v
}

/// Partition `id`'s row on a ringkit node's `/ingester/partition-ring` JSON.
pub(crate) async fn partition_row(url: &str, id: i64) -> Option<serde_json::Value> {
    let page = get_json(&format!("{url}/ingester/partition-ring")).await;
    page["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
}

/// Mimir's `POST /ingester/prepare-shutdown` on the node at `url`; its status.
pub(crate) async fn prepare_shutdown(url: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{url}/ingester/prepare-shutdown"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Mimir's `/ingester/prepare-partition-downscale` with `method`: the status and the
/// answer's `timestamp` (-1 when the body has none).
pub(crate) async fn downscale(method: reqwest::Method, url: &str) -> (u16, i64) {
    let resp = reqwest::Client::new()
        .request(
            method,
            format!("{url}/ingester/prepare-partition-downscale"),
        )
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    (status, body["timestamp"].as_i64().unwrap_or(-1))
}
