//! `ringkit loadgen` against a real cluster (etcd, three ingesters with RF 3, a distributor,
//! all `ringkit node` processes on 127.0.0.1): a short run with two tenants and read-back
//! must read back exactly the samples the distributor acknowledged, and the watched
//! distributor's CPU time gives a samples-per-CPU-second line. Against a port where nothing
//! listens, pushes count as connection errors, not as throughput.

mod cluster;
mod common;

use std::time::Duration;

use cluster::Cluster;
use ringkit_testkit::port;

/// The number after `prefix` in `text` (digits only).
fn number_after(text: &str, prefix: &str) -> u64 {
    let at = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix:?} in:\n{text}"));
    text[at + prefix.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("no number after {prefix:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_reads_back_every_acknowledged_sample_from_a_running_cluster() {
    if cluster::skip() {
        return;
    }
    let cluster = Cluster::start().await;
    let pid = cluster.distributor.child.id().to_string();
    let args: Vec<String> = [
        "loadgen",
        "--url",
        &cluster.push_url(),
        "--series",
        "250",
        "--tenants",
        "2",
        "--samples-per-request",
        "100",
        "--concurrency",
        "4",
        "--duration",
        "3s",
        "--report-interval",
        "1s",
        "--watch-pid",
        &pid,
        "--read-back",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = tokio::task::spawn_blocking(move || common::ringkit(&args, Duration::from_secs(120)))
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    if !out.status.success() {
        cluster.dump_logs();
    }
    assert!(out.status.success(), "loadgen failed:\n{stdout}");
    let acked = number_after(&stdout, "acknowledged: ");
    assert!(acked >= 500, "at least a few pushes went through: {acked}");
    let read = number_after(&stdout, "read-back: ");
    assert_eq!(
        read, acked,
        "every acknowledged sample is read back:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "of {acked} acknowledged samples read back; 0 missing, 0 with a wrong value"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("pid {pid}: ")) && stdout.contains("samples per CPU-second"),
        "{stdout}"
    );
    // Progress lines came every second.
    assert!(
        stdout.matches(" samples/s, push p50 ").count() >= 2,
        "{stdout}"
    );
}

#[test]
fn loadgen_counts_refused_connections_as_errors_not_throughput() {
    let port = port::free();
    let out = common::ringkit(
        &[
            "loadgen".to_owned(),
            format!("--url=http://127.0.0.1:{port}/api/v1/push"),
            "--series=10".to_owned(),
            "--duration=300ms".to_owned(),
            "--concurrency=1".to_owned(),
        ],
        Duration::from_secs(60),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "nothing acknowledged is a failure:\n{stdout}"
    );
    assert!(stdout.contains("acknowledged: 0 samples"), "{stdout}");
    assert!(stdout.contains("errors: conn×"), "{stdout}");
}
