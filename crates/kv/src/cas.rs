//! The CAS loop shared by the stores that offer a versioned conditional write, and the
//! jittered backoff used between attempts and between watch reconnections.

use std::time::Duration;

use async_trait::async_trait;
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use crate::client::{CasDecision, CasFn, Value};
use crate::codec::ValueCodec;
use crate::error::Error;

/// Bytes as a store holds them, with the version a conditional write compares against.
pub(crate) struct Stored {
    pub(crate) bytes: Vec<u8>,
    /// Codec id recorded with the value (stores that keep one).
    pub(crate) codec_id: Option<String>,
    /// Store revision of the last write to this key; never 0 for a present key.
    pub(crate) version: i64,
}

/// A store seen by the CAS loop: a read and a write that only succeeds on an unchanged key.
#[async_trait]
pub(crate) trait CasStore: Send + Sync {
    async fn read(&self, key: &str) -> Result<Option<Stored>, Error>;
    /// Writes if the key's version is still `seen` (0: still absent). `Ok(false)` means a
    /// concurrent write won; the store was not changed.
    async fn write_if(
        &self,
        key: &str,
        seen: i64,
        bytes: Vec<u8>,
        codec_id: &str,
    ) -> Result<bool, Error>;
}

/// Runs the CAS contract of [`crate::Client::cas`] over `store`.
pub(crate) async fn run_cas<V: Value>(
    store: &dyn CasStore,
    codec: &ValueCodec<V>,
    key: &str,
    max_attempts: u32,
    f: &mut CasFn<'_, V>,
) -> Result<(), Error> {
    let mut backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));
    let mut last = None;
    let attempts = max_attempts.max(1);
    for attempt in 1..=attempts {
        if attempt > 1 {
            backoff.sleep().await;
        }
        let stored = match store.read(key).await {
            Ok(s) => s,
            Err(e @ Error::Store { .. }) => {
                tracing::debug!(key, attempt, error = %e, "CAS read failed, retrying");
                last = Some(Box::new(e) as _);
                continue;
            }
            Err(e) => return Err(e),
        };
        let (current, seen) = match &stored {
            // A value that does not decode will not decode next time either: fail now,
            // leaving it untouched, rather than burn the attempts.
            Some(s) => (
                Some(codec.decode(key, &s.bytes, s.codec_id.as_deref())?),
                s.version,
            ),
            None => (None, 0),
        };
        let new = match f(current) {
            CasDecision::Write(v) => v,
            CasDecision::Unchanged => return Ok(()),
            CasDecision::Abort(reason) => {
                return Err(Error::Aborted {
                    key: key.to_owned(),
                    reason,
                });
            }
            CasDecision::Retry(e) => {
                last = Some(e);
                continue;
            }
        };
        let bytes = codec.encode(key, &new)?;
        match store.write_if(key, seen, bytes, codec.id()).await {
            Ok(true) => return Ok(()),
            Ok(false) => {
                tracing::debug!(key, attempt, "CAS conflict, retrying");
                last = None;
            }
            Err(e @ Error::Store { .. }) => {
                tracing::debug!(key, attempt, error = %e, "CAS write failed, retrying");
                last = Some(Box::new(e) as _);
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::CasGaveUp {
        key: key.to_owned(),
        attempts,
        last,
    })
}

/// Exponential backoff with jitter: each wait is uniform in `[cap/2, cap]`, where the cap
/// doubles from `min` to `max`. Jitter keeps racing CAS writers from retrying in lockstep.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Backoff { min, max, cap: min }
    }

    /// Back to the shortest wait, after a success.
    #[cfg_attr(
        not(feature = "etcd"),
        allow(dead_code, reason = "only the etcd watch resets")
    )]
    pub(crate) fn reset(&mut self) {
        self.cap = self.min;
    }

    fn next_delay(&mut self) -> Duration {
        let cap = self.cap;
        self.cap = (self.cap * 2).min(self.max);
        let nanos = cap.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(rand::rng().random_range(nanos / 2..=nanos.max(1)))
    }

    pub(crate) async fn sleep(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// Waits, or returns `false` early if `cancel` fires.
    #[cfg_attr(
        not(feature = "etcd"),
        allow(dead_code, reason = "only the etcd watch waits so")
    )]
    pub(crate) async fn sleep_or_cancel(&mut self, cancel: &CancellationToken) -> bool {
        let d = self.next_delay();
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = cancel.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_millis(80));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_millis(80));
        }
        assert_eq!(b.cap, Duration::from_millis(80));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(10));
    }
}
