//! What a head costs per series and per sample, measured: memory of a series holding 2 h of
//! 15 s samples, WAL bytes per sample, and replay speed.
//!
//! ```sh
//! cargo run --release -p ringkit-ingest --example head_footprint -- [series] [scrapes] [range_minutes]
//! ```
//!
//! With `range_minutes` (default 0: no cut), the head then runs one compaction with that block
//! range (blocks cut, head truncated, checkpoint replacing the WAL segments) before the
//! replay, so the replay reads a checkpoint and the WAL size after a cut is shown.
//!
//! Defaults: 20,000 series (node-exporter-like labels: 8 labels, 200 instances), 480 scrapes
//! 15 s apart (2 h), pushed 2,000 samples per request as Prometheus' remote write batches
//! them, into a head with a WAL (fsync off: it changes the time, not the bytes). Values, the
//! same mix as `ringkit-tsdb`'s `block_size` example so the numbers compare: 40 %
//! histogram-bucket counters, 20 % near-constant series, 15 % integer counters, 10 % memory
//! gauges (4 KiB steps), 10 % CPU-seconds counters (hundredths), 5 % two-decimal gauges.
//! Timestamps: per-instance offsets on the interval, 2 % of samples with up to 20 ms jitter.
//!
//! Memory is measured twice: the process' resident set (`VmRSS` from `/proc/self/status`,
//! and of it `RssAnon`, the heap, and `RssFile`, mapped file pages such as head chunk files)
//! before the head is made and after the last push, divided by the series count (allocator
//! overhead and fragmentation included; the example uses mimalloc, as the `ringkit` binary
//! does), and the head's own accounting
//! ([`Store::memory_bytes`](ringkit_ingest::store::Store::memory_bytes)). Then the head is
//! dropped and the directory replayed, timed.

use std::time::Instant;

/// The allocator of the `ringkit` binary, so resident memory is what a node would show.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use ringkit_ingest::head::{Head, HeadOptions};
use ringkit_ingest::prompb::{Label, Sample, TimeSeries};
use ringkit_ingest::store::StoreConfig;
use ringkit_ingest::wal::WalConfig;

/// splitmix64: a tiny deterministic generator (the numbers only need to look like metrics).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Bucket,
    NearConstant,
    IntCounter,
    MemoryGauge,
    CpuSeconds,
    DecimalGauge,
}

struct Series {
    labels: Vec<Label>,
    kind: Kind,
    value: f64,
    offset_ms: i64,
}

/// Resident memory in KiB: (`VmRSS`, `RssAnon`, `RssFile`) from `/proc/self/status`.
fn rss_kib() -> (u64, u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"), field("RssFile:"))
}

fn make_series(n: usize, rng: &mut Rng) -> Vec<Series> {
    let names = [
        "node_cpu_seconds_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_disk_read_bytes_total",
        "node_disk_io_time_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_load1",
        "node_hwmon_temp_celsius",
        "node_uname_info",
        "up",
        "process_open_fds",
    ];
    let modes = [
        "user", "system", "idle", "iowait", "irq", "softirq", "steal", "nice",
    ];
    (0..n)
        .map(|i| {
            let instance = i % 200;
            let name = names[(i / 200) % names.len()];
            let mut labels = vec![
                Label::new("__name__", name),
                Label::new("cluster", "eu-west-1"),
                Label::new(
                    "instance",
                    format!("10.0.{}.{}:9100", instance / 250, instance % 250),
                ),
                Label::new("job", "node"),
                Label::new("mode", modes[(i / 2400) % modes.len()]),
                Label::new("namespace", "monitoring"),
                Label::new("pod", format!("node-exporter-{:05x}", instance * 7919)),
                Label::new("series", (i / 2400 / modes.len()).to_string()),
            ];
            labels.sort();
            let kind = match rng.below(20) {
                0..=7 => Kind::Bucket,
                8..=11 => Kind::NearConstant,
                12..=14 => Kind::IntCounter,
                15..=16 => Kind::MemoryGauge,
                17..=18 => Kind::CpuSeconds,
                _ => Kind::DecimalGauge,
            };
            Series {
                labels,
                kind,
                value: rng.below(100_000) as f64,
                offset_ms: (instance as i64 * 53) % 15_000,
            }
        })
        .collect()
}

fn step(s: &mut Series, rng: &mut Rng) {
    s.value = match s.kind {
        Kind::Bucket => s.value + rng.below(3) as f64,
        Kind::NearConstant => s.value + if rng.below(50) == 0 { 1.0 } else { 0.0 },
        Kind::IntCounter => s.value + rng.below(200) as f64,
        Kind::MemoryGauge => (s.value + (rng.below(11) as f64 - 5.0) * 4096.0).max(0.0),
        Kind::CpuSeconds => ((s.value * 100.0).round() + rng.below(1500) as f64) / 100.0,
        Kind::DecimalGauge => ((s.value * 100.0).round() + rng.below(21) as f64 - 10.0) / 100.0,
    };
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(20_000, |a| a.parse().expect("series"));
    let scrapes: i64 = args.next().map_or(480, |a| a.parse().expect("scrapes"));
    let range_minutes: i64 = args.next().map_or(0, |a| a.parse().expect("range minutes"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = Rng(42);
    let mut series = make_series(n, &mut rng);
    let rss_before = rss_kib();
    let options = HeadOptions {
        store: StoreConfig {
            block_range_ms: if range_minutes > 0 {
                range_minutes * 60_000
            } else {
                StoreConfig::default().block_range_ms
            },
            ..StoreConfig::default()
        },
        wal: WalConfig {
            sync_every_write: false,
            ..WalConfig::default()
        },
        retention_ms: 0,
        blocks: (range_minutes > 0).then(|| {
            std::sync::Arc::new(ringkit_ingest::block::PrometheusBlocks)
                as std::sync::Arc<dyn ringkit_ingest::block::BlockStore>
        }),
        ..HeadOptions::default()
    };
    let (head, _) = Head::open_with(dir.path(), options.clone()).expect("open");
    let t0 = 1_765_000_000_000i64;
    let started = Instant::now();
    let mut samples = 0u64;
    for k in 0..scrapes {
        for part in series.chunks_mut(2000) {
            let batch: Vec<TimeSeries> = part
                .iter_mut()
                .map(|s| {
                    step(s, &mut rng);
                    let jitter = if rng.below(50) == 0 {
                        rng.below(21) as i64
                    } else {
                        0
                    };
                    TimeSeries {
                        labels: s.labels.clone(),
                        samples: vec![Sample {
                            value: s.value,
                            timestamp: t0 + k * 15_000 + s.offset_ms + jitter,
                        }],
                        ..Default::default()
                    }
                })
                .collect();
            let out = head.push("tenant-1", &batch).expect("push");
            assert!(out.first_error.is_none(), "{:?}", out.first_error);
            samples += out.appended as u64;
        }
    }
    let push_secs = started.elapsed().as_secs_f64();
    let rss_after = rss_kib();
    let store = head.store();
    let accounted = store.memory_bytes("tenant-1");
    let wal_bytes = head.wal_disk_bytes();
    println!("series {n}, scrapes {scrapes} (15 s apart), samples {samples}");
    println!(
        "push: {:.1} s, {:.0} samples/s (one thread, fsync off)",
        push_secs,
        samples as f64 / push_secs
    );
    let per_series =
        |after: u64, before: u64| (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!(
        "memory per series: {:.0} B resident (RSS {} -> {} KiB), of which {:.0} B heap \
         (RssAnon {} -> {} KiB) and {:.0} B mapped files (RssFile {} -> {} KiB); \
         {:.0} B accounted by the head",
        per_series(rss_after.0, rss_before.0),
        rss_before.0,
        rss_after.0,
        per_series(rss_after.1, rss_before.1),
        rss_before.1,
        rss_after.1,
        per_series(rss_after.2, rss_before.2),
        rss_before.2,
        rss_after.2,
        accounted as f64 / n as f64
    );
    let (mut chunk_bytes, mut label_bytes) = (0usize, 0usize);
    store.for_each_series("tenant-1", |_, labels, chunks| {
        label_bytes += labels.heap_size();
        chunk_bytes += chunks.map(|c| c.map_or(0, |c| c.len())).sum::<usize>();
    });
    println!(
        "of which per series: {:.0} B chunk data ({:.2} B per sample), {:.0} B packed labels",
        chunk_bytes as f64 / n as f64,
        chunk_bytes as f64 / samples as f64,
        label_bytes as f64 / n as f64
    );
    println!(
        "WAL: {} bytes, {:.2} B per sample (series records included)",
        wal_bytes,
        wal_bytes as f64 / samples as f64
    );
    let mut in_head = samples;
    if range_minutes > 0 {
        let started = Instant::now();
        let report = head.compact(t0 + scrapes * 15_000);
        assert!(report.errors.is_empty(), "{report:?}");
        in_head = head.store().sample_count("tenant-1") as u64;
        let block_bytes: u64 = head
            .blocks("tenant-1")
            .iter()
            .map(|(p, _)| {
                std::fs::read_dir(p.join("chunks"))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.metadata().map_or(0, |m| m.len()))
                            .sum()
                    })
                    .unwrap_or(0)
            })
            .sum();
        println!(
            "compaction ({range_minutes} min range): {} block(s) in {:.2} s, {:.2} B chunk data per \
             block sample; head keeps {} samples ({:.0} B/series accounted); WAL now {} bytes \
             (checkpoint + new segment)",
            report.blocks_cut,
            started.elapsed().as_secs_f64(),
            block_bytes as f64 / (samples - in_head) as f64,
            in_head,
            head.store().memory_bytes("tenant-1") as f64 / n as f64,
            head.wal_disk_bytes()
        );
    }
    drop(head);
    let started = Instant::now();
    let (head, stats) = Head::open_with(dir.path(), options).expect("replay");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(head.store().sample_count("tenant-1") as u64, in_head);
    println!(
        "replay: {:.2} s for {} samples in the head ({} read from WAL segments, {:.0} head samples/s)",
        secs,
        in_head,
        stats.samples,
        in_head as f64 / secs
    );
}
