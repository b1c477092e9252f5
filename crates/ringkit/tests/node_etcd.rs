//! Real `ringkit node` processes sharing a ring in a real etcd (started by the test on
//! 127.0.0.1): three ingesters join, a clean shutdown unregisters, a SIGKILLed one is
//! auto-forgotten by a live member.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringkit_kv::testsuite::{EtcdServer, skip_etcd};

struct Node {
    child: Child,
    url: String,
    _wal: tempfile::TempDir,
}

impl Node {
    fn start(id: &str, zone: &str, etcd: &str) -> Node {
        let wal = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringkit"))
            .args([
                "node",
                "--target=ingester",
                "--kv.store=etcd",
                &format!("--etcd.endpoints={etcd}"),
                &format!("--ingester.lifecycler.ID={id}"),
                &format!("--ingester.availability-zone={zone}"),
                "--ingester.num-tokens=64",
                "--ingester.heartbeat-period=300ms",
                "--ingester.heartbeat-timeout=2s",
                "--ingester.auto-forget-unhealthy-periods=2",
                "--ingester.min-ready-duration=0s",
                "--ring.heartbeat-timeout=2s",
                "--server.http-listen-port=0",
                "--server.grpc-listen-port=0",
                &format!("--ingester.wal-dir={}", wal.path().display()),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ringkit binary starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("listen line: {line:?}"))
            .to_owned();
        Node {
            child,
            url,
            _wal: wal,
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn ring(url: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("{url}/ring"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_for(url: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
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

fn ids(r: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_ring_in_etcd_and_leave_or_get_forgotten() {
    if skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return;
    }
    let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
    let endpoint = etcd.endpoint();
    let a = Node::start("ing-a", "a", &endpoint);
    let b = Node::start("ing-b", "b", &endpoint);
    let mut c = Node::start("ing-c", "c", &endpoint);

    wait_for(&a.url, "3 ACTIVE instances with tokens", |r| {
        let shards = r["shards"].as_array().unwrap();
        shards.len() == 3
            && shards
                .iter()
                .all(|s| s["state"] == "ACTIVE" && s["tokens"] == 64)
    })
    .await;
    // One instance per zone: each owns its whole zone ring.
    let r = ring(&b.url).await;
    for s in r["shards"].as_array().unwrap() {
        assert!((s["ownership_percent"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    }
    let ready = reqwest::get(format!("{}/ready", a.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", a.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("kv_request_duration_seconds"), "{metrics}");

    // Clean shutdown: LEAVING then unregistered.
    c.signal("-TERM");
    let status = c.child.wait().unwrap();
    assert!(status.success(), "clean exit: {status}");
    wait_for(&a.url, "ing-c unregistered", |r| {
        ids(r) == ["ing-a", "ing-b"]
    })
    .await;

    // Crash: b stays in the ring, turns unhealthy, and a forgets it after 2 timeouts.
    b.signal("-KILL");
    wait_for(&a.url, "ing-b unhealthy", |r| {
        r["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ing-b" && s["state"] == "UNHEALTHY")
    })
    .await;
    wait_for(&a.url, "ing-b auto-forgotten", |r| ids(r) == ["ing-a"]).await;
    drop(a);
    drop(b);
}
