//! Three zone ingesters and a distributor run as containers of the ringkit image
//! (`bash scripts/build-image.sh`), gossiping on 127.0.0.1 ports of the host network:
//! the ring becomes ACTIVE with one instance per zone, a remote-write body pushed through
//! the distributor is answered 200, and remote read through the distributor returns the
//! samples.
//!
//! Needs podman and the image `ringkit:latest` (or `RINGKIT_IMAGE`). Without them the test
//! skips loudly, and fails when `RINGKIT_REQUIRE_CONTAINER=1` (scripts/test.sh sets it
//! after building the image). Every container it starts is removed by name at the end,
//! also when the test fails.

mod cluster;
mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cluster::{eq, now_ms, post, read, series, write_body};
use ringkit_testkit::{port, require};

/// How long the containers get to come up and form the ring.
const WAIT: Duration = Duration::from_secs(120);
const LABEL: &str = "ringkit-container-test";
const TENANT: &str = "team-container";

fn image() -> String {
    std::env::var("RINGKIT_IMAGE").unwrap_or_else(|_| "ringkit:latest".to_owned())
}

/// podman as scripts/build-image.sh runs it: no systemd (cgroupfs, file events) and runc
/// (crun refuses this machine kind's hybrid cgroup layout).
fn podman() -> Command {
    let mut c = Command::new("podman");
    c.args([
        "--cgroup-manager=cgroupfs",
        "--events-backend=file",
        "--runtime=runc",
    ]);
    c
}

/// Process limits a container can be given here: podman's default open-file limit is
/// above this machine's hard limit, which an OCI runtime without CAP_SYS_RESOURCE cannot
/// raise, so the container would not start.
fn ulimits() -> Vec<String> {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|hard| hard.parse::<u64>().ok())
        .unwrap_or(1024);
    vec![
        "--ulimit".into(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".into(),
        "nproc=4096:4096".into(),
    ]
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

/// Why the test cannot run here, if it cannot.
fn unavailable() -> Option<String> {
    match podman().arg("--version").stdin(Stdio::null()).output() {
        Err(e) => return Some(format!("no container runtime (podman: {e})")),
        Ok(o) if !o.status.success() => {
            return Some(format!(
                "podman does not run: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok(_) => {}
    }
    let exists = run(podman().args(["image", "exists", &image()]));
    if !exists.status.success() {
        return Some(format!(
            "no image {} (build it with `bash scripts/build-image.sh`)",
            image()
        ));
    }
    None
}

/// The containers this test started; removed (by name) when dropped, after printing
/// their logs if the test is failing.
struct Containers {
    names: Vec<String>,
}

impl Containers {
    fn start(&mut self, name: &str, args: &[String]) {
        let out = run(podman()
            .args(["run", "--detach", "--name", name, "--network=host"])
            .args(ulimits())
            .arg(image())
            .args(args));
        // Recorded before the check: a container created but failing to start is removed too.
        self.names.push(name.to_owned());
        assert!(
            out.status.success(),
            "podman run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn logs(&self) -> String {
        let mut all = String::new();
        for name in &self.names {
            let out = run(podman().args(["logs", "--tail", "40", name]));
            all += &format!(
                "--- {name}:\n{}{}\n",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        all
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("container logs:\n{}", self.logs());
        }
        for name in &self.names {
            let _ = run(podman().args(["rm", "--force", "--volumes", "--time", "5", name]));
        }
    }
}

/// One ingester's or the distributor's flags, in Mimir's spelling, on 127.0.0.1 ports.
fn node_flags(target: &str, gossip: u16, seed: u16, http: u16) -> Vec<String> {
    vec![
        "node".into(),
        format!("-target={target}"),
        "-ingester.ring.store=memberlist".into(),
        "-ingester.ring.replication-factor=3".into(),
        "-ingester.ring.zone-awareness-enabled=true".into(),
        "-memberlist.bind-addr=127.0.0.1".into(),
        format!("-memberlist.bind-port={gossip}"),
        format!("-memberlist.join=127.0.0.1:{seed}"),
        format!("-memberlist.cluster-label={LABEL}"),
        "-memberlist.pullpush-interval=2s".into(),
        "-server.http-listen-address=127.0.0.1".into(),
        format!("-server.http-listen-port={http}"),
    ]
}

async fn ring_json(http: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let resp = http
        .get(format!("{url}/ring"))
        .header("Accept", "application/json")
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

/// `(id, zone, state)` of every ring member, sorted.
fn members(r: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = r["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (text("id"), text("zone"), text("state"))
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_zone_ingesters_and_a_distributor_from_the_image_take_writes() {
    if let Some(why) = unavailable() {
        require::missing(
            "RINGKIT_REQUIRE_CONTAINER",
            &format!("container_cluster: {why}"),
        );
        return;
    }
    let started = Instant::now();
    let prefix = format!("ringkit-test-{}", std::process::id());
    let mut containers = Containers { names: Vec::new() };
    let seed = port::free();
    let zones = ["zone-a", "zone-b", "zone-c"];
    for (i, zone) in zones.iter().enumerate() {
        let gossip = if i == 0 { seed } else { port::free() };
        let mut flags = node_flags("ingester", gossip, seed, port::free());
        flags.extend([
            format!("-ingester.ring.instance-id=ingester-{zone}-0"),
            format!("-ingester.ring.instance-availability-zone={zone}"),
            "-ingester.ring.num-tokens=64".into(),
            "-ingester.ring.min-ready-duration=0s".into(),
            "-ingester.ring.heartbeat-period=1s".into(),
            "-server.grpc-listen-address=127.0.0.1".into(),
            format!("-server.grpc-listen-port={}", port::free()),
        ]);
        containers.start(&format!("{prefix}-ingester-{zone}"), &flags);
    }
    let http_port = port::free();
    containers.start(
        &format!("{prefix}-distributor"),
        &node_flags("distributor", port::free(), seed, http_port),
    );
    let url = format!("http://127.0.0.1:{http_port}");
    let http = reqwest::Client::new();

    // The distributor sees every zone's ingester ACTIVE (bounded wait).
    let want: Vec<(String, String, String)> = zones
        .iter()
        .map(|z| {
            (
                format!("ingester-{z}-0"),
                (*z).to_owned(),
                "ACTIVE".to_owned(),
            )
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ring_json(&http, &url).await;
        if r.as_ref().map(members).as_ref() == Some(&want) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ring did not become 3 ACTIVE zone ingesters: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A write through the distributor is accepted and reads back.
    let t = now_ms();
    let body = write_body(vec![
        series(
            &[("__name__", "container_test_a"), ("job", "container")],
            &[(1.5, t - 1000), (2.5, t)],
        ),
        series(
            &[("__name__", "container_test_b"), ("job", "container")],
            &[(7.0, t)],
        ),
    ]);
    let (status, text) = post(&http, &format!("{url}/api/v1/push"), body, Some(TENANT)).await;
    assert_eq!(status, 200, "push: {text}");
    let got = read(
        &http,
        &format!("{url}/api/v1/read"),
        Some(TENANT),
        vec![eq("job", "container")],
        t - 60_000,
        t + 60_000,
    )
    .await;
    let mut samples: Vec<(String, Vec<(i64, f64)>)> = got
        .into_iter()
        .map(|ts| {
            let name = ts
                .labels
                .iter()
                .find(|l| l.name == "__name__")
                .map(|l| l.value.clone())
                .unwrap_or_default();
            (
                name,
                ts.samples.iter().map(|s| (s.timestamp, s.value)).collect(),
            )
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        samples,
        [
            (
                "container_test_a".to_owned(),
                vec![(t - 1000, 1.5), (t, 2.5)]
            ),
            ("container_test_b".to_owned(), vec![(t, 7.0)]),
        ]
    );
    eprintln!(
        "container cluster: ring ACTIVE, push and read back in {:?}",
        started.elapsed()
    );
}
