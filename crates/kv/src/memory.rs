//! The in-memory store: the embedded default, and the reference the other stores are
//! tested against.
//!
//! One [`MemoryStore`] is shared by every client made from it (clones share the store), so
//! the components of one process see each other's writes, as dskit's `inmemory` store does.
//! Each key holds bytes, the codec id that wrote them and the store revision of that write;
//! the revision is the CAS version. Watchers wait on a `tokio::sync::watch` channel carrying
//! the latest revision and re-read what changed since the revision they last saw, so they
//! coalesce bursts but never miss the final value, and see changes in revision order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::cas::{CasStore, Stored, run_cas};
use crate::client::{CasFn, Client, ClientOptions, Value, WatchKeyFn, WatchPrefixFn};
use crate::codec::{Codec, ValueCodec};
use crate::error::Error;

struct Entry {
    bytes: Arc<[u8]>,
    codec_id: String,
    revision: i64,
}

#[derive(Default)]
struct State {
    revision: i64,
    entries: BTreeMap<String, Entry>,
}

struct Shared {
    /// A std mutex: it is never held across an `.await`, and every critical section is a
    /// map lookup or insert.
    state: Mutex<State>,
    /// Latest revision; watchers wake on each change.
    revision_tx: watch::Sender<i64>,
}

/// An in-process KV store. Cloning shares the store.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("MemoryStore")
            .field("revision", &st.revision)
            .field("keys", &st.entries.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                revision_tx: watch::Sender::new(0),
            }),
        }
    }

    /// A typed client of this store.
    pub fn client<V: Value>(
        &self,
        codec: Arc<dyn Codec<V>>,
        options: ClientOptions,
    ) -> MemoryClient<V> {
        MemoryClient {
            store: self.clone(),
            codec: ValueCodec::new(codec, options.max_value_size),
            max_cas_attempts: options.max_cas_attempts,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave a half-written entry (inserts are
        // single operations), so a poisoned lock is still consistent.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, revision: i64) {
        self.shared.revision_tx.send_replace(revision);
    }
}

#[async_trait]
impl CasStore for MemoryStore {
    async fn read(&self, key: &str) -> Result<Option<Stored>, Error> {
        Ok(self.lock().entries.get(key).map(|e| Stored {
            bytes: e.bytes.to_vec(),
            codec_id: Some(e.codec_id.clone()),
            version: e.revision,
        }))
    }

    async fn write_if(
        &self,
        key: &str,
        seen: i64,
        bytes: Vec<u8>,
        codec_id: &str,
    ) -> Result<bool, Error> {
        let revision = {
            let mut st = self.lock();
            let current = st.entries.get(key).map_or(0, |e| e.revision);
            if current != seen {
                return Ok(false);
            }
            st.revision += 1;
            let revision = st.revision;
            st.entries.insert(
                key.to_owned(),
                Entry {
                    bytes: bytes.into(),
                    codec_id: codec_id.to_owned(),
                    revision,
                },
            );
            revision
        };
        self.publish(revision);
        Ok(true)
    }
}

/// A typed client of a [`MemoryStore`].
pub struct MemoryClient<V> {
    store: MemoryStore,
    codec: ValueCodec<V>,
    max_cas_attempts: u32,
}

impl<V> Clone for MemoryClient<V> {
    fn clone(&self) -> Self {
        MemoryClient {
            store: self.store.clone(),
            codec: self.codec.clone(),
            max_cas_attempts: self.max_cas_attempts,
        }
    }
}

impl<V: 'static> std::fmt::Debug for MemoryClient<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryClient")
            .field("store", &self.store)
            .field("codec", &self.codec.id())
            .finish()
    }
}

impl<V> MemoryClient<V> {
    /// The shared store behind this client.
    pub fn store(&self) -> &MemoryStore {
        &self.store
    }
}

/// One change a watcher has not delivered yet: key, bytes (`None`: deleted), codec id.
type Pending = (String, Option<(Arc<[u8]>, String)>);

impl<V: Value> MemoryClient<V> {
    fn decode_for_watch(&self, key: &str, bytes: &[u8], codec_id: &str) -> Option<V> {
        match self.codec.decode(key, bytes, Some(codec_id)) {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(key, error = %e, "watch: skipping value that does not decode");
                None
            }
        }
    }

    /// Waits for a revision newer than `seen`; `false` if cancelled.
    async fn wait_newer(
        rx: &mut watch::Receiver<i64>,
        seen: i64,
        cancel: &CancellationToken,
    ) -> bool {
        tokio::select! {
            r = rx.wait_for(|rev| *rev > seen) => r.is_ok(),
            _ = cancel.cancelled() => false,
        }
    }
}

#[async_trait]
impl<V: Value> Client<V> for MemoryClient<V> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let st = self.store.lock();
        Ok(st
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        let entry = {
            let st = self.store.lock();
            st.entries
                .get(key)
                .map(|e| (e.bytes.clone(), e.codec_id.clone()))
        };
        entry
            .map(|(bytes, id)| self.codec.decode(key, &bytes, Some(&id)))
            .transpose()
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let revision = {
            let mut st = self.store.lock();
            if st.entries.remove(key).is_none() {
                return Ok(());
            }
            st.revision += 1;
            st.revision
        };
        self.store.publish(revision);
        Ok(())
    }

    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        run_cas(&self.store, &self.codec, key, self.max_cas_attempts, f).await
    }

    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        let mut rx = self.store.shared.revision_tx.subscribe();
        // Revision of the last state delivered for the key (0: absent / nothing yet).
        let mut delivered = 0;
        let mut seen = 0;
        loop {
            let (revision, change) = {
                let st = self.store.lock();
                let now = st.entries.get(key).map_or(0, |e| e.revision);
                let change = (now != delivered).then(|| {
                    st.entries
                        .get(key)
                        .map(|e| (e.bytes.clone(), e.codec_id.clone()))
                });
                (st.revision, change.map(|c| (now, c)))
            };
            seen = seen.max(revision);
            if let Some((now, value)) = change {
                delivered = now;
                let value = match value {
                    Some((bytes, id)) => self.decode_for_watch(key, &bytes, &id),
                    None => None,
                };
                // A value that does not decode is skipped; a deletion is reported.
                if (value.is_some() || now == 0) && !f(value) {
                    return;
                }
            }
            if !Self::wait_newer(&mut rx, seen, cancel).await {
                return;
            }
        }
    }

    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        let mut rx = self.store.shared.revision_tx.subscribe();
        let mut seen = 0;
        loop {
            let (revision, mut changes) = {
                let st = self.store.lock();
                let changes: Vec<(i64, Pending)> = st
                    .entries
                    .range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .filter(|(_, e)| e.revision > seen)
                    .map(|(k, e)| {
                        (
                            e.revision,
                            (k.clone(), Some((e.bytes.clone(), e.codec_id.clone()))),
                        )
                    })
                    .collect();
                (st.revision, changes)
            };
            seen = seen.max(revision);
            changes.sort_by_key(|(rev, _)| *rev);
            for (_, (key, value)) in changes {
                let Some((bytes, id)) = value else { continue };
                if let Some(v) = self.decode_for_watch(&key, &bytes, &id)
                    && !f(&key, v)
                {
                    return;
                }
            }
            if !Self::wait_newer(&mut rx, seen, cancel).await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{BytesCodec, StringCodec};

    #[tokio::test]
    async fn clients_of_one_store_with_different_codecs_get_a_mismatch_error() {
        let store = MemoryStore::new();
        let strings = store.client::<String>(Arc::new(StringCodec), ClientOptions::default());
        let bytes =
            store.client::<Vec<u8>>(Arc::new(BytesCodec::default()), ClientOptions::default());
        strings
            .cas("k", &mut |_| crate::CasDecision::Write("v".to_owned()))
            .await
            .unwrap();
        assert!(matches!(
            bytes.get("k").await,
            Err(Error::CodecMismatch { .. })
        ));
        assert_eq!(strings.get("k").await.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test]
    async fn cloned_stores_share_their_contents() {
        let a = MemoryStore::new();
        let b = a.clone();
        let ca = a.client::<String>(Arc::new(StringCodec), ClientOptions::default());
        let cb = b.client::<String>(Arc::new(StringCodec), ClientOptions::default());
        ca.cas("x", &mut |_| crate::CasDecision::Write("1".to_owned()))
            .await
            .unwrap();
        assert_eq!(cb.get("x").await.unwrap().as_deref(), Some("1"));
    }
}
