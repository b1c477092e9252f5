//! `ringkit loadgen`: a Prometheus remote-write load generator for a running cluster.
//!
//! It writes node_exporter-like series (`job="node"`, `instance="host-N:9100"`, ~90 metric
//! series per instance: CPU modes, memory, filesystems, network, disks...) for one or more
//! tenants (`X-Scope-OrgID`), `--samples-per-request` samples per push, from
//! `--concurrency` workers, either as fast as it can or once per `--scrape-interval`.
//! Only 2xx answers count as throughput; every other answer is counted by status (and
//! connection failures as `conn`). With `--read-back` it reads every acknowledged sample back
//! through remote read and reports what is missing. For soaks, `--report-interval` prints a
//! line of rate and latency percentiles, and `--watch-pid` / `--watch-dir` add each process'
//! CPU, RSS and open fds and each directory's size, also written to `--csv`. At the end,
//! each watched pid's CPU seconds give samples per CPU-second.
//!
//! Each series belongs to one request slot, and each worker sends its slots' requests one
//! after the other, so a series' samples are always sent in timestamp order.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ringkit_ingest::decode::{DecodeLimits, encode_snappy};
use ringkit_ingest::prompb::{
    Label, LabelMatcher, MatcherType, Query, Sample, TimeSeries, WriteRequest,
};

use crate::duration::parse_duration;

/// Flags of `ringkit loadgen`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct LoadgenArgs {
    /// Remote-write URL of the distributor.
    #[arg(long = "url", default_value = "http://127.0.0.1:8080/api/v1/push")]
    pub(crate) url: String,
    /// Remote-read URL for --read-back (default: the write URL ending in /api/v1/read).
    #[arg(long = "read-url")]
    pub(crate) read_url: Option<String>,
    /// Read every acknowledged sample back through remote read at the end.
    #[arg(long = "read-back", default_value_t = false)]
    pub(crate) read_back: bool,
    /// Series per tenant.
    #[arg(long = "series", default_value_t = 10_000)]
    pub(crate) series: usize,
    /// Tenants (`<tenant-prefix>-0` ...), each with its own copy of the series.
    #[arg(long = "tenants", default_value_t = 1)]
    pub(crate) tenants: usize,
    /// Prefix of the tenant names.
    #[arg(long = "tenant-prefix", default_value = "loadgen")]
    pub(crate) tenant_prefix: String,
    /// Samples (one per series) in one push.
    #[arg(long = "samples-per-request", default_value_t = 1000)]
    pub(crate) samples_per_request: usize,
    /// Each series gets a sample once per interval (0: as fast as the cluster answers).
    #[arg(long = "scrape-interval", default_value = "0s", value_parser = parse_duration)]
    pub(crate) scrape_interval: Duration,
    /// Pushes in flight at once (workers).
    #[arg(long = "concurrency", default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// How long to write.
    #[arg(long = "duration", default_value = "10s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Timeout of one push or read.
    #[arg(long = "timeout", default_value = "10s", value_parser = parse_duration)]
    pub(crate) timeout: Duration,
    /// Print a progress line this often (0: only the summary).
    #[arg(long = "report-interval", default_value = "0s", value_parser = parse_duration)]
    pub(crate) report_interval: Duration,
    /// A process to watch (CPU seconds, RSS, open fds); repeat for several.
    #[arg(long = "watch-pid")]
    pub(crate) watch_pids: Vec<u32>,
    /// A directory whose size to watch (WAL, TSDB); repeat for several.
    #[arg(long = "watch-dir")]
    pub(crate) watch_dirs: Vec<PathBuf>,
    /// Write the progress lines to this CSV file too.
    #[arg(long = "csv")]
    pub(crate) csv: Option<PathBuf>,
}

/// Remembered acknowledged pushes (one timestamp each) beyond which read-back is given up.
const MAX_TRACKED_PUSHES: usize = 8_000_000;

/// Most latency values kept (log buckets 2% wide, from 1 µs to beyond 100 s).
const BUCKETS: usize = 1024;

/// A latency histogram with 2%-wide logarithmic buckets (bounded memory, lock-free).
struct Histogram {
    counts: Vec<AtomicU64>,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn bucket(micros: u64) -> usize {
        let b = ((micros.max(1) as f64).ln() / 1.02f64.ln()) as usize;
        b.min(BUCKETS - 1)
    }

    fn record(&self, d: Duration) {
        let b = Histogram::bucket(d.as_micros() as u64);
        self.counts[b].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the counts out (the histogram restarts empty).
    fn take(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect()
    }
}

/// Quantiles `qs` (0..1) of taken counts, in milliseconds (upper bucket bounds).
fn quantiles(counts: &[u64], qs: &[f64]) -> Vec<f64> {
    let total: u64 = counts.iter().sum();
    qs.iter()
        .map(|q| {
            if total == 0 {
                return 0.0;
            }
            let rank = ((total as f64) * q).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, c) in counts.iter().enumerate() {
                seen += c;
                if seen >= rank {
                    return 1.02f64.powi(i as i32 + 1) / 1000.0;
                }
            }
            1.02f64.powi(BUCKETS as i32) / 1000.0
        })
        .collect()
}

/// One series of the node_exporter-like set an instance exports: name, extra labels, and
/// whether it is a counter (grows) or a gauge (wanders).
struct Template {
    name: &'static str,
    labels: Vec<(&'static str, String)>,
    counter: bool,
}

/// The ~90 series one instance exports.
fn instance_templates() -> Vec<Template> {
    let mut t = Vec::new();
    let mut add = |name: &'static str, labels: Vec<(&'static str, String)>, counter: bool| {
        t.push(Template {
            name,
            labels,
            counter,
        })
    };
    for cpu in 0..4 {
        for mode in [
            "idle", "iowait", "irq", "nice", "softirq", "steal", "system", "user",
        ] {
            add(
                "node_cpu_seconds_total",
                vec![("cpu", cpu.to_string()), ("mode", mode.into())],
                true,
            );
        }
    }
    for m in [
        "node_memory_MemTotal_bytes",
        "node_memory_MemFree_bytes",
        "node_memory_MemAvailable_bytes",
        "node_memory_Buffers_bytes",
        "node_memory_Cached_bytes",
        "node_memory_SwapTotal_bytes",
        "node_memory_SwapFree_bytes",
        "node_memory_Active_bytes",
        "node_memory_Inactive_bytes",
        "node_memory_Dirty_bytes",
    ] {
        add(m, Vec::new(), false);
    }
    for (device, fstype, mountpoint) in [
        ("/dev/sda1", "ext4", "/"),
        ("/dev/sda2", "ext4", "/var"),
        ("tmpfs", "tmpfs", "/run"),
    ] {
        for m in [
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "node_filesystem_files_free",
        ] {
            add(
                m,
                vec![
                    ("device", device.into()),
                    ("fstype", fstype.into()),
                    ("mountpoint", mountpoint.into()),
                ],
                false,
            );
        }
    }
    for device in ["eth0", "lo"] {
        for m in [
            "node_network_receive_bytes_total",
            "node_network_transmit_bytes_total",
            "node_network_receive_packets_total",
            "node_network_transmit_packets_total",
            "node_network_receive_errs_total",
        ] {
            add(m, vec![("device", device.into())], true);
        }
    }
    for device in ["sda", "sdb"] {
        for m in [
            "node_disk_read_bytes_total",
            "node_disk_written_bytes_total",
            "node_disk_io_time_seconds_total",
            "node_disk_reads_completed_total",
            "node_disk_writes_completed_total",
        ] {
            add(m, vec![("device", device.into())], true);
        }
    }
    for m in ["node_load1", "node_load5", "node_load15"] {
        add(m, Vec::new(), false);
    }
    for m in [
        "node_context_switches_total",
        "node_forks_total",
        "node_intr_total",
    ] {
        add(m, Vec::new(), true);
    }
    for m in [
        "node_boot_time_seconds",
        "node_time_seconds",
        "node_procs_running",
        "node_procs_blocked",
        "node_entropy_available_bits",
        "node_filefd_allocated",
        "node_sockstat_TCP_inuse",
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_series_added",
    ] {
        add(m, Vec::new(), false);
    }
    t
}

/// The label sets of `n` series: instance `i / per_instance`, template `i % per_instance`;
/// labels sorted by name as Prometheus sends them.
fn series_labels(n: usize) -> Vec<Vec<Label>> {
    let templates = instance_templates();
    (0..n)
        .map(|i| {
            let t = &templates[i % templates.len()];
            let mut labels = vec![
                Label::new("__name__", t.name),
                Label::new("instance", instance_name(i / templates.len())),
                Label::new("job", "node"),
            ];
            labels.extend(t.labels.iter().map(|(k, v)| Label::new(*k, v.as_str())));
            labels.sort_by(|a, b| a.name.cmp(&b.name));
            labels
        })
        .collect()
}

fn instance_name(i: usize) -> String {
    format!("host-{i}:9100")
}

/// The value series `i` has at `ts`: a deterministic function, so read-back can check it.
fn value(i: usize, ts: i64, counter: bool) -> f64 {
    let secs = ts as f64 / 1000.0;
    if counter {
        (i % 97) as f64 * 1e6 + secs * ((i % 13) as f64 + 0.5)
    } else {
        (i % 89) as f64 * 1e3 + (secs / 60.0 + i as f64).sin() * 100.0
    }
}

/// A key identifying a label set.
fn label_key(labels: &[Label]) -> String {
    let mut v: Vec<(&str, &str)> = labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    v.sort();
    let mut s = String::new();
    for (n, val) in v {
        s.push_str(n);
        s.push('\u{1}');
        s.push_str(val);
        s.push('\u{2}');
    }
    s
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64
}

/// Counters shared by the workers and the reporter.
struct Stats {
    acked_samples: AtomicU64,
    acked_pushes: AtomicU64,
    failed_samples: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
    interval_latency: Histogram,
    total_latency: Mutex<Vec<u64>>,
    tracked: AtomicU64,
    tracking_overflow: AtomicBool,
}

impl Stats {
    fn error(&self, kind: String) {
        *self
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind)
            .or_default() += 1;
    }

    fn errors_text(&self) -> String {
        let e = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_empty() {
            return "none".into();
        }
        e.iter()
            .map(|(k, v)| format!("{k}×{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One request slot: a fixed group of one tenant's series, pushed again and again with new
/// timestamps.
struct Slot {
    tenant: usize,
    /// Index of the first series (within the tenant).
    first: usize,
    request: WriteRequest,
    counters: Vec<bool>,
    last_ts: i64,
    /// Timestamps of the acknowledged pushes (when read-back is on).
    acked: Vec<i64>,
}

/// `ringkit loadgen`: returns the exit code (1 when nothing was acknowledged or read-back
/// found a missing or wrong sample).
pub(crate) fn main(args: LoadgenArgs) -> i32 {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ringkit loadgen: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(ok) => i32::from(!ok),
        Err(e) => {
            eprintln!("ringkit loadgen: {e:#}");
            1
        }
    }
}

fn tenant_name(args: &LoadgenArgs, t: usize) -> String {
    format!("{}-{t}", args.tenant_prefix)
}

async fn run(args: LoadgenArgs) -> anyhow::Result<bool> {
    anyhow::ensure!(args.series > 0, "--series must be positive");
    anyhow::ensure!(args.tenants > 0, "--tenants must be positive");
    anyhow::ensure!(
        args.samples_per_request > 0,
        "--samples-per-request must be positive"
    );
    // No more workers than request slots (a worker without a slot would have nothing to do).
    let slots_needed = args.tenants * args.series.div_ceil(args.samples_per_request);
    let concurrency = args.concurrency.clamp(1, slots_needed);
    let http = reqwest::Client::builder()
        .timeout(args.timeout)
        .pool_max_idle_per_host(concurrency)
        .build()
        .context("HTTP client")?;
    let labels = series_labels(args.series);
    let templates = instance_templates();
    let counters: Vec<bool> = (0..args.series)
        .map(|i| templates[i % templates.len()].counter)
        .collect();

    // Slots, dealt round-robin to the workers.
    let mut per_worker: Vec<Vec<Slot>> = (0..concurrency).map(|_| Vec::new()).collect();
    let mut n = 0;
    for tenant in 0..args.tenants {
        for first in (0..args.series).step_by(args.samples_per_request) {
            let end = (first + args.samples_per_request).min(args.series);
            let request = WriteRequest {
                timeseries: labels[first..end]
                    .iter()
                    .map(|l| TimeSeries {
                        labels: l.clone(),
                        samples: vec![Sample::default()],
                        ..Default::default()
                    })
                    .collect(),
                metadata: Vec::new(),
            };
            per_worker[n % concurrency].push(Slot {
                tenant,
                first,
                request,
                counters: counters[first..end].to_vec(),
                last_ts: 0,
                acked: Vec::new(),
            });
            n += 1;
        }
    }
    let slots_total = n;
    let stats = Arc::new(Stats {
        acked_samples: AtomicU64::new(0),
        acked_pushes: AtomicU64::new(0),
        failed_samples: AtomicU64::new(0),
        errors: Mutex::default(),
        interval_latency: Histogram::new(),
        total_latency: Mutex::new(vec![0; BUCKETS]),
        tracked: AtomicU64::new(0),
        tracking_overflow: AtomicBool::new(false),
    });
    println!(
        "loadgen: {} tenant(s) × {} series, {} samples/request, concurrency {}, {} for {:?} against {}",
        args.tenants,
        args.series,
        args.samples_per_request,
        concurrency,
        if args.scrape_interval.is_zero() {
            "as fast as answered".to_owned()
        } else {
            format!("one sample per series every {:?}", args.scrape_interval)
        },
        args.duration,
        args.url
    );

    let start = Instant::now();
    let start_ms = now_ms();
    let deadline = start + args.duration;
    let cpu_before: Vec<Option<f64>> = args.watch_pids.iter().map(|p| cpu_seconds(*p)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reporter = (!args.report_interval.is_zero()).then(|| {
        let (args, stats, stop) = (args.clone(), Arc::clone(&stats), Arc::clone(&stop));
        tokio::spawn(async move { report_loop(&args, &stats, &stop, start).await })
    });

    let mut workers = Vec::new();
    for (w, slots) in per_worker.into_iter().enumerate() {
        let ctx = Worker {
            http: http.clone(),
            url: args.url.clone(),
            tenants: (0..args.tenants).map(|t| tenant_name(&args, t)).collect(),
            stats: Arc::clone(&stats),
            track: args.read_back,
            interval: args.scrape_interval,
            deadline,
            start,
            slots_total,
            worker: w,
            concurrency,
        };
        workers.push(tokio::spawn(ctx.run(slots)));
    }
    let mut slots = Vec::new();
    for w in workers {
        slots.extend(w.await.context("a worker panicked")?);
    }
    let elapsed = start.elapsed();
    let end_ms = now_ms();
    stop.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.await;
    }

    let acked = stats.acked_samples.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let lat = quantiles(
        &stats
            .total_latency
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
        &[0.5, 0.9, 0.99, 1.0],
    );
    println!(
        "acknowledged: {acked} samples in {} pushes over {secs:.1} s = {:.0} samples/s; not acknowledged: {} samples; errors: {}",
        stats.acked_pushes.load(Ordering::Relaxed),
        acked as f64 / secs,
        stats.failed_samples.load(Ordering::Relaxed),
        stats.errors_text()
    );
    println!(
        "push latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        lat[0], lat[1], lat[2], lat[3]
    );
    for (pid, before) in args.watch_pids.iter().zip(&cpu_before) {
        match (before, cpu_seconds(*pid)) {
            (Some(b), Some(a)) if a > *b => println!(
                "pid {pid}: {:.2} CPU seconds = {:.0} acknowledged samples per CPU-second",
                a - b,
                acked as f64 / (a - b)
            ),
            _ => println!("pid {pid}: no CPU time measured"),
        }
    }

    let mut ok = acked > 0;
    if args.read_back {
        if stats.tracking_overflow.load(Ordering::Relaxed) {
            println!(
                "read-back: skipped (more than {MAX_TRACKED_PUSHES} acknowledged pushes to remember)"
            );
        } else {
            let read_url = args
                .read_url
                .clone()
                .unwrap_or_else(|| args.url.replace("/api/v1/push", "/api/v1/read"));
            let r = read_back(&args, &http, &read_url, &labels, &slots, start_ms, end_ms).await?;
            println!(
                "read-back: {} of {} acknowledged samples read back; {} missing, {} with a wrong value, {} stored but not acknowledged",
                r.found, r.expected, r.missing, r.wrong, r.extra
            );
            ok &= r.missing == 0 && r.wrong == 0;
        }
    }
    Ok(ok)
}

/// One worker: pushes its slots in turn until the deadline.
struct Worker {
    http: reqwest::Client,
    url: String,
    tenants: Vec<String>,
    stats: Arc<Stats>,
    track: bool,
    interval: Duration,
    deadline: Instant,
    start: Instant,
    slots_total: usize,
    worker: usize,
    concurrency: usize,
}

impl Worker {
    async fn run(self, mut slots: Vec<Slot>) -> Vec<Slot> {
        if slots.is_empty() {
            return slots;
        }
        let mut round: u32 = 0;
        'rounds: loop {
            for (k, slot) in slots.iter_mut().enumerate() {
                if !self.interval.is_zero() {
                    // Slots are spread over the interval, as scrape offsets are.
                    let index = (k * self.concurrency + self.worker) as f64;
                    let offset = self.interval.mul_f64(index / self.slots_total as f64);
                    let due = self.start + self.interval * round + offset;
                    if due >= self.deadline {
                        break 'rounds;
                    }
                    tokio::time::sleep_until(due.into()).await;
                }
                if Instant::now() >= self.deadline {
                    break 'rounds;
                }
                self.push(slot).await;
            }
            round += 1;
        }
        slots
    }

    async fn push(&self, slot: &mut Slot) {
        let ts = now_ms().max(slot.last_ts + 1);
        slot.last_ts = ts;
        for (j, s) in slot.request.timeseries.iter_mut().enumerate() {
            s.samples[0] = Sample {
                value: value(slot.first + j, ts, slot.counters[j]),
                timestamp: ts,
            };
        }
        let n = slot.request.timeseries.len() as u64;
        let body = encode_snappy(&slot.request);
        let sent = Instant::now();
        let resp = self
            .http
            .post(&self.url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .header("X-Scope-OrgID", &self.tenants[slot.tenant])
            .body(body)
            .send()
            .await;
        let status = match resp {
            Ok(r) => {
                let status = r.status();
                // Read the answer so the connection can be reused.
                let _ = r.bytes().await;
                Ok(status)
            }
            Err(e) => Err(e),
        };
        let took = sent.elapsed();
        self.stats.interval_latency.record(took);
        {
            let mut total = self
                .stats
                .total_latency
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            total[Histogram::bucket(took.as_micros() as u64)] += 1;
        }
        match status {
            Ok(s) if s.is_success() => {
                self.stats.acked_samples.fetch_add(n, Ordering::Relaxed);
                self.stats.acked_pushes.fetch_add(1, Ordering::Relaxed);
                if self.track {
                    let tracked = self.stats.tracked.fetch_add(1, Ordering::Relaxed);
                    if tracked as usize >= MAX_TRACKED_PUSHES {
                        self.stats.tracking_overflow.store(true, Ordering::Relaxed);
                    } else {
                        slot.acked.push(ts);
                    }
                }
            }
            Ok(s) => {
                self.stats.failed_samples.fetch_add(n, Ordering::Relaxed);
                self.stats.error(s.as_u16().to_string());
            }
            Err(e) => {
                self.stats.failed_samples.fetch_add(n, Ordering::Relaxed);
                self.stats
                    .error(if e.is_timeout() { "timeout" } else { "conn" }.to_owned());
            }
        }
    }
}

/// CPU seconds (user + system, all threads) a process has used, from `/proc/<pid>/stat`
/// (clock ticks of 1/100 s, Linux' USER_HZ).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Resident memory of a process in bytes (`VmRSS`).
fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Total size of the files under `dir` (at most 1M entries walked).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    let mut budget = 1_000_000usize;
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            budget = budget.saturating_sub(1);
            if budget == 0 {
                return total;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map(|m| m.len()).unwrap_or(0),
                _ => {}
            }
        }
    }
    total
}

/// Prints (and writes to the CSV) a progress line every report interval until `stop`.
async fn report_loop(args: &LoadgenArgs, stats: &Stats, stop: &AtomicBool, start: Instant) {
    let mut csv = match &args.csv {
        Some(p) => match std::fs::File::create(p) {
            Ok(f) => Some(std::io::BufWriter::new(f)),
            Err(e) => {
                eprintln!("ringkit loadgen: {}: {e}", p.display());
                None
            }
        },
        None => None,
    };
    if let Some(f) = csv.as_mut() {
        let mut header = "elapsed_s,samples_per_s,p50_ms,p90_ms,p99_ms,errors".to_owned();
        for pid in &args.watch_pids {
            header.push_str(&format!(",pid{pid}_cpu_s,pid{pid}_rss_bytes,pid{pid}_fds"));
        }
        for (i, _) in args.watch_dirs.iter().enumerate() {
            header.push_str(&format!(",dir{i}_bytes"));
        }
        let _ = writeln!(f, "{header}");
        for (i, d) in args.watch_dirs.iter().enumerate() {
            println!("dir{i} = {}", d.display());
        }
    }
    let mut last_acked = 0;
    let mut last = Instant::now();
    loop {
        tokio::time::sleep(args.report_interval).await;
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let acked = stats.acked_samples.load(Ordering::Relaxed);
        let rate = (acked - last_acked) as f64 / now.duration_since(last).as_secs_f64();
        (last_acked, last) = (acked, now);
        let q = quantiles(&stats.interval_latency.take(), &[0.5, 0.9, 0.99]);
        let errors: u64 = stats
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum();
        let elapsed = start.elapsed().as_secs_f64();
        let mut line = format!(
            "{elapsed:7.1} s: {rate:9.0} samples/s, push p50 {:.1} ms p90 {:.1} ms p99 {:.1} ms, errors {errors}",
            q[0], q[1], q[2]
        );
        let mut row = format!(
            "{elapsed:.1},{rate:.0},{:.2},{:.2},{:.2},{errors}",
            q[0], q[1], q[2]
        );
        for pid in &args.watch_pids {
            let (cpu, rss, fds) = (cpu_seconds(*pid), rss_bytes(*pid), fd_count(*pid));
            line.push_str(&format!(
                "; pid {pid}: cpu {:.1} s, rss {:.1} MiB, {} fds",
                cpu.unwrap_or(0.0),
                rss.unwrap_or(0) as f64 / 1048576.0,
                fds.unwrap_or(0)
            ));
            row.push_str(&format!(
                ",{:.2},{},{}",
                cpu.unwrap_or(0.0),
                rss.unwrap_or(0),
                fds.unwrap_or(0)
            ));
        }
        for (i, d) in args.watch_dirs.iter().enumerate() {
            let size = dir_size(d);
            line.push_str(&format!("; dir{i} {:.1} MiB", size as f64 / 1048576.0));
            row.push_str(&format!(",{size}"));
        }
        println!("{line}");
        if let Some(f) = csv.as_mut() {
            let _ = writeln!(f, "{row}");
            let _ = f.flush();
        }
    }
}

/// What read-back found.
#[derive(Debug, Default)]
struct ReadBack {
    expected: u64,
    found: u64,
    missing: u64,
    wrong: u64,
    extra: u64,
}

/// Reads each tenant's series back, one instance at a time, and compares them with the
/// acknowledged pushes.
async fn read_back(
    args: &LoadgenArgs,
    http: &reqwest::Client,
    url: &str,
    labels: &[Vec<Label>],
    slots: &[Slot],
    start_ms: i64,
    end_ms: i64,
) -> anyhow::Result<ReadBack> {
    let per_instance = instance_templates().len();
    let index: HashMap<String, usize> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (label_key(l), i))
        .collect();
    let spr = args.samples_per_request;
    let mut acked_by_slot: HashMap<(usize, usize), &[i64]> = HashMap::new();
    for s in slots {
        acked_by_slot.insert((s.tenant, s.first / spr), &s.acked);
    }
    let templates = instance_templates();
    let mut r = ReadBack::default();
    for tenant in 0..args.tenants {
        let name = tenant_name(args, tenant);
        let instances = args.series.div_ceil(per_instance);
        for inst in 0..instances {
            let got = read_instance(http, url, &name, &instance_name(inst), start_ms, end_ms)
                .await
                .with_context(|| format!("reading back {name} {}", instance_name(inst)))?;
            let mut seen = vec![false; per_instance];
            for ts in got {
                let Some(&i) = index.get(&label_key(&ts.labels)) else {
                    r.extra += ts.samples.len() as u64;
                    continue;
                };
                seen[i % per_instance] = true;
                let counter = templates[i % per_instance].counter;
                let acked = acked_by_slot
                    .get(&(tenant, i / spr))
                    .copied()
                    .unwrap_or(&[]);
                let stored: HashMap<i64, f64> =
                    ts.samples.iter().map(|s| (s.timestamp, s.value)).collect();
                r.extra += stored
                    .keys()
                    .filter(|t| acked.binary_search(t).is_err())
                    .count() as u64;
                for t in acked {
                    r.expected += 1;
                    match stored.get(t) {
                        Some(v) if v.to_bits() == value(i, *t, counter).to_bits() => r.found += 1,
                        Some(_) => r.wrong += 1,
                        None => r.missing += 1,
                    }
                }
            }
            // Series of this instance that came back empty: all their samples are missing.
            for (k, was_seen) in seen.iter().enumerate() {
                let i = inst * per_instance + k;
                if *was_seen || i >= args.series {
                    continue;
                }
                let n = acked_by_slot.get(&(tenant, i / spr)).map_or(0, |a| a.len()) as u64;
                r.expected += n;
                r.missing += n;
            }
        }
    }
    Ok(r)
}

/// Remote-reads the series of one instance of a tenant in `[start, end]`.
async fn read_instance(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    instance: &str,
    start: i64,
    end: i64,
) -> anyhow::Result<Vec<TimeSeries>> {
    let eq = |name: &str, value: &str| LabelMatcher {
        r#type: MatcherType::Eq as i32,
        name: name.into(),
        value: value.into(),
    };
    let query = Query {
        start_timestamp_ms: start,
        end_timestamp_ms: end,
        matchers: vec![eq("job", "node"), eq("instance", instance)],
        hints: None,
    };
    let limits = DecodeLimits {
        max_compressed_size: 1 << 30,
        max_decompressed_size: 1 << 30,
    };
    crate::remote_read::read(http, url, tenant, query, &limits).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_node_exporter_like_distinct_and_sorted() {
        let per = instance_templates().len();
        assert!((80..=120).contains(&per), "{per} series per instance");
        let labels = series_labels(2 * per + 5);
        let keys: std::collections::HashSet<String> = labels.iter().map(|l| label_key(l)).collect();
        assert_eq!(keys.len(), labels.len(), "every series distinct");
        for l in &labels {
            assert!(l.windows(2).all(|w| w[0].name < w[1].name), "{l:?}");
            assert_eq!(l[0].name, "__name__");
        }
        let last = &labels[2 * per + 4];
        assert!(
            last.iter()
                .any(|l| l.name == "instance" && l.value == "host-2:9100")
        );
    }

    #[test]
    fn quantiles_come_from_the_log_buckets_within_two_percent() {
        let h = Histogram::new();
        for ms in 1..=100u64 {
            h.record(Duration::from_millis(ms));
        }
        let q = quantiles(&h.take(), &[0.5, 0.99, 1.0]);
        for (got, want) in q.iter().zip([50.0, 99.0, 100.0]) {
            assert!((got / want - 1.0).abs() < 0.03, "{got} vs {want}");
        }
        assert_eq!(quantiles(&h.take(), &[0.5]), [0.0], "take empties it");
    }

    #[test]
    fn own_process_stats_are_read_from_proc() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).is_some());
        assert!(rss_bytes(pid).unwrap() > 0);
        assert!(fd_count(pid).unwrap() > 0);
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("a")).unwrap();
        std::fs::write(t.path().join("a/x"), [0u8; 1000]).unwrap();
        std::fs::write(t.path().join("y"), [0u8; 24]).unwrap();
        assert_eq!(dir_size(t.path()), 1024);
    }
}
