//! `ringkit demo --offline`: the ring's story in one process (the default `ringkit demo`
//! runs real processes, see `demo_net.rs`).
//!
//! 1. Three ingesters in zones a/b/c register with no tokens (visible, owning nothing),
//!    then claim 512 random tokens nobody holds and become ACTIVE.
//! 2. 100,000 synthetic series of 10 tenants are hashed (FNV-1 32 of tenant + labels) and
//!    placed with RF=3, zone-aware.
//! 3. A fourth ingester joins zone a: it takes over only the ranges just before its tokens,
//!    so about a quarter of the series change their first owner, all of them to it.
//! 4. One ingester stops heartbeating: writes skip it and still reach quorum (2 of 3).
//!
//! Everything runs on the pure ring crate with no network, so it finishes in seconds.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::SmallRng;
use ringkit_ring::hash::shard_by_all_labels;
use ringkit_ring::tokens::{RandomTokenGenerator, TokenGenerator};
use ringkit_ring::{Desc, GetBuffer, InstanceState, Operation, RingConfig, RingSnapshot};

use crate::table::{Align, Table};

/// Options of `ringkit demo`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DemoArgs {
    /// Tell the story in one process with no network (the pure ring crate), instead of
    /// starting real ingesters and a distributor on 127.0.0.1.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Number of synthetic series to place (--offline only).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) series: usize,
    /// Number of tenants the series are spread over.
    #[arg(long, default_value_t = 10)]
    pub(crate) tenants: usize,
    /// Tokens per ingester (Cortex deployments use 512; dskit's default is 128).
    #[arg(long, default_value_t = 512)]
    pub(crate) tokens: usize,
    /// Seed of the token generator, so a run can be repeated exactly (--offline only).
    #[arg(long, default_value_t = 2026)]
    pub(crate) seed: u64,
}

/// Metric names of the synthetic series (shared with the networked demo).
pub(crate) const METRICS: [&str; 10] = [
    "up",
    "node_cpu_seconds_total",
    "node_memory_MemAvailable_bytes",
    "node_network_receive_bytes_total",
    "node_filesystem_avail_bytes",
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "process_resident_memory_bytes",
    "go_goroutines",
    "prometheus_tsdb_head_series",
];

/// One synthetic series: tenant and its ring key.
struct Series {
    tenant: usize,
    key: u32,
}

fn synthetic_series(count: usize, tenants: usize) -> Vec<Series> {
    (0..count)
        .map(|i| {
            let tenant = i % tenants;
            let metric = METRICS[(i / tenants) % METRICS.len()];
            let host = format!("host-{}:9100", i / tenants / METRICS.len());
            let tenant_id = format!("tenant-{tenant}");
            // Labels sorted by name, as remote write sends them.
            let key = shard_by_all_labels(
                &tenant_id,
                [
                    ("__name__", metric),
                    ("instance", host.as_str()),
                    ("job", "node"),
                ],
            );
            Series { tenant, key }
        })
        .collect()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Registers an instance the way the lifecycler does: first with no tokens (so peers see
/// it at once), then with tokens nobody holds, ACTIVE.
fn join(desc: &mut Desc, id: &str, zone: &str, tokens: usize, rng: &mut SmallRng, now: i64) {
    let addr = format!("{id}.ingester.svc:9095");
    desc.add_instance(
        id,
        &addr,
        zone,
        Vec::new(),
        InstanceState::Pending,
        now,
        now,
    );
    let taken = desc.all_tokens();
    let mine = RandomTokenGenerator::new()
        .generate_tokens(tokens, &taken, rng)
        .expect("the demo ring has plenty of free tokens");
    desc.add_instance(id, &addr, zone, mine, InstanceState::Active, now, now);
}

fn pct(part: usize, whole: usize) -> String {
    if whole == 0 {
        return "-".into();
    }
    format!("{:.2} %", 100.0 * part as f64 / whole as f64)
}

/// First owner and replicas of every series for `op` at `now`.
fn place(ring: &RingSnapshot, series: &[Series], op: Operation, now: SystemTime) -> Placement {
    let mut buf = GetBuffer::new();
    let mut first = Vec::with_capacity(series.len());
    let mut replicas = Vec::with_capacity(series.len());
    let mut failed = 0;
    for s in series {
        match ring.get(s.key, op, now, &mut buf) {
            Ok(set) => {
                // The first owner is the instance of the first token after the key.
                let owner = ring.token_owners()[ring.search_token(s.key)];
                first.push(ring.instance_at(owner).id.clone());
                let mut ids: Vec<String> = set.instances().map(|d| d.id.clone()).collect();
                ids.sort();
                replicas.push(ids);
            }
            Err(_) => {
                failed += 1;
                first.push(String::new());
                replicas.push(Vec::new());
            }
        }
    }
    Placement {
        first,
        replicas,
        failed,
    }
}

struct Placement {
    first: Vec<String>,
    replicas: Vec<Vec<String>>,
    failed: usize,
}

fn ownership_table(ring: &RingSnapshot, placement: &Placement) -> String {
    let mut first_count: BTreeMap<&str, usize> = BTreeMap::new();
    let mut replica_count: BTreeMap<&str, usize> = BTreeMap::new();
    for f in &placement.first {
        *first_count.entry(f).or_default() += 1;
    }
    for r in &placement.replicas {
        for id in r {
            *replica_count.entry(id).or_default() += 1;
        }
    }
    let total = placement.first.len();
    let mut t = Table::new(&[
        ("ingester", Align::Left),
        ("zone", Align::Left),
        ("state", Align::Left),
        ("tokens", Align::Right),
        ("keyspace (ring)", Align::Right),
        ("keyspace (zone)", Align::Right),
        ("series (1st owner)", Align::Right),
        ("series (replicas)", Align::Right),
    ]);
    for (i, d) in ring.instances().iter().enumerate() {
        let idx = i as u32;
        let first = first_count.get(d.id.as_str()).copied().unwrap_or(0);
        let reps = replica_count.get(d.id.as_str()).copied().unwrap_or(0);
        t.row(vec![
            d.id.clone(),
            d.zone.clone(),
            d.state().to_string(),
            d.tokens.len().to_string(),
            format!("{:.2} %", 100.0 * ring.ownership(idx)),
            format!("{:.2} %", 100.0 * ring.ownership_in_zone(idx)),
            format!("{first} ({})", pct(first, total)),
            format!("{reps} ({})", pct(reps, total)),
        ]);
    }
    t.render()
}

/// Runs the demo, writing its report to `out`.
pub(crate) fn run(args: &DemoArgs, out: &mut impl Write) -> anyhow::Result<()> {
    anyhow::ensure!(args.tenants > 0, "--tenants must be at least 1");
    anyhow::ensure!(args.tokens > 0, "--tokens must be at least 1");
    let started = Instant::now();
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let now_secs = unix_now();
    let now = SystemTime::now();
    let cfg = RingConfig {
        replication_factor: 3,
        zone_awareness_enabled: true,
        heartbeat_timeout: Duration::from_secs(60),
        ..RingConfig::default()
    };

    writeln!(
        out,
        "ringkit demo: the hash ring of Cortex/Mimir/Loki, in one process (no network)"
    )?;
    writeln!(
        out,
        "RF=3, zone-aware, {} tokens per ingester, heartbeat timeout 60s, seed {}\n",
        args.tokens, args.seed
    )?;

    // Step 1: three ingesters join.
    writeln!(out, "== Step 1: three ingesters join (zones a, b, c)")?;
    let mut desc = Desc::new();
    for zone in ["a", "b", "c"] {
        let id = format!("ingester-zone-{zone}-0");
        let addr = format!("{id}.ingester.svc:9095");
        desc.add_instance(
            &id,
            &addr,
            zone,
            Vec::new(),
            InstanceState::Pending,
            now_secs,
            now_secs,
        );
    }
    let pending = RingSnapshot::new(desc.clone(), cfg.clone())?;
    writeln!(
        out,
        "  registered with no tokens: {} instances visible, {} own tokens (they load their data first)",
        pending.instances_count(),
        pending.instances_with_tokens_count()
    )?;
    let mut desc = Desc::new();
    for zone in ["a", "b", "c"] {
        join(
            &mut desc,
            &format!("ingester-zone-{zone}-0"),
            zone,
            args.tokens,
            &mut rng,
            now_secs,
        );
    }
    let ring3 = RingSnapshot::new(desc.clone(), cfg.clone())?;
    writeln!(
        out,
        "  claimed tokens and went ACTIVE: {} tokens in the ring\n",
        ring3.tokens().len()
    )?;

    // Step 2: place series.
    let series = synthetic_series(args.series, args.tenants);
    writeln!(
        out,
        "== Step 2: {} series of {} tenants hashed (FNV-1 32 of tenant + labels) and placed with RF=3",
        series.len(),
        args.tenants
    )?;
    let p3 = place(&ring3, &series, Operation::WRITE, now);
    write!(out, "{}", ownership_table(&ring3, &p3))?;
    writeln!(
        out,
        "  with 3 zones and RF=3 every ingester holds a replica of every series.\n"
    )?;

    // Step 3: a fourth ingester joins zone a.
    writeln!(out, "== Step 3: ingester-zone-a-1 joins zone a")?;
    join(
        &mut desc,
        "ingester-zone-a-1",
        "a",
        args.tokens,
        &mut rng,
        now_secs,
    );
    let ring4 = ring3.update(desc.clone());
    let p4 = place(&ring4, &series, Operation::WRITE, now);
    write!(out, "{}", ownership_table(&ring4, &p4))?;
    let mut moved_first: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut moved_replica: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut first_changed = 0usize;
    let mut replicas_changed = 0usize;
    for i in 0..series.len() {
        if p3.first[i] != p4.first[i] {
            first_changed += 1;
            *moved_first
                .entry((p3.first[i].clone(), p4.first[i].clone()))
                .or_default() += 1;
        }
        if p3.replicas[i] != p4.replicas[i] {
            replicas_changed += 1;
            let gone: Vec<&String> = p3.replicas[i]
                .iter()
                .filter(|r| !p4.replicas[i].contains(r))
                .collect();
            let came: Vec<&String> = p4.replicas[i]
                .iter()
                .filter(|r| !p3.replicas[i].contains(r))
                .collect();
            for (g, c) in gone.iter().zip(came.iter()) {
                *moved_replica
                    .entry(((*g).clone(), (*c).clone()))
                    .or_default() += 1;
            }
        }
    }
    writeln!(
        out,
        "  first owner changed for {first_changed} of {} series ({}; expected about 25 %):",
        series.len(),
        pct(first_changed, series.len())
    )?;
    let mut t = Table::new(&[
        ("from", Align::Left),
        ("to", Align::Left),
        ("series", Align::Right),
    ]);
    for ((from, to), n) in &moved_first {
        t.row(vec![from.clone(), to.clone(), n.to_string()]);
    }
    write!(out, "{}", t.render())?;
    writeln!(
        out,
        "  replica set changed for {replicas_changed} series ({}): zone a's replica now splits between its two ingesters:",
        pct(replicas_changed, series.len())
    )?;
    let mut t = Table::new(&[
        ("from", Align::Left),
        ("to", Align::Left),
        ("replicas", Align::Right),
    ]);
    for ((from, to), n) in &moved_replica {
        t.row(vec![from.clone(), to.clone(), n.to_string()]);
    }
    write!(out, "{}", t.render())?;
    let only_newcomer = moved_first.keys().all(|(_, to)| to == "ingester-zone-a-1");
    writeln!(
        out,
        "  every moved series went to the newcomer: {}\n",
        if only_newcomer { "yes" } else { "NO" }
    )?;

    // Step 4: one ingester stops heartbeating.
    writeln!(
        out,
        "== Step 4: ingester-zone-b-0 stops heartbeating (last heartbeat 2 minutes ago)"
    )?;
    desc.ingesters
        .get_mut("ingester-zone-b-0")
        .expect("joined above")
        .timestamp = now_secs - 120;
    let ring_sick = ring4.update(desc.clone());
    let mut buf = GetBuffer::new();
    let mut writes: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_size: BTreeMap<usize, usize> = BTreeMap::new();
    let mut failed = 0usize;
    let mut per_tenant_failed = vec![0usize; args.tenants];
    for s in &series {
        match ring_sick.get(s.key, Operation::WRITE, now, &mut buf) {
            Ok(set) => {
                *by_size.entry(set.len()).or_default() += 1;
                for d in set.instances() {
                    *writes.entry(d.id.clone()).or_default() += 1;
                }
            }
            Err(_) => {
                failed += 1;
                per_tenant_failed[s.tenant] += 1;
            }
        }
    }
    let mut t = Table::new(&[
        ("ingester", Align::Left),
        ("healthy", Align::Left),
        ("writes", Align::Right),
        ("share of series", Align::Right),
    ]);
    for (i, d) in ring_sick.instances().iter().enumerate() {
        let healthy = ring_sick.is_healthy(i as u32, Operation::WRITE, now);
        let n = writes.get(&d.id).copied().unwrap_or(0);
        t.row(vec![
            d.id.clone(),
            if healthy {
                "yes".into()
            } else {
                "NO (stale heartbeat)".into()
            },
            n.to_string(),
            pct(n, series.len()),
        ]);
    }
    write!(out, "{}", t.render())?;
    for (size, n) in &by_size {
        writeln!(
            out,
            "  {n} series written to {size} healthy replicas (quorum 2 of 3 still reachable)"
        )?;
    }
    writeln!(
        out,
        "  series whose write would fail: {failed}; tenants fully writable: {} of {}",
        per_tenant_failed.iter().filter(|&&n| n == 0).count(),
        args.tenants
    )?;
    debug_assert_eq!(p3.failed + p4.failed, 0);

    writeln!(out, "\n== Summary")?;
    let mut t = Table::new(&[("step", Align::Left), ("result", Align::Left)]);
    t.row(vec![
        "join".into(),
        format!("3 ingesters x {} tokens, ACTIVE", args.tokens),
    ]);
    t.row(vec![
        "placement".into(),
        format!("{} series, RF=3, 0 failed", series.len()),
    ]);
    t.row(vec![
        "4th ingester".into(),
        format!(
            "{} of series changed first owner, all to the newcomer: {}",
            pct(first_changed, series.len()),
            if only_newcomer { "yes" } else { "no" }
        ),
    ]);
    t.row(vec![
        "1 unhealthy".into(),
        format!("{failed} writes without quorum"),
    ]);
    t.row(vec!["time".into(), format!("{:.0?}", started.elapsed())]);
    write!(out, "{}", t.render())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_moves_about_a_quarter_only_to_the_newcomer_and_keeps_quorum() {
        let args = DemoArgs {
            offline: true,
            series: 20_000,
            tenants: 10,
            tokens: 512,
            seed: 7,
        };
        let mut out = Vec::new();
        run(&args, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("every moved series went to the newcomer: yes"),
            "{text}"
        );
        assert!(text.contains("series whose write would fail: 0;"), "{text}");
        let line = text
            .lines()
            .find(|l| l.contains("first owner changed for"))
            .unwrap();
        let pct: f64 = line
            .split('(')
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!((18.0..32.0).contains(&pct), "moved {pct} %");
    }

    #[test]
    fn synthetic_series_are_distinct_and_spread_over_tenants() {
        let s = synthetic_series(1000, 10);
        let mut keys: Vec<u32> = s.iter().map(|s| s.key).collect();
        keys.sort();
        keys.dedup();
        assert!(keys.len() > 990, "hash collisions are rare");
        assert_eq!(s.iter().filter(|s| s.tenant == 3).count(), 100);
    }
}
