//! The distributor part of `ringkit node`: its flags and the HTTP routes
//! (`/api/v1/push`, `/api/v1/read`) it adds to the node's router.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use ringkit_dataplane::client::PoolConfig;
use ringkit_dataplane::distributor::{Distributor, DistributorConfig, LocalIngester};
use ringkit_dataplane::limits::{InstanceLimiter, InstanceLimits, LimitMetrics, ReadLimits};
use ringkit_dataplane::metrics::DistributorMetrics;
use ringkit_ingest::decode::DecodeLimits;
use ringkit_lifecycle::RingWatcher;

use crate::duration::parse_duration;

/// Distributor flags (names after Mimir's where it has one).
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct DistributorArgs {
    /// Tenant of requests without an X-Scope-OrgID header (Mimir's -auth.no-auth-tenant);
    /// empty: the header is required.
    #[arg(long = "distributor.default-tenant", default_value = "anonymous")]
    pub(crate) default_tenant: String,
    /// Timeout of one call to an ingester.
    #[arg(long = "distributor.remote-timeout", default_value = "2s", value_parser = parse_duration)]
    pub(crate) remote_timeout: Duration,
    /// Largest accepted request body, compressed and decompressed (bytes).
    #[arg(long = "distributor.max-recv-msg-size", default_value_t = DecodeLimits::default().max_compressed_size)]
    pub(crate) max_recv_msg_size: usize,
    /// Pushes handled at once; more are answered 503 (0: no limit).
    #[arg(
        long = "distributor.instance-limits.max-inflight-push-requests",
        default_value_t = InstanceLimits::default().max_inflight_push_requests
    )]
    pub(crate) max_inflight_push_requests: usize,
    /// Bytes (as received) of pushes handled at once; more are answered 503 (0: no limit).
    #[arg(
        long = "distributor.instance-limits.max-inflight-push-requests-bytes",
        default_value_t = InstanceLimits::default().max_inflight_push_requests_bytes
    )]
    pub(crate) max_inflight_push_requests_bytes: usize,
    /// Samples per second this distributor accepts (EWMA); above it pushes get 503 (0: no limit).
    #[arg(
        long = "distributor.instance-limits.max-ingestion-rate",
        default_value_t = InstanceLimits::default().max_ingestion_rate
    )]
    pub(crate) max_ingestion_rate: f64,
    /// Series in one remote-read query's answer; more is a 400 (0: no limit).
    #[arg(
        long = "querier.max-fetched-series-per-query",
        default_value_t = ReadLimits::default().max_fetched_series_per_query
    )]
    pub(crate) max_fetched_series_per_query: usize,
    /// Samples in one remote-read query's answer; more is a 400 (0: no limit).
    #[arg(
        long = "querier.max-fetched-samples-per-query",
        default_value_t = ReadLimits::default().max_fetched_samples_per_query
    )]
    pub(crate) max_fetched_samples_per_query: usize,
}

impl DistributorArgs {
    /// The distributor's config and its instance and read limits, as the flags set them.
    pub(crate) fn configs(&self) -> (DistributorConfig, InstanceLimits, ReadLimits) {
        let cfg = DistributorConfig {
            default_tenant: self.default_tenant.clone(),
            decode_limits: DecodeLimits {
                max_compressed_size: self.max_recv_msg_size,
                max_decompressed_size: self.max_recv_msg_size,
            },
            pool: PoolConfig {
                timeout: self.remote_timeout,
                ..PoolConfig::default()
            },
            ..DistributorConfig::default()
        };
        let instance = InstanceLimits {
            max_inflight_push_requests: self.max_inflight_push_requests,
            max_inflight_push_requests_bytes: self.max_inflight_push_requests_bytes,
            max_ingestion_rate: self.max_ingestion_rate,
        };
        let read = ReadLimits {
            max_fetched_series_per_query: self.max_fetched_series_per_query,
            max_fetched_samples_per_query: self.max_fetched_samples_per_query,
        };
        (cfg, instance, read)
    }
}

/// The routes of a distributor writing to and reading from the ring `watcher` follows.
/// Registers the distributor's metrics in `registry`.
pub(crate) fn router(
    args: &DistributorArgs,
    watcher: Arc<RingWatcher>,
    local: Option<LocalIngester>,
    registry: &mut Registry,
) -> axum::Router {
    let (cfg, instance, read) = args.configs();
    let limiter =
        InstanceLimiter::new(instance, read).with_metrics(LimitMetrics::register(registry));
    let mut distributor = Distributor::new(cfg, watcher)
        .with_metrics(DistributorMetrics::register(registry))
        .with_limiter(limiter);
    if let Some(local) = local {
        distributor = distributor.with_local_ingester(local);
    }
    ringkit_dataplane::http::router(Arc::new(distributor))
}
