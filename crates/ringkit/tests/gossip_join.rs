//! Joining a memberlist cluster with real `ringkit node` processes on 127.0.0.1:
//! - a seed distributor restarted after SIGKILL (at another address, as a pod with a
//!   new IP) is joined again by the others within `--memberlist.rejoin-interval`, so
//!   the cluster is one again and pushes through it succeed;
//! - a new ingester's ACTIVE state reaches its peers at once, not one heartbeat later
//!   (the heartbeat period here is an hour), and it registers only after its fast join
//!   exchanged state with the cluster.

mod cluster;
mod common;

use std::time::{Duration, Instant};

use cluster::{Node, active_ids, now_ms, post, series, write_body};
use common::{get_json, ring};
use ringkit_testkit::port;

const LABEL: &str = "ringkit-join-test";
/// Longest any wait here lasts.
const WAIT: Duration = Duration::from_secs(40);

fn gossip(port: u16, seeds: &[u16], extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        "--kv.store=memberlist".to_owned(),
        "--memberlist.bind-addr=127.0.0.1".to_owned(),
        format!("--memberlist.bind-port={port}"),
        format!("--memberlist.cluster-label={LABEL}"),
    ];
    v.extend(
        seeds
            .iter()
            .map(|p| format!("--memberlist.join=127.0.0.1:{p}")),
    );
    v.extend(extra.iter().map(|s| (*s).to_owned()));
    v
}

fn ingester(i: usize, dir: &std::path::Path, heartbeat: &str) -> Vec<String> {
    vec![
        "--target=ingester".to_owned(),
        format!("--ingester.lifecycler.ID=ing-{i}"),
        "--ingester.num-tokens=64".to_owned(),
        format!("--ingester.heartbeat-period={heartbeat}"),
        "--ingester.auto-forget-unhealthy-periods=0".to_owned(),
        "--ingester.min-ready-duration=0s".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
        format!(
            "--ingester.wal-dir={}",
            dir.join(format!("wal-{i}")).display()
        ),
    ]
}

/// The node's own memberlist name and the names it sees alive.
async fn members(url: &str) -> (String, Vec<String>) {
    let page = get_json(&format!("{url}/memberlist")).await;
    let alive = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "alive")
        .map(|m| m["name"].as_str().unwrap().to_owned())
        .collect();
    (page["node"].as_str().unwrap().to_owned(), alive)
}

/// Waits (bounded) until every node sees every node alive.
async fn one_cluster(nodes: &[&Node]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut views = Vec::new();
        for n in nodes {
            views.push(members(&n.url).await);
        }
        let names: Vec<&String> = views.iter().map(|(me, _)| me).collect();
        if views
            .iter()
            .all(|(_, alive)| names.iter().all(|n| alive.contains(n)))
        {
            return;
        }
        if Instant::now() > deadline {
            for n in nodes {
                eprintln!("--- {} ---\n{}", n.log.display(), n.log_text());
            }
            panic!("not one cluster after {WAIT:?}: {views:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_ring(node: &Node, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = ring(&node.url).await;
        if ok(&r) {
            return;
        }
        if Instant::now() > deadline {
            eprintln!("--- {} ---\n{}", node.log.display(), node.log_text());
            panic!("timed out waiting for {what}: {r}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn push(http: &reqwest::Client, distributor: &Node, n: usize) -> (u16, String) {
    let t = now_ms();
    let batch = (0..n)
        .map(|i| {
            series(
                &[("__name__", "join_test"), ("i", &i.to_string())],
                &[(i as f64, t)],
            )
        })
        .collect();
    post(
        http,
        &format!("{}/api/v1/push", distributor.url),
        write_body(batch),
        Some("tenant-1"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_seed_is_joined_again_within_the_rejoin_interval() {
    let dir = tempfile::tempdir().unwrap();
    // The distributor is the seed. It comes back at another address, as a restarted
    // pod does (new IP, same DNS name): the join list names both of its addresses,
    // and nothing listens at the second one until the restart. Every process uses the
    // same list (the distributor lists itself) and rejoins every 2 s. Nobody learns
    // the new address by gossip (no member ever had it), so only the rejoin can
    // mend the split; without it the cluster stays split for good.
    let (before, after) = (port::free(), port::free());
    let seeds = [before, after];
    let rejoin = ["--memberlist.rejoin-interval=2s"];
    let distributor_args = |port: u16| {
        let mut a = vec![
            "--target=distributor".to_owned(),
            "--memberlist.nodename=distributor".to_owned(),
        ];
        a.extend(gossip(port, &seeds, &rejoin));
        a
    };
    let mut distributor = Node::start(
        distributor_args(before),
        &dir.path().join("distributor.log"),
    );
    let ingesters: Vec<Node> = (0..3)
        .map(|i| {
            let mut a = ingester(i, dir.path(), "1s");
            a.extend(gossip(port::free(), &seeds, &rejoin));
            Node::start(a, &dir.path().join(format!("ing-{i}.log")))
        })
        .collect();
    wait_ring(&distributor, "3 ACTIVE ingesters", |r| {
        active_ids(r).len() == 3
    })
    .await;
    let http = reqwest::Client::new();
    let (status, body) = push(&http, &distributor, 20).await;
    assert_eq!(status, 200, "{body}");

    // SIGKILL the seed and start it again at its second address: it knows nobody
    // (its first address is gone, the second is itself).
    distributor.kill9();
    let restarted = Instant::now();
    distributor = Node::start(
        distributor_args(after),
        &dir.path().join("distributor-restarted.log"),
    );
    let mut all: Vec<&Node> = ingesters.iter().collect();
    all.push(&distributor);
    one_cluster(&all).await;
    wait_ring(&distributor, "3 ACTIVE ingesters after the restart", |r| {
        active_ids(r).len() == 3
    })
    .await;
    eprintln!(
        "one cluster again {:?} after the restart",
        restarted.elapsed()
    );
    for round in 0..5 {
        let (status, body) = push(&http, &distributor, 20).await;
        assert_eq!(status, 200, "push {round} after the restart: {body}");
    }
    let log = distributor.log_text();
    assert!(
        !log.contains("no address to join"),
        "a seed that lists itself has joined, not failed:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_ingester_is_active_on_its_peers_long_before_its_first_heartbeat() {
    let dir = tempfile::tempdir().unwrap();
    let seed = port::free();
    // One heartbeat an hour: whatever the peers see ACTIVE came from the join itself.
    let mut a = ingester(0, dir.path(), "1h");
    a.extend(gossip(seed, &[seed], &[]));
    let first = Node::start(a, &dir.path().join("ing-0.log"));
    wait_ring(&first, "ing-0 ACTIVE in its own store", |r| {
        active_ids(r) == ["ing-0"]
    })
    .await;

    let mut a = ingester(1, dir.path(), "1h");
    a.extend(gossip(port::free(), &[seed], &[]));
    let second = Node::start(a, &dir.path().join("ing-1.log"));
    for n in [&first, &second] {
        wait_ring(n, "both ingesters ACTIVE with 64 tokens", |r| {
            active_ids(r) == ["ing-0", "ing-1"]
                && r["shards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["tokens"] == 64)
        })
        .await;
    }

    // The newcomer registered only after its fast join had exchanged state, so its
    // first ring write already knew ing-0 (and its tokens).
    let log = second.log_text();
    let fast_join = log
        .find("memberlist fast-join finished")
        .unwrap_or_else(|| panic!("no fast-join line:\n{log}"));
    let registered = log
        .find("registered; loading data")
        .unwrap_or_else(|| panic!("no registration line:\n{log}"));
    assert!(fast_join < registered, "{log}");
}

#[test]
fn a_node_that_cannot_join_stops_when_told_to_abort() {
    // Nothing listens at the seed: a port bound and released.
    let dead = port::free();
    let dir = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| {
        let mut a: Vec<String> = vec!["node".to_owned()];
        a.extend(ingester(0, dir.path(), "1s"));
        a.extend(gossip(0, &[dead], extra));
        a.extend([
            "--server.http-listen-port=0".to_owned(),
            "--memberlist.min-join-backoff=100ms".to_owned(),
            "--memberlist.max-join-retries=2".to_owned(),
        ]);
        a
    };
    // The fast join at start-up reaches nobody: with the abort flag the node does not
    // start at all.
    let out = common::ringkit(
        &base(&["--memberlist.abort-if-fast-join-fails"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("failed to fast-join"), "{err}");
    // Without it the node starts; the background join then fails its two attempts and,
    // with --memberlist.abort-if-join-fails, the node stops with an error.
    let out = common::ringkit(
        &base(&["--memberlist.abort-if-join-fails=true"]),
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("listening on"),
        "it had started"
    );
    assert!(
        err.contains("joining the memberlist cluster failed"),
        "{err}"
    );
}
