//! Three real `ringkit node` processes sharing their ring over memberlist gossip (dskit's
//! TCP transport on 127.0.0.1): they converge, `ringkit ring show` joins the cluster and
//! prints the same ring as the `/ring` page, `/memberlist` lists members and the ring key,
//! a node stopped with SIGTERM leaves the ring, a SIGKILLed one is auto-forgotten.

mod common;

use std::time::{Duration, Instant};

use common::{Node, NodeOpts, all_active, ids, ring, ring_cli_via_gossip, ringkit, wait_for};
use ringkit_testkit::port;

const LABEL: &str = "ringkit-test";

fn gossip_flags(port: u16, join: Option<u16>) -> Vec<String> {
    common::gossip_flags(port, join, LABEL)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_gossip_their_ring_and_the_cli_reads_it() {
    // No auto-forget: the CLI removes the killed node below.
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let ports = [port::free(), port::free(), port::free()];
    let n1 = Node::start_with("ing-1", &gossip_flags(ports[0], None), &opts);
    let n2 = Node::start_with("ing-2", &gossip_flags(ports[1], Some(ports[0])), &opts);
    let mut n3 = Node::start_with("ing-3", &gossip_flags(ports[2], Some(ports[0])), &opts);
    for n in [&n1, &n2, &n3] {
        wait_for(&n.url, "3 ACTIVE instances via gossip", |r| {
            all_active(r, 3, 64)
        })
        .await;
    }

    // The CLI joins as a temporary member and prints the same ring.
    let started = Instant::now();
    let stdout = ring_cli_via_gossip(&["show", "--output=json"], ports[1], "ringkit-test");
    eprintln!("ring show over memberlist took {:?}", started.elapsed());
    let cli: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let page = ring(&n1.url).await;
    assert_eq!(ids(&cli), ids(&page));
    for (a, b) in cli["shards"]
        .as_array()
        .unwrap()
        .iter()
        .zip(page["shards"].as_array().unwrap())
    {
        assert_eq!(a["id"], b["id"]);
        assert_eq!(
            a["ownership_percent"], b["ownership_percent"],
            "ownership of {}",
            a["id"]
        );
        assert!(a["ownership_percent"].as_f64().unwrap() > 0.0);
    }

    // Nothing listens there: a clear error, quickly.
    let dead = port::free();
    let out = ringkit(
        &[
            "ring",
            "show",
            "--kv.store=memberlist",
            "--memberlist.bind-addr=127.0.0.1",
            &format!("--memberlist.join=127.0.0.1:{dead}"),
            "--timeout=3s",
        ],
        Duration::from_secs(20),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("joining the memberlist cluster"), "{err}");

    // /memberlist: 3 nodes alive (the CLI member has left), the ring key listed.
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/memberlist", n1.url))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = page["keys"].as_array().unwrap();
    assert!(
        keys.iter()
            .any(|k| k["key"] == "collectors/ring" && k["codec"] == "ringDesc"),
        "{page:#}"
    );
    let html = reqwest::get(format!("{}/memberlist", n1.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("collectors/ring") && html.contains("download"));
    let raw = reqwest::get(format!("{}/memberlist?downloadKey=collectors/ring", n1.url))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(!raw.is_empty(), "downloadKey returned nothing");

    // SIGTERM: n2 unregisters and leaves; the others drop it from the ring.
    n2.signal("-TERM");
    wait_for(&n1.url, "ing-2 to leave the ring", |r| {
        ids(r) == ["ing-1", "ing-3"]
    })
    .await;

    // SIGKILL: n3 goes silent and turns unhealthy; `ringkit ring forget` removes it
    // through gossip (auto-forget is off for these nodes, see `opts`).
    n3.kill();
    wait_for(&n1.url, "ing-3 to turn unhealthy", |r| {
        r["shards"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == "ing-3" && s["state"] == "UNHEALTHY")
    })
    .await;
    ring_cli_via_gossip(&["forget", "ing-3"], ports[0], "ringkit-test");
    wait_for(&n1.url, "ing-3 to be forgotten via gossip", |r| {
        ids(r) == ["ing-1"]
    })
    .await;
}
