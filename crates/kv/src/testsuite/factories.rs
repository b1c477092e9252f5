//! [`StoreFactory`] implementations for the stores of this crate.

use std::sync::{Arc, Mutex};

use super::StoreFactory;
use super::etcd_server::{EtcdServer, EtcdTarget};
use crate::client::{Client, ClientOptions, Value};
use crate::codec::Codec;
use crate::etcd::{EtcdConfig, EtcdStore};
use crate::memory::MemoryStore;
use crate::multi::{MultiClient, MultiConfig};
use crate::prefix::{DEFAULT_PREFIX, PrefixClient};

/// Clients of one [`MemoryStore`].
#[derive(Debug, Default, Clone)]
pub struct MemoryFactory {
    /// The shared store.
    pub store: MemoryStore,
}

impl StoreFactory for MemoryFactory {
    fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Arc<dyn Client<V>> {
        Arc::new(self.store.client(codec, options))
    }
}

/// Clients of one etcd, under the default `collectors/` prefix (as dskit deploys it).
#[derive(Debug)]
pub struct EtcdFactory {
    store: EtcdStore,
    /// The server, when this test owns it (then it can be restarted).
    server: Option<Arc<Mutex<EtcdServer>>>,
}

impl EtcdFactory {
    /// A factory for `target`; `None` when etcd tests are skipped. Call inside a Tokio
    /// runtime.
    pub fn new(target: EtcdTarget) -> Option<Self> {
        let (endpoints, server) = match target {
            EtcdTarget::Skip => return None,
            EtcdTarget::External(eps) => (eps, None),
            EtcdTarget::Owned(s) => (vec![s.endpoint()], Some(Arc::new(Mutex::new(s)))),
        };
        let store = EtcdStore::new(&EtcdConfig::with_endpoints(endpoints))
            .expect("etcd test config is valid");
        Some(EtcdFactory { store, server })
    }

    /// The connection clients share.
    pub fn store(&self) -> &EtcdStore {
        &self.store
    }
}

impl StoreFactory for EtcdFactory {
    fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Arc<dyn Client<V>> {
        Arc::new(PrefixClient::new(
            self.store.client(codec, options),
            DEFAULT_PREFIX,
        ))
    }

    async fn restart(&self) -> bool {
        let Some(server) = self.server.clone() else {
            return false;
        };
        tokio::task::spawn_blocking(move || {
            server.lock().unwrap_or_else(|p| p.into_inner()).restart()
        })
        .await
        .expect("restart task panicked")
        .unwrap_or_else(|e| panic!("etcd restart failed: {e}"));
        true
    }
}

/// Multi stores over two other factories' stores, mirroring on. Restart restarts the
/// primary's server.
#[derive(Debug)]
pub struct MultiFactory<P, S> {
    /// Store that is primary.
    pub primary: P,
    /// Store that receives mirrored writes.
    pub secondary: S,
}

impl<P: StoreFactory, S: StoreFactory> StoreFactory for MultiFactory<P, S> {
    fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> Arc<dyn Client<V>> {
        let config = MultiConfig {
            primary: "primary".into(),
            secondary: "secondary".into(),
            mirror_enabled: true,
            ..MultiConfig::default()
        };
        let p = self.primary.client(codec.clone(), options.clone());
        let s = self.secondary.client(codec, options);
        Arc::new(MultiClient::new(&config, p, s, None).expect("valid multi config"))
    }

    async fn restart(&self) -> bool {
        self.primary.restart().await
    }
}
