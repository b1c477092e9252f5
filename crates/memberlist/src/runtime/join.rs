//! Joining the cluster the way dskit's memberlist KV does (`spec/memberlist.md` §2.11):
//!
//! 1. **Fast join**, while the node starts (before [`Memberlist::start`] returns, so
//!    nothing that uses the store runs on an empty one): the seeds are resolved,
//!    shuffled, and joined one at a time until `retransmit_mult × ceil(log10(found + 1))`
//!    answered or the list is used up. Fewer than `abort_if_fast_join_fails_min_nodes`
//!    answers fail the start when `abort_if_fast_join_fails` is set.
//! 2. **Full join**, in the background: every resolved seed, each with its own
//!    push/pull, retried with a doubling backoff (`min_join_backoff` ..
//!    `max_join_backoff`, `max_join_retries` attempts). Its outcome is published
//!    ([`Memberlist::startup_join`]) so the owner can stop when
//!    `abort_if_join_fails` is set.
//! 3. **Rejoin**, when `rejoin_interval` > 0: every interval (the first one after a
//!    random part of it, so processes started together spread out) the rejoin seeds
//!    (or the join seeds) are joined again, one attempt each time. This is what mends a
//!    cluster split, e.g. after the only seed restarted and formed a cluster of its own.
//!
//! Seeds are resolved again for every attempt (DNS names may point elsewhere by then).
//! Our own address counts as answered without an exchange, as memberlist's push/pull
//! with itself would: a seed whose join list names itself is not a failed join.

use std::net::SocketAddr;
use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, RngExt};
use tokio::sync::watch;

use super::log_limit::{PeerWarning, peer_warn};
use super::node::{JoinError, Memberlist};
use super::resolve::resolve_members;

/// Where the background (full) startup join is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinStatus {
    /// Still joining (or retrying).
    Pending,
    /// Joined: how many addresses answered (our own included). Also the status when
    /// no seed is configured (0).
    Joined(usize),
    /// Every attempt failed; the last error.
    Failed(String),
}

/// How many members a fast join stops at: memberlist's gossip fan-out formula,
/// `retransmit_mult × ceil(log10(found + 1))`.
pub(crate) fn fast_join_target(retransmit_mult: usize, found: usize) -> usize {
    let log = ((found + 1) as f64).log10().ceil() as usize;
    retransmit_mult.saturating_mul(log)
}

/// The delay before the next join attempt: `backoff` with up to half of it taken off
/// at random (so nodes that failed together do not retry in step).
fn jittered(backoff: Duration, rng: &mut impl Rng) -> Duration {
    let ms = backoff.as_millis().min(u128::from(u64::MAX)) as u64;
    Duration::from_millis(ms - rng.random_range(0..=ms / 2))
}

impl Memberlist {
    /// Push/pull with each of `addrs` in turn (our own address counts as answered).
    /// Returns how many answered and the last failure.
    async fn join_addrs(&self, addrs: &[SocketAddr]) -> (usize, Option<String>) {
        let mut ok = 0;
        let mut last = None;
        for a in addrs {
            if *a == self.advertise_addr() {
                ok += 1;
                continue;
            }
            match self.push_pull(*a, true).await {
                Ok(()) => ok += 1,
                Err(e) => {
                    peer_warn!(
                        self.peer_warnings(),
                        *a,
                        PeerWarning::JoinFailed,
                        error = %e,
                        "joining memberlist cluster through this member failed"
                    );
                    last = Some(format!("{a}: {e}"));
                }
            }
        }
        (ok, last)
    }

    /// Joins the cluster through `seeds` (`host:port`, `dns+host:port`, `dnssrv+name`,
    /// `dnssrvnoa+name`): one full
    /// push/pull with each resolved address. Returns how many answered (our own
    /// address, when listed, counts without an exchange).
    pub async fn join(&self, seeds: &[String]) -> Result<usize, JoinError> {
        let addrs = resolve_members(seeds, &self.config().dns_servers).await;
        if addrs.is_empty() {
            return Err(JoinError::NoAddress(seeds.join(", ")));
        }
        match self.join_addrs(&addrs).await {
            (0, last) => Err(JoinError::Failed {
                tried: addrs.len(),
                last: last.unwrap_or_default(),
            }),
            (n, _) => Ok(n),
        }
    }

    /// Step 1 (see the module docs). Returns how many seeds answered.
    pub(super) async fn fast_join(&self) -> Result<usize, JoinError> {
        let cfg = self.config();
        let mut addrs = resolve_members(&cfg.join_members, &cfg.dns_servers).await;
        if addrs.is_empty() {
            return Err(JoinError::NoAddress(cfg.join_members.join(", ")));
        }
        addrs.shuffle(&mut rand::rng());
        let mut to_join = fast_join_target(cfg.swim.retransmit_mult, addrs.len());
        tracing::info!(
            nodes_found = addrs.len(),
            to_join,
            "memberlist fast-join starting"
        );
        let mut joined = 0;
        let mut last = None;
        for a in &addrs {
            if to_join == 0 {
                break;
            }
            let (n, err) = self.join_addrs(std::slice::from_ref(a)).await;
            if let Some(e) = err {
                tracing::info!(node = %a, error = %e, "fast-joining node failed");
                last = Some(e);
            }
            joined += n;
            to_join = to_join.saturating_sub(n);
        }
        let need = cfg.abort_if_fast_join_fails_min_nodes.max(1);
        if joined < need {
            return Err(JoinError::Failed {
                tried: addrs.len(),
                last: last.unwrap_or_else(|| format!("joined {joined}, required {need}")),
            });
        }
        tracing::info!(joined_nodes = joined, "memberlist fast-join finished");
        Ok(joined)
    }

    /// Joins `seeds` (resolved again on every attempt) up to `attempts` times with
    /// the configured backoff; succeeds as soon as one address answers.
    async fn join_with_retries(&self, seeds: &[String], attempts: u32) -> Result<usize, String> {
        let cfg = self.config();
        let mut backoff = cfg.min_join_backoff;
        let mut last = String::new();
        let attempts = attempts.max(1);
        for attempt in 1..=attempts {
            match self.join(seeds).await {
                Ok(n) => return Ok(n),
                Err(e) => {
                    tracing::warn!(attempt, max_attempts = attempts, error = %e, "joining memberlist cluster");
                    last = e.to_string();
                }
            }
            if attempt == attempts {
                break;
            }
            let wait = jittered(backoff, &mut rand::rng());
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancelled() => return Err("stopped".to_owned()),
            }
            backoff = (backoff.saturating_mul(2)).min(cfg.max_join_backoff);
        }
        Err(last)
    }

    /// Steps 2 and 3 (see the module docs), until the node stops.
    pub(super) async fn join_in_background(self, status: watch::Sender<JoinStatus>) {
        let cfg = self.config().clone();
        if cfg.join_members.is_empty() {
            status.send_replace(JoinStatus::Joined(0));
        } else {
            tracing::info!(join_members = %cfg.join_members.join(","), "joining memberlist cluster");
            let outcome = self
                .join_with_retries(&cfg.join_members, cfg.max_join_retries)
                .await;
            match &outcome {
                Ok(n) => tracing::info!(reached_nodes = n, "joining memberlist cluster succeeded"),
                Err(e) => tracing::error!(error = %e, "joining memberlist cluster failed"),
            }
            status.send_replace(match outcome {
                Ok(n) => JoinStatus::Joined(n),
                Err(e) => JoinStatus::Failed(e),
            });
        }
        // Joined or given up: from now on a zone without a bridge is news
        // (dskit marks its routing delegate joined at this point too).
        self.mark_joined().await;
        let seeds = if cfg.rejoin_seed_nodes.is_empty() {
            &cfg.join_members
        } else {
            &cfg.rejoin_seed_nodes
        };
        if cfg.rejoin_interval.is_zero() || seeds.is_empty() {
            return;
        }
        let interval = cfg.rejoin_interval;
        let first = {
            let ms = interval.as_millis().clamp(1, u128::from(u64::MAX)) as u64;
            Duration::from_millis(rand::rng().random_range(1..=ms))
        };
        let mut next = tokio::time::Instant::now() + first;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.cancelled() => return,
            }
            match self.join_with_retries(seeds, 1).await {
                Ok(n) => tracing::info!(reached_nodes = n, "re-joined memberlist cluster"),
                Err(e) => tracing::warn!(
                    error = %e,
                    next_try_in = ?interval,
                    "re-joining memberlist cluster failed"
                ),
            }
            next += interval;
            let now = tokio::time::Instant::now();
            if next < now {
                next = now + interval;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn fast_join_target_follows_memberlists_fan_out() {
        assert_eq!(fast_join_target(4, 0), 0);
        assert_eq!(fast_join_target(4, 1), 4);
        assert_eq!(fast_join_target(4, 9), 4);
        assert_eq!(fast_join_target(4, 10), 8);
        assert_eq!(fast_join_target(4, 99), 8);
        assert_eq!(fast_join_target(4, 100), 12);
    }

    #[test]
    fn jitter_takes_off_at_most_half() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..1000 {
            let d = jittered(Duration::from_secs(2), &mut rng);
            assert!(
                d >= Duration::from_secs(1) && d <= Duration::from_secs(2),
                "{d:?}"
            );
        }
        assert_eq!(jittered(Duration::ZERO, &mut rng), Duration::ZERO);
    }
}
