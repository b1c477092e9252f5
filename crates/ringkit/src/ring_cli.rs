//! `ringkit ring`: operator commands on a ring kept in a shared KV store.
//!
//! - `show`: the ring table (state, heartbeat age, tokens, ownership) and the share of
//!   each zone, as text or JSON (the JSON has the `/ring` page's shape); or a partition
//!   ring (told from the stored codec or bytes, or `--ring.kind partition`).
//! - `forget ID`: removes an instance with a CAS; refuses a healthy one unless `--force`
//!   (a live instance re-registers on its next heartbeat anyway).
//! - `lookup KEY...`: the replica set of a token, or of a series given by tenant and labels;
//!   many tokens (arguments, or `-` for one per line on stdin) share one store connection
//!   (one gossip join), so 10,000 lookups cost about as much as one.
//! - `read-only ID --set|--clear`: marks an instance read-only (no new series, out of new
//!   shuffle shards) or clears it, stamping the change time as dskit does.
//!
//! The store flags are the ones `ringkit node` takes (`kvstore.rs`), so every backend a node
//! can use is one these commands can read. Every store call is bounded by `--timeout`: an
//! unreachable store is an error within seconds, never a hang.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand, ValueEnum};
use prometheus_client::registry::Registry;
use ringkit_kv::{CasDecision, Client, MemoryStore};
use ringkit_lifecycle::RingDesc;
use ringkit_ring::partition::codec::{self as partition_codec, PARTITION_RING_DESC_CODEC_ID};
use ringkit_ring::partition::{OwnerState, PartitionRingDesc};
use ringkit_ring::snapshot::{ReplicationStrategy, min_healthy_timestamp};
use ringkit_ring::{Desc, GetBuffer, Operation, RingConfig, RingSnapshot};

use crate::duration::parse_duration;
use crate::kvstore::{DEFAULT_GOSSIP_PORT, KvArgs, build_ring_store};
use crate::ring_page::{self, Row};
use crate::table::{Align, Table};
use ringkit_memberlist::runtime::Memberlist;

/// `ringkit ring ...`.
#[derive(Args, Debug)]
pub(crate) struct RingArgs {
    #[command(subcommand)]
    command: RingCommand,
}

#[derive(Subcommand, Debug)]
enum RingCommand {
    /// Print the ring: instances, states, heartbeat ages, tokens, ownership, zone shares.
    Show(ShowArgs),
    /// Remove an instance from the ring (refused for a healthy one without --force).
    Forget(ForgetArgs),
    /// Print the replica set of a key: a raw token, or a series (--tenant and --labels).
    Lookup(LookupArgs),
    /// Set (--set) or clear (--clear) an instance's read-only flag in the ring.
    ReadOnly(ReadOnlyArgs),
}

#[derive(Args, Debug)]
#[group(id = "mode", required = true, multiple = false, args = ["set", "clear"])]
struct ReadOnlyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Instance id.
    id: String,
    /// Make the instance read-only.
    #[arg(long)]
    set: bool,
    /// Make the instance writable again.
    #[arg(long)]
    clear: bool,
}

/// Where the ring is and how to judge health: shared by every `ring` subcommand.
#[derive(Args, Debug, Clone)]
struct StoreArgs {
    #[command(flatten)]
    kv: KvArgs,
    /// Key of the ring in the KV store, after `--kv.prefix` (same flag as `node`).
    #[arg(long = "ring.key", default_value = "ring")]
    ring_key: String,
    /// Full key of the ring in the store, prefix included (e.g. `collectors/ring`);
    /// overrides `--kv.prefix` and `--ring.key`.
    #[arg(long = "key")]
    key: Option<String>,
    /// An instance whose last heartbeat is older than this is unhealthy.
    #[arg(long = "ring.heartbeat-timeout", default_value = "1m", value_parser = parse_duration)]
    heartbeat_timeout: Duration,
    /// Bound on each store call (connecting included).
    #[arg(long = "timeout", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
}

/// Output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Args, Debug)]
struct ShowArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// `table` for people, `json` for scripts (the `/ring` page's JSON plus `zones`; for a
    /// partition ring, dskit's JSON of the descriptor).
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
    /// Keep reading the ring and print it again whenever an instance's state, health,
    /// address, zone or token count changes, until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// --watch: how often the store is read.
    #[arg(long = "watch-interval", default_value = "2s", value_parser = parse_duration)]
    watch_interval: Duration,
    /// --watch: stop after this many prints (0: only Ctrl-C stops).
    #[arg(long = "watch-max-prints", default_value_t = 0)]
    watch_max_prints: u64,
    /// Which ring the key holds: `auto` tells from the stored codec (memberlist) or the
    /// bytes (etcd); `instance` (`ringDesc`) or `partition` (`partitionRingDesc`).
    #[arg(long = "ring.kind", value_enum, default_value = "auto")]
    kind: RingKind,
}

/// The kinds of ring `ring show` can print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum RingKind {
    Auto,
    Instance,
    Partition,
}

#[derive(Args, Debug)]
struct ForgetArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Instance id to remove.
    id: String,
    /// Remove the instance even if its heartbeat is recent.
    #[arg(long)]
    force: bool,
}

/// Which operation's health and extension rules the lookup applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LookupOp {
    Write,
    WriteNoExtend,
    Read,
    Reporting,
}

impl LookupOp {
    fn operation(self) -> Operation {
        match self {
            LookupOp::Write => Operation::WRITE,
            LookupOp::WriteNoExtend => Operation::WRITE_NO_EXTEND,
            LookupOp::Read => Operation::READ,
            LookupOp::Reporting => Operation::REPORTING,
        }
    }
}

#[derive(Args, Debug)]
struct LookupArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The keys: tokens (u32), any number; `-` reads one per line from stdin (blank lines
    /// skipped). Leave out and give --tenant and --labels to hash a series.
    #[arg(value_name = "KEY")]
    token: Vec<String>,
    /// Most keys one call accepts (bounds memory when keys come from stdin).
    #[arg(long = "max-keys", default_value_t = 1_000_000)]
    max_keys: usize,
    /// Tenant of the series to hash.
    #[arg(long, requires = "labels", conflicts_with = "token")]
    tenant: Option<String>,
    /// Labels of the series, `{name="value",...}` or `metric{name="value"}`.
    #[arg(long, requires = "tenant")]
    labels: Option<String>,
    /// Replication factor.
    #[arg(long = "replication-factor", default_value_t = RingConfig::default().replication_factor)]
    replication_factor: usize,
    /// Place replicas in distinct zones.
    #[arg(long = "zone-awareness-enabled", default_value_t = RingConfig::default().zone_awareness_enabled, action = clap::ArgAction::Set)]
    zone_awareness_enabled: bool,
    /// Operation whose rules pick the replicas.
    #[arg(long, value_enum, default_value = "write")]
    op: LookupOp,
    /// `table` or `json`.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// Runs a `ring` subcommand on its own runtime and turns an error into one clear line on
/// stderr and exit status 1 (an operator tool: no backtraces, whatever `RUST_BACKTRACE` says).
pub(crate) fn main(args: RingArgs) -> i32 {
    let result = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(run(args, &mut std::io::stdout().lock())));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    }
}

/// Runs a `ring` subcommand, writing its report to `out`.
pub(crate) async fn run(args: RingArgs, out: &mut impl std::io::Write) -> anyhow::Result<()> {
    let session = Session::default();
    let text = match args.command {
        RingCommand::Show(a) if a.watch => {
            let r = watch(&a, &session, out).await;
            session.close().await;
            return r;
        }
        RingCommand::Show(a) => show(&a, &session).await,
        RingCommand::Forget(a) => forget(&a, &session).await,
        RingCommand::Lookup(a) => lookup(&a, &session).await,
        RingCommand::ReadOnly(a) => read_only(&a, &session).await,
    };
    // Leave the gossip cluster (after our changes went out) whatever the outcome.
    session.close().await;
    out.write_all(text?.as_bytes())?;
    Ok(())
}

/// What a command opened and must close: with memberlist, our temporary member.
#[derive(Default)]
struct Session {
    memberlist: std::sync::Mutex<Option<Memberlist>>,
}

impl Session {
    async fn close(&self) {
        let m = self
            .memberlist
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(m) = m {
            m.leave().await;
        }
    }
}

/// An open store plus what the commands need to address and judge the ring.
struct Store {
    kv: Arc<dyn Client<RingDesc>>,
    key: String,
    describe: String,
    timeout: Duration,
    /// The store flags as opened and the key with its prefix: for reading raw values.
    args: KvArgs,
    full_key: String,
    memberlist: Option<Memberlist>,
}

impl Store {
    async fn open(args: &StoreArgs, session: &Session) -> anyhow::Result<Store> {
        let mut kv = args.kv.clone();
        if kv.store == "inmemory" {
            bail!(
                "--kv.store=inmemory keeps a ring inside one process, so there is nothing to \
                 read from outside: point this command at the store the nodes use \
                 (e.g. --kv.store=etcd --etcd.endpoints=HOST:2379)"
            );
        }
        // The dial must not outlast the whole call's bound.
        kv.etcd_dial_timeout = kv.etcd_dial_timeout.min(args.timeout);
        let key = match &args.key {
            Some(full) => {
                kv.prefix = String::new();
                full.clone()
            }
            None => args.ring_key.clone(),
        };
        let describe = format!("{}{} in {}", kv.prefix, key, describe_store(&kv));
        // A fresh registry: the KV metrics are only registered so the client can be built.
        let mut registry = Registry::default();
        // A temporary gossip member: any free port (unless one was asked for), and the
        // join done here so that a cluster we cannot reach is a clear error.
        let seeds = std::mem::take(&mut kv.memberlist.join);
        if kv.memberlist.bind_port == DEFAULT_GOSSIP_PORT {
            kv.memberlist.bind_port = 0;
        }
        let opened = build_ring_store(&kv, &MemoryStore::new(), &mut registry).await?;
        let kv_client = opened.client_for("ring");
        let memberlist = opened.memberlist.clone();
        if let Some(m) = opened.memberlist {
            *session.memberlist.lock().unwrap_or_else(|p| p.into_inner()) = Some(m.clone());
            anyhow::ensure!(
                !seeds.is_empty(),
                "--kv.store=memberlist needs --memberlist.join=HOST:PORT of a cluster member"
            );
            match tokio::time::timeout(args.timeout, m.join(&seeds)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("joining the memberlist cluster: {e}"),
                Err(_) => bail!(
                    "joining the memberlist cluster at {}: no answer within {:?}",
                    seeds.join(","),
                    args.timeout
                ),
            }
        }
        Ok(Store {
            kv: kv_client,
            full_key: format!("{}{key}", kv.prefix),
            key,
            describe,
            timeout: args.timeout,
            args: kv,
            memberlist,
        })
    }

    /// Runs one store call within the timeout, naming the store in every error.
    async fn call<T>(
        &self,
        what: &str,
        fut: impl Future<Output = Result<T, ringkit_kv::Error>>,
    ) -> anyhow::Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(anyhow::anyhow!("{what} {} failed: {e}", self.describe)),
            Err(_) => bail!(
                "{what} {}: no answer within {:?} (is the store running and reachable?)",
                self.describe,
                self.timeout
            ),
        }
    }

    /// The stored bytes of the key and, where the store keeps it (memberlist), their
    /// codec id. Only memberlist and etcd can say; other stores answer `None`.
    async fn raw(&self) -> anyhow::Result<Option<(Option<String>, Vec<u8>)>> {
        if let Some(m) = &self.memberlist {
            return Ok(m
                .kv()
                .encoded(&self.full_key)
                .map(|(codec, bytes)| (Some(codec), bytes)));
        }
        if self.args.store == "etcd" {
            let client = crate::kvstore::etcd_bytes_client(&self.args)?;
            let bytes = self.call("reading", client.get(&self.full_key)).await?;
            return Ok(bytes.map(|b| (None, b)));
        }
        Ok(None)
    }

    async fn desc(&self) -> anyhow::Result<Desc> {
        let value = self.call("reading", self.kv.get(&self.key)).await?;
        Ok(value.map(|v| v.0).unwrap_or_default())
    }
}

fn describe_store(kv: &KvArgs) -> String {
    match kv.store.as_str() {
        "etcd" => format!("etcd {}", kv.etcd_endpoints.join(",")),
        "memberlist" => format!("memberlist cluster {}", kv.memberlist.join.join(",")),
        "multi" => format!(
            "multi (primary {}, secondary {})",
            kv.multi_primary, kv.multi_secondary
        ),
        other => other.to_owned(),
    }
}

fn unix(now: SystemTime) -> i64 {
    now.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The ring config `ring lookup` reads with: the store's health rule and the replication
/// flags.
fn lookup_ring_config(args: &LookupArgs) -> RingConfig {
    RingConfig {
        replication_factor: args.replication_factor,
        zone_awareness_enabled: args.zone_awareness_enabled,
        heartbeat_timeout: args.store.heartbeat_timeout,
        excluded_zones: Vec::new(),
        strategy: ReplicationStrategy::Default,
    }
}

fn ring_config(store: &StoreArgs) -> RingConfig {
    RingConfig {
        heartbeat_timeout: store.heartbeat_timeout,
        ..RingConfig::default()
    }
}

/// Share of the keyspace whose first owner is in each zone.
#[derive(Debug, serde::Serialize)]
struct ZoneShare {
    zone: String,
    instances: usize,
    ownership_percent: f64,
}

fn zone_shares(ring: &RingSnapshot) -> Vec<ZoneShare> {
    ring.zones()
        .iter()
        .enumerate()
        .map(|(z, name)| ZoneShare {
            zone: name.clone(),
            instances: ring.instances_in_zone_count(name),
            ownership_percent: 100.0 * ring.zone_ownership(z),
        })
        .collect()
}

async fn show(args: &ShowArgs, session: &Session) -> anyhow::Result<String> {
    let store = Store::open(&args.store, session).await?;
    if args.kind != RingKind::Instance
        && let Some(p) = partition_ring(&store, args.kind).await?
    {
        return Ok(render_partitions(&p, &store.describe, args.output));
    }
    let desc = store.desc().await?;
    let now_time = SystemTime::now();
    let ring =
        RingSnapshot::new(desc, ring_config(&args.store)).context("invalid ring settings")?;
    let rows = ring_page::rows(&ring, now_time);
    Ok(render_show(
        &ring,
        &rows,
        unix(now_time),
        &store.describe,
        args.output,
    ))
}

/// What `--watch` compares between reads: id, state, address, zone, token count.
type ShapeRow = (String, String, String, String, usize);

/// `ring show --watch`: one store connection, a read every `--watch-interval`, a print
/// when the ring's shape (not just its heartbeat times) changed; stops on Ctrl-C or after
/// `--watch-max-prints` prints.
async fn watch(
    args: &ShowArgs,
    session: &Session,
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let store = Store::open(&args.store, session).await?;
    let mut last: Option<Vec<ShapeRow>> = None;
    let mut prints = 0u64;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let desc = store.desc().await?;
        let now_time = SystemTime::now();
        let ring =
            RingSnapshot::new(desc, ring_config(&args.store)).context("invalid ring settings")?;
        let rows = ring_page::rows(&ring, now_time);
        let shape: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.id.clone(),
                    r.state.clone(),
                    r.address.clone(),
                    r.zone.clone(),
                    r.tokens,
                )
            })
            .collect();
        if last.as_ref() != Some(&shape) {
            let text = render_show(&ring, &rows, unix(now_time), &store.describe, args.output);
            if args.output == Output::Table {
                writeln!(out, "--- {} (unix time)", unix(now_time))?;
            }
            out.write_all(text.as_bytes())?;
            out.flush()?;
            last = Some(shape);
            prints += 1;
            if args.watch_max_prints != 0 && prints >= args.watch_max_prints {
                return Ok(());
            }
        }
        tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            _ = tokio::time::sleep(args.watch_interval) => {}
        }
    }
}

fn render_show(
    ring: &RingSnapshot,
    rows: &[Row],
    now: i64,
    describe: &str,
    output: Output,
) -> String {
    if output == Output::Json {
        let v = serde_json::json!({ "shards": rows, "zones": zone_shares(ring), "now": now });
        return format!("{v:#}\n");
    }
    let mut out = format!("Ring {describe}: {} instances\n\n", rows.len());
    if rows.is_empty() {
        out.push_str("  (the ring is empty)\n");
        return out;
    }
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("STATE", Align::Left),
        ("ADDRESS", Align::Left),
        ("ZONE", Align::Left),
        ("HEARTBEAT", Align::Right),
        ("TOKENS", Align::Right),
        ("OWNERSHIP", Align::Right),
        ("FIRST OWNER", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            r.id.clone(),
            r.state.clone(),
            r.address.clone(),
            r.zone.clone(),
            heartbeat_age(now, r.timestamp),
            r.tokens.to_string(),
            format!("{:.3}%", r.ownership_percent),
            format!("{:.3}%", r.primary_ownership_percent),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "\n  OWNERSHIP: share of the instance's zone ring; FIRST OWNER: share of the whole \
         keyspace whose first replica it holds.\n\n",
    );
    let mut z = Table::new(&[
        ("ZONE", Align::Left),
        ("INSTANCES", Align::Right),
        ("FIRST-OWNER SHARE", Align::Right),
    ]);
    for s in zone_shares(ring) {
        z.row(vec![
            if s.zone.is_empty() {
                "(no zone)".to_owned()
            } else {
                s.zone
            },
            s.instances.to_string(),
            format!("{:.3}%", s.ownership_percent),
        ]);
    }
    out.push_str(&z.render());
    out
}

/// The partition ring stored under the key, if it holds one (`kind` auto: told from the
/// codec id memberlist keeps, or, in etcd, from which codec decodes the bytes: an instance
/// ring's map key is a string where a partition ring's is an integer, so a non-empty value
/// decodes as one of them only).
async fn partition_ring(
    store: &Store,
    kind: RingKind,
) -> anyhow::Result<Option<PartitionRingDesc>> {
    let raw = store.raw().await?;
    let decoded = |bytes: &[u8]| {
        partition_codec::decode(bytes)
            .with_context(|| format!("decoding the partition ring in {}", store.describe))
    };
    match (kind, raw) {
        (RingKind::Partition, Some((_, bytes))) => decoded(&bytes).map(Some),
        (RingKind::Partition, None) => {
            anyhow::ensure!(
                matches!(store.args.store.as_str(), "memberlist" | "etcd"),
                "a partition ring is read from --kv.store=memberlist or etcd"
            );
            Ok(Some(PartitionRingDesc::new()))
        }
        (_, Some((Some(codec), bytes))) if codec == PARTITION_RING_DESC_CODEC_ID => {
            decoded(&bytes).map(Some)
        }
        (_, Some((None, bytes))) if ringkit_ring::codec::decode(&bytes).is_err() => {
            Ok(partition_codec::decode(&bytes).ok())
        }
        _ => Ok(None),
    }
}

fn render_partitions(desc: &PartitionRingDesc, describe: &str, output: Output) -> String {
    if output == Output::Json {
        return format!("{}\n", partition_codec::json::encode(desc));
    }
    let owners = desc.owners_by_partition();
    let mut out = format!(
        "Partition ring {describe}: {} partitions, {} owners\n\n",
        desc.partitions.len(),
        desc.owners.len()
    );
    if desc.partitions.is_empty() && desc.owners.is_empty() {
        out.push_str("  (the partition ring is empty)\n");
        return out;
    }
    let mut t = Table::new(&[
        ("PARTITION", Align::Right),
        ("STATE", Align::Left),
        ("STATE SINCE", Align::Right),
        ("TOKENS", Align::Right),
        ("OWNERS", Align::Left),
    ]);
    for (id, p) in &desc.partitions {
        t.row(vec![
            id.to_string(),
            p.state_or_unknown().clean_name().to_owned(),
            p.state_timestamp.to_string(),
            p.tokens.len().to_string(),
            owners.get(id).map(|o| o.join(",")).unwrap_or_default(),
        ]);
    }
    out.push_str(&t.render());
    let mut o = Table::new(&[
        ("OWNER", Align::Left),
        ("PARTITION", Align::Right),
        ("STATE", Align::Left),
        ("UPDATED", Align::Right),
    ]);
    for (id, owner) in &desc.owners {
        o.row(vec![
            id.clone(),
            owner.owned_partition.to_string(),
            owner_state(owner.state),
            owner.updated_timestamp.to_string(),
        ]);
    }
    out.push('\n');
    out.push_str(&o.render());
    out
}

fn owner_state(state: i32) -> String {
    match OwnerState::try_from(state) {
        Ok(OwnerState::OwnerActive) => "ACTIVE".to_owned(),
        Ok(OwnerState::OwnerDeleted) => "DELETED".to_owned(),
        _ => format!("UNKNOWN({state})"),
    }
}

fn heartbeat_age(now: i64, ts: i64) -> String {
    if ts <= 0 {
        return "never".to_owned();
    }
    let secs = now.saturating_sub(ts);
    if secs < 0 {
        format!("in {}s", secs.saturating_neg())
    } else {
        format!("{secs}s ago")
    }
}

async fn forget(args: &ForgetArgs, session: &Session) -> anyhow::Result<String> {
    let store = Store::open(&args.store, session).await?;
    let now_time = SystemTime::now();
    let now = unix(now_time);
    // The same rule as the ring page and lookups, so "UNHEALTHY" there means forgettable.
    let min_healthy = min_healthy_timestamp(now_time, args.store.heartbeat_timeout);
    let id = args.id.as_str();
    // What the CAS callback found, reported after the call (it may run several times).
    let mut found: Option<Result<i64, i64>> = None;
    let result = store
        .call(
            "forgetting in",
            store.kv.cas(&store.key, &mut |current: Option<RingDesc>| {
                let mut desc = current.map(|v| v.0).unwrap_or_default();
                let Some(inst) = desc.ingesters.get(id) else {
                    found = None;
                    return CasDecision::Unchanged;
                };
                let ts = inst.timestamp;
                if ts >= min_healthy && !args.force {
                    found = Some(Err(ts));
                    return CasDecision::Unchanged;
                }
                found = Some(Ok(ts));
                desc.remove_instance(id);
                CasDecision::Write(RingDesc(desc))
            }),
        )
        .await;
    result?;
    match found {
        None => bail!("instance {id:?} is not in the ring {}", store.describe),
        Some(Err(ts)) => bail!(
            "refusing to forget {id:?}: it is healthy (last heartbeat {}s ago, timeout {:?}); \
             a live instance re-registers on its next heartbeat. Stop it first, or pass --force",
            now.saturating_sub(ts),
            args.store.heartbeat_timeout
        ),
        Some(Ok(ts)) => Ok(format!(
            "forgot {id} (last heartbeat {}) from {}\n",
            heartbeat_age(now, ts),
            store.describe
        )),
    }
}

/// Sets or clears an instance's read-only flag with one CAS. The entry's heartbeat moves
/// one second forward so the change wins the gossip merge (which keeps the newer
/// heartbeat) without making a dead instance look alive; the instance's lifecycler adopts
/// a read-only change newer than its own on its next heartbeat.
async fn read_only(args: &ReadOnlyArgs, session: &Session) -> anyhow::Result<String> {
    let store = Store::open(&args.store, session).await?;
    let now = unix(SystemTime::now());
    let want = args.set;
    let id = args.id.as_str();
    // None: no such instance; Some(changed).
    let mut found: Option<bool> = None;
    store
        .call(
            "changing read-only in",
            store.kv.cas(&store.key, &mut |current: Option<RingDesc>| {
                let mut desc = current.map(|v| v.0).unwrap_or_default();
                let Some(inst) = desc.ingesters.get_mut(id) else {
                    found = None;
                    return CasDecision::Unchanged;
                };
                if inst.read_only == want {
                    found = Some(false);
                    return CasDecision::Unchanged;
                }
                found = Some(true);
                inst.read_only = want;
                inst.read_only_updated_timestamp = now.max(inst.read_only_updated_timestamp + 1);
                // Newer than the entry and than the live node's next heartbeat or two
                // (which would otherwise tie and win at the node): the node's own lifecycler
                // then adopts the change on its next heartbeat.
                inst.timestamp = inst.timestamp.max(now).saturating_add(2);
                CasDecision::Write(RingDesc(desc))
            }),
        )
        .await?;
    let what = if want { "read-only" } else { "writable" };
    match found {
        None => bail!("instance {id:?} is not in the ring {}", store.describe),
        Some(false) => Ok(format!("{id} is already {what} in {}\n", store.describe)),
        Some(true) => Ok(format!("{id} is now {what} in {}\n", store.describe)),
    }
}

/// Parses series labels: `{a="b", c="d"}`, optionally preceded by a metric name
/// (`up{job="x"}`, stored as `__name__`). Values are double-quoted with `\"`, `\\` and `\n`
/// escapes. Returns the labels sorted by name, the order the series hash expects.
pub(crate) fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let s = text.trim();
    let (metric, rest) = match s.find('{') {
        Some(i) => (s[..i].trim(), &s[i..]),
        None if s.is_empty() => return Err("empty label set".into()),
        None => (s, ""),
    };
    let mut labels = Vec::new();
    if !metric.is_empty() {
        if !is_name(metric) {
            return Err(format!("invalid metric name {metric:?}"));
        }
        labels.push(("__name__".to_owned(), metric.to_owned()));
    }
    if !rest.is_empty() {
        let inner = rest
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(|| format!("labels must be enclosed in {{...}}: {text:?}"))?;
        let mut chars = inner.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '=' || c.is_whitespace() {
                    break;
                }
                name.push(c);
                chars.next();
            }
            if !is_name(&name) {
                return Err(format!("invalid label name {name:?}"));
            }
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.next() != Some('=') || chars.next_if_eq(&'"').is_none() {
                return Err(format!("label {name:?}: expected =\"value\""));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("label {name:?}: unterminated value")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('n') => value.push('\n'),
                        Some(c @ ('\\' | '"')) => value.push(c),
                        other => {
                            return Err(format!("label {name:?}: bad escape \\{other:?}"));
                        }
                    },
                    Some(c) => value.push(c),
                }
            }
            labels.push((name, value));
        }
    }
    labels.sort();
    if let Some(w) = labels.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("label {:?} given twice", w[0].0));
    }
    if labels.is_empty() {
        return Err("empty label set".into());
    }
    Ok(labels)
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// The tokens of a many-key lookup: the arguments, with `-` replaced by `stdin`'s lines.
fn lookup_tokens(
    args: &[String],
    stdin: impl std::io::BufRead,
    max_keys: usize,
) -> anyhow::Result<Vec<u32>> {
    fn parse(k: &str, origin: &dyn Fn() -> String) -> anyhow::Result<u32> {
        k.trim().parse().with_context(|| {
            format!(
                "{}: KEY must be a token between 0 and {} (got {k:?})",
                origin(),
                u32::MAX
            )
        })
    }
    let mut keys = Vec::new();
    let mut stdin = Some(stdin);
    for (i, a) in args.iter().enumerate() {
        if a != "-" {
            keys.push(parse(a, &|| format!("argument {}", i + 1))?);
        } else if let Some(input) = stdin.take() {
            for (n, line) in input.lines().enumerate() {
                let line = line.context("reading keys from stdin")?;
                if line.trim().is_empty() {
                    continue;
                }
                keys.push(parse(&line, &|| format!("stdin line {}", n + 1))?);
                if keys.len() > max_keys {
                    bail!("more than --max-keys={max_keys} keys");
                }
            }
        }
        if keys.len() > max_keys {
            bail!("more than --max-keys={max_keys} keys");
        }
    }
    Ok(keys)
}

/// The key a lookup asks for, and how it was obtained (for the report).
fn lookup_key(args: &LookupArgs) -> anyhow::Result<(u32, String)> {
    match (args.token.as_slice(), &args.tenant, &args.labels) {
        ([k], None, None) => {
            let key: u32 = k.trim().parse().with_context(|| {
                format!("KEY must be a token between 0 and {} (got {k:?})", u32::MAX)
            })?;
            Ok((key, format!("token {key}")))
        }
        ([], Some(tenant), Some(labels)) => {
            let labels = parse_labels(labels).map_err(|e| anyhow::anyhow!("--labels: {e}"))?;
            let key = ringkit_ring::hash::shard_by_all_labels(
                tenant,
                labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            );
            let shown: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
            Ok((
                key,
                format!(
                    "series {{{}}} of tenant {tenant:?} (hash {key})",
                    shown.join(", ")
                ),
            ))
        }
        _ => bail!("give either KEY (a token) or both --tenant and --labels"),
    }
}

async fn lookup(args: &LookupArgs, session: &Session) -> anyhow::Result<String> {
    let many = args.token.len() > 1 || args.token.first().is_some_and(|k| k == "-");
    let keys = if many {
        lookup_tokens(&args.token, std::io::stdin().lock(), args.max_keys)?
    } else {
        Vec::new()
    };
    let (key, what) = if many {
        (0, String::new())
    } else {
        lookup_key(args)?
    };
    let cfg = lookup_ring_config(args);
    cfg.validate().context("invalid ring settings")?;
    let store = Store::open(&args.store, session).await?;
    let desc = store.desc().await?;
    let ring = RingSnapshot::new(desc, cfg).context("invalid ring settings")?;
    let now = SystemTime::now();
    let mut buf = GetBuffer::new();
    if many {
        return Ok(lookup_many(args, &ring, &keys, now, &mut buf));
    }
    let set = ring
        .get(key, args.op.operation(), now, &mut buf)
        .map_err(|e| anyhow::anyhow!("no replica set for {what} in {}: {e}", store.describe))?;
    let min_success = set.min_success();
    let replicas: Vec<serde_json::Value> = set
        .indices()
        .iter()
        .map(|&i| {
            let d = ring.instance_at(i);
            serde_json::json!({
                "id": d.id,
                "address": d.addr,
                "zone": d.zone,
                "state": d.known_state().map_or_else(|| format!("UNKNOWN({})", d.state), |s| s.to_string()),
                "healthy": ring.is_healthy(i, Operation::REPORTING, now),
            })
        })
        .collect();
    if args.output == Output::Json {
        let v = serde_json::json!({
            "key": key,
            "replication_factor": args.replication_factor,
            "zone_awareness_enabled": args.zone_awareness_enabled,
            "min_success": min_success,
            "replicas": replicas,
        });
        return Ok(format!("{v:#}\n"));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Replicas of {what}: RF {}{}, {} replicas, quorum {min_success}\n",
        args.replication_factor,
        if args.zone_awareness_enabled {
            " zone-aware"
        } else {
            ""
        },
        replicas.len(),
    );
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("ADDRESS", Align::Left),
        ("ZONE", Align::Left),
        ("STATE", Align::Left),
        ("HEALTHY", Align::Left),
    ]);
    for r in &replicas {
        let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
        t.row(vec![
            s("id"),
            s("address"),
            s("zone"),
            s("state"),
            if r["healthy"] == true { "yes" } else { "no" }.to_owned(),
        ]);
    }
    out.push_str(&t.render());
    if replicas.len() < args.replication_factor {
        let _ = writeln!(
            out,
            "\n  {} of {} replicas listed: unhealthy replicas are left out of a set (the write \
             still succeeds while the quorum of {min_success} is met).",
            replicas.len(),
            args.replication_factor
        );
    }
    Ok(out)
}

/// The report of a many-key lookup: one row (or JSON object) per key, in input order,
/// replicas by id; a key with no replica set gets its error instead.
fn lookup_many(
    args: &LookupArgs,
    ring: &RingSnapshot,
    keys: &[u32],
    now: SystemTime,
    buf: &mut GetBuffer,
) -> String {
    let op = args.op.operation();
    let mut failed = 0usize;
    let mut out = String::with_capacity(keys.len() * 64);
    let mut t = Table::new(&[
        ("KEY", Align::Right),
        ("QUORUM", Align::Right),
        ("REPLICAS", Align::Left),
    ]);
    let mut json = Vec::with_capacity(if args.output == Output::Json {
        keys.len()
    } else {
        0
    });
    for &key in keys {
        match ring.get(key, op, now, buf) {
            Ok(set) => {
                let ids: Vec<&str> = set
                    .indices()
                    .iter()
                    .map(|&i| ring.instance_at(i).id.as_str())
                    .collect();
                if args.output == Output::Json {
                    json.push(serde_json::json!({
                        "key": key, "min_success": set.min_success(), "replicas": ids,
                    }));
                } else {
                    t.row(vec![
                        key.to_string(),
                        set.min_success().to_string(),
                        ids.join(","),
                    ]);
                }
            }
            Err(e) => {
                failed += 1;
                if args.output == Output::Json {
                    json.push(serde_json::json!({"key": key, "error": e.to_string()}));
                } else {
                    t.row(vec![key.to_string(), "-".to_owned(), format!("error: {e}")]);
                }
            }
        }
    }
    if args.output == Output::Json {
        let v = serde_json::json!({
            "replication_factor": args.replication_factor,
            "zone_awareness_enabled": args.zone_awareness_enabled,
            "failed": failed,
            "lookups": json,
        });
        return format!("{v}\n");
    }
    out.push_str(&t.render());
    if failed > 0 {
        let _ = writeln!(
            out,
            "\n  {failed} of {} keys have no replica set.",
            keys.len()
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringkit_ring::InstanceState;

    /// `ring` subcommand flags on their own, for parsing.
    #[derive(clap::Parser)]
    struct LookupOnly {
        #[command(flatten)]
        args: LookupArgs,
    }

    #[test]
    fn ring_commands_without_flags_read_with_the_ring_crates_default_config() {
        use clap::Parser as _;
        let parsed = LookupOnly::try_parse_from(["ringkit", "1"]).unwrap().args;
        assert_eq!(ring_config(&parsed.store), RingConfig::default());
        assert_eq!(lookup_ring_config(&parsed), RingConfig::default());
    }
    use ringkit_ring::snapshot::unix_seconds;

    #[test]
    fn labels_parse_sorted_with_metric_name_and_escapes() {
        let l = parse_labels(r#"up{job="api", instance="a\"b\\c"}"#).unwrap();
        assert_eq!(
            l,
            vec![
                ("__name__".into(), "up".into()),
                ("instance".into(), "a\"b\\c".into()),
                ("job".into(), "api".into()),
            ]
        );
        assert_eq!(
            parse_labels(r#"{b="2",a="1",}"#).unwrap(),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
    }

    #[test]
    fn bad_labels_are_errors_not_panics() {
        for bad in [
            "",
            "{}",
            "{a=1}",
            r#"{a="1""#,
            r#"{a="1",a="2"}"#,
            r#"{1a="x"}"#,
            r#"{a="\q"}"#,
            "9up",
            r#"{a="é"#,
        ] {
            assert!(parse_labels(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn table_lists_every_instance_and_zone_shares() {
        let mut d = Desc::new();
        d.add_instance(
            "ing-1",
            "h1:1",
            "a",
            vec![1 << 30, 3 << 30],
            InstanceState::Active,
            1,
            1000,
        );
        d.add_instance(
            "ing-2",
            "h2:1",
            "b",
            vec![2 << 30],
            InstanceState::Active,
            1,
            900,
        );
        let ring = RingSnapshot::new(d, RingConfig::default()).expect("valid ring config");
        let rows = ring_page::rows(&ring, unix_seconds(1000));
        let text = render_show(&ring, &rows, 1000, "collectors/ring", Output::Table);
        assert!(text.contains("ing-1"), "{text}");
        assert!(text.contains("UNHEALTHY"), "stale ing-2: {text}");
        assert!(text.contains("100s ago"), "{text}");
        // First owners: ing-2 holds (1<<30, 2<<30], ing-1 the other three quarters.
        assert!(text.contains("75.000%"), "{text}");
        assert!(text.contains("25.000%"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&render_show(
            &ring,
            &rows,
            1000,
            "collectors/ring",
            Output::Json,
        ))
        .unwrap();
        assert_eq!(json["shards"].as_array().unwrap().len(), 2);
        assert_eq!(json["zones"][0]["zone"], "a");
    }

    #[test]
    fn many_keys_come_from_arguments_and_stdin_within_the_bound() {
        let args: Vec<String> = ["7", "-", "9"].iter().map(|s| s.to_string()).collect();
        let stdin = std::io::Cursor::new("1\n\n 2 \n4294967295\n");
        assert_eq!(
            lookup_tokens(&args, stdin, 10).unwrap(),
            [7, 1, 2, 4294967295, 9]
        );
        let err = lookup_tokens(&args, std::io::Cursor::new("1\nx\n"), 10).unwrap_err();
        assert!(format!("{err:#}").contains("stdin line 2"), "{err:#}");
        let err = lookup_tokens(&args, std::io::Cursor::new("1\n2\n3\n"), 3).unwrap_err();
        assert!(format!("{err:#}").contains("--max-keys=3"), "{err:#}");
    }
}
