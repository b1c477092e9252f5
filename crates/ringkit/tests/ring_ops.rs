//! The operator surface against a real 3-node ring in a real etcd (started by the test on
//! 127.0.0.1): `/metrics` carries dskit's ring metrics with the right values, `ringkit ring
//! show` agrees with the `/ring` page, `ring lookup` hashes series like the distributor,
//! `ring forget` refuses a healthy node and removes a killed one; and the CLI fails fast
//! with a clear message when the store cannot be reached.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Node, NodeOpts, all_active, ids, ring, ringkit, wait_for};
use ringkit_kv::testsuite::{EtcdServer, skip_etcd};

const CLI_LIMIT: Duration = Duration::from_secs(20);

/// `name{labels}` -> value for every sample line of a text exposition.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn sample(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("{series} missing from /metrics: {m:#?}"))
}

fn cli_json<S: AsRef<std::ffi::OsStr> + std::fmt::Debug>(args: &[S]) -> serde_json::Value {
    let out = ringkit(args, CLI_LIMIT);
    assert!(
        out.status.success(),
        "ringkit {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ringkit {args:?} printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_cli_agree_with_the_ring_page_and_forget_removes_a_killed_node() {
    if skip_etcd() {
        eprintln!("RINGKIT_SKIP_ETCD is set: skipping");
        return;
    }
    let etcd = EtcdServer::start().expect("etcd starts (install etcd-server)");
    let endpoint = etcd.endpoint();
    // No auto-forget: only the CLI removes the killed node.
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let n1 = Node::start("ing-1", &endpoint, &opts);
    let _n2 = Node::start("ing-2", &endpoint, &opts);
    let mut n3 = Node::start("ing-3", &endpoint, &opts);
    wait_for(&n1.url, "3 ACTIVE instances", |r| all_active(r, 3, 64)).await;
    let page = ring(&n1.url).await;
    let store = ["--kv.store=etcd", &format!("--etcd.endpoints={endpoint}")].map(String::from);
    let with_store = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain(store.iter().cloned())
            .collect()
    };

    // --- /metrics: dskit's ring and member metrics with this ring's values (after the
    // first heartbeat, which comes one period after joining).
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = reqwest::get(format!("{}/metrics", n1.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let beats = samples(&text)
            .get("ring_member_heartbeats_total{name=\"ingester\"}")
            .copied();
        if beats.is_some_and(|b| b >= 1.0) {
            break text;
        }
        assert!(Instant::now() < deadline, "no heartbeat counted: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let m = samples(&text);
    let members = |state: &str| {
        sample(
            &m,
            &format!("ring_members{{name=\"ingester\",state=\"{state}\"}}"),
        )
    };
    assert_eq!(members("ACTIVE"), 3.0, "{text}");
    for state in ["Unhealthy", "LEAVING", "PENDING", "JOINING"] {
        assert_eq!(members(state), 0.0, "{state}: {text}");
    }
    assert_eq!(sample(&m, "ring_tokens_total{name=\"ingester\"}"), 192.0);
    assert_eq!(
        sample(&m, "ring_member_tokens_owned{name=\"ingester\"}"),
        64.0
    );
    assert_eq!(
        sample(&m, "ring_member_tokens_to_own{name=\"ingester\"}"),
        64.0
    );
    let oldest = sample(
        &m,
        "ring_oldest_member_timestamp{name=\"ingester\",state=\"ACTIVE\"}",
    );
    assert!(
        (unix_now() - oldest).abs() < 10.0,
        "oldest ACTIVE heartbeat {oldest} is not recent"
    );
    assert_eq!(
        sample(
            &m,
            "ring_oldest_member_timestamp{name=\"ingester\",state=\"Unhealthy\"}"
        ),
        0.0
    );
    assert!(!text.contains("ring_zone_members"), "zone awareness is off");
    let mut ownership_sum = 0.0;
    for shard in page["shards"].as_array().unwrap() {
        let id = shard["id"].as_str().unwrap();
        let ratio = sample(
            &m,
            &format!("ring_member_ownership_percent{{name=\"ingester\",member=\"{id}\"}}"),
        );
        let percent = shard["ownership_percent"].as_f64().unwrap();
        assert!(
            (ratio * 100.0 - percent).abs() < 1e-9,
            "{id}: {ratio} vs {percent}%"
        );
        assert_eq!(
            sample(
                &m,
                &format!("ring_tokens_owned{{name=\"ingester\",member=\"{id}\"}}")
            ),
            64.0
        );
        ownership_sum += ratio;
    }
    assert!(
        (ownership_sum - 1.0).abs() < 1e-9,
        "ownership sums to {ownership_sum}"
    );

    // --- ring show: the same instances, states, tokens and ownership as /ring.
    let shown = cli_json(&with_store(&[
        "ring",
        "show",
        "--output",
        "json",
        "--ring.heartbeat-timeout=2s",
    ]));
    assert_eq!(ids(&shown), ids(&page));
    let by_id = |v: &serde_json::Value| -> BTreeMap<String, serde_json::Value> {
        v["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["id"].as_str().unwrap().to_owned(), s.clone()))
            .collect()
    };
    let (cli_rows, page_rows) = (by_id(&shown), by_id(&page));
    for (id, p) in &page_rows {
        let c = &cli_rows[id];
        for field in [
            "state",
            "address",
            "zone",
            "tokens",
            "ownership_percent",
            "primary_ownership_percent",
            "registered_timestamp",
        ] {
            assert_eq!(c[field], p[field], "{id}.{field}");
        }
    }
    assert_eq!(shown["zones"][0]["instances"], 3);
    assert!((shown["zones"][0]["ownership_percent"].as_f64().unwrap() - 100.0).abs() < 1e-9);
    // The table form names every instance and the zone share.
    let table = ringkit(&with_store(&["ring", "show"]), CLI_LIMIT);
    let table = String::from_utf8_lossy(&table.stdout);
    for id in ["ing-1", "ing-2", "ing-3", "(no zone)", "100.000%", "ACTIVE"] {
        assert!(table.contains(id), "{id} missing from:\n{table}");
    }

    // --- ring lookup: a series hashes like the distributor hashes it, and its replicas are
    // the replicas of that token: RF 3 distinct members, quorum 2.
    let key =
        ringkit_ring::hash::shard_by_all_labels("team-a", [("__name__", "up"), ("job", "api")]);
    let by_series = cli_json(&with_store(&[
        "ring",
        "lookup",
        "--tenant=team-a",
        "--labels=up{job=\"api\"}",
        "--output=json",
    ]));
    let key_text = key.to_string();
    let by_token = cli_json(&with_store(&["ring", "lookup", &key_text, "--output=json"]));
    assert_eq!(by_series["key"], key);
    assert_eq!(by_series["replicas"], by_token["replicas"]);
    assert_eq!(by_token["min_success"], 2);
    let mut replica_ids: Vec<&str> = by_token["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    replica_ids.sort();
    assert_eq!(replica_ids, ["ing-1", "ing-2", "ing-3"]);

    // --- ring forget: refused while ing-3 heartbeats, done once it is dead.
    let forget = with_store(&["ring", "forget", "ing-3", "--ring.heartbeat-timeout=2s"]);
    let refused = ringkit(&forget, CLI_LIMIT);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("healthy") && err.contains("--force"), "{err}");
    assert_eq!(
        ids(&ring(&n1.url).await).len(),
        3,
        "a refused forget writes nothing"
    );

    n3.kill();
    wait_for(&n1.url, "ing-3 unhealthy", |r| {
        r["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ing-3" && s["state"] == "UNHEALTHY")
    })
    .await;
    let done = ringkit(&forget, CLI_LIMIT);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(String::from_utf8_lossy(&done.stdout).contains("forgot ing-3"));
    wait_for(&n1.url, "ing-3 gone", |r| ids(r) == ["ing-1", "ing-2"]).await;
    let again = ringkit(&forget, CLI_LIMIT);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not in the ring"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop(etcd);
}

#[test]
fn cli_fails_fast_with_a_clear_message_when_the_store_is_unreachable() {
    // Nothing listens on this port once the listener is dropped.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("--etcd.endpoints=127.0.0.1:{port}");
    let start = Instant::now();
    let out = ringkit(&["ring", "show", "--kv.store=etcd", &endpoint], CLI_LIMIT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(
        err.starts_with("error: ") && err.contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    // A listener that never answers: the --timeout bound ends the call.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!(
        "--etcd.endpoints=127.0.0.1:{}",
        silent.local_addr().unwrap().port()
    );
    let start = Instant::now();
    let out = ringkit(
        &["ring", "show", "--kv.store=etcd", &endpoint, "--timeout=2s"],
        CLI_LIMIT,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
    assert!(err.contains("no answer within 2s"), "{err}");
    drop(silent);

    // The in-memory store lives inside one process: nothing to read from outside.
    let out = ringkit(&["ring", "show"], CLI_LIMIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kv.store=inmemory"));
}
