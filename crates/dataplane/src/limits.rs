//! Per-process limits of the distributor (issue 14): in-flight pushes, their bytes and
//! the ingestion rate (Mimir's `-distributor.instance-limits.*`), and remote-read result
//! sizes (`-querier.max-fetched-series-per-query` and a samples bound).
//!
//! A push over an instance limit is refused before its body is decoded, with 503 and a
//! message naming the flag, as Mimir answers (the limit is the server's state, so the
//! client should retry later). A read over a result limit is refused with 400 and a
//! message naming the flag, since repeating it cannot succeed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Mimir's `-distributor.instance-limits.*` (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct InstanceLimits {
    /// `max-inflight-push-requests` (Mimir default 2000).
    pub max_inflight_push_requests: usize,
    /// `max-inflight-push-requests-bytes` (0): compressed body bytes of in-flight pushes.
    pub max_inflight_push_requests_bytes: usize,
    /// `max-ingestion-rate` (0): samples per second, an exponentially weighted average.
    pub max_ingestion_rate: f64,
}

impl Default for InstanceLimits {
    fn default() -> Self {
        InstanceLimits {
            max_inflight_push_requests: 2000,
            max_inflight_push_requests_bytes: 0,
            max_ingestion_rate: 0.0,
        }
    }
}

/// Remote-read result bounds (0 = unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadLimits {
    /// `-querier.max-fetched-series-per-query`: series in one query's merged answer (and
    /// in any one replica's answer). Mimir's default is 0; ringkit's is 100,000 because
    /// the distributor holds every replica's answer in memory at once.
    pub max_fetched_series_per_query: usize,
    /// `-querier.max-fetched-samples-per-query` (ringkit's own, 50,000,000): samples in
    /// one query's answer (Mimir bounds chunk bytes instead; ringkit has no chunks).
    pub max_fetched_samples_per_query: usize,
}

impl Default for ReadLimits {
    fn default() -> Self {
        ReadLimits {
            max_fetched_series_per_query: 100_000,
            max_fetched_samples_per_query: 50_000_000,
        }
    }
}

/// Why a request was refused by a limit.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Too many pushes in flight.
    #[error(
        "the write request has been rejected because the distributor exceeded the allowed number of inflight push requests ({0}); adjust -distributor.instance-limits.max-inflight-push-requests or scale out distributors"
    )]
    InflightRequests(usize),
    /// Too many bytes of pushes in flight.
    #[error(
        "the write request has been rejected because the distributor exceeded the allowed size of inflight push requests ({0} bytes); adjust -distributor.instance-limits.max-inflight-push-requests-bytes or scale out distributors"
    )]
    InflightBytes(usize),
    /// The ingestion rate is above the limit.
    #[error(
        "the write request has been rejected because the distributor exceeded the ingestion rate limit ({0} samples/s); adjust -distributor.instance-limits.max-ingestion-rate or scale out distributors"
    )]
    IngestionRate(f64),
    /// A remote-read answer has too many series.
    #[error(
        "the query exceeded the maximum number of series ({0}); narrow the matchers or the time range, or adjust -querier.max-fetched-series-per-query"
    )]
    Series(usize),
    /// A remote-read answer has too many samples.
    #[error(
        "the query exceeded the maximum number of samples ({0}); narrow the matchers or the time range, or adjust -querier.max-fetched-samples-per-query"
    )]
    Samples(usize),
}

impl LimitError {
    /// 503 for instance limits (retry later, as Mimir answers), 400 for read limits.
    pub fn http_status(&self) -> u16 {
        match self {
            LimitError::Series(_) | LimitError::Samples(_) => 400,
            _ => 503,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            LimitError::InflightRequests(_) => "max_inflight_push_requests",
            LimitError::InflightBytes(_) => "max_inflight_push_requests_bytes",
            LimitError::IngestionRate(_) => "max_ingestion_rate",
            LimitError::Series(_) => "max_fetched_series_per_query",
            LimitError::Samples(_) => "max_fetched_samples_per_query",
        }
    }
}

type Reason = Vec<(&'static str, &'static str)>;

/// Mimir's instance-limit metrics.
#[derive(Clone, Debug, Default)]
pub struct LimitMetrics {
    inflight: Gauge,
    inflight_bytes: Gauge,
    limits: Family<Reason, Gauge<f64, std::sync::atomic::AtomicU64>>,
    rejected: Family<Reason, Counter>,
    rate: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl LimitMetrics {
    /// Registers `cortex_distributor_inflight_push_requests`, `..._bytes`,
    /// `cortex_distributor_instance_limits{limit}`,
    /// `cortex_distributor_ingestion_rate_samples_per_second` and
    /// `cortex_distributor_instance_rejected_requests_total{reason}`.
    pub fn register(registry: &mut Registry) -> LimitMetrics {
        let m = LimitMetrics::default();
        registry.register(
            "cortex_distributor_inflight_push_requests",
            "Current number of inflight push requests in distributor.",
            m.inflight.clone(),
        );
        registry.register(
            "cortex_distributor_inflight_push_requests_bytes",
            "Current sum of inflight push requests in distributor in bytes.",
            m.inflight_bytes.clone(),
        );
        registry.register(
            "cortex_distributor_instance_limits",
            "Instance limits used by this distributor (0 means no limit).",
            m.limits.clone(),
        );
        registry.register(
            "cortex_distributor_ingestion_rate_samples_per_second",
            "Current ingestion rate in samples/sec that distributor is using to limit access.",
            m.rate.clone(),
        );
        registry.register(
            "cortex_distributor_instance_rejected_requests",
            "Requests discarded for hitting per-instance limits",
            m.rejected.clone(),
        );
        m
    }
}

/// EWMA of samples per second, ticked lazily once per elapsed second (Mimir: alpha 0.2,
/// one-second ticks).
#[derive(Debug)]
struct Ewma {
    rate: f64,
    pending: u64,
    last_tick: Instant,
    init: bool,
}

const EWMA_ALPHA: f64 = 0.2;

impl Ewma {
    fn tick_to(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.last_tick).as_secs();
        if secs == 0 {
            return;
        }
        let instant = self.pending as f64;
        self.pending = 0;
        if self.init {
            self.rate += EWMA_ALPHA * (instant - self.rate);
        } else {
            self.rate = instant;
            self.init = true;
        }
        // Seconds with no samples at all decay the rate too (bounded loop).
        for _ in 1..secs.min(64) {
            self.rate -= EWMA_ALPHA * self.rate;
        }
        self.last_tick += std::time::Duration::from_secs(secs);
    }
}

/// Tracks in-flight pushes and the ingestion rate against [`InstanceLimits`].
#[derive(Debug)]
pub struct InstanceLimiter {
    limits: InstanceLimits,
    read: ReadLimits,
    inflight: AtomicUsize,
    inflight_bytes: AtomicUsize,
    rate: Mutex<Ewma>,
    metrics: LimitMetrics,
}

impl Default for InstanceLimiter {
    fn default() -> Self {
        InstanceLimiter::new(InstanceLimits::default(), ReadLimits::default())
    }
}

impl InstanceLimiter {
    /// A limiter with unregistered metrics.
    pub fn new(limits: InstanceLimits, read: ReadLimits) -> Self {
        InstanceLimiter {
            limits,
            read,
            inflight: AtomicUsize::new(0),
            inflight_bytes: AtomicUsize::new(0),
            rate: Mutex::new(Ewma {
                rate: 0.0,
                pending: 0,
                last_tick: Instant::now(),
                init: false,
            }),
            metrics: LimitMetrics::default(),
        }
    }

    /// Counts into registered metrics (and publishes the limits).
    pub fn with_metrics(mut self, metrics: LimitMetrics) -> Self {
        let set = |name: &'static str, v: f64| {
            metrics.limits.get_or_create(&vec![("limit", name)]).set(v);
        };
        set(
            "max_inflight_push_requests",
            self.limits.max_inflight_push_requests as f64,
        );
        set(
            "max_inflight_push_requests_bytes",
            self.limits.max_inflight_push_requests_bytes as f64,
        );
        set("max_ingestion_rate", self.limits.max_ingestion_rate);
        self.metrics = metrics;
        self
    }

    /// The read limits.
    pub fn read_limits(&self) -> ReadLimits {
        self.read
    }

    fn reject(&self, e: LimitError) -> LimitError {
        self.metrics
            .rejected
            .get_or_create(&vec![("reason", e.reason())])
            .inc();
        e
    }

    /// Admits a push of `bytes` (its body as received), or refuses it. The guard keeps it
    /// counted as in flight until dropped.
    pub fn start_push(&self, bytes: usize) -> Result<InflightPush<'_>, LimitError> {
        let l = &self.limits;
        if l.max_ingestion_rate > 0.0 {
            let mut r = self.rate.lock().unwrap_or_else(|p| p.into_inner());
            r.tick_to(Instant::now());
            self.metrics.rate.set(r.rate);
            if r.rate >= l.max_ingestion_rate {
                return Err(self.reject(LimitError::IngestionRate(l.max_ingestion_rate)));
            }
        }
        let n = self.inflight.fetch_add(1, Ordering::AcqRel) + 1;
        let b = self.inflight_bytes.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let guard = InflightPush {
            limiter: self,
            bytes,
        };
        self.metrics.inflight.set(n as i64);
        self.metrics.inflight_bytes.set(b as i64);
        if l.max_inflight_push_requests > 0 && n > l.max_inflight_push_requests {
            return Err(self.reject(LimitError::InflightRequests(l.max_inflight_push_requests)));
        }
        if l.max_inflight_push_requests_bytes > 0 && b > l.max_inflight_push_requests_bytes {
            return Err(self.reject(LimitError::InflightBytes(
                l.max_inflight_push_requests_bytes,
            )));
        }
        Ok(guard)
    }

    /// Counts samples toward the ingestion rate.
    pub fn record_samples(&self, n: usize) {
        if self.limits.max_ingestion_rate > 0.0 {
            let mut r = self.rate.lock().unwrap_or_else(|p| p.into_inner());
            r.tick_to(Instant::now());
            r.pending = r.pending.saturating_add(n as u64);
        }
    }

    /// Checks a replica's or a merged answer against the read limits.
    pub fn check_read(&self, series: usize, samples: usize) -> Result<(), LimitError> {
        let r = &self.read;
        if r.max_fetched_series_per_query > 0 && series > r.max_fetched_series_per_query {
            return Err(self.reject(LimitError::Series(r.max_fetched_series_per_query)));
        }
        if r.max_fetched_samples_per_query > 0 && samples > r.max_fetched_samples_per_query {
            return Err(self.reject(LimitError::Samples(r.max_fetched_samples_per_query)));
        }
        Ok(())
    }
}

/// One admitted (or being refused) push; dropping it ends its in-flight time.
#[derive(Debug)]
pub struct InflightPush<'a> {
    limiter: &'a InstanceLimiter,
    bytes: usize,
}

impl Drop for InflightPush<'_> {
    fn drop(&mut self) {
        let l = self.limiter;
        let n = l.inflight.fetch_sub(1, Ordering::AcqRel) - 1;
        let b = l.inflight_bytes.fetch_sub(self.bytes, Ordering::AcqRel) - self.bytes;
        l.metrics.inflight.set(n as i64);
        l.metrics.inflight_bytes.set(b as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflight_requests_and_bytes_are_bounded_and_released() {
        let l = InstanceLimiter::new(
            InstanceLimits {
                max_inflight_push_requests: 2,
                max_inflight_push_requests_bytes: 100,
                max_ingestion_rate: 0.0,
            },
            ReadLimits::default(),
        );
        let a = l.start_push(10).unwrap();
        let b = l.start_push(10).unwrap();
        let e = l.start_push(10).unwrap_err();
        assert_eq!(e, LimitError::InflightRequests(2));
        assert_eq!(e.http_status(), 503);
        assert!(e.to_string().contains("max-inflight-push-requests"));
        drop(a);
        let e = l.start_push(95).unwrap_err();
        assert_eq!(e, LimitError::InflightBytes(100));
        drop(b);
        assert!(l.start_push(100).is_ok());
        assert_eq!(l.inflight.load(Ordering::Relaxed), 0);
        assert_eq!(l.inflight_bytes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ingestion_rate_is_an_ewma_of_per_second_counts() {
        let start = Instant::now();
        let mut e = Ewma {
            rate: 0.0,
            pending: 0,
            last_tick: start,
            init: false,
        };
        e.pending = 1000;
        e.tick_to(start + std::time::Duration::from_millis(1500));
        assert_eq!(e.rate, 1000.0);
        e.pending = 0;
        e.tick_to(start + std::time::Duration::from_secs(2));
        assert!((e.rate - 800.0).abs() < 1e-9, "{}", e.rate);
        // A long pause decays it, within a bounded loop.
        e.tick_to(start + std::time::Duration::from_secs(1_000_000));
        assert!(e.rate < 1.0);
    }

    #[test]
    fn read_limits_name_the_flag() {
        let l = InstanceLimiter::new(
            InstanceLimits::default(),
            ReadLimits {
                max_fetched_series_per_query: 2,
                max_fetched_samples_per_query: 10,
            },
        );
        assert!(l.check_read(2, 10).is_ok());
        let e = l.check_read(3, 0).unwrap_err();
        assert_eq!(e.http_status(), 400);
        assert!(
            e.to_string()
                .contains("-querier.max-fetched-series-per-query")
        );
        assert_eq!(l.check_read(1, 11).unwrap_err(), LimitError::Samples(10));
    }
}
