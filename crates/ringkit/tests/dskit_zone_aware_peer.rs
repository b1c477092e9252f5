//! Opt-in interop test of zone-aware memberlist routing in a mixed cluster: two real
//! dskit nodes (Go, built from a dskit with zone-aware routing, outside this repo; see
//! README "The partition ring, live against dskit") and two `ringkit node`s. It runs only
//! when `RINGKIT_DSKIT_ZONE_PEER=/path/to/peer` is set and otherwise prints why it
//! skipped.
//!
//! Two zones, routing on for all four, opposite roles per zone: zone a has the dskit
//! bridge and the ringkit member, zone b the ringkit bridge and the dskit member; each
//! owns a partition of one partition ring. Checked, all on 127.0.0.1 with bounded waits:
//!
//! 1. the four stored partition rings (downloaded from each node's memberlist page and
//!    decoded with ringkit's codec) become equal, all four partitions ACTIVE; each side's
//!    memberlist page shows the other side's nodes with their zones and roles;
//! 2. a partition state change made by the dskit member of zone b shows on the ringkit
//!    member of zone a, and one made on the ringkit member of zone a shows on the dskit
//!    member of zone b;
//! 3. gossip and push/pulls cross zones only bridge to bridge: ringkit's own counters
//!    (`memberlist_client_zone_aware_routing_sent_total`, what it sent, and
//!    `..._received_packets_total`, packets it received attributed to their sender)
//!    on both ringkit nodes, dskit's routing counters (selections made, none skipped),
//!    and the push/pulls dskit's memberlist logs (at debug level) it started. Probes
//!    (and the broadcasts piggybacked on them) are not routed, in dskit as in ringkit,
//!    and may cross zones. Gossip packets between the two dskit nodes are not seen here
//!    (the hand-run `tcpdump` check in the README covers them).

mod common;
mod dskit_partition;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Node, NodeOpts, get_json};
use dskit_partition::{KEY, WAIT, agree, peer_partition, ringkit_row};
use ringkit_ring::partition::PartitionState;
use ringkit_testkit::port;
use ringkit_testkit::proc::Guard;
use serde_json::Value;

const LABEL: &str = "dskit-zone-aware-interop";

/// One node of the cluster: its memberlist name, zone and role.
#[derive(Debug, Clone, Copy)]
struct Spec {
    name: &'static str,
    zone: &'static str,
    role: &'static str,
}

const DSKIT_BRIDGE_A: Spec = Spec {
    name: "dskit-zone-a-5",
    zone: "zone-a",
    role: "bridge",
};
const RINGKIT_MEMBER_A: Spec = Spec {
    name: "ingester-zone-a-1",
    zone: "zone-a",
    role: "member",
};
const RINGKIT_BRIDGE_B: Spec = Spec {
    name: "ingester-zone-b-2",
    zone: "zone-b",
    role: "bridge",
};
const DSKIT_MEMBER_B: Spec = Spec {
    name: "dskit-zone-b-6",
    zone: "zone-b",
    role: "member",
};
const ALL: [Spec; 4] = [
    DSKIT_BRIDGE_A,
    RINGKIT_MEMBER_A,
    RINGKIT_BRIDGE_B,
    DSKIT_MEMBER_B,
];

fn routing_flags(dashes: &str, s: Spec) -> [String; 3] {
    [
        format!("{dashes}memberlist.zone-aware-routing.enabled=true"),
        format!(
            "{dashes}memberlist.zone-aware-routing.instance-availability-zone={}",
            s.zone
        ),
        format!("{dashes}memberlist.zone-aware-routing.role={}", s.role),
    ]
}

/// A Go dskit partition peer; killed (by its pid) when dropped. Its log (debug level,
/// memberlist's own lines included) goes to a file.
struct Peer {
    child: Guard,
    http: String,
    log: PathBuf,
}

impl Peer {
    /// Starts the peer `s` owning `partition` (its owner ID is its name) on gossip port
    /// `port`, joining 127.0.0.1:`join` when given.
    fn start(bin: &str, s: Spec, partition: i32, port: u16, join: Option<u16>, dir: &Path) -> Peer {
        let log = dir.join(format!("{}.log", s.name));
        let mut cmd = Command::new(bin);
        cmd.args([
            "-memberlist.bind-addr=127.0.0.1".to_owned(),
            format!("-memberlist.bind-port={port}"),
            format!("-memberlist.nodename={}", s.name),
            "-memberlist.randomize-node-name=false".to_owned(),
            format!("-memberlist.cluster-label={LABEL}"),
            "-memberlist.pullpush-interval=2s".to_owned(),
            format!("-partition-id={partition}"),
            format!("-instance-id={}", s.name),
            format!("-partition-ring.key={KEY}"),
            "-ingester.partition-ring.min-partition-owners-count=1".to_owned(),
            "-ingester.partition-ring.min-partition-owners-duration=0s".to_owned(),
            "-ingester.partition-ring.lifecycler-polling-interval=200ms".to_owned(),
            "-http.listen=127.0.0.1:0".to_owned(),
            "-log.level=debug".to_owned(),
        ]);
        cmd.args(routing_flags("-", s));
        if let Some(j) = join {
            cmd.arg(format!("-memberlist.join=127.0.0.1:{j}"));
        }
        let file = std::fs::File::create(&log).unwrap();
        let (child, addr) =
            Guard::spawn_announcing(cmd.stderr(file), "HTTP ").unwrap_or_else(|e| {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("dskit peer: {e}; log:\n{text}")
            });
        Peer {
            http: format!("http://{addr}"),
            child: child.log_to(&log),
            log,
        }
    }

    /// The peer's view (see [`dskit_partition::peer_view`]).
    async fn view(&self) -> Value {
        dskit_partition::peer_view(&self.http).await
    }

    /// Asks the peer's lifecycler to move its partition to `state` (ACTIVE, INACTIVE).
    async fn change_state(&self, state: &str) -> Value {
        dskit_partition::peer_change_state(&self.http, state).await
    }

    /// The periodic push/pulls dskit's memberlist started, by the peer's node name, as
    /// its debug log says (`Initiating push/pull sync with: NAME ADDR`). Joins, which
    /// are not routed, name no node and are left out.
    fn push_pulls(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let rest = l.split("Initiating push/pull sync with:").nth(1)?;
                let words: Vec<&str> = rest.trim_end_matches('"').split_whitespace().collect();
                (words.len() == 2).then(|| words[0].to_owned())
            })
            .collect()
    }
}

/// A ringkit ingester `s` (ID = memberlist name, so it owns partition `s`'s suffix) with
/// ingest storage and zone-aware routing, joining 127.0.0.1:`join`.
fn start_ringkit(s: Spec, port: u16, join: u16) -> Node {
    let mut flags = common::gossip_flags(port, Some(join), LABEL);
    flags.extend([
        format!("--memberlist.nodename={}", s.name),
        "--memberlist.randomize-node-name=false".to_owned(),
        "--ingest-storage.enabled=true".to_owned(),
        "--ingester.partition-ring.min-partition-owners-count=1".to_owned(),
        "--ingester.partition-ring.min-partition-owners-duration=0s".to_owned(),
        "--ingester.partition-ring.lifecycler-polling-interval=200ms".to_owned(),
    ]);
    flags.extend(routing_flags("--", s));
    let opts = NodeOpts {
        zone: s.zone.to_owned(),
        auto_forget_periods: 0,
        ..NodeOpts::default()
    };
    Node::start_with(s.name, &flags, &opts)
}

/// The text of dskit's `/memberlist` table row that names `name`, tags stripped, as
/// words.
fn dskit_row(page: &str, name: &str) -> Vec<String> {
    for row in page.split("<tr").skip(1) {
        let mut text = String::new();
        let mut in_tag = false;
        for c in row.chars() {
            match c {
                '<' => in_tag = true,
                '>' => {
                    in_tag = false;
                    text.push(' ');
                }
                c if !in_tag => text.push(c),
                _ => {}
            }
        }
        if text.contains(name) {
            return text.split_whitespace().map(str::to_owned).collect();
        }
    }
    Vec::new()
}

/// The metrics page of `base` as text.
async fn metrics(base: &str) -> String {
    reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The sum of every series of `name` (`None` when there is none).
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for l in text.lines() {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            continue;
        }
        let v: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
        *found.get_or_insert(0.0) += v;
    }
    found
}

/// ringkit's zone traffic counter `name{kind, <peer_label>}`, 0 when the series is
/// missing (ringkit registers them all at start).
fn traffic(text: &str, name: &str, kind: &str, peer_label: &str, peer: &str) -> f64 {
    let prefix = format!("{name}{{kind=\"{kind}\",{peer_label}=\"{peer}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix}in ringkit's metrics"))
}

fn sent(text: &str, kind: &str, to: &str) -> f64 {
    traffic(
        text,
        "memberlist_client_zone_aware_routing_sent_total",
        kind,
        "destination",
        to,
    )
}

fn received(text: &str, kind: &str, from: &str) -> f64 {
    traffic(
        text,
        "memberlist_client_zone_aware_routing_received_packets_total",
        kind,
        "source",
        from,
    )
}

/// Each of `specs` listed on a ringkit node's memberlist JSON with its zone and role.
fn ringkit_lists(page: &Value, specs: &[Spec]) -> bool {
    let members = page["members"].as_array().unwrap();
    specs.iter().all(|s| {
        members
            .iter()
            .any(|m| m["name"] == s.name && m["zone"] == s.zone && m["role"] == s.role)
    })
}

/// Each of `specs` in a row of dskit's memberlist page that also shows its zone and role.
fn dskit_lists(page: &str, specs: &[Spec]) -> bool {
    specs.iter().all(|s| {
        let row = dskit_row(page, s.name);
        row.iter().any(|w| w == s.zone) && row.iter().any(|w| w == s.role)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_aware_routing_in_a_mixed_dskit_and_ringkit_cluster() {
    let Some(bin) = std::env::var_os("RINGKIT_DSKIT_ZONE_PEER") else {
        eprintln!(
            "skipping dskit zone-aware interop: set RINGKIT_DSKIT_ZONE_PEER=/path/to/peer \
             (a partition peer built from a dskit with zone-aware routing; see README \
             \"The partition ring, live against dskit\")"
        );
        return;
    };
    let bin = bin.to_str().unwrap().to_owned();
    let logs = tempfile::tempdir().unwrap();
    let d1_port = port::free();
    let d1 = Peer::start(&bin, DSKIT_BRIDGE_A, 5, d1_port, None, logs.path());
    let r1 = start_ringkit(RINGKIT_MEMBER_A, port::free(), d1_port);
    let r2 = start_ringkit(RINGKIT_BRIDGE_B, port::free(), d1_port);
    let d2 = Peer::start(
        &bin,
        DSKIT_MEMBER_B,
        6,
        port::free(),
        Some(d1_port),
        logs.path(),
    );
    let urls = [
        d1.http.as_str(),
        r1.url.as_str(),
        r2.url.as_str(),
        d2.http.as_str(),
    ];
    let dskit_logs = || {
        format!(
            "\n--- {} log:\n{}\n--- {} log:\n{}",
            DSKIT_BRIDGE_A.name,
            d1.child.log_text(),
            DSKIT_MEMBER_B.name,
            d2.child.log_text()
        )
    };

    // 1. Convergence: the four stores agree field for field on partitions 1, 2, 5 and 6,
    // all ACTIVE with 512 tokens, one active owner each.
    let parts = |states: [&str; 4]| -> Vec<(i32, String, usize)> {
        [1, 2, 5, 6]
            .into_iter()
            .zip(states)
            .map(|(id, s)| (id, s.to_owned(), 512))
            .collect()
    };
    let want_parts = parts(["Active"; 4]);
    let mut want_owners: Vec<(String, i32, String)> = [(DSKIT_BRIDGE_A, 5), (DSKIT_MEMBER_B, 6)]
        .iter()
        .chain(&[(RINGKIT_MEMBER_A, 1), (RINGKIT_BRIDGE_B, 2)])
        .map(|(s, p)| (s.name.to_owned(), *p, "OwnerActive".to_owned()))
        .collect();
    want_owners.sort();
    agree(
        "the four stores to agree on partitions 1, 2, 5 and 6, all ACTIVE",
        &urls,
        &(want_parts, want_owners.clone()),
    )
    .await;
    for (u, who) in [(&d1, DSKIT_BRIDGE_A), (&d2, DSKIT_MEMBER_B)] {
        ringkit_testkit::wait::until_ok(
            &format!("{}'s watcher to see 1, 2, 5, 6 ACTIVE", who.name),
            WAIT,
            async || u.view().await,
            |v| v["watcher_active"] == serde_json::json!([1, 2, 5, 6]),
        )
        .await;
    }
    // Both ringkit nodes list every node with its zone and role (read from the Meta
    // dskit announces); both dskit nodes list the ringkit nodes with theirs.
    for n in [&r1, &r2] {
        ringkit_testkit::wait::until_ok(
            &format!("{}'s /memberlist to list all four with zone and role", n.id),
            WAIT,
            async || get_json(&format!("{}/memberlist", n.url)).await,
            |p| p["zone_aware_routing"] == true && ringkit_lists(p, &ALL),
        )
        .await;
    }
    for d in [&d1, &d2] {
        ringkit_testkit::wait::until_ok(
            &format!(
                "{}'s /memberlist to list all four with zone and role",
                d.http
            ),
            WAIT,
            async || {
                reqwest::get(format!("{}/memberlist", d.http))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            },
            |p| dskit_lists(p, &ALL),
        )
        .await;
    }

    // 2. The dskit member of zone b makes its partition INACTIVE: the ringkit member of
    // zone a (two zones and one bridge pair away) shows it.
    let changed = d2.change_state("INACTIVE").await;
    assert_eq!(changed["state"], "Inactive");
    ringkit_testkit::wait::until_ok(
        "the ringkit member of zone a to show partition 6 INACTIVE",
        WAIT,
        async || ringkit_row(&r1.url, 6).await,
        |r| {
            r.as_ref()
                .is_some_and(|r| r["state"] == PartitionState::PartitionInactive as i32)
        },
    )
    .await;
    // The ringkit member of zone a makes its partition INACTIVE (Mimir's downscale
    // call): the dskit member of zone b shows it, with ringkit's state time.
    let resp = reqwest::Client::new()
        .post(format!("{}/ingester/prepare-partition-downscale", r1.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let since = resp.json::<Value>().await.unwrap()["timestamp"]
        .as_i64()
        .unwrap();
    ringkit_testkit::wait::until_ok(
        "the dskit member of zone b to show partition 1 INACTIVE",
        WAIT,
        async || d2.view().await,
        |v| {
            peer_partition(v, 1)
                .is_some_and(|p| p["state"] == "Inactive" && p["state_timestamp"] == since)
        },
    )
    .await;

    agree(
        "the four stores to agree again, partitions 1 and 6 INACTIVE",
        &urls,
        &(
            parts(["Inactive", "Active", "Active", "Inactive"]),
            want_owners,
        ),
    )
    .await;

    // 3. Where gossip and push/pulls went. Wait (bounded) until every node has run a few
    // push/pull rounds (every 2 s; bridges with 2 nodes each) and the bridges have
    // gossiped with each other, then check that nothing crossed zones other than bridge
    // to bridge.
    let (r1_text, r2_text) = ringkit_testkit::wait::until_ok(
        "every node to push/pull a few times and the bridges to gossip",
        WAIT,
        async || (metrics(&r1.url).await, metrics(&r2.url).await),
        |(t1, t2)| {
            sent(t1, "push_pull", "same_zone") >= 3.0
                && sent(t2, "push_pull", "other_zone_bridge") >= 3.0
                && sent(t2, "gossip", "other_zone_bridge") > 0.0
                && received(t2, "gossip", "other_zone_bridge") > 0.0
                && d1.push_pulls().len() >= 3
                && d2.push_pulls().len() >= 3
        },
    )
    .await;
    for (name, text) in [
        ("ringkit member a", &r1_text),
        ("ringkit bridge b", &r2_text),
    ] {
        for kind in ["gossip", "push_pull"] {
            assert_eq!(
                sent(text, kind, "other_zone_member"),
                0.0,
                "{name} sent {kind} to a member of the other zone"
            );
            assert_eq!(
                sent(text, kind, "unknown_zone"),
                0.0,
                "{name} sent {kind} to a node of unknown zone"
            );
        }
        assert!(sent(text, "gossip", "same_zone") > 0.0, "{name}: {text}");
        assert_eq!(
            received(text, "gossip", "other_zone_member"),
            0.0,
            "{name} received gossip from a member of the other zone"
        );
    }
    // The ringkit member never sent or heard gossip across zones; only probes crossed.
    for kind in ["gossip", "push_pull"] {
        assert_eq!(
            sent(&r1_text, kind, "other_zone_bridge"),
            0.0,
            "the ringkit member sent {kind} to the other zone's bridge"
        );
    }
    assert_eq!(
        received(&r1_text, "gossip", "other_zone_bridge"),
        0.0,
        "the ringkit member received gossip from the other zone's bridge"
    );
    // dskit's routing counters: selections made, none skipped (both zones have a bridge).
    for (d, who) in [(&d1, DSKIT_BRIDGE_A), (&d2, DSKIT_MEMBER_B)] {
        let text = metrics(&d.http).await;
        let calls = metric_sum(
            &text,
            "memberlist_client_zone_aware_routing_select_nodes_total",
        );
        assert!(calls.is_some_and(|c| c > 0.0), "{}: {calls:?}", who.name);
        assert_eq!(
            metric_sum(
                &text,
                "memberlist_client_zone_aware_routing_select_nodes_skipped_total"
            ),
            Some(0.0),
            "{} skipped routing",
            who.name
        );
    }
    for text in [&r1_text, &r2_text] {
        assert_eq!(
            metric_sum(
                text,
                "memberlist_client_zone_aware_routing_select_nodes_skipped_total"
            ),
            Some(0.0)
        );
    }
    // dskit's periodic push/pulls: the member only within zone b, the bridge within
    // zone a and with zone b's (ringkit) bridge, never with zone b's member.
    let d1_pp = d1.push_pulls();
    let d2_pp = d2.push_pulls();
    assert!(
        d2_pp.iter().all(|n| n == RINGKIT_BRIDGE_B.name),
        "dskit member b push/pulled outside its zone: {d2_pp:?}{}",
        dskit_logs()
    );
    assert!(
        d1_pp
            .iter()
            .all(|n| n == RINGKIT_MEMBER_A.name || n == RINGKIT_BRIDGE_B.name),
        "dskit bridge a push/pulled with a member of zone b: {d1_pp:?}{}",
        dskit_logs()
    );
    assert!(
        d1_pp.iter().any(|n| n == RINGKIT_BRIDGE_B.name),
        "dskit bridge a never push/pulled with zone b's bridge: {d1_pp:?}"
    );
    let count = |text: &str, f: fn(&str, &str, &str) -> f64, kind: &str| {
        ["same_zone", "other_zone_bridge", "other_zone_member"]
            .map(|p| f(text, kind, p))
            .map(|v| v as u64)
    };
    eprintln!(
        "zone traffic [same zone, other zone's bridge, other zone's member]:\n\
         ringkit member a sent gossip {:?} push/pull {:?} probe {:?}, received gossip {:?}\n\
         ringkit bridge b sent gossip {:?} push/pull {:?} probe {:?}, received gossip {:?}\n\
         dskit bridge a push/pulls {:?}, dskit member b push/pulls {:?}",
        count(&r1_text, sent, "gossip"),
        count(&r1_text, sent, "push_pull"),
        count(&r1_text, sent, "probe"),
        count(&r1_text, received, "gossip"),
        count(&r2_text, sent, "gossip"),
        count(&r2_text, sent, "push_pull"),
        count(&r2_text, sent, "probe"),
        count(&r2_text, received, "gossip"),
        d1_pp,
        d2_pp,
    );
    drop((r1, r2, d1, d2));
}
