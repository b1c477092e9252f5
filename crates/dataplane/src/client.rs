//! Connections from a distributor to ingesters: one tonic channel per address, created on
//! first use and reused by every later request (HTTP/2 multiplexes the calls).
//!
//! Channels connect lazily and reconnect by themselves, so a dead ingester costs each call
//! one refused connection (or the connect timeout), never a stuck request: every call is
//! bounded by [`PoolConfig::timeout`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tonic::Status;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use tonic::codegen::http::uri::PathAndQuery;

use crate::encoded::RawWriteRequest;
use crate::ingester::MAX_GRPC_MESSAGE_SIZE;
use crate::proto::WriteResponse;
use crate::proto::ingester_client::IngesterClient;
use crate::tenant;

/// A client of one ingester.
pub type Client = IngesterClient<Channel>;

/// Timeouts of the calls to ingesters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Bound on one call (`-distributor.remote-timeout`, Mimir's default 2s).
    pub timeout: Duration,
    /// Bound on establishing a connection (dskit's gRPC client default 5s is long for a
    /// loopback cluster; 1s).
    pub connect_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The channel pool. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct IngesterPool {
    cfg: PoolConfig,
    /// std Mutex: held only to look up or insert a channel, never across an await.
    channels: Mutex<HashMap<String, Channel>>,
}

impl IngesterPool {
    /// An empty pool.
    pub fn new(cfg: PoolConfig) -> IngesterPool {
        IngesterPool {
            cfg,
            channels: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `addr` (`host:port`), creating its channel on first use. Fails only
    /// when `addr` is not a valid authority (a bad ring entry).
    pub fn client(&self, addr: &str) -> Result<Client, Status> {
        Ok(IngesterClient::new(self.channel(addr)?)
            .max_decoding_message_size(MAX_GRPC_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_GRPC_MESSAGE_SIZE))
    }

    /// The channel to `addr`, created on first use.
    pub fn channel(&self, addr: &str) -> Result<Channel, Status> {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::unavailable(format!("bad ingester address {addr:?}: {e}")))?
            .connect_timeout(self.cfg.connect_timeout)
            .timeout(self.cfg.timeout)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(addr.to_owned(), channel.clone());
        Ok(channel)
    }

    /// Drops the channels of addresses `keep` rejects (ingesters that left the ring or
    /// restarted on another port), so the pool does not grow with every restart.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|addr, _| keep(addr));
    }

    /// Number of addresses with a channel.
    pub fn len(&self) -> usize {
        self.channels
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no channel was created yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `Ingester.Push` of an encoded request (see [`crate::encoded`]) on a channel of the pool:
/// the same call as [`Client::push`], without building a client per call.
pub async fn push_encoded(
    channel: Channel,
    request: tonic::Request<RawWriteRequest>,
) -> Result<WriteResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_decoding_message_size(MAX_GRPC_MESSAGE_SIZE)
        .max_encoding_message_size(MAX_GRPC_MESSAGE_SIZE);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("ingester channel not ready: {e}")))?;
    let codec = tonic_prost::ProstCodec::<RawWriteRequest, WriteResponse>::default();
    let path = PathAndQuery::from_static("/ringkit.ingester.v1.Ingester/Push");
    Ok(grpc.unary(request, path, codec).await?.into_inner())
}

/// Wraps `message` in a request naming `tenant` in its metadata. The tenant must be valid
/// ([`tenant::validate`]), which also makes it valid metadata text.
pub fn with_tenant<T>(message: T, tenant_id: &str) -> Result<tonic::Request<T>, Status> {
    let value = MetadataValue::try_from(tenant_id)
        .map_err(|_| Status::invalid_argument(format!("tenant {tenant_id:?} is not valid")))?;
    let mut req = tonic::Request::new(message);
    req.metadata_mut().insert(tenant::GRPC_METADATA, value);
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn channels_are_reused_per_address_and_pruned_on_request() {
        let pool = IngesterPool::new(PoolConfig::default());
        pool.client("127.0.0.1:1").unwrap();
        pool.client("127.0.0.1:1").unwrap();
        pool.client("127.0.0.1:2").unwrap();
        assert_eq!(pool.len(), 2);
        pool.retain(|a| a.ends_with(":2"));
        assert_eq!(pool.len(), 1);
        assert!(pool.client("not an address").is_err());
    }
}
