//! `ringkit demo` (the default): the ring's story told by real processes on loopback.
//!
//! 1. Three ingesters (zones a, b, c) and a distributor start as child processes of the
//!    demo (`ringkit node`), sharing the ring over memberlist gossip.
//! 2. Captured Prometheus 2.42 remote-write bodies and synthetic series of several tenants
//!    are pushed to the distributor; every acknowledged sample is remembered.
//! 3. A fourth ingester joins zone a. The demo itself is a tokenless gossip member, so it
//!    reads the ring before and after and measures exactly which series changed owners.
//! 4. While a writer pushes continuously, one ingester is killed with SIGKILL: with RF 3
//!    and quorum 2 the pushes keep succeeding.
//! 5. Every acknowledged sample is read back through remote read.
//!
//! Children are killed by pid only, and always: a guard kills them on error, panic or
//! Ctrl-C. Their logs stay in a temp directory printed at the end.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser as _;
use prometheus_client::registry::Registry;
use ringkit_ingest::decode::{DecodeLimits, decode_write_request, encode_snappy};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::prompb::{
    Label, LabelMatcher, MatcherType, Query, Sample, TimeSeries, WriteRequest,
};
use ringkit_ingest::validate::{Limits, validate_request};
use ringkit_kv::{Client, MemoryStore};
use ringkit_lifecycle::RingDesc;
use ringkit_memberlist::runtime::Memberlist;
use ringkit_ring::{GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};

use crate::demo::{DemoArgs, METRICS};
use crate::kvstore::{KvArgs, build_ring_store};
use crate::table::{Align, Table};

/// Captured Prometheus 2.42 bodies, embedded so the demo runs from any directory.
const PROMETHEUS_SAMPLES: &[u8] =
    include_bytes!("../../ingest/testdata/rw-prometheus242-samples-500series.snappy-proto.bin");
const PROMETHEUS_METADATA: &[u8] =
    include_bytes!("../../ingest/testdata/rw-prometheus242-metadata-449.snappy-proto.bin");
/// Tenant the captured bodies are replayed as.
const REPLAY_TENANT: &str = "prometheus-2-42";
/// Synthetic series pushed, and samples per series.
const SYNTHETIC_SERIES: usize = 2_000;
const SAMPLES_PER_SERIES: usize = 3;
/// Bound on a child printing its listen line, on each ring wait, and on shutdown.
const START_TIMEOUT: Duration = Duration::from_secs(20);
const RING_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The ingester killed mid-write (an original one, not the newcomer).
const VICTIM: &str = "ingester-zone-b-0";
const NEWCOMER: &str = "ingester-zone-a-1";

/// Ctrl-C stopped the demo.
#[derive(Debug)]
struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted (Ctrl-C)")
    }
}

impl std::error::Error for Interrupted {}

/// Runs the demo and turns its outcome into an exit status (errors were already printed
/// in one clear line, with no backtrace): 0, 1, or 130 after Ctrl-C.
pub(crate) fn main(args: &DemoArgs) -> i32 {
    match run(args) {
        Ok(()) => 0,
        Err(e) if e.is::<Interrupted>() => 130,
        Err(_) => 1,
    }
}

/// Runs the networked demo, printing to stdout as it goes.
fn run(args: &DemoArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    anyhow::ensure!(args.tokens > 0, "--tokens must be at least 1");
    let dir =
        std::env::temp_dir().join(format!("ringkit-demo-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        // Dropped at the end of this block whatever happens: kills what is still running.
        let mut children = Children {
            dir: dir.clone(),
            nodes: Vec::new(),
        };
        tokio::select! {
            r = story(args, &mut children) => r,
            _ = tokio::signal::ctrl_c() => Err(Interrupted.into()),
        }
    });
    // The runtime goes first so no task outlives the children's guard.
    drop(rt);
    if let Err(e) = &result {
        eprintln!(
            "ringkit demo failed: {e:#}\nchildren killed; their logs are in {}",
            dir.display()
        );
    }
    result
}

/// One child `ringkit node`.
struct Node {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

/// The children the demo started; kills the live ones (by pid) when dropped.
struct Children {
    dir: PathBuf,
    nodes: Vec<Node>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if matches!(n.child.try_wait(), Ok(None)) {
                let _ = n.child.kill();
                let _ = n.child.wait();
            }
        }
    }
}

impl Children {
    /// Starts `ringkit node ARGS` with stderr in `NAME.log` and waits (bounded) for its
    /// listen line; a child that dies or stays silent is an error showing its log tail.
    fn start(&mut self, name: &str, args: Vec<String>) -> anyhow::Result<String> {
        let log = self.dir.join(format!("{name}.log"));
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let exe = std::env::current_exe().context("finding the ringkit binary")?;
        let mut child = Command::new(exe)
            .arg("node")
            .args(&args)
            // Plain log files (tracing-subscriber honours NO_COLOR).
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("child stdout")?;
        self.nodes.push(Node {
            name: name.to_owned(),
            child,
            log: log.clone(),
        });
        // A thread reads the first line, then drains the pipe so the child never blocks
        // (or fails) writing to it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = tokio::task::block_in_place(|| rx.recv_timeout(START_TIMEOUT));
        let url = match line {
            Ok(Ok(l)) => l
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .map(str::to_owned),
            _ => None,
        };
        let Some(url) = url else {
            let how = match self.nodes.last_mut().map(|n| n.child.try_wait()) {
                Some(Ok(Some(status))) => format!("exited ({status}) before printing"),
                _ => format!("did not print within {START_TIMEOUT:?}"),
            };
            bail!(
                "{name} {how} its listen line; log tail ({}):\n{}",
                log.display(),
                log_tail(&log, 20)
            );
        };
        Ok(url)
    }

    fn node(&mut self, name: &str) -> anyhow::Result<&mut Node> {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .with_context(|| format!("no child {name}"))
    }

    /// Every child's log tail (for errors).
    fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("--- {} ---\n{}", n.log.display(), log_tail(&n.log, 10)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// SIGTERM to every live child, a bounded wait, then SIGKILL. Returns how many stopped
    /// on SIGTERM and how many needed SIGKILL.
    fn stop_all(&mut self) -> (usize, usize) {
        let mut live: Vec<&mut Node> = self
            .nodes
            .iter_mut()
            .filter_map(|n| matches!(n.child.try_wait(), Ok(None)).then_some(n))
            .collect();
        for n in &live {
            let _ = Command::new("kill")
                .args(["-TERM", &n.child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        let (mut graceful, mut forced) = (0, 0);
        while !live.is_empty() {
            live.retain_mut(|n| {
                if matches!(n.child.try_wait(), Ok(None)) {
                    true
                } else {
                    graceful += 1;
                    false
                }
            });
            if Instant::now() > deadline {
                for n in live.drain(..) {
                    let _ = n.child.kill();
                    let _ = n.child.wait();
                    forced += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        (graceful, forced)
    }
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A free TCP port on 127.0.0.1 (the seed's gossip port must be known before it starts).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Progress lines, stamped with the time since the demo started.
struct Clock(Instant);

impl Clock {
    fn say(&self, msg: impl std::fmt::Display) {
        println!("[{:>4.1}s] {msg}", self.0.elapsed().as_secs_f64());
        let _ = std::io::stdout().flush();
    }
}

/// A label only this run's members carry, so its gossip never mixes with another
/// cluster on the same machine.
fn cluster_label() -> String {
    format!(
        "--memberlist.cluster-label=ringkit-demo-{}",
        std::process::id()
    )
}

/// Flags every node shares: gossip on loopback, free ports, RF 3 zone-aware.
fn common_flags(name: &str, seed_port: u16, is_seed: bool) -> Vec<String> {
    let mut v = vec![
        "--kv.store=memberlist".to_owned(),
        "--memberlist.bind-addr=127.0.0.1".to_owned(),
        format!("--memberlist.nodename={name}"),
        cluster_label(),
        format!(
            "--memberlist.bind-port={}",
            if is_seed { seed_port } else { 0 }
        ),
        "--memberlist.leave-timeout=2s".to_owned(),
        "--memberlist.broadcast-timeout-for-local-updates-on-shutdown=2s".to_owned(),
        "--server.http-listen-address=127.0.0.1".to_owned(),
        "--server.http-listen-port=0".to_owned(),
        "--distributor.replication-factor=3".to_owned(),
        "--distributor.zone-awareness-enabled=true".to_owned(),
    ];
    if !is_seed {
        v.push(format!("--memberlist.join=127.0.0.1:{seed_port}"));
    }
    v
}

fn ingester_flags(id: &str, zone: &str, tokens: usize, dir: &Path, seed: u16) -> Vec<String> {
    let mut v = common_flags(id, seed, id == "ingester-zone-a-0");
    v.extend([
        "--target=ingester".to_owned(),
        format!("--ingester.lifecycler.ID={id}"),
        format!("--ingester.availability-zone={zone}"),
        format!("--ingester.num-tokens={tokens}"),
        "--ingester.heartbeat-period=1s".to_owned(),
        "--ingester.min-ready-duration=0s".to_owned(),
        "--server.grpc-listen-address=127.0.0.1".to_owned(),
        "--server.grpc-listen-port=0".to_owned(),
        format!(
            "--ingester.wal-dir={}",
            dir.join(format!("wal-{id}")).display()
        ),
    ]);
    v
}

/// Ids of the ACTIVE instances with tokens in a node's `/ring` JSON.
async fn active_in_page(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<String>> {
    let v: serde_json::Value = http
        .get(format!("{url}/ring"))
        .header("Accept", "application/json")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut ids: Vec<String> = v["shards"]
        .as_array()
        .context("no shards in /ring")?
        .iter()
        .filter(|s| s["state"] == "ACTIVE" && s["tokens"].as_u64() > Some(0))
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    Ok(ids)
}

/// Waits (bounded) until the distributor's `/ring` shows `want` ACTIVE ingesters.
async fn wait_active(
    http: &reqwest::Client,
    url: &str,
    want: usize,
    children: &Children,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + RING_TIMEOUT;
    loop {
        let ids = active_in_page(http, url).await.unwrap_or_default();
        if ids.len() == want {
            return Ok(ids);
        }
        if Instant::now() > deadline {
            bail!(
                "the distributor's ring shows {} ACTIVE ingesters ({ids:?}), not {want}, after {RING_TIMEOUT:?}\n{}",
                ids.len(),
                children.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The demo's own tokenless gossip member: reads the ring the way every node sees it.
struct Observer {
    node: Memberlist,
    kv: Arc<dyn Client<RingDesc>>,
    cfg: RingConfig,
}

/// Just the KV flags, parsed the way `ringkit node` parses them.
#[derive(clap::Parser)]
struct KvOnly {
    #[command(flatten)]
    kv: KvArgs,
}

impl Observer {
    async fn join(seed_port: u16) -> anyhow::Result<Observer> {
        let flags = KvOnly::try_parse_from([
            "ringkit-demo",
            "--kv.store=memberlist",
            "--memberlist.bind-addr=127.0.0.1",
            "--memberlist.bind-port=0",
            "--memberlist.nodename=ringkit-demo-observer",
            "--memberlist.leave-timeout=2s",
            &cluster_label(),
        ])?;
        let store =
            build_ring_store(&flags.kv, &MemoryStore::new(), &mut Registry::default()).await?;
        let ring_kv = store.client_for("ring");
        let node = store
            .memberlist
            .context("the memberlist store starts a gossip node")?;
        let seeds = vec![format!("127.0.0.1:{seed_port}")];
        tokio::time::timeout(Duration::from_secs(10), node.join(&seeds))
            .await
            .context("joining the gossip cluster: no answer within 10s")?
            .map_err(|e| anyhow!("joining the gossip cluster: {e}"))?;
        Ok(Observer {
            node,
            kv: ring_kv,
            cfg: RingConfig {
                replication_factor: 3,
                zone_awareness_enabled: true,
                heartbeat_timeout: Duration::from_secs(60),
                ..RingConfig::default()
            },
        })
    }

    /// Waits (bounded) until our gossip view holds exactly `ids` ACTIVE with tokens.
    async fn snapshot_with(&self, ids: &[String]) -> anyhow::Result<RingSnapshot> {
        let deadline = Instant::now() + RING_TIMEOUT;
        loop {
            let desc = self.kv.get("ring").await?.map(|v| v.0).unwrap_or_default();
            let ring = RingSnapshot::new(desc, self.cfg.clone())?;
            let mut active: Vec<String> = ring
                .instances()
                .iter()
                .filter(|d| d.state() == InstanceState::Active && !d.tokens.is_empty())
                .map(|d| d.id.clone())
                .collect();
            active.sort();
            if active == ids {
                return Ok(ring);
            }
            if Instant::now() > deadline {
                bail!("our gossip view shows ACTIVE {active:?}, not {ids:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A series the demo wrote: tenant and sorted labels.
type SeriesId = (String, Vec<Label>);

/// Acknowledged samples by series: timestamp -> value bits.
#[derive(Default)]
struct Acked {
    samples: HashMap<SeriesId, BTreeMap<i64, u64>>,
}

impl Acked {
    fn add(&mut self, tenant: &str, series: &[TimeSeries]) {
        for ts in series {
            let mut labels = ts.labels.clone();
            labels.sort();
            let e = self.samples.entry((tenant.to_owned(), labels)).or_default();
            for s in &ts.samples {
                e.insert(s.timestamp, s.value.to_bits());
            }
        }
    }

    fn count(&self) -> usize {
        self.samples.values().map(BTreeMap::len).sum()
    }
}

/// Outcome of one push.
async fn push(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let resp = http
        .post(url)
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            resp.text().await.unwrap_or_default().trim()
        ))
    }
}

/// The synthetic series of `tenant` (every `tenants`-th of the set), with no samples.
fn synthetic(tenants: usize) -> Vec<(String, TimeSeries)> {
    (0..SYNTHETIC_SERIES)
        .map(|i| {
            let tenant = format!("tenant-{}", i % tenants);
            let metric = METRICS[(i / tenants) % METRICS.len()];
            let host = format!("host-{}:9100", i / tenants / METRICS.len());
            // Labels sorted by name, as remote write sends them.
            let ts = TimeSeries {
                labels: vec![
                    Label::new("__name__", metric),
                    Label::new("instance", host),
                    Label::new("job", "node"),
                ],
                ..Default::default()
            };
            (tenant, ts)
        })
        .collect()
}

/// Where each series goes in `ring`: its first owner and its sorted replica set.
fn placement(ring: &RingSnapshot, keys: &[u32]) -> Vec<(String, Vec<String>)> {
    let now = SystemTime::now();
    let mut buf = GetBuffer::new();
    keys.iter()
        .map(|&key| {
            let first = ring
                .instance_at(ring.token_owners()[ring.search_token(key)])
                .id
                .clone();
            let mut replicas: Vec<String> = match ring.get(key, Operation::WRITE, now, &mut buf) {
                Ok(set) => set.instances().map(|d| d.id.clone()).collect(),
                Err(_) => Vec::new(),
            };
            replicas.sort();
            (first, replicas)
        })
        .collect()
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.2} %", 100.0 * part as f64 / whole as f64)
}

/// Remote-reads every series of `tenant`.
async fn read_all(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
) -> anyhow::Result<Vec<TimeSeries>> {
    let query = Query {
        start_timestamp_ms: 0,
        end_timestamp_ms: i64::MAX,
        matchers: vec![LabelMatcher {
            r#type: MatcherType::Re as i32,
            name: "__name__".into(),
            value: ".+".into(),
        }],
        hints: None,
    };
    crate::remote_read::read(http, url, tenant, query, &DecodeLimits::default()).await
}

/// What the continuous writer counted.
#[derive(Default)]
struct WriterStats {
    ok: usize,
    failed: usize,
    ok_after_kill: usize,
    first_error: Option<String>,
    acked: Vec<(String, Vec<TimeSeries>)>,
}

/// Pushes small batches (20 series, one sample each) until `stop`, cycling over tenants.
async fn writer(
    http: reqwest::Client,
    url: String,
    series: Arc<Vec<(String, TimeSeries)>>,
    tenants: usize,
    stop: Arc<AtomicBool>,
    killed: Arc<AtomicBool>,
    pushes: Arc<AtomicU64>,
) -> WriterStats {
    let mut stats = WriterStats::default();
    let start_ms = now_ms();
    let mut k: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let tenant = format!("tenant-{}", k as usize % tenants);
        let mine: Vec<&TimeSeries> = series
            .iter()
            .filter(|(t, _)| *t == tenant)
            .map(|(_, s)| s)
            .collect();
        let offset = (k as usize / tenants * 20) % mine.len().max(1);
        // One sample per series at a timestamp no earlier batch used: always in order.
        let batch: Vec<TimeSeries> = mine
            .iter()
            .cycle()
            .skip(offset)
            .take(20.min(mine.len()))
            .map(|s| TimeSeries {
                labels: s.labels.clone(),
                samples: vec![Sample {
                    value: k as f64,
                    timestamp: start_ms + k,
                }],
                ..Default::default()
            })
            .collect();
        let after_kill = killed.load(Ordering::Relaxed);
        let body = encode_snappy(&WriteRequest {
            timeseries: batch.clone(),
            metadata: Vec::new(),
        });
        match push(&http, &url, &tenant, body).await {
            Ok(()) => {
                stats.ok += 1;
                if after_kill {
                    stats.ok_after_kill += 1;
                }
                stats.acked.push((tenant, batch));
            }
            Err(e) => {
                stats.failed += 1;
                if stats.first_error.is_none() {
                    stats.first_error = Some(e);
                }
            }
        }
        pushes.fetch_add(1, Ordering::Relaxed);
        k += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stats
}

/// The whole story; `children` is the caller's guard.
async fn story(args: &DemoArgs, children: &mut Children) -> anyhow::Result<()> {
    let clock = Clock(Instant::now());
    let dir = children.dir.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut phases: Vec<(String, Duration, String)> = Vec::new();
    println!(
        "ringkit demo: 3 ingesters and a distributor as real processes on 127.0.0.1, sharing the ring over memberlist"
    );
    println!(
        "RF=3, zone-aware, {} tokens per ingester; logs and WALs in {}\n",
        args.tokens,
        dir.display()
    );

    // Phase 1: the cluster.
    let t = Instant::now();
    let seed_port = free_port()?;
    for zone in ["a", "b", "c"] {
        let id = format!("ingester-zone-{zone}-0");
        let url = children.start(&id, ingester_flags(&id, zone, args.tokens, &dir, seed_port))?;
        clock.say(format!(
            "{id} started (pid {}), {url}",
            children.node(&id)?.child.id()
        ));
    }
    let mut dflags = common_flags("distributor", seed_port, false);
    dflags.push("--target=distributor".to_owned());
    let dist = children.start("distributor", dflags)?;
    clock.say(format!(
        "distributor started (pid {})\n          ring:       {dist}/ring\n          memberlist: {dist}/memberlist",
        children.node("distributor")?.child.id()
    ));
    let ids3 = wait_active(&http, &dist, 3, children).await?;
    clock.say(format!(
        "3 ingesters ACTIVE (zones a, b, c) in the distributor's ring: {}",
        ids3.join(", ")
    ));
    phases.push((
        "start 3 ingesters + distributor".into(),
        t.elapsed(),
        format!(
            "3 ACTIVE, {} tokens each, gossip over memberlist",
            args.tokens
        ),
    ));

    // Phase 2: writes.
    let t = Instant::now();
    let push_url = format!("{dist}/api/v1/push");
    let read_url = format!("{dist}/api/v1/read");
    let mut acked = Acked::default();
    let mut pushes = 0usize;
    for body in [PROMETHEUS_SAMPLES, PROMETHEUS_METADATA] {
        push(&http, &push_url, REPLAY_TENANT, body.to_vec())
            .await
            .map_err(|e| anyhow!("replaying a Prometheus 2.42 body: {e}"))?;
        pushes += 1;
        // What the distributor stored: the body minus what validation drops.
        let mut req = decode_write_request(body, &DecodeLimits::default())
            .map_err(|e| anyhow!("decoding an embedded body: {e}"))?;
        validate_request(&Limits::default(), now_ms(), &mut req);
        acked.add(REPLAY_TENANT, &req.timeseries);
    }
    let replayed = acked.count();
    clock.say(format!(
        "replayed 2 captured Prometheus 2.42 bodies (tenant {REPLAY_TENANT}): {replayed} samples, 449 metadata entries acknowledged"
    ));
    let synthetic = Arc::new(synthetic(args.tenants));
    let t0 = now_ms();
    for tenant in 0..args.tenants {
        let tenant = format!("tenant-{tenant}");
        let batch: Vec<TimeSeries> = synthetic
            .iter()
            .filter(|(t, _)| *t == tenant)
            .map(|(_, s)| TimeSeries {
                labels: s.labels.clone(),
                samples: (0..SAMPLES_PER_SERIES)
                    .map(|j| Sample {
                        value: j as f64,
                        timestamp: t0 - 1000 * (SAMPLES_PER_SERIES - j) as i64,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let body = encode_snappy(&WriteRequest {
            timeseries: batch.clone(),
            metadata: Vec::new(),
        });
        push(&http, &push_url, &tenant, body)
            .await
            .map_err(|e| anyhow!("pushing synthetic series of {tenant}: {e}"))?;
        pushes += 1;
        acked.add(&tenant, &batch);
    }
    clock.say(format!(
        "pushed {} synthetic series x {SAMPLES_PER_SERIES} samples over {} tenants: {} samples acknowledged",
        synthetic.len(),
        args.tenants,
        acked.count() - replayed
    ));
    let written_series = acked.samples.len();
    let written_samples = acked.count();
    phases.push((
        "write (replay + synthetic)".into(),
        t.elapsed(),
        format!(
            "{written_series} series, {written_samples} samples acknowledged in {pushes} pushes"
        ),
    ));

    // Phase 3: a fourth ingester joins zone a.
    let t = Instant::now();
    let observer = Observer::join(seed_port).await?;
    let before = observer.snapshot_with(&ids3).await?;
    clock.say("the demo joined the gossip cluster as a tokenless member and read the ring");
    let url = children.start(
        NEWCOMER,
        ingester_flags(NEWCOMER, "a", args.tokens, &dir, seed_port),
    )?;
    clock.say(format!(
        "{NEWCOMER} started (pid {}), {url}",
        children.node(NEWCOMER)?.child.id()
    ));
    let ids4 = wait_active(&http, &dist, 4, children).await?;
    let after = observer.snapshot_with(&ids4).await?;
    clock.say(format!("4 ingesters ACTIVE: {}", ids4.join(", ")));
    let mut keyed: Vec<&SeriesId> = acked.samples.keys().collect();
    keyed.sort();
    let keys: Vec<u32> = keyed.iter().map(|(t, l)| series_key(t, l)).collect();
    let p_before = placement(&before, &keys);
    let p_after = placement(&after, &keys);
    let mut first_moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut replicas_changed = 0usize;
    let mut replica_moves: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (b, a) in p_before.iter().zip(&p_after) {
        if b.0 != a.0 {
            *first_moves.entry((b.0.clone(), a.0.clone())).or_default() += 1;
        }
        if b.1 != a.1 {
            replicas_changed += 1;
            let gone = b.1.iter().filter(|r| !a.1.contains(r));
            let came = a.1.iter().filter(|r| !b.1.contains(r));
            for (g, c) in gone.zip(came) {
                *replica_moves.entry((g.clone(), c.clone())).or_default() += 1;
            }
        }
    }
    let first_changed: usize = first_moves.values().sum();
    let all_to_newcomer = first_moves.keys().all(|(_, to)| to == NEWCOMER);
    let to_newcomer_replicas = p_after
        .iter()
        .filter(|(_, r)| r.iter().any(|id| id == NEWCOMER))
        .count();
    clock.say(format!(
        "first owner changed for {first_changed} of {} series ({}); all moved to the newcomer: {}",
        keys.len(),
        pct(first_changed, keys.len()),
        if all_to_newcomer { "yes" } else { "NO" }
    ));
    let mut tbl = Table::new(&[
        ("from", Align::Left),
        ("to", Align::Left),
        ("series", Align::Right),
    ]);
    for ((from, to), n) in &first_moves {
        tbl.row(vec![from.clone(), to.clone(), n.to_string()]);
    }
    print!("{}", tbl.render());
    clock.say(format!(
        "replica set changed for {replicas_changed} series ({}); {NEWCOMER} now holds a replica of {to_newcomer_replicas}:",
        pct(replicas_changed, keys.len())
    ));
    let mut tbl = Table::new(&[
        ("replica from", Align::Left),
        ("to", Align::Left),
        ("series", Align::Right),
    ]);
    for ((from, to), n) in &replica_moves {
        tbl.row(vec![from.clone(), to.clone(), n.to_string()]);
    }
    print!("{}", tbl.render());
    phases.push((
        format!("add {NEWCOMER}"),
        t.elapsed(),
        format!(
            "{} of series changed first owner, all to the newcomer: {}; {} changed replica set",
            pct(first_changed, keys.len()),
            if all_to_newcomer { "yes" } else { "no" },
            pct(replicas_changed, keys.len())
        ),
    ));

    // Phase 4: kill -9 one ingester while a writer pushes.
    let t = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(writer(
        http.clone(),
        push_url.clone(),
        Arc::clone(&synthetic),
        args.tenants,
        Arc::clone(&stop),
        Arc::clone(&killed),
        Arc::clone(&count),
    ));
    clock.say("writer started: batches of 20 series, one sample each, back to back");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let victim = children.node(VICTIM)?;
    let pid = victim.child.id();
    victim.child.kill().context("SIGKILL")?;
    let _ = victim.child.wait();
    killed.store(true, Ordering::Relaxed);
    clock.say(format!(
        "kill -9 {VICTIM} (pid {pid}) after {} pushes",
        count.load(Ordering::Relaxed)
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let stats = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .context("the writer did not stop")??;
    for (tenant, batch) in &stats.acked {
        acked.add(tenant, batch);
    }
    clock.say(format!(
        "writer stopped: {} pushes acknowledged ({} after the kill), {} failed{}",
        stats.ok,
        stats.ok_after_kill,
        stats.failed,
        stats
            .first_error
            .as_ref()
            .map(|e| format!(" (first error: {e})"))
            .unwrap_or_default()
    ));
    phases.push((
        format!("kill -9 {VICTIM} mid-write"),
        t.elapsed(),
        format!(
            "{} pushes ok ({} after the kill), {} failed",
            stats.ok, stats.ok_after_kill, stats.failed
        ),
    ));

    // Phase 5: read everything back.
    let t = Instant::now();
    let mut tenants: Vec<&str> = acked.samples.keys().map(|(t, _)| t.as_str()).collect();
    tenants.sort();
    tenants.dedup();
    let mut got: HashMap<SeriesId, HashMap<i64, u64>> = HashMap::new();
    for tenant in &tenants {
        for ts in read_all(&http, &read_url, tenant).await? {
            let mut labels = ts.labels;
            labels.sort();
            let e = got.entry(((*tenant).to_owned(), labels)).or_default();
            for s in ts.samples {
                e.insert(s.timestamp, s.value.to_bits());
            }
        }
    }
    let total = acked.count();
    let found: usize = acked
        .samples
        .iter()
        .map(|(id, samples)| {
            let have = got.get(id);
            samples
                .iter()
                .filter(|(ts, bits)| have.and_then(|h| h.get(ts)) == Some(bits))
                .count()
        })
        .sum();
    let missing = total - found;
    clock.say(format!(
        "{found}/{total} acknowledged samples read back through /api/v1/read ({} tenants, {missing} missing)",
        tenants.len()
    ));
    phases.push((
        "read back".into(),
        t.elapsed(),
        format!("{found}/{total} acknowledged samples read back ({missing} missing)"),
    ));

    // Stop: our gossip member first, then the children, gracefully.
    let t = Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(3), observer.node.leave()).await;
    let (graceful, forced) = tokio::task::block_in_place(|| children.stop_all());
    clock.say(format!(
        "children stopped: {graceful} on SIGTERM, {forced} needed SIGKILL"
    ));
    phases.push((
        "stop".into(),
        t.elapsed(),
        format!("{graceful} stopped on SIGTERM, {forced} killed"),
    ));

    println!("\n== Summary");
    let mut tbl = Table::new(&[
        ("phase", Align::Left),
        ("time", Align::Right),
        ("result", Align::Left),
    ]);
    for (phase, d, result) in &phases {
        tbl.row(vec![
            phase.clone(),
            format!("{:.1}s", d.as_secs_f64()),
            result.clone(),
        ]);
    }
    tbl.row(vec![
        "total".into(),
        format!("{:.1}s", clock.0.elapsed().as_secs_f64()),
        format!(
            "{} series, {total} samples acknowledged, {} failed pushes, {missing} missing",
            acked.samples.len(),
            stats.failed
        ),
    ]);
    print!("{}", tbl.render());
    println!("\nlogs of every process: {}", dir.display());
    anyhow::ensure!(
        missing == 0,
        "{missing} acknowledged samples were not read back"
    );
    Ok(())
}
