//! Opt-in interop test against a real dskit node (Go, built from grafana/dskit outside this
//! repo; see README "Interop with dskit" for what that binary must do). It runs only when
//! `RINGKIT_DSKIT_PEER=/path/to/peer` is set and otherwise prints why it skipped.
//!
//! Checked, all on 127.0.0.1 with bounded waits: the dskit node accepts `ringkit node` as a
//! memberlist member and sends it the ring; ringkit's instance shows up ACTIVE in dskit's
//! ring and heartbeats advance both ways; `ringkit ring forget` of a killed instance and a
//! SIGTERMed ringkit node (unregister) reach dskit, and dskit's own forget reaches ringkit;
//! a dskit node joining through ringkit (uncompressed, with instance versions) is stored
//! with its versions and seen coming and going; another cluster label never merges, in
//! either direction.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Node, NodeOpts, get_json, gossip_flags, ids, ring, ring_cli_via_gossip};
use ringkit_testkit::port;
use ringkit_testkit::proc::Guard;
use serde_json::Value;

const LABEL: &str = "dskit-interop";
const DSKIT_TOKENS: usize = 32;
const WAIT: Duration = Duration::from_secs(40);

/// The Go dskit node; killed (by its pid) when dropped.
struct Peer {
    child: Guard,
    http: String,
}

impl Peer {
    /// Starts the peer as instance `id` on gossip port `port`, joining `join` if given,
    /// with `extra` flags, and waits for its `HTTP host:port` line.
    fn start(
        bin: &str,
        id: &str,
        port: u16,
        join: Option<u16>,
        label: &str,
        extra: &[&str],
    ) -> Peer {
        let mut cmd = Command::new(bin);
        cmd.args([
            "-memberlist.bind-addr=127.0.0.1".to_owned(),
            format!("-memberlist.bind-port={port}"),
            format!("-memberlist.nodename={id}"),
            "-memberlist.randomize-node-name=false".to_owned(),
            format!("-memberlist.cluster-label={label}"),
            "-memberlist.pullpush-interval=2s".to_owned(),
            format!("-ingester.lifecycler.ID={id}"),
            "-ingester.lifecycler.addr=127.0.0.1".to_owned(),
            format!("-ingester.num-tokens={DSKIT_TOKENS}"),
            "-ingester.heartbeat-period=1s".to_owned(),
            "-http.listen=127.0.0.1:0".to_owned(),
        ]);
        if let Some(j) = join {
            cmd.arg(format!("-memberlist.join=127.0.0.1:{j}"));
        }
        cmd.args(extra);
        if std::env::var_os("RINGKIT_DSKIT_PEER_LOG").is_none() {
            cmd.stderr(Stdio::null());
        }
        let (child, addr) = Guard::spawn_announcing(&mut cmd, "HTTP ").expect("dskit peer starts");
        Peer {
            child,
            http: format!("http://{addr}"),
        }
    }

    /// The peer's ring (tombstones left out): instance id -> its descriptor.
    async fn ring(&self) -> serde_json::Map<String, Value> {
        let v: Value = get_json(&format!("{}/ring.json", self.http)).await;
        v["ring"]["ingesters"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    /// Names of the memberlist members the peer considers alive or suspect.
    async fn members(&self) -> Vec<String> {
        let v: Value = get_json(&format!("{}/members.json", self.http)).await;
        let mut names: Vec<String> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// Sends a signal (e.g. `-TERM`) to this peer's pid only.
    fn signal(&self, sig: &str) {
        self.child.signal(sig);
    }

    /// Waits (bounded) for the process to exit after a signal.
    fn wait_exit(&mut self, limit: Duration) {
        assert!(
            self.child.wait_exit(limit).is_some(),
            "dskit peer still running"
        );
    }
}

/// Polls `probe` every 200 ms until `ok` holds; fails after [`WAIT`] with the last value.
async fn until<T: std::fmt::Debug, F: std::future::Future<Output = T>>(
    what: &str,
    probe: impl Fn() -> F,
    ok: impl Fn(&T) -> bool,
) -> T {
    ringkit_testkit::wait::until_ok(what, WAIT, async || probe().await, ok).await
}

/// dskit's state of one instance in the peer's ring JSON (ACTIVE, the zero value, is omitted).
fn dskit_state(inst: &Value) -> i64 {
    inst.get("state").and_then(Value::as_i64).unwrap_or(0)
}

fn dskit_tokens(inst: &Value) -> usize {
    inst.get("tokens")
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

/// The row of instance `id` on a ringkit `/ring` JSON answer.
fn shard<'a>(r: &'a Value, id: &str) -> Option<&'a Value> {
    r["shards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
}

/// The ring value a ringkit node stores, from its `/memberlist?downloadKey=` (decoded).
async fn stored_ring(url: &str) -> ringkit_ring::Desc {
    let bytes = reqwest::get(format!("{url}/memberlist?downloadKey=collectors/ring"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    ringkit_ring::codec::decode(&bytes).expect("ringkit's stored ring decodes")
}

/// `ringkit node` gossip flags with a fixed memberlist node name.
fn node_flags(name: &str, port: u16, join: u16, label: &str) -> Vec<String> {
    let mut v = gossip_flags(port, Some(join), label);
    v.push(format!("--memberlist.nodename={name}"));
    v.push("--memberlist.randomize-node-name=false".to_owned());
    v
}

/// Starts ringkit instance `ing-N` (member `ringkit-N`) joined through the dskit node,
/// waits until dskit sees it ACTIVE, then SIGKILLs it.
async fn start_seen_by_dskit_then_kill(n: &str, peer: &Peer, peer_port: u16, opts: &NodeOpts) {
    let id = format!("ing-{n}");
    let mut node = Node::start_with(
        &id,
        &node_flags(&format!("ringkit-{n}"), port::free(), peer_port, LABEL),
        opts,
    );
    until(
        &format!("dskit to see {id} ACTIVE"),
        || peer.ring(),
        |p| p.get(&id).is_some_and(|i| dskit_state(i) == 0),
    )
    .await;
    node.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringkit_and_a_dskit_node_share_one_ring() {
    let Some(bin) = std::env::var_os("RINGKIT_DSKIT_PEER") else {
        eprintln!(
            "skipping dskit interop: set RINGKIT_DSKIT_PEER=/path/to/dskit-peer \
             (see README \"Interop with dskit\")"
        );
        return;
    };
    let bin = bin.to_str().unwrap().to_owned();
    let opts = NodeOpts {
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    let peer_port = port::free();
    let peer = Peer::start(&bin, "dskit-1", peer_port, None, LABEL, &[]);

    // 1. The dskit node accepts a ringkit node as a member.
    let n1_port = port::free();
    let n1 = Node::start_with(
        "ing-1",
        &node_flags("ringkit-1", n1_port, peer_port, LABEL),
        &opts,
    );
    until(
        "dskit to list ringkit-1",
        || peer.members(),
        |m| m.contains(&"ringkit-1".to_owned()),
    )
    .await;

    // 2. ringkit receives dskit's ring: dskit-1 ACTIVE with its tokens.
    let r = until(
        "ringkit to see dskit-1",
        || ring(&n1.url),
        |r| {
            shard(r, "dskit-1")
                .is_some_and(|s| s["state"] == "ACTIVE" && s["tokens"] == DSKIT_TOKENS)
        },
    )
    .await;
    let dskit_ts = shard(&r, "dskit-1").unwrap()["timestamp"].as_i64().unwrap();

    // 3. dskit accepts ringkit's ring changes: ing-1 ACTIVE with its tokens; heartbeats
    // advance in both directions.
    let p = until(
        "dskit to see ing-1 ACTIVE",
        || peer.ring(),
        |p| {
            p.get("ing-1")
                .is_some_and(|i| dskit_state(i) == 0 && dskit_tokens(i) == opts.num_tokens)
        },
    )
    .await;
    let ing1_ts = p["ing-1"]["timestamp"].as_i64().unwrap();
    until(
        "dskit to see ing-1 heartbeat",
        || peer.ring(),
        |p| {
            p.get("ing-1")
                .and_then(|i| i["timestamp"].as_i64())
                .is_some_and(|t| t >= ing1_ts + 2)
        },
    )
    .await;
    until(
        "ringkit to see dskit-1 heartbeat",
        || ring(&n1.url),
        |r| {
            shard(r, "dskit-1")
                .and_then(|s| s["timestamp"].as_i64())
                .is_some_and(|t| t >= dskit_ts + 2)
        },
    )
    .await;

    // Both sides hold the very same tokens for both instances.
    let ours = stored_ring(&n1.url).await;
    let theirs = peer.ring().await;
    for id in ["dskit-1", "ing-1"] {
        let want: Vec<u64> = theirs[id]["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_u64().unwrap())
            .collect();
        let got: Vec<u64> = ours.ingesters[id]
            .tokens
            .iter()
            .map(|&t| u64::from(t))
            .collect();
        assert_eq!(got, want, "tokens of {id}");
    }

    // 4a. A killed ringkit instance forgotten with `ringkit ring forget` (joining through
    // the dskit node) disappears from dskit's ring.
    start_seen_by_dskit_then_kill("2", &peer, peer_port, &opts).await;
    until(
        "ringkit to see ing-2 UNHEALTHY",
        || ring(&n1.url),
        |r| shard(r, "ing-2").is_some_and(|s| s["state"] == "UNHEALTHY"),
    )
    .await;
    ring_cli_via_gossip(&["forget", "ing-2"], peer_port, LABEL);
    until(
        "dskit to drop ing-2",
        || peer.ring(),
        |p| !p.contains_key("ing-2"),
    )
    .await;
    until(
        "ringkit to drop ing-2",
        || ring(&n1.url),
        |r| ids(r) == ["dskit-1", "ing-1"],
    )
    .await;

    // 4b. dskit's own forget (its ring page's POST) of a killed ringkit instance reaches
    // ringkit.
    start_seen_by_dskit_then_kill("3", &peer, peer_port, &opts).await;
    let status = reqwest::Client::new()
        .post(format!("{}/ring", peer.http))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("forget=ing-3")
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success() || status.is_redirection(), "{status}");
    until(
        "ringkit to drop ing-3",
        || ring(&n1.url),
        |r| ids(r) == ["dskit-1", "ing-1"],
    )
    .await;

    // 4c. A dskit node that joins through ringkit (gossiping uncompressed, while ringkit
    // compresses, and registering instance versions, a field ringkit only carries), then
    // stops (unregistering), is seen coming and going by ringkit.
    let mut peer2 = Peer::start(
        &bin,
        "dskit-2",
        port::free(),
        Some(n1_port),
        LABEL,
        &["-memberlist.compression-enabled=false", "-versions=1=7,2=3"],
    );
    until(
        "ringkit to see dskit-2 ACTIVE",
        || ring(&n1.url),
        |r| {
            shard(r, "dskit-2")
                .is_some_and(|s| s["state"] == "ACTIVE" && s["tokens"] == DSKIT_TOKENS)
        },
    )
    .await;
    let stored = stored_ring(&n1.url).await;
    let versions: Vec<(u64, u64)> = stored.ingesters["dskit-2"]
        .versions
        .iter()
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(
        versions,
        [(1, 7), (2, 3)],
        "dskit-2's versions in ringkit's store"
    );
    until(
        "dskit-1 to see dskit-2's versions",
        || peer.ring(),
        |p| {
            p.get("dskit-2")
                .is_some_and(|i| i["versions"] == serde_json::json!({"1": 7, "2": 3}))
        },
    )
    .await;
    peer2.signal("-TERM");
    peer2.wait_exit(Duration::from_secs(30));
    until(
        "ringkit to drop dskit-2",
        || ring(&n1.url),
        |r| ids(r) == ["dskit-1", "ing-1"],
    )
    .await;

    // 5. Another cluster label, both ways: a ringkit node joining the dskit node and a
    // dskit node joining a ringkit node; each side discards the other's streams and
    // nothing merges.
    let other = Node::start_with(
        "ing-x",
        &node_flags("ringkit-x", port::free(), peer_port, "another-cluster"),
        &opts,
    );
    let other_peer = Peer::start(
        &bin,
        "dskit-x",
        port::free(),
        Some(n1_port),
        "another-cluster",
        &[],
    );
    until(
        "ing-x to register",
        || ring(&other.url),
        |r| ids(r) == ["ing-x"],
    )
    .await;
    until(
        "dskit-x to register",
        || other_peer.ring(),
        |p| p.contains_key("dskit-x"),
    )
    .await;
    let until_t = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until_t {
        assert!(!peer.members().await.contains(&"ringkit-x".to_owned()));
        assert!(!peer.ring().await.contains_key("ing-x"));
        assert_eq!(ids(&ring(&other.url).await), ["ing-x"]);
        assert_eq!(ids(&ring(&n1.url).await), ["dskit-1", "ing-1"]);
        let theirs: Vec<String> = other_peer.ring().await.keys().cloned().collect();
        assert_eq!(theirs, ["dskit-x"]);
        assert_eq!(other_peer.members().await, ["dskit-x"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    drop(other);
    drop(other_peer);

    // 4d. SIGTERM: ringkit unregisters and leaves; dskit drops the instance and the member.
    n1.signal("-TERM");
    until(
        "dskit to drop ing-1",
        || peer.ring(),
        |p| !p.contains_key("ing-1"),
    )
    .await;
    // (SIGKILLed members may still be listed: memberlist's suspicion timeout grows with
    // the cluster size, which still counts members that left recently; an all-dskit
    // cluster takes as long.)
    until(
        "dskit to drop ringkit-1",
        || peer.members(),
        |m| !m.contains(&"ringkit-1".to_owned()),
    )
    .await;
}
