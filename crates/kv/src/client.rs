//! The [`Client`] trait every store implements, and the options they share.
//!
//! Semantics follow dskit's KV client (`spec/memberlist.md` §3.3), with typed values.

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::error::{BoxError, Error};

/// What a stored value type must be: cloned into callbacks and moved across tasks.
pub trait Value: Clone + Send + Sync + 'static {}
impl<T: Clone + Send + Sync + 'static> Value for T {}

/// The answer of a CAS callback, given the current value.
#[derive(Debug)]
pub enum CasDecision<V> {
    /// Store this value if nobody wrote the key since it was read; otherwise the callback
    /// is called again with the newer value.
    Write(V),
    /// The current value is fine: no write, CAS succeeds.
    Unchanged,
    /// Stop now: no write, CAS returns [`Error::Aborted`] with this reason.
    Abort(BoxError),
    /// This attempt failed but a later one may not: wait and call again (counts towards
    /// [`ClientOptions::max_cas_attempts`]).
    Retry(BoxError),
}

/// CAS callback: current value (`None` if absent) to decision.
pub type CasFn<'a, V> = dyn FnMut(Option<V>) -> CasDecision<V> + Send + 'a;
/// Key watch callback: the new value (`None` once deleted); return `false` to stop.
pub type WatchKeyFn<'a, V> = dyn FnMut(Option<V>) -> bool + Send + 'a;
/// Prefix watch callback: key and new value; return `false` to stop.
pub type WatchPrefixFn<'a, V> = dyn FnMut(&str, V) -> bool + Send + 'a;

/// Options every store client takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Largest encoded value accepted by a write, in bytes. Default 1.5 MiB, etcd's default
    /// request limit (`--max-request-bytes`), so a value that etcd would refuse is refused
    /// here first with [`Error::TooLarge`] whatever the store.
    pub max_value_size: usize,
    /// CAS attempts before [`Error::CasGaveUp`]. Default 10, dskit's `maxCasRetries` and
    /// `etcd.max-retries` (flag `--etcd.max-retries`).
    pub max_cas_attempts: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_value_size: 1536 * 1024,
            max_cas_attempts: 10,
        }
    }
}

/// A typed key-value client: the ring's storage interface.
///
/// # Contract
///
/// - `list(prefix)` returns keys that start with `prefix` (prefix included), sorted.
/// - `get(key)` returns the decoded value, or `None` if the key is absent.
/// - `delete(key)` removes the key; deleting an absent key is not an error.
/// - `cas(key, f)` reads the value, calls `f`, and writes the result only if the key was not
///   written meanwhile; on a conflict it waits a short random time and calls `f` again with
///   the newer value, at most [`ClientOptions::max_cas_attempts`] times. So `f` may run
///   several times and must not have side effects beyond computing its answer. Only one of
///   several concurrent CAS on a key succeeds per round: no update is lost.
/// - `watch_key(key, cancel, f)` first calls `f` with the current value if the key exists,
///   then on every change (`None` when the key is deleted), until `f` returns `false` or
///   `cancel` fires. Intermediate values may be coalesced but the latest is never skipped;
///   on store errors the watch reconnects and re-reads, so it survives store restarts.
/// - `watch_prefix(prefix, cancel, f)` is the same for every key under the prefix, except
///   that deletions are not reported (as in dskit, where not every store can report them).
///
/// Errors never panic the caller and failed calls never write (see [`Error`]). Values that
/// do not decode are skipped by watches (and logged), never delivered.
#[async_trait]
pub trait Client<V: Value>: Send + Sync {
    /// Keys under `prefix`, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;
    /// The value at `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<V>, Error>;
    /// Removes `key` (no error if absent).
    async fn delete(&self, key: &str) -> Result<(), Error>;
    /// Compare-and-swap through the callback `f` (see the trait doc).
    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error>;
    /// Calls `f` with each new value of `key` until it returns `false` or `cancel` fires.
    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>);
    /// Calls `f` with each new value under `prefix` until it returns `false` or `cancel`
    /// fires.
    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    );
}

#[async_trait]
impl<V: Value, C: Client<V> + ?Sized> Client<V> for std::sync::Arc<C> {
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        (**self).list(prefix).await
    }
    async fn get(&self, key: &str) -> Result<Option<V>, Error> {
        (**self).get(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), Error> {
        (**self).delete(key).await
    }
    async fn cas(&self, key: &str, f: &mut CasFn<'_, V>) -> Result<(), Error> {
        (**self).cas(key, f).await
    }
    async fn watch_key(&self, key: &str, cancel: &CancellationToken, f: &mut WatchKeyFn<'_, V>) {
        (**self).watch_key(key, cancel, f).await
    }
    async fn watch_prefix(
        &self,
        prefix: &str,
        cancel: &CancellationToken,
        f: &mut WatchPrefixFn<'_, V>,
    ) {
        (**self).watch_prefix(prefix, cancel, f).await
    }
}
