//! Where the ring is kept: [`Store`] names a backend, and opening it gives the typed
//! ring client the lifecycler and the watcher share.
//!
//! ```
//! use ringkit_member::Store;
//!
//! // Gossip with dskit's TCP transport on 127.0.0.1:7946, joining two seeds.
//! let gossip = Store::gossip("127.0.0.1:7946".parse().unwrap(), ["10.0.0.2:7946", "10.0.0.3:7946"]);
//! // One process only (tests, single-node tools): clones share the ring.
//! let memory = Store::memory();
//! # let _ = (gossip, memory);
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringkit_kv::{Client, ClientOptions, MemoryStore};
use ringkit_lifecycle::{PartitionRingCodec, RingDesc, RingDescCodec};
use ringkit_memberlist::kv::{GossipKv, KvConfig};
use ringkit_memberlist::runtime::{Memberlist, MemberlistConfig};

use crate::Error;

/// The key-value store that holds the ring, as dskit's `-ring.store` /
/// `-memberlist.*` / `-etcd.*` flags choose it.
#[derive(Clone)]
#[non_exhaustive]
pub enum Store {
    /// An in-process store: clones of one [`MemoryStore`] share the ring. For tests and
    /// single-process programs (dskit's `inmemory`).
    Memory(MemoryStore),
    /// memberlist gossip (dskit's `memberlist`, what Mimir, Loki and Tempo run): opening
    /// the store starts a gossip node with these settings and joins its
    /// `join_members`. Build it with [`Store::gossip`], or fill in every knob yourself.
    Gossip(Box<MemberlistConfig>),
    /// etcd v3 (dskit's `etcd`). Needs a Tokio runtime; dials lazily.
    #[cfg(feature = "etcd")]
    Etcd(ringkit_kv::EtcdConfig),
    /// A client you built yourself (a multi store, an instrumented or prefixed client);
    /// it must already address the full key (see [`crate::DEFAULT_RING_KEY`]).
    Client(Arc<dyn Client<RingDesc>>),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Memory(_) => f.write_str("Store::Memory"),
            Store::Gossip(c) => f
                .debug_struct("Store::Gossip")
                .field("bind", &SocketAddr::new(c.bind_addr, c.bind_port))
                .field("join", &c.join_members)
                .finish(),
            #[cfg(feature = "etcd")]
            Store::Etcd(c) => f
                .debug_struct("Store::Etcd")
                .field("endpoints", &c.endpoints)
                .finish(),
            Store::Client(_) => f.write_str("Store::Client"),
        }
    }
}

impl Store {
    /// A fresh in-process store. Clone the `Store` to give several members the same ring.
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::new())
    }

    /// Gossip with dskit's defaults (TCP transport, node name = host name plus a random
    /// suffix), listening on `bind` and joining `join` (`host:port`, `dns+host:port` or
    /// `dnssrv+_service._proto.domain`, as in `-memberlist.join`). An empty `join` starts
    /// a new cluster. Port 0 picks a free port.
    pub fn gossip<I, S>(bind: SocketAddr, join: I) -> Store
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cfg = MemberlistConfig::dskit();
        cfg.bind_addr = bind.ip();
        cfg.bind_port = bind.port();
        cfg.join_members = join.into_iter().map(Into::into).collect();
        Store::Gossip(Box::new(cfg))
    }

    /// etcd at `endpoints` (`host:port` or URLs) with dskit's defaults for the rest.
    #[cfg(feature = "etcd")]
    pub fn etcd<I, S>(endpoints: I) -> Store
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Store::Etcd(ringkit_kv::EtcdConfig::with_endpoints(endpoints))
    }

    /// Shortens the gossip node's leave waits and failure detection for programs on one
    /// machine (see [`crate::MemberBuilder::local_testing`]); other stores are unchanged.
    pub(crate) fn apply_local_testing(&mut self) {
        if let Store::Gossip(c) = self {
            // dskit waits up to 10 s for queued changes and 20 s for the leave message;
            // on one machine both go out in well under a second.
            c.broadcast_timeout_on_shutdown = Duration::from_secs(2);
            c.leave_timeout = Duration::from_secs(1);
            c.fast_join_timeout = Duration::from_secs(5);
            c.max_join_backoff = Duration::from_secs(2);
            // Notice a killed peer within seconds rather than tens of seconds.
            c.swim.probe_interval = Duration::from_secs(1);
            c.swim.probe_timeout = Duration::from_millis(500);
        }
    }

    /// Starts what the store needs (the gossip node) and returns the ring client.
    pub(crate) async fn open(self) -> Result<Opened, Error> {
        let options = ClientOptions::default();
        Ok(match self {
            Store::Memory(m) => Opened {
                client: Arc::new(m.client(RingDescCodec::shared(), options)),
                node: None,
            },
            Store::Gossip(cfg) => {
                let kv = GossipKv::new(KvConfig::default());
                let client = Arc::new(kv.client(RingDescCodec::shared(), options.clone())?);
                // Relay Mimir's partition ring too, as every dskit member does.
                kv.client(PartitionRingCodec::shared(), options)?;
                let node = Memberlist::start(*cfg, kv).await?;
                Opened {
                    client,
                    node: Some(node),
                }
            }
            #[cfg(feature = "etcd")]
            Store::Etcd(cfg) => {
                let store = ringkit_kv::EtcdStore::new(&cfg)?;
                Opened {
                    client: Arc::new(store.client(RingDescCodec::shared(), options)),
                    node: None,
                }
            }
            Store::Client(client) => Opened { client, node: None },
        })
    }
}

/// An opened store: the ring client and, for gossip, the running node.
pub(crate) struct Opened {
    pub(crate) client: Arc<dyn Client<RingDesc>>,
    pub(crate) node: Option<Memberlist>,
}
