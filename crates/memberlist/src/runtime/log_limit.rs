//! Warnings about what a peer sent (another cluster label, bytes that do not decode,
//! a failed join), at most one line per peer and kind per period, each line saying how
//! many were suppressed since the last one. A misconfigured or hostile peer then shows
//! in the log at once, but cannot flood it.
//!
//! Peers are told apart by IP address (a TCP peer's source port changes with every
//! connection). The table is bounded: when it is full, windows that are over are
//! dropped, and if it is still full the warning is suppressed and counted.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;

/// What a warning is about (one rate limit per peer and kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PeerWarning {
    /// A message carried another cluster label.
    ClusterLabel,
    /// A packet, stream or KV message did not decode.
    Undecodable,
    /// Joining through the peer failed.
    JoinFailed,
}

/// At most this many (peer, kind) windows are tracked.
pub(crate) const MAX_TRACKED: usize = 1024;
/// One warning per peer and kind per this period.
pub(crate) const PERIOD: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Window {
    started: Instant,
    suppressed: u64,
}

/// The per-peer limiter of warnings.
#[derive(Debug)]
pub(crate) struct PeerLogLimiter {
    windows: Mutex<HashMap<(IpAddr, PeerWarning), Window>>,
    period: Duration,
    cap: usize,
    /// Warnings not logged (within a window, or with the table full).
    pub(crate) suppressed: Counter,
}

impl Default for PeerLogLimiter {
    fn default() -> Self {
        Self::new(PERIOD, MAX_TRACKED)
    }
}

impl PeerLogLimiter {
    pub(crate) fn new(period: Duration, cap: usize) -> Self {
        PeerLogLimiter {
            windows: Mutex::new(HashMap::new()),
            period,
            cap: cap.max(1),
            suppressed: Counter::default(),
        }
    }

    /// `Some(n)` when a warning about `peer` should be logged now, `n` being how many
    /// were suppressed since the last one; `None` (counted) when it should not.
    pub(crate) fn allow(&self, peer: IpAddr, kind: PeerWarning, now: Instant) -> Option<u64> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(win) = w.get_mut(&(peer, kind)) {
            if now.saturating_duration_since(win.started) < self.period {
                win.suppressed += 1;
                self.suppressed.inc();
                return None;
            }
            let n = win.suppressed;
            *win = Window {
                started: now,
                suppressed: 0,
            };
            return Some(n);
        }
        if w.len() >= self.cap {
            let period = self.period;
            w.retain(|_, win| now.saturating_duration_since(win.started) < period);
            if w.len() >= self.cap {
                self.suppressed.inc();
                return None;
            }
        }
        w.insert(
            (peer, kind),
            Window {
                started: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// Windows currently tracked.
    pub(crate) fn tracked(&self) -> usize {
        self.windows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Logs a warning about `peer` at WARN through `limiter`.
macro_rules! peer_warn {
    ($limiter:expr, $peer:expr, $kind:expr, $($arg:tt)+) => {{
        let peer: ::std::net::SocketAddr = $peer;
        if let Some(suppressed) =
            $limiter.allow(peer.ip(), $kind, ::std::time::Instant::now())
        {
            ::tracing::warn!(%peer, suppressed, $($arg)+);
        }
    }};
}
pub(crate) use peer_warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_peer_and_kind_per_period_with_the_suppressed_count() {
        let l = PeerLogLimiter::new(Duration::from_secs(60), 8);
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(l.allow(a, PeerWarning::ClusterLabel, t0), Some(0));
        for i in 1..=5 {
            let t = t0 + Duration::from_secs(i);
            assert_eq!(l.allow(a, PeerWarning::ClusterLabel, t), None);
        }
        // Another kind and another peer have windows of their own.
        assert_eq!(l.allow(a, PeerWarning::Undecodable, t0), Some(0));
        assert_eq!(l.allow(b, PeerWarning::ClusterLabel, t0), Some(0));
        let next = t0 + Duration::from_secs(60);
        assert_eq!(l.allow(a, PeerWarning::ClusterLabel, next), Some(5));
        assert_eq!(l.suppressed.get(), 5);
    }

    #[test]
    fn a_full_table_drops_finished_windows_then_suppresses() {
        let l = PeerLogLimiter::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert!(l.allow(ip(1), PeerWarning::Undecodable, t0).is_some());
        assert!(l.allow(ip(2), PeerWarning::Undecodable, t0).is_some());
        // Full, every window still open: the newcomer is suppressed and counted.
        assert_eq!(l.allow(ip(3), PeerWarning::Undecodable, t0), None);
        assert_eq!(l.suppressed.get(), 1);
        assert_eq!(l.tracked(), 2);
        // Once the windows are over they make room.
        let later = t0 + Duration::from_secs(61);
        assert_eq!(l.allow(ip(3), PeerWarning::Undecodable, later), Some(0));
        assert_eq!(l.tracked(), 1);
    }
}
