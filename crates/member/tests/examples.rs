//! The three examples, run as the programs they are: a sharded key-value service of three
//! processes that keeps answering with one of them killed, the ownership printer and the
//! watcher against rings kept in gossip and in a real etcd. Everything on 127.0.0.1.
//!
//! The example binaries are the ones `cargo test -p ringkit-member` (or `--all-targets`)
//! builds next to this test; a run filtered with `--test examples` alone does not
//! rebuild them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringkit_kv::testsuite::{EtcdTarget, etcd_target};
use ringkit_member::{Member, Store};
use ringkit_testkit::proc::Guard;
use ringkit_testkit::{port, wait};

/// A child process killed (by its pid) when dropped.
type Proc = Guard;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the example programs first: cargo build -p ringkit-member --examples (cargo test builds examples only with the test harness)",
        path.display()
    );
    path
}

fn free_addr() -> SocketAddr {
    port::free_addr()
}

fn spawn(name: &str, args: &[String]) -> Proc {
    let child = Command::new(example(name))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Guard::new(child)
}

/// The lines a child prints, delivered by a reader thread.
fn lines(p: &mut Proc) -> mpsc::Receiver<String> {
    let out = p.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line that satisfies `want`; returns it.
fn line_where(rx: &mpsc::Receiver<String>, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if want(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {what} within 60 s ({e})"),
        }
    }
}

/// Polls `check` (bounded: 60 s, every 200 ms) until it returns `Some`.
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    wait::until_async(what, Duration::from_secs(60), async || check().await).await
}

struct Kv {
    proc: Proc,
    http: SocketAddr,
}

fn start_kv(id: &str, join: Option<SocketAddr>) -> (Kv, SocketAddr) {
    let (http, gossip) = (free_addr(), free_addr());
    let mut args = vec![
        format!("--id={id}"),
        format!("--http={http}"),
        format!("--gossip={gossip}"),
    ];
    args.extend(join.map(|j| format!("--join={j}")));
    (
        Kv {
            proc: spawn("kv_service", &args),
            http,
        },
        gossip,
    )
}

async fn ring_of(http: &reqwest::Client, node: SocketAddr) -> Option<Vec<(String, String)>> {
    let r = http.get(format!("http://{node}/ring")).send().await.ok()?;
    r.json().await.ok()
}

async fn put(
    http: &reqwest::Client,
    node: SocketAddr,
    key: &str,
    value: &str,
) -> reqwest::StatusCode {
    let r = http
        .put(format!("http://{node}/kv/{key}"))
        .body(value.to_owned())
        .send()
        .await;
    r.unwrap().status()
}

async fn get(http: &reqwest::Client, node: SocketAddr, key: &str) -> (reqwest::StatusCode, String) {
    let r = http
        .get(format!("http://{node}/kv/{key}"))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_service_writes_with_quorum_and_reads_with_one_instance_killed() {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (a, seed) = start_kv("a", None);
    let (b, _) = start_kv("b", Some(seed));
    let (mut c, _) = start_kv("c", Some(seed));
    let nodes = [a.http, b.http, c.http];
    for node in nodes {
        let http = &http;
        eventually("three ACTIVE instances in every ring", || async move {
            let ring = ring_of(http, node).await?;
            (ring.len() == 3 && ring.iter().all(|(_, s)| s == "Active")).then_some(())
        })
        .await;
    }

    // Written through one instance, read back through every instance.
    for k in 0..30 {
        let key = format!("key-{k}");
        assert_eq!(
            put(&http, nodes[k % 3], &key, &format!("value-{k}")).await,
            204
        );
    }
    for k in 0..30 {
        let (status, body) = get(&http, nodes[(k + 1) % 3], &format!("key-{k}")).await;
        assert_eq!((status.as_u16(), body), (200, format!("value-{k}")));
    }
    assert_eq!(get(&http, a.http, "never-written").await.0, 404);
    // An overwrite wins on every replica it reached.
    assert_eq!(put(&http, b.http, "key-0", "changed").await, 204);
    assert_eq!(get(&http, c.http, "key-0").await.1, "changed");

    // Kill c: every key still has 2 of its 3 replicas, enough for reads and writes.
    c.proc.kill();
    for k in 1..30 {
        let (status, body) = get(&http, nodes[k % 2], &format!("key-{k}")).await;
        assert_eq!(
            (status.as_u16(), body),
            (200, format!("value-{k}")),
            "key-{k}"
        );
    }
    for k in 0..10 {
        assert_eq!(put(&http, a.http, &format!("late-{k}"), "x").await, 204);
        assert_eq!(get(&http, b.http, &format!("late-{k}")).await.1, "x");
    }

    // b leaves cleanly on Ctrl-C: it exits 0 and a's ring no longer lists it.
    b.proc.signal("-INT");
    let mut b = b;
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = b.proc.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "b did not exit within 30 s of Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "b exited with {exit}");
    eventually("b gone from a's ring", || async {
        let ring = ring_of(&http, a.http).await?;
        (!ring.iter().any(|(id, _)| id == "b")).then_some(())
    })
    .await;
}

/// Three members with 32 tokens each, in `store`.
async fn three_members(store: Store) -> Vec<Member> {
    let mut members = Vec::new();
    for id in ["ingester-a", "ingester-b", "ingester-c"] {
        let addr = format!("{id}:9095");
        let m = Member::builder(store.clone(), id, addr)
            .tokens(32)
            .seed(members.len() as u64);
        members.push(m.local_testing().join().await.unwrap());
    }
    members
}

/// The ownership example's table: (id, state, tokens, percent) per instance.
fn ownership_rows(args: &[String]) -> Vec<(String, String, usize, f64)> {
    let out = Command::new(example("ownership"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "ownership exited with {}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<_> = text
        .lines()
        .filter(|l| l.starts_with("ingester-"))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let pct = f[f.len() - 1].trim_end_matches('%').parse().unwrap();
            (
                f[0].to_owned(),
                f[f.len() - 3].to_owned(),
                f[f.len() - 2].parse().unwrap(),
                pct,
            )
        })
        .collect();
    assert!(text.contains("3 instances, 96 tokens"), "{text}");
    rows
}

fn check_rows(rows: &[(String, String, usize, f64)]) {
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["ingester-a", "ingester-b", "ingester-c"]);
    assert!(
        rows.iter()
            .all(|r| r.1 == "ACTIVE" && r.2 == 32 && r.3 > 0.0),
        "{rows:?}"
    );
    let total: f64 = rows.iter().map(|r| r.3).sum();
    assert!((total - 100.0).abs() < 0.1, "shares add up to {total}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_prints_every_instance_of_a_gossip_ring() {
    let first = Store::gossip(free_addr(), Vec::<String>::new());
    let a = Member::builder(first, "ingester-a", "ingester-a:9095")
        .tokens(32)
        .local_testing();
    let a = a.join().await.unwrap();
    let seed = a.gossip().unwrap().advertise_addr().to_string();
    let mut members = vec![a];
    for id in ["ingester-b", "ingester-c"] {
        let store = Store::gossip(free_addr(), [seed.clone()]);
        let m = Member::builder(store, id, format!("{id}:9095"))
            .tokens(32)
            .local_testing();
        members.push(m.join().await.unwrap());
    }
    for m in &members {
        let ring = m.ring().wait_for(|r| r.instances_with_tokens_count() == 3);
        tokio::time::timeout(Duration::from_secs(60), ring)
            .await
            .unwrap()
            .unwrap();
    }
    let rows = tokio::task::spawn_blocking(move || {
        ownership_rows(&[format!("--join={seed}"), format!("--bind={}", free_addr())])
    })
    .await
    .unwrap();
    check_rows(&rows);
    for m in members {
        m.leave().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_and_watch_follow_a_ring_in_etcd() {
    let etcd = match etcd_target(false) {
        EtcdTarget::Owned(server) => server,
        _ => return, // RINGKIT_SKIP_ETCD=1
    };
    let endpoint = etcd.endpoint();
    let store = Store::etcd([endpoint.clone()]);
    let members = three_members(store.clone()).await;
    let rows = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || ownership_rows(&[format!("--etcd={endpoint}")])
    })
    .await
    .unwrap();
    check_rows(&rows);

    // The watcher prints the ring as it is, then each change of its shape.
    let mut watch = spawn("watch", &[format!("--etcd={endpoint}")]);
    let out = lines(&mut watch);
    let all = "ingester-a=ACTIVE/32 ingester-b=ACTIVE/32 ingester-c=ACTIVE/32";
    assert_eq!(
        line_where(&out, "the first ring", |_| true),
        format!("ring: {all}")
    );
    let d = Member::builder(store.clone(), "ingester-d", "ingester-d:9095").tokens(8);
    let d = d.local_testing().join().await.unwrap();
    line_where(&out, "ingester-d ACTIVE", |l| {
        l == format!("ring: {all} ingester-d=ACTIVE/8")
    });
    d.leave().await.unwrap();
    line_where(&out, "ingester-d gone", |l| l == format!("ring: {all}"));
    // Heartbeats alone print nothing: the next line, if any, is not the same ring again.
    assert!(
        out.recv_timeout(Duration::from_millis(2500)).is_err(),
        "a heartbeat was printed"
    );
    for m in members {
        m.leave().await.unwrap();
    }
    drop(etcd);
}
