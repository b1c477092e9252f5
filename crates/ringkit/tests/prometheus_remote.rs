//! A real Prometheus (Debian's 2.42, `/usr/bin/prometheus`) scrapes itself every second,
//! remote-writes to the distributor of a real 3-ingester cluster and remote-reads from it.
//! After a graceful stop (SIGTERM, so its queues flush), every sample it counts as sent is
//! readable through `/api/v1/read` and it reports 0 failed samples; while it runs, a query
//! to its own `/api/v1/query` returns a series that only the cluster holds, so Prometheus
//! reads through us.
//!
//! Skipped with a loud message when the binary is absent, unless `RINGKIT_REQUIRE_PROMETHEUS`
//! is set (scripts/test.sh sets it, so CI fails instead).

mod cluster;
mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cluster::{Cluster, WAIT, eq, now_ms, post, read, series, write_body};
use ringkit_testkit::proc::Guard;
use ringkit_testkit::{port, require};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// A Prometheus process, killed by pid (by its guard) if the test fails before stopping it.
struct Prometheus {
    child: Guard,
    url: String,
}

fn start_prometheus(dir: &Path, distributor: &str) -> Prometheus {
    let port = port::free();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n\
         remote_write:\n  - url: {distributor}/api/v1/push\n    queue_config:\n      batch_send_deadline: 1s\n      min_backoff: 100ms\n\
         remote_read:\n  - url: {distributor}/api/v1/read\n    read_recent: true\n"
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).unwrap();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Guard::spawn(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log),
    )
    .expect("prometheus starts");
    Prometheus {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// Sum of every sample of metric `name` in a Prometheus text exposition.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_writes_and_reads_through_the_distributor() {
    if require::binary(
        PROMETHEUS,
        None,
        "RINGKIT_REQUIRE_PROMETHEUS",
        "apt-get install prometheus",
    )
    .is_none()
    {
        return;
    }
    if cluster::skip() {
        return;
    }
    let cluster = Cluster::start().await;
    let http = reqwest::Client::new();
    let dir = tempfile::tempdir().unwrap();
    let mut prom = start_prometheus(dir.path(), &cluster.distributor.url);
    let prom_log =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Wait (bounded) until Prometheus has sent samples of more than one scrape.
    let deadline = Instant::now() + WAIT;
    let mut first_sent = None;
    let metrics = loop {
        let text = match http.get(format!("{}/metrics", prom.url)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let sent = metric_sum(&text, "prometheus_remote_storage_samples_total").unwrap_or(0.0);
        match first_sent {
            None if sent > 0.0 => first_sent = Some(sent),
            Some(first) if sent > first => break text,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus sent nothing; log:\n{}",
            prom_log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(
        metric_sum(&metrics, "prometheus_remote_storage_samples_failed_total"),
        Some(0.0),
        "log:\n{}",
        prom_log()
    );

    // A series only the cluster holds (default tenant: Prometheus sends no X-Scope-OrgID),
    // queried through Prometheus: it can only come from remote read.
    let t = now_ms();
    let only_remote = series(
        &[("__name__", "ringkit_remote_only"), ("job", "ringkit-test")],
        &[(42.0, t)],
    );
    let (status, text) = post(
        &http,
        &cluster.push_url(),
        write_body(vec![only_remote]),
        None,
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let q: serde_json::Value = http
        .get(format!(
            "{}/api/v1/query?query=ringkit_remote_only&time={}",
            prom.url,
            t as f64 / 1000.0
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["status"], "success", "{q}");
    let result = &q["data"]["result"];
    assert_eq!(result.as_array().map(Vec::len), Some(1), "{q}");
    assert_eq!(result[0]["value"][1], "42", "{q}");

    // Graceful stop: SIGTERM flushes the remote-write queues; bounded wait.
    let before_stop = http
        .get(format!("{}/metrics", prom.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sent = metric_sum(&before_stop, "prometheus_remote_storage_samples_total").unwrap();
    let retried = metric_sum(
        &before_stop,
        "prometheus_remote_storage_samples_retried_total",
    )
    .unwrap_or(0.0);
    let failed = metric_sum(
        &before_stop,
        "prometheus_remote_storage_samples_failed_total",
    )
    .unwrap_or(0.0);
    let dropped = metric_sum(
        &before_stop,
        "prometheus_remote_storage_samples_dropped_total",
    )
    .unwrap_or(0.0);
    assert_eq!((failed, dropped), (0.0, 0.0), "log:\n{}", prom_log());
    prom.child.signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = prom.child.try_wait().unwrap() {
            assert!(
                status.success(),
                "Prometheus exit: {status}; log:\n{}",
                prom_log()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not stop; log:\n{}",
            prom_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = prom_log();
    assert!(!log.contains("non-recoverable error"), "{log}");

    // Every sample counted as sent (attempts minus retries of the same samples) is readable.
    let got = read(
        &http,
        &cluster.read_url(),
        None,
        vec![eq("job", "prometheus")],
        0,
        i64::MAX,
    )
    .await;
    let readable: usize = got.iter().map(|s| s.samples.len()).sum();
    eprintln!(
        "Prometheus sent {sent} samples ({retried} retried); {readable} readable in {} series",
        got.len()
    );
    assert!(got.iter().any(|s| {
        s.labels
            .iter()
            .any(|l| l.name == "__name__" && l.value == "up")
    }));
    assert!(
        readable as f64 >= sent - retried,
        "sent {sent} (retried {retried}) but only {readable} readable"
    );
}
