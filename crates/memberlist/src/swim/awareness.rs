//! Lifeguard's local health score ("awareness", `spec/memberlist.md` §1.10).
//!
//! A node that misses acks may be the slow one. The score rises when our probes
//! fail without helpers reporting nacks, and when we have to refute accusations;
//! it falls with every successful probe. The time a failing probe may take is
//! multiplied by `score + 1`, so an overloaded node accuses others more slowly.

use std::time::Duration;

/// The health score, kept in `0..max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Awareness {
    max: u32,
    score: u32,
}

impl Awareness {
    /// A healthy node (score 0); `max` is memberlist's `AwarenessMaxMultiplier`.
    pub(crate) fn new(max: u32) -> Self {
        Awareness {
            max: max.max(1),
            score: 0,
        }
    }

    /// Current score, 0 = healthy (memberlist `GetHealthScore`).
    pub(crate) fn score(&self) -> u32 {
        self.score
    }

    /// Adds `delta` (negative for good news), clamped to `0..=max-1`.
    pub(crate) fn apply_delta(&mut self, delta: i64) {
        let v = (i64::from(self.score) + delta).clamp(0, i64::from(self.max) - 1);
        // The clamp keeps v within u32 range.
        self.score = u32::try_from(v).unwrap_or(0);
    }

    /// `timeout × (score + 1)`.
    pub(crate) fn scale(&self, timeout: Duration) -> Duration {
        timeout * (self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_never_leaves_zero_to_max_minus_one() {
        let mut a = Awareness::new(8);
        a.apply_delta(-5);
        assert_eq!(a.score(), 0);
        a.apply_delta(3);
        assert_eq!(a.score(), 3);
        a.apply_delta(100);
        assert_eq!(a.score(), 7);
        a.apply_delta(-1);
        assert_eq!(a.score(), 6);
        a.apply_delta(i64::MIN / 2);
        assert_eq!(a.score(), 0);
    }

    #[test]
    fn probe_interval_is_scaled_by_score_plus_one() {
        let mut a = Awareness::new(8);
        let base = Duration::from_secs(5);
        assert_eq!(a.scale(base), base);
        a.apply_delta(2);
        assert_eq!(a.scale(base), Duration::from_secs(15));
        a.apply_delta(50);
        assert_eq!(a.scale(base), Duration::from_secs(40));
    }
}
