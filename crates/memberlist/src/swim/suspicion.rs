//! Lifeguard's suspicion timer (`spec/memberlist.md` §1.10).
//!
//! A suspected member is declared dead when its timer runs out. The timer starts
//! long (`max`) when independent confirmations are expected and shrinks
//! logarithmically with each new accuser, down to `min`: many accusers are strong
//! evidence, one accuser may just be a slow node.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// memberlist's minimum suspicion timeout:
/// `mult × max(1, log10(max(1, n))) × interval`, with the node scale truncated to
/// thousandths as memberlist does.
pub(crate) fn suspicion_timeout(mult: u32, n: usize, interval: Duration) -> Duration {
    let scale = (n.max(1) as f64).log10().max(1.0);
    let millis = (scale * 1000.0) as u64;
    let nanos = u128::from(mult) * u128::from(millis) * interval.as_nanos() / 1000;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// Total timeout after `confirmations` of `k` expected confirmations:
/// `max − ln(c + 1) / ln(k + 1) × (max − min)`, floored to whole milliseconds and
/// never below `min`.
pub(crate) fn confirmed_timeout(
    confirmations: u32,
    k: u32,
    min: Duration,
    max: Duration,
) -> Duration {
    if k == 0 {
        return min;
    }
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(k) + 1.0).ln();
    let raw = max.as_secs_f64() - frac * (max.as_secs_f64() - min.as_secs_f64());
    let ms = (1000.0 * raw).floor();
    let t = if ms <= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_millis(ms as u64)
    };
    t.max(min)
}

/// One running suspicion about one member.
#[derive(Debug, Clone)]
pub(crate) struct Suspicion {
    /// Confirmations expected before the timer reaches `min`.
    k: u32,
    /// Confirmations received so far (not counting the first accuser).
    n: u32,
    min: Duration,
    max: Duration,
    start: Instant,
    deadline: Instant,
    accusers: BTreeSet<Vec<u8>>,
}

impl Suspicion {
    /// Starts a timer at `now` for an accusation by `from`.
    pub(crate) fn new(now: Instant, from: &[u8], k: u32, min: Duration, max: Duration) -> Self {
        let timeout = if k < 1 { min } else { max };
        Suspicion {
            k,
            n: 0,
            min,
            max,
            start: now,
            deadline: now + timeout,
            accusers: BTreeSet::from([from.to_vec()]),
        }
    }

    /// Records an accusation by `from`. Returns true if it was a new independent
    /// confirmation (then the accusation deserves re-gossip) and the deadline moved.
    pub(crate) fn confirm(&mut self, from: &[u8]) -> bool {
        if self.n >= self.k || self.accusers.contains(from) {
            return false;
        }
        self.accusers.insert(from.to_vec());
        self.n += 1;
        self.deadline = self.start + confirmed_timeout(self.n, self.k, self.min, self.max);
        true
    }

    /// When the member is to be declared dead.
    pub(crate) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Independent confirmations so far.
    #[cfg(test)]
    pub(crate) fn confirmations(&self) -> u32 {
        self.n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn minimum_timeout_matches_the_worked_dskit_numbers() {
        let p = Duration::from_secs(5);
        assert_eq!(suspicion_timeout(4, 1, p), 20 * S);
        assert_eq!(suspicion_timeout(4, 10, p), 20 * S);
        assert_eq!(suspicion_timeout(4, 100, p), 40 * S);
        assert_eq!(suspicion_timeout(4, 1000, p), 60 * S);
        // log10(50) = 1.69897 truncated to 1.698.
        assert_eq!(suspicion_timeout(4, 50, p), Duration::from_millis(33_960));
    }

    #[test]
    fn confirmations_shrink_the_timeout_logarithmically_down_to_min() {
        let (min, max) = (40 * S, 240 * S);
        assert_eq!(confirmed_timeout(0, 2, min, max), max);
        // 240 - ln2/ln3 × 200 = 113.814…
        assert_eq!(
            confirmed_timeout(1, 2, min, max),
            Duration::from_millis(113_814)
        );
        assert_eq!(confirmed_timeout(2, 2, min, max), min);
        assert_eq!(confirmed_timeout(9, 2, min, max), min);
        assert_eq!(confirmed_timeout(5, 0, min, max), min);
    }

    #[test]
    fn only_new_accusers_up_to_k_count_as_confirmations() {
        let t0 = Instant::now();
        let mut s = Suspicion::new(t0, b"a", 2, 40 * S, 240 * S);
        assert_eq!(s.deadline(), t0 + 240 * S);
        assert!(
            !s.confirm(b"a"),
            "the first accuser does not confirm itself"
        );
        assert!(s.confirm(b"b"));
        assert_eq!(s.deadline(), t0 + Duration::from_millis(113_814));
        assert!(!s.confirm(b"b"));
        assert!(s.confirm(b"c"));
        assert_eq!(s.deadline(), t0 + 40 * S);
        assert!(!s.confirm(b"d"), "k confirmations reached");
        assert_eq!(s.confirmations(), 2);
    }

    #[test]
    fn without_expected_confirmations_the_timer_starts_at_min() {
        let t0 = Instant::now();
        let s = Suspicion::new(t0, b"a", 0, 20 * S, 120 * S);
        assert_eq!(s.deadline(), t0 + 20 * S);
    }
}
