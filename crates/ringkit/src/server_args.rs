//! `-server.*` flags of `ringkit node` that bound what clients can hold: connection limits,
//! HTTP timeouts, gRPC keepalive and message sizes (Mimir's names and defaults; see
//! `ringkit_dataplane::server`).

use std::time::Duration;

use ringkit_dataplane::server::{ServerConfig, open_file_limit, resolve_conn_limit};

use crate::duration::parse_duration;

/// Server limit flags, as Mimir names them.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServerArgs {
    /// Longest stall of a read within an HTTP request.
    #[arg(long = "server.http-read-timeout", default_value = "30s", value_parser = parse_duration)]
    pub(crate) http_read_timeout: Duration,
    /// Longest wait for an HTTP request head, idle keep-alive included (0: the read timeout).
    #[arg(long = "server.http-read-header-timeout", default_value = "0s", value_parser = parse_duration)]
    pub(crate) http_read_header_timeout: Duration,
    /// Longest stall of an HTTP response write.
    #[arg(long = "server.http-write-timeout", default_value = "2m", value_parser = parse_duration)]
    pub(crate) http_write_timeout: Duration,
    /// An HTTP connection on which nothing moves for this long is closed.
    #[arg(long = "server.http-idle-timeout", default_value = "2m", value_parser = parse_duration)]
    pub(crate) http_idle_timeout: Duration,
    /// Concurrent HTTP connections; more wait in the listen backlog. 0: a quarter of the
    /// open-file limit (ringkit's safe default; Mimir's 0 means none); negative: none.
    #[arg(
        long = "server.http-conn-limit",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub(crate) http_conn_limit: i64,
    /// Concurrent gRPC connections (same rules as --server.http-conn-limit).
    #[arg(
        long = "server.grpc-conn-limit",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub(crate) grpc_conn_limit: i64,
    /// Largest gRPC message received.
    #[arg(long = "server.grpc-max-recv-msg-size-bytes", default_value_t = ServerConfig::default().grpc_max_recv_msg_size)]
    pub(crate) grpc_max_recv_msg_size: usize,
    /// Largest gRPC message sent.
    #[arg(long = "server.grpc-max-send-msg-size-bytes", default_value_t = ServerConfig::default().grpc_max_send_msg_size)]
    pub(crate) grpc_max_send_msg_size: usize,
    /// Concurrent streams per gRPC connection (0: unlimited).
    #[arg(long = "server.grpc-max-concurrent-streams", default_value_t = ServerConfig::default().grpc_max_concurrent_streams)]
    pub(crate) grpc_max_concurrent_streams: u32,
    /// Ping an idle gRPC client this often.
    #[arg(long = "server.grpc.keepalive.time", default_value = "2h", value_parser = parse_duration)]
    pub(crate) grpc_keepalive_time: Duration,
    /// Close a gRPC connection whose ping is not answered in this time.
    #[arg(long = "server.grpc.keepalive.timeout", default_value = "20s", value_parser = parse_duration)]
    pub(crate) grpc_keepalive_timeout: Duration,
    /// Close gRPC connections older than this (0: never, Mimir's infinity).
    #[arg(long = "server.grpc.keepalive.max-connection-age", default_value = "0s", value_parser = parse_duration)]
    pub(crate) grpc_max_connection_age: Duration,
    /// Grace period after max-connection-age (0: unbounded).
    #[arg(long = "server.grpc.keepalive.max-connection-age-grace", default_value = "0s", value_parser = parse_duration)]
    pub(crate) grpc_max_connection_age_grace: Duration,
}

impl ServerArgs {
    /// The server configuration, with `0` connection limits resolved against this
    /// process's open-file limit.
    pub(crate) fn to_config(&self) -> ServerConfig {
        let files = open_file_limit();
        let nonzero = |d: Duration| (!d.is_zero()).then_some(d);
        ServerConfig {
            http_read_timeout: self.http_read_timeout,
            http_read_header_timeout: self.http_read_header_timeout,
            http_write_timeout: self.http_write_timeout,
            http_idle_timeout: self.http_idle_timeout,
            http_conn_limit: resolve_conn_limit(self.http_conn_limit, files),
            grpc_conn_limit: resolve_conn_limit(self.grpc_conn_limit, files),
            grpc_max_recv_msg_size: self.grpc_max_recv_msg_size,
            grpc_max_send_msg_size: self.grpc_max_send_msg_size,
            grpc_max_concurrent_streams: self.grpc_max_concurrent_streams,
            grpc_keepalive_time: self.grpc_keepalive_time,
            grpc_keepalive_timeout: self.grpc_keepalive_timeout,
            grpc_max_connection_age: nonzero(self.grpc_max_connection_age),
            grpc_max_connection_age_grace: nonzero(self.grpc_max_connection_age_grace),
        }
    }
}

/// `ringkit_decompression_refused_total{algorithm}`: inputs every decoder of this process
/// refused for their size (ringkit-decompress's counters, read at scrape time).
#[derive(Debug)]
pub(crate) struct DecompressionMetrics;

impl prometheus_client::collector::Collector for DecompressionMetrics {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        // prometheus-client appends `_total` to counter names.
        let mut m = encoder.encode_descriptor(
            "ringkit_decompression_refused",
            "Compressed inputs refused because they would decompress to more than allowed.",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for algo in ringkit_decompress::Algorithm::ALL {
            let labels = [("algorithm", algo.as_str())];
            prometheus_client::metrics::counter::ConstCounter::new(
                ringkit_decompress::refused_total(algo),
            )
            .encode(m.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
