//! [`PrefixClient`]: puts every key of a client under a fixed prefix (`--kv.prefix`, dskit
//! default `collectors/`), so several rings share one store without clashing.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::client::{CasFn, Client, Value, WatchKeyFn, WatchPrefixFn};
use crate::error::Error;

/// dskit's default key prefix (`kvstore.prefix`, `spec/ring.md` §2.1).
pub const DEFAULT_PREFIX: &str = "collectors/";

/// Prepends `prefix` to keys going in and strips it from keys coming out (`list`,
/// `watch_prefix`), so callers never see it.
#[derive(Debug, Clone)]
pub struct PrefixClient<C> {
    inner: C,
    prefix: String,
}

impl<C> PrefixClient<C> {
    /// Wraps `inner`; an empty prefix is allowed and changes nothing.
    pub fn new(inner: C, prefix: impl Into<String>) -> Self {
        PrefixClient {
            inner,
            prefix: prefix.into(),
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

#[async_trait]
impl<V: Value, C: Client<V>> Client<V> for PrefixClient<C> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let keys = self.inner.list(&self.full(prefix)).await?;
        Ok(keys
            .into_iter()
            .filter_map(|k| k.strip_prefix(&self.prefix).map(str::to_owned))
            .collect())
    }
    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        self.inner.get(&self.full(key)).await
    }
    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.delete(&self.full(key)).await
    }
    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        self.inner.cas(&self.full(key), f).await
    }
    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        self.inner.watch_key(&self.full(key), cancel, f).await
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        let strip = self.prefix.clone();
        let mut g = |key: &str, v: V| f(key.strip_prefix(strip.as_str()).unwrap_or(key), v);
        self.inner
            .watch_prefix(&self.full(prefix), cancel, &mut g)
            .await
    }
}
