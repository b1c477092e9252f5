//! A real hashicorp-memberlist peer: two Debian Alertmanagers (0.25, plain memberlist
//! over UDP + TCP) clustered on 127.0.0.1, and a ringkit node joining them.
//!
//! Checks: both Alertmanagers list the ringkit node in `/api/v2/status`; ringkit sees
//! both alive; a SIGKILLed Alertmanager turns suspect then dead in ringkit within the
//! SWIM bound; when ringkit leaves gracefully the Alertmanagers drop it.
//!
//! Needs `prometheus-alertmanager` (`scripts/test.sh` installs it). Without it the
//! test is skipped with a message, unless `RINGKIT_REQUIRE_ALERTMANAGER=1` (set in CI),
//! which makes a missing binary a failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};
use ringkit_memberlist::swim::{Event, State};
use ringkit_testkit::proc::Guard;
use ringkit_testkit::{port, require, wait};

const DEFAULT_BIN: &str = "/usr/bin/prometheus-alertmanager";

fn binary() -> Option<PathBuf> {
    require::binary(
        DEFAULT_BIN,
        Some("RINGKIT_ALERTMANAGER_BIN"),
        "RINGKIT_REQUIRE_ALERTMANAGER",
        "apt-get install prometheus-alertmanager",
    )
}

/// One Alertmanager process, killed (by pid) on drop.
struct Alertmanager {
    child: Guard,
    web: u16,
    cluster: u16,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    fn start(bin: &Path, peer: Option<u16>) -> Alertmanager {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: 'null'\nreceivers:\n  - name: 'null'\n",
        )
        .unwrap();
        let (web, cluster) = (port::free(), port::free());
        let mut cmd = Command::new(bin);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{web}"))
            .arg(format!("--cluster.listen-address=127.0.0.1:{cluster}"))
            .arg(format!("--cluster.advertise-address=127.0.0.1:{cluster}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(p) = peer {
            cmd.arg(format!("--cluster.peer=127.0.0.1:{p}"));
        }
        let child = Guard::spawn(&mut cmd).expect("start alertmanager");
        Alertmanager {
            child,
            web,
            cluster,
            _dir: dir,
        }
    }

    fn cluster_addr(&self) -> String {
        format!("127.0.0.1:{}", self.cluster)
    }

    /// Names of the peers in `/api/v2/status` (empty while it is not serving).
    async fn peers(&self, http: &reqwest::Client) -> Vec<String> {
        let url = format!("http://127.0.0.1:{}/api/v2/status", self.web);
        let Ok(resp) = http.get(&url).send().await else {
            return Vec::new();
        };
        let Ok(v) = resp.json::<serde_json::Value>().await else {
            return Vec::new();
        };
        v["cluster"]["peers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    async fn own_name(&self, http: &reqwest::Client) -> Option<String> {
        let url = format!("http://127.0.0.1:{}/api/v2/status", self.web);
        let v = http
            .get(&url)
            .send()
            .await
            .ok()?
            .json::<serde_json::Value>()
            .await
            .ok()?;
        v["cluster"]["name"].as_str().map(str::to_owned)
    }

    fn kill(&mut self) {
        self.child.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringkit_joins_an_alertmanager_cluster_and_leaves_it() {
    let Some(bin) = binary() else { return };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let am1 = Alertmanager::start(&bin, None);
    let mut am2 = Alertmanager::start(&bin, Some(am1.cluster));
    let am2_name = wait::until_async(
        "alertmanager 2 to serve",
        Duration::from_secs(30),
        async || am2.own_name(&http).await,
    )
    .await;
    wait::until_async(
        "the two alertmanagers to cluster",
        Duration::from_secs(30),
        async || (am1.peers(&http).await.len() == 2).then_some(()),
    )
    .await;

    let mut config = MemberlistConfig::lan();
    config.bind_addr = [127, 0, 0, 1].into();
    config.bind_port = 0;
    config.node_name = "ringkit-am-interop".into();
    config.leave_timeout = Duration::from_secs(5);
    let node = Memberlist::start(config, GossipKv::new(KvConfig::default()))
        .await
        .unwrap();
    let mut events = node.subscribe();
    let joined = node
        .join(&[am1.cluster_addr()])
        .await
        .expect("join alertmanager");
    assert_eq!(joined, 1);
    let me = node.name().to_owned();

    // Both Alertmanagers list us; we see all three alive.
    for (i, am) in [&am1, &am2].into_iter().enumerate() {
        wait::until_async(
            &format!("alertmanager {} to list {me}", i + 1),
            Duration::from_secs(20),
            async || am.peers(&http).await.contains(&me).then_some(()),
        )
        .await;
    }
    wait::until_async(
        "ringkit to see 3 alive members",
        Duration::from_secs(20),
        async || (node.alive_members() == 3).then_some(()),
    )
    .await;

    // Alertmanager 2 dies without a word: ringkit suspects it, then declares it dead.
    // Bound: probe 1 s, suspicion 4..24 s (LAN defaults, 3 nodes) plus slack.
    am2.kill();
    let started = tokio::time::Instant::now();
    let mut suspected = None;
    let dead = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            match events.recv().await {
                Ok(Event::MemberSuspect(m)) if *m.name == *am2_name.as_bytes() => {
                    suspected.get_or_insert(started.elapsed());
                }
                Ok(Event::MemberDead(m)) if *m.name == *am2_name.as_bytes() => {
                    return started.elapsed();
                }
                Ok(_) => {}
                Err(e) => panic!("event stream ended: {e}"),
            }
        }
    })
    .await
    .expect("killed alertmanager never declared dead");
    let suspected = suspected.expect("dead without being suspect first");
    eprintln!("alertmanager 2 killed: suspect after {suspected:?}, dead after {dead:?}");
    assert!(
        node.members()
            .iter()
            .any(|m| *m.name == *am2_name.as_bytes() && m.state == State::Dead)
    );

    // We leave gracefully: Alertmanager 1 drops us.
    node.leave().await;
    wait::until_async(
        "alertmanager 1 to drop ringkit",
        Duration::from_secs(20),
        async || (!am1.peers(&http).await.contains(&me)).then_some(()),
    )
    .await;
}
