//! `ringkit ring lookup` with many keys joins the gossip cluster once and answers every key
//! as the one-key lookup does; `ring show --watch` prints the ring again when it changes.

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, NodeOpts, all_active, ring_cli_via_gossip, wait_for};
use ringkit_testkit::port;

const LABEL: &str = "lookup-many";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_keys_in_one_call_match_single_lookups() {
    let ports = [port::free(), port::free(), port::free()];
    let opts = NodeOpts::default();
    let nodes: Vec<Node> = ports
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let join = (i > 0).then_some(ports[0]);
            Node::start_with(
                &format!("ing-{i}"),
                &common::gossip_flags(p, join, LABEL),
                &opts,
            )
        })
        .collect();
    for n in &nodes {
        wait_for(&n.url, "3 ACTIVE via gossip", |r| all_active(r, 3, 64)).await;
    }

    // 10,000 spread tokens, one per line on stdin.
    let keys: Vec<u32> = (0..10_000u32).map(|i| i.wrapping_mul(429_497)).collect();
    let mut input = String::new();
    for k in &keys {
        input.push_str(&format!("{k}\n"));
    }
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkit"))
        .args([
            "ring",
            "lookup",
            "-",
            "--output=json",
            "--kv.store=memberlist",
            "--memberlist.bind-addr=127.0.0.1",
            &format!("--memberlist.cluster-label={LABEL}"),
            &format!("--memberlist.join=127.0.0.1:{}", ports[1]),
            "--ring.heartbeat-timeout=2s",
            "--timeout=20s",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    eprintln!(
        "10,000-key lookup over memberlist took {:?}",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["failed"], 0);
    let lookups = v["lookups"].as_array().unwrap();
    assert_eq!(lookups.len(), keys.len());
    for (l, k) in lookups.iter().zip(&keys) {
        assert_eq!(l["key"], *k);
        assert_eq!(l["replicas"].as_array().unwrap().len(), 3, "{l}");
    }

    // A few keys against the one-key lookup (its own join), and two keys as arguments.
    for idx in [0usize, 4_321, 9_999] {
        let key = keys[idx].to_string();
        let one: serde_json::Value = serde_json::from_slice(&ring_cli_via_gossip(
            &["lookup", &key, "--output=json"],
            ports[2],
            LABEL,
        ))
        .unwrap();
        let mut want: Vec<String> = one["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect();
        let mut got: Vec<String> = lookups[idx]["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_owned())
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "key {key}");
    }
    let two = String::from_utf8(ring_cli_via_gossip(
        &["lookup", "1", "2147483648"],
        ports[0],
        LABEL,
    ))
    .unwrap();
    assert!(two.contains("KEY") && two.contains("2147483648"), "{two}");
    // Header, rule, two rows.
    assert_eq!(two.lines().count(), 4, "{two}");

    // --- ring show --watch: printed once, then again when a fourth ingester joins.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringkit"))
        .args([
            "ring",
            "show",
            "--watch",
            "--watch-interval=200ms",
            "--watch-max-prints=2",
            "--kv.store=memberlist",
            "--memberlist.bind-addr=127.0.0.1",
            &format!("--memberlist.cluster-label={LABEL}"),
            &format!("--memberlist.join=127.0.0.1:{}", ports[0]),
            "--ring.heartbeat-timeout=2s",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !lines.iter().any(|l: &String| l.starts_with("---")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => lines.push(l),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no first print from ring show --watch: {lines:?}");
            }
        }
    }
    let fourth = Node::start_with(
        "ing-3",
        &common::gossip_flags(port::free(), Some(ports[0]), LABEL),
        &opts,
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("ring show --watch did not print the change in time");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let blocks: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].starts_with("---"))
        .collect();
    assert_eq!(blocks.len(), 2, "{lines:#?}");
    let first = lines[blocks[0]..blocks[1]].join("\n");
    let second = lines[blocks[1]..].join("\n");
    assert!(!first.contains("ing-3"), "{first}");
    assert!(second.contains("ing-3"), "{second}");
    drop(fourth);
}
