//! Helpers shared by the dataplane tests: real ingester gRPC servers on 127.0.0.1 and a
//! ring naming them.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ringkit_dataplane::ingester::{IngesterConfig, IngesterService, load};
use ringkit_ingest::head::{Head, HeadOptions};
use ringkit_ingest::prompb::{Label, Sample, TimeSeries};
use ringkit_ingest::validate::Limits;
use ringkit_lifecycle::RingWatcher;
use ringkit_ring::{Desc, InstanceState, RingConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An ingester served on a free 127.0.0.1 port until dropped or [`Running::stop`]ped.
pub(crate) struct Running {
    pub(crate) addr: String,
    pub(crate) head: Arc<Head>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops serving and waits for the server task (in-flight calls finish first).
    pub(crate) async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.unwrap();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub(crate) fn config(dir: &Path) -> IngesterConfig {
    IngesterConfig {
        tsdb_dir: dir.to_owned(),
        head: HeadOptions::default(),
        limits: Limits::default(),
    }
}

/// Loads (replays) the WAL in `dir` and serves it.
pub(crate) async fn start_ingester(dir: &Path) -> Running {
    let (head, _) = load(&config(dir)).await.unwrap();
    serve(head).await
}

/// Serves `head` on a free port.
pub(crate) async fn serve(head: Arc<Head>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = oneshot::channel();
    let service = IngesterService::new(Arc::clone(&head), Limits::default());
    let task = tokio::spawn(async move {
        service
            .serve(listener, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    Running {
        addr,
        head,
        stop: Some(tx),
        task: Some(task),
    }
}

pub(crate) fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A watcher publishing a ring of ACTIVE, freshly heartbeating instances at `addrs`, RF 3.
pub(crate) fn ring_of(addrs: &[&str]) -> Arc<RingWatcher> {
    let mut desc = Desc::new();
    for (i, addr) in addrs.iter().enumerate() {
        let tokens: Vec<u32> = (0..64u32)
            .map(|t| {
                t.wrapping_mul(67_108_864)
                    .wrapping_add(i as u32 * 7_919_191)
            })
            .collect();
        desc.add_instance(
            &format!("ing-{i}"),
            addr,
            "",
            tokens,
            InstanceState::Active,
            now_s(),
            now_s(),
        );
    }
    let watcher = RingWatcher::new(RingConfig {
        replication_factor: 3,
        ..RingConfig::default()
    })
    .expect("valid ring config");
    watcher.publish(desc);
    watcher
}

/// A series from `(name, value)` pairs with samples `(value, ts)`.
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

/// Reads a fixture from `crates/ingest/testdata/` (captured Prometheus 2.42 bodies).
pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../ingest/testdata/").to_owned() + name;
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Labels and `(timestamp, value bits)` of one series.
pub(crate) type SeriesBits = (Vec<Label>, Vec<(i64, u64)>);

/// A comparable form of series, even with NaN samples (stale markers).
pub(crate) fn bits(series: &[TimeSeries]) -> Vec<SeriesBits> {
    series
        .iter()
        .map(|ts| {
            (
                ts.labels.clone(),
                ts.samples
                    .iter()
                    .map(|s| (s.timestamp, s.value.to_bits()))
                    .collect(),
            )
        })
        .collect()
}
