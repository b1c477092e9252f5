//! The distributor: takes remote-write requests, shards their series over the ring and
//! writes each to its replicas with quorum; answers remote-read by asking the ingesters.
//!
//! # Write
//! Read the body in place and validate ([`validate_view`]: invalid series are left out, the
//! first error kept, no label copied), key
//! every remaining series with [`series_key`] (FNV-1 32 of tenant + labels), then
//! [`do_batch`] over the current ring snapshot: one `Push` per ingester carrying its series
//! (their encoded bytes copied one after the other, see [`crate::encoded`]),
//! success once every series was accepted by a quorum of its replicas (2 of 3 at RF 3).
//! Ingesters' `INVALID_ARGUMENT` answers are client errors: when a quorum of them refuses a
//! series (duplicate, out of order...), the request is refused with their message (4xx).
//! Other failures (refused connection, timeout, WAL error) count against the quorum; only a
//! lost quorum is a 5xx, so the sender retries. Calls still running when the answer is known
//! are left to finish in the background, as dskit does.
//!
//! Metadata is accepted and dropped: Prometheus 2.42 does not store remote-written
//! metadata either, and no ringkit reader serves it.
//!
//! # Read
//! Each query is sent to every ingester healthy for reads (all of them may hold a tenant's
//! series), and the answers are merged by [`merge_replicas`]: series by label set, samples
//! by timestamp, the value most replicas hold winning (replicas disagree only when a sender
//! rewrote a sample while one replica lagged). Up to
//! `RF - quorum` ingesters may fail, as many as a write may have missed; more is a 5xx.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use futures::future::join_all;
use prost::Message;
use ringkit_ingest::decode::{DecodeError, DecodeLimits, decode_write_request_view};
use ringkit_ingest::hash::series_key;
use ringkit_ingest::prompb::{
    Label, QueryResult, ReadRequest, ReadResponse, ResponseType, Sample, TimeSeries, WriteRequest,
};
use ringkit_ingest::store::{Matcher, MatcherError};
use ringkit_ingest::validate::{Limits, ValidSeries, ValidationError, validate_view};
use ringkit_ingest::view::{WriteRequestView, encode_series};
use ringkit_lifecycle::RingWatcher;
use ringkit_ring::{BatchBuffers, BatchError, BatchOptions, InstanceIdx, Operation, do_batch};
use tonic::{Code, Status};

use crate::client::{IngesterPool, PoolConfig, push_encoded, with_tenant};
use crate::encoded::RawWriteRequest;
use crate::ingester::IngesterService;
use crate::limits::{InstanceLimiter, LimitError};
use crate::metrics::DistributorMetrics;
use crate::proto::QueryRequest;
use crate::proto::ingester_server::Ingester as _;
use crate::tenant::TenantError;

/// Distributor settings.
#[derive(Clone, Debug)]
pub struct DistributorConfig {
    /// Tenant of requests without `X-Scope-OrgID` (ringkit's `-distributor.default-tenant`,
    /// like Mimir's `-auth.no-auth-tenant`); empty makes the header mandatory.
    pub default_tenant: String,
    /// Validation limits.
    pub limits: Limits,
    /// Body size limits (`-distributor.max-recv-msg-size`).
    pub decode_limits: DecodeLimits,
    /// Calls to ingesters.
    pub pool: PoolConfig,
}

impl Default for DistributorConfig {
    fn default() -> Self {
        DistributorConfig {
            default_tenant: "anonymous".to_owned(),
            limits: Limits::default(),
            decode_limits: DecodeLimits::default(),
            pool: PoolConfig::default(),
        }
    }
}

/// Why a push or read was not (fully) accepted. [`DistributorError::http_status`] says
/// whether it is the client's fault (4xx: do not retry) or ours (5xx: retry).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DistributorError {
    /// The body could not be decoded; nothing was written.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// No or a bad tenant; nothing was written.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// A series was invalid; it was dropped, the valid rest was written.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// A quorum of ingesters refused a sample (duplicate, out of order, out of bounds) or a
    /// query (bad matcher); other samples were written.
    #[error("{0}")]
    Rejected(String),
    /// A read matcher is invalid; nothing was asked.
    #[error(transparent)]
    Matcher(#[from] MatcherError),
    /// The request asks for something ringkit does not serve.
    #[error("{0}")]
    Unsupported(String),
    /// A quorum of ingesters could not be reached or failed: the server's fault, retry.
    #[error("{0}")]
    Unavailable(String),
    /// An instance limit (503) or a read limit (400) refused the request.
    #[error(transparent)]
    Limit(#[from] LimitError),
}

impl DistributorError {
    /// The HTTP status to answer with.
    pub fn http_status(&self) -> u16 {
        match self {
            DistributorError::Tenant(TenantError::Missing) => 401,
            DistributorError::Unavailable(_) => 503,
            DistributorError::Limit(e) => e.http_status(),
            _ => 400,
        }
    }
}

/// Where a routed series' encoded bytes are: in the sender's body, or in the buffer of
/// series validation changed.
enum Span<'a> {
    Sent(&'a [u8]),
    Encoded(std::ops::Range<usize>),
}

fn is_client_error(status: &Status) -> bool {
    status.code() == Code::InvalidArgument
}

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Series written with quorum.
    pub series: usize,
    /// Their samples.
    pub samples: usize,
}

/// The distributor. Shared by every HTTP handler behind an `Arc`.
#[derive(Debug)]
pub struct Distributor {
    cfg: DistributorConfig,
    watcher: Arc<RingWatcher>,
    pool: IngesterPool,
    metrics: DistributorMetrics,
    limiter: InstanceLimiter,
    local: Option<LocalIngester>,
}

/// How a push reaches one ingester: this process' own, or gRPC.
enum Hop<C> {
    Local(IngesterService),
    Grpc(C),
}

/// The ingester of this same process (`--target=all`): pushes for the ring instance at
/// `addr` call it directly instead of going through gRPC over loopback. The slot is
/// filled once the ingester has replayed its WAL and serves; until then (and for every
/// other address) pushes take the gRPC path.
#[derive(Clone, Debug)]
pub struct LocalIngester {
    /// The address this process' ingester advertises in the ring.
    pub addr: String,
    /// Set when the ingester service is up.
    pub service: Arc<OnceLock<IngesterService>>,
}

impl Distributor {
    /// A distributor writing to the ring that `watcher` follows.
    pub fn new(cfg: DistributorConfig, watcher: Arc<RingWatcher>) -> Distributor {
        let pool = IngesterPool::new(cfg.pool);
        Distributor {
            cfg,
            watcher,
            pool,
            metrics: DistributorMetrics::default(),
            limiter: InstanceLimiter::default(),
            local: None,
        }
    }

    /// Calls this process' own ingester directly for its ring instance (see
    /// [`LocalIngester`]); answers and limits are the same as over gRPC, with the same
    /// [`PoolConfig::timeout`](crate::client::PoolConfig::timeout) on each call.
    pub fn with_local_ingester(mut self, local: LocalIngester) -> Distributor {
        self.local = Some(local);
        self
    }

    /// This process' ingester when `addr` is its ring address and it is serving.
    fn local_service(&self, addr: &str) -> Option<IngesterService> {
        let local = self.local.as_ref()?;
        (local.addr == addr).then(|| local.service.get().cloned())?
    }

    /// Applies instance and read limits (default: Mimir's defaults for instance limits,
    /// [`crate::limits::ReadLimits::default`] for reads).
    pub fn with_limiter(mut self, limiter: InstanceLimiter) -> Distributor {
        self.limiter = limiter;
        self
    }

    /// The instance and read limits; the HTTP push handler admits each push with
    /// [`InstanceLimiter::start_push`] before decoding its body.
    pub fn limiter(&self) -> &InstanceLimiter {
        &self.limiter
    }

    /// Counts into registered metrics.
    pub fn with_metrics(mut self, metrics: DistributorMetrics) -> Distributor {
        self.metrics = metrics;
        self
    }

    /// The settings.
    pub fn config(&self) -> &DistributorConfig {
        &self.cfg
    }

    /// Validates `req` and writes its series of `tenant` with quorum (module doc). A
    /// validation error is returned after the valid series were written.
    pub async fn push(
        &self,
        tenant: &str,
        req: WriteRequest,
    ) -> Result<PushStats, DistributorError> {
        self.push_raw(tenant, &req.encode_to_vec()).await
    }

    /// [`Distributor::push`] of a decompressed remote-write body, read in place: labels
    /// stay borrowed from `raw`, series validation did not change are forwarded as the
    /// sender encoded them. An undecodable body is refused before anything is counted.
    pub async fn push_raw(&self, tenant: &str, raw: &[u8]) -> Result<PushStats, DistributorError> {
        let view = decode_write_request_view(raw)?;
        let incoming = view.samples.len();
        self.metrics.samples_in(tenant, incoming);
        self.limiter.record_samples(incoming);
        let mut valid = ValidSeries::default();
        let report = validate_view(&self.cfg.limits, now_ms(), &view, &mut valid);
        let stats = PushStats {
            series: valid.series.len(),
            samples: valid
                .series
                .iter()
                .map(|e| view.series[e.series].samples.len())
                .sum(),
        };
        let written = if valid.series.is_empty() {
            Ok(())
        } else {
            self.write_series(tenant, &view, &valid).await
        };
        let result = match (written, report.first_error) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(e)) => Err(e.into()),
            (Ok(()), None) => Ok(stats),
        };
        match &result {
            Ok(stats) => self.metrics.received(tenant, stats.samples),
            Err(_) => self.metrics.failed(tenant),
        }
        result
    }

    async fn write_series(
        &self,
        tenant: &str,
        view: &WriteRequestView<'_>,
        valid: &ValidSeries<'_>,
    ) -> Result<(), DistributorError> {
        // One pass: each series' ring key, and its encoded bytes (the sender's when
        // validation left the series as it was, else encoded once into `encoded_buf`).
        let mut keys = Vec::with_capacity(valid.series.len());
        let mut spans: Vec<Span> = Vec::with_capacity(valid.series.len());
        let mut encoded_buf = Vec::new();
        for e in &valid.series {
            let labels = valid.labels_of(e);
            keys.push(series_key(tenant, labels));
            let s = &view.series[e.series];
            spans.push(if e.unchanged {
                Span::Sent(s.raw)
            } else {
                let start = encoded_buf.len();
                encode_series(labels, view.samples_of(s), &mut encoded_buf);
                Span::Encoded(start..encoded_buf.len())
            });
        }
        let bytes_of = |i: u32| -> &[u8] {
            match &spans[i as usize] {
                Span::Sent(b) => b,
                Span::Encoded(r) => &encoded_buf[r.clone()],
            }
        };
        // Mimir writes through the shard of size 0: the ring without its read-only
        // instances. The result is the same for every tenant, so one cache entry ("").
        let ring = self.watcher.snapshot().shuffle_shard("", 0);
        let mut bufs = BatchBuffers::new();
        let outcome = do_batch(
            &ring,
            Operation::WRITE,
            SystemTime::now(),
            &keys,
            &mut bufs,
            |instance, items| {
                let len = items
                    .iter()
                    .map(|&i| RawWriteRequest::series_len(bytes_of(i).len()))
                    .sum();
                let mut body = Vec::with_capacity(len);
                for &i in items {
                    RawWriteRequest::put_series(&mut body, bytes_of(i));
                }
                let req = RawWriteRequest(body.into());
                let hop = match self.local_service(&instance.addr) {
                    Some(service) => Hop::Local(service),
                    None => Hop::Grpc(self.pool.channel(&instance.addr)),
                };
                let request = with_tenant(req, tenant);
                let timeout = self.cfg.pool.timeout;
                async move {
                    match hop {
                        Hop::Local(service) => {
                            tokio::time::timeout(timeout, service.push(request?))
                                .await
                                .map_err(|_| {
                                    Status::deadline_exceeded("local ingester push timed out")
                                })??;
                        }
                        Hop::Grpc(channel) => {
                            push_encoded(channel?, request?).await?;
                        }
                    }
                    Ok::<(), Status>(())
                }
            },
            BatchOptions::default().with_client_errors(is_client_error),
        )
        .await;
        if !outcome.rest.is_finished() {
            tokio::spawn(outcome.rest);
        }
        if self.pool.len() > ring.instances_count() {
            let live: Vec<&str> = ring.instances().iter().map(|i| i.addr.as_str()).collect();
            self.pool.retain(|addr| live.contains(&addr));
        }
        match outcome.result {
            Ok(()) => Ok(()),
            Err(BatchError::Instance(status)) if is_client_error(&status) => {
                Err(DistributorError::Rejected(status.message().to_owned()))
            }
            Err(BatchError::Instance(status)) => Err(DistributorError::Unavailable(format!(
                "failed pushing to ingesters: {} ({:?})",
                status.message(),
                status.code()
            ))),
            Err(e) => Err(DistributorError::Unavailable(format!(
                "failed pushing to ingesters: {e}"
            ))),
        }
    }

    /// Answers a remote-read request of `tenant` (module doc).
    pub async fn read(
        &self,
        tenant: &str,
        req: ReadRequest,
    ) -> Result<ReadResponse, DistributorError> {
        let samples = ResponseType::Samples as i32;
        if !req.accepted_response_types.is_empty()
            && !req.accepted_response_types.contains(&samples)
        {
            return Err(DistributorError::Unsupported(
                "only the SAMPLES remote-read response type is supported".to_owned(),
            ));
        }
        for q in &req.queries {
            for m in &q.matchers {
                Matcher::from_proto(m)?;
            }
        }
        let mut results = Vec::with_capacity(req.queries.len());
        for q in req.queries {
            let query = QueryRequest {
                start_timestamp_ms: q.start_timestamp_ms,
                end_timestamp_ms: q.end_timestamp_ms,
                matchers: q.matchers,
            };
            results.push(QueryResult {
                timeseries: self.query(tenant, query).await?,
            });
        }
        Ok(ReadResponse { results })
    }

    /// One query, fanned out to every ingester healthy for reads, answers merged.
    pub async fn query(
        &self,
        tenant: &str,
        query: QueryRequest,
    ) -> Result<Vec<TimeSeries>, DistributorError> {
        let ring = self.watcher.snapshot();
        let now = SystemTime::now();
        let mut owners = 0usize;
        let mut addrs: Vec<&str> = Vec::new();
        for (i, desc) in ring.instances().iter().enumerate() {
            if desc.tokens.is_empty() {
                continue;
            }
            owners += 1;
            let healthy = ring.is_healthy(i as InstanceIdx, Operation::READ, now);
            if healthy && !addrs.contains(&desc.addr.as_str()) {
                addrs.push(&desc.addr);
            }
        }
        let rf = ring.replication_factor().min(owners);
        let tolerated = rf.saturating_sub(rf / 2 + 1);
        let calls = addrs.iter().map(|addr| {
            let client = self.pool.client(addr);
            let request = with_tenant(query.clone(), tenant);
            async move {
                let resp = client?.query(request?).await?;
                Ok::<_, Status>(resp.into_inner().timeseries)
            }
        });
        let answers = join_all(calls).await;
        let mut replies = Vec::with_capacity(answers.len());
        let mut failures = owners - addrs.len();
        let mut last_error = None;
        for answer in answers {
            match answer {
                Ok(series) => {
                    // One replica's answer over the limit means the merged one is too:
                    // refuse before holding more of them.
                    let samples = series.iter().map(|s| s.samples.len()).sum();
                    self.limiter.check_read(series.len(), samples)?;
                    replies.push(series);
                }
                Err(status) if is_client_error(&status) => {
                    return Err(DistributorError::Rejected(status.message().to_owned()));
                }
                Err(status) => {
                    failures += 1;
                    last_error = Some(status);
                }
            }
        }
        if failures > tolerated {
            let why = last_error.map_or_else(
                || "not enough healthy ingesters".to_owned(),
                |s| s.message().to_owned(),
            );
            return Err(DistributorError::Unavailable(format!(
                "{failures} of {owners} ingesters could not answer (at most {tolerated} may): {why}"
            )));
        }
        let merged = merge_replicas(replies);
        let samples = merged.iter().map(|s| s.samples.len()).sum();
        self.limiter.check_read(merged.len(), samples)?;
        Ok(merged)
    }
}

/// Merges the answers of several replicas: one series per label set (sorted by labels), one
/// sample per timestamp. Replicas can disagree on a value only when a sender rewrote a
/// sample while a replica lagged (that replica took the second value, the others refused
/// it as a duplicate); the value most replicas hold wins, the first seen on a tie.
pub fn merge_replicas(replies: Vec<Vec<TimeSeries>>) -> Vec<TimeSeries> {
    // Per timestamp: (value, replicas holding it), compared by bits so NaNs count too.
    type Votes = Vec<(f64, u32)>;
    let mut merged: BTreeMap<Vec<Label>, BTreeMap<i64, Votes>> = BTreeMap::new();
    for series in replies {
        for ts in series {
            let samples = merged.entry(ts.labels).or_default();
            for s in ts.samples {
                let votes = samples.entry(s.timestamp).or_default();
                match votes
                    .iter_mut()
                    .find(|(v, _)| v.to_bits() == s.value.to_bits())
                {
                    Some((_, n)) => *n += 1,
                    None => votes.push((s.value, 1)),
                }
            }
        }
    }
    merged
        .into_iter()
        .map(|(labels, samples)| TimeSeries {
            labels,
            samples: samples
                .into_iter()
                .map(|(timestamp, votes)| {
                    let mut best = votes[0];
                    for &(v, n) in &votes[1..] {
                        if n > best.1 {
                            best = (v, n);
                        }
                    }
                    Sample {
                        value: best.0,
                        timestamp,
                    }
                })
                .collect(),
            ..Default::default()
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(name: &str, samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: vec![Label::new("__name__", name)],
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
            ..Default::default()
        }
    }

    fn flat(v: &[TimeSeries]) -> Vec<(String, Vec<(i64, u64)>)> {
        v.iter()
            .map(|s| {
                (
                    s.labels[0].value.clone(),
                    s.samples
                        .iter()
                        .map(|x| (x.timestamp, x.value.to_bits()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn replicas_merge_into_one_sorted_series_with_the_union_of_samples() {
        let merged = merge_replicas(vec![
            vec![ts("b", &[(1, 1.0), (3, 3.0)])],
            vec![ts("a", &[(5, 5.0)]), ts("b", &[(1, 1.0), (2, 2.0)])],
            vec![],
        ]);
        let want = vec![
            ts("a", &[(5, 5.0)]),
            ts("b", &[(1, 1.0), (2, 2.0), (3, 3.0)]),
        ];
        assert_eq!(flat(&merged), flat(&want));
    }

    #[test]
    fn the_value_most_replicas_hold_wins_whatever_the_answer_order() {
        let lagging = vec![ts("m", &[(1, 2.0)])];
        let others = vec![ts("m", &[(1, 1.0)])];
        let merged = merge_replicas(vec![lagging, others.clone(), others]);
        assert_eq!(merged[0].samples[0].value, 1.0);
        let nan = vec![ts("m", &[(1, f64::NAN)])];
        let merged = merge_replicas(vec![nan.clone(), vec![ts("m", &[(1, 0.0)])], nan]);
        assert!(merged[0].samples[0].value.is_nan(), "NaNs vote by bits");
    }
}
