//! Fault test with real processes: RF 3, three ingesters, a writer pushing continuously
//! through the distributor; one ingester is SIGKILLed. No acknowledged sample may go
//! missing from remote read. The killed ingester is forgotten by the ring, restarted with
//! the same WAL directory and tokens file: it replays its WAL (the samples it had
//! acknowledged are back), claims the tokens from its file and becomes ACTIVE again.

mod cluster;
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, Node, active_ids, addr_of, eq, now_ms, post, read, series, write_body};
use common::ids;
use ringkit_dataplane::client::{IngesterPool, PoolConfig, with_tenant};
use ringkit_dataplane::proto::QueryRequest;

const SERIES: usize = 5;
const TENANT: &str = "fault";

/// A sample the distributor acknowledged: (series index, timestamp), and when.
type Acked = Vec<((usize, i64), Instant)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkilled_ingester_loses_no_acknowledged_sample_and_rejoins_from_its_wal() {
    if cluster::skip() {
        return;
    }
    let mut cluster = Cluster::start().await;
    let http = reqwest::Client::new();
    let acked: Arc<Mutex<Acked>> = Arc::default();
    let failed = Arc::new(Mutex::new(Vec::<(u16, String)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let base = now_ms();
    let writer = {
        let (acked, failed, stop, http) =
            (acked.clone(), failed.clone(), stop.clone(), http.clone());
        let url = cluster.push_url();
        tokio::spawn(async move {
            let mut k = 0i64;
            while !stop.load(Ordering::Relaxed) {
                let ts = base + k;
                let batch = (0..SERIES)
                    .map(|s| {
                        series(
                            &[("__name__", "fault_test"), ("s", &s.to_string())],
                            &[(k as f64, ts)],
                        )
                    })
                    .collect();
                let (status, text) = post(&http, &url, write_body(batch), Some(TENANT)).await;
                if status == 200 {
                    let at = Instant::now();
                    acked
                        .lock()
                        .unwrap()
                        .extend((0..SERIES).map(|s| ((s, ts), at)));
                } else {
                    failed.lock().unwrap().push((status, text));
                }
                k += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let tokens_file = cluster.dir.path().join("tokens-1.json");
    let tokens_before = std::fs::read_to_string(&tokens_file).unwrap();
    cluster.ingesters[1].kill9();
    let killed_at = Instant::now();
    eprintln!(
        "killed ing-1 after {} acknowledged samples",
        acked.lock().unwrap().len()
    );

    // Writes go on with two ingesters; the dead one is forgotten by the live members.
    cluster
        .wait_ring("ing-1 forgotten", |r| ids(r) == ["ing-0", "ing-2"])
        .await;
    let args = cluster.ingesters[1].args.clone();
    let log = cluster.ingesters[1].log.clone();
    cluster.ingesters[1] = Node::start(args, &log);
    cluster
        .wait_ring("ing-1 ACTIVE again", |r| {
            active_ids(r) == ["ing-0", "ing-1", "ing-2"]
        })
        .await;
    let restarted_log = cluster.ingesters[1].log_text();
    assert!(restarted_log.contains("WAL replayed"), "{restarted_log}");
    let metrics = reqwest::get(format!("{}/metrics", cluster.ingesters[1].url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let replayed: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ringkit_ingester_wal_replayed_samples "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no replay gauge in {metrics}"));
    assert!(replayed > 0.0, "the restarted ingester replayed its WAL");
    assert_eq!(
        std::fs::read_to_string(&tokens_file).unwrap(),
        tokens_before,
        "the restarted ingester claimed the tokens of its tokens file"
    );

    // The restarted ingester itself holds what it had acknowledged before the crash.
    let r = common::ring(&cluster.distributor.url).await;
    let addr = addr_of(&r, "ing-1").unwrap();
    let mut client = IngesterPool::new(PoolConfig::default())
        .client(&addr)
        .unwrap();
    let own = client
        .query(
            with_tenant(
                QueryRequest {
                    start_timestamp_ms: 0,
                    end_timestamp_ms: i64::MAX,
                    matchers: vec![eq("__name__", "fault_test")],
                },
                TENANT,
            )
            .unwrap(),
        )
        .await
        .unwrap()
        .into_inner()
        .timeseries;
    let own: BTreeMap<String, Vec<i64>> = own
        .iter()
        .map(|s| {
            let idx = s
                .labels
                .iter()
                .find(|l| l.name == "s")
                .unwrap()
                .value
                .clone();
            (idx, s.samples.iter().map(|x| x.timestamp).collect())
        })
        .collect();
    // Calls still in flight when the distributor answered may land a little later; anything
    // acknowledged a second before the kill had certainly reached all three.
    let settled: Vec<(usize, i64)> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, at)| *at + Duration::from_secs(1) < killed_at)
        .map(|(k, _)| *k)
        .collect();
    assert!(
        settled.len() >= SERIES * 10,
        "writes before the kill: {}",
        settled.len()
    );
    for (s, ts) in &settled {
        let have = own
            .get(&s.to_string())
            .is_some_and(|v| v.binary_search(ts).is_ok());
        assert!(
            have,
            "ing-1 lost acknowledged sample s={s} ts={ts} over its restart"
        );
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let got = read(
        &http,
        &cluster.read_url(),
        Some(TENANT),
        vec![eq("__name__", "fault_test")],
        0,
        i64::MAX,
    )
    .await;
    let mut stored: BTreeMap<usize, Vec<(i64, f64)>> = BTreeMap::new();
    for s in &got {
        let idx: usize = s
            .labels
            .iter()
            .find(|l| l.name == "s")
            .unwrap()
            .value
            .parse()
            .unwrap();
        stored.insert(
            idx,
            s.samples.iter().map(|x| (x.timestamp, x.value)).collect(),
        );
    }
    let acked = acked.lock().unwrap();
    let mut missing = Vec::new();
    for ((s, ts), _) in acked.iter() {
        let ok = stored.get(s).is_some_and(|v| {
            v.binary_search_by_key(ts, |&(t, _)| t)
                .is_ok_and(|i| v[i].1 == (ts - base) as f64)
        });
        if !ok {
            missing.push((*s, *ts));
        }
    }
    let failed = failed.lock().unwrap();
    eprintln!(
        "acknowledged {} samples, {} pushes failed ({:?}), {} missing",
        acked.len(),
        failed.len(),
        failed.first(),
        missing.len()
    );
    assert!(
        acked.len() > SERIES * 100,
        "the writer kept writing: {}",
        acked.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged samples missing: {:?}",
        &missing[..missing.len().min(10)]
    );
    assert!(
        failed.iter().all(|(status, _)| *status >= 500),
        "no client error: {failed:?}"
    );
}
