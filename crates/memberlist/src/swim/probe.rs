//! One probe cycle and the indirect probes we relay for others
//! (`spec/memberlist.md` §1.10).
//!
//! A probe goes through two phases: a direct ping answered within
//! `probe_timeout`, then indirect pings through helpers until the end of the
//! (awareness-scaled) probe interval. Nacks from helpers mean "I could not reach
//! it either", which tells Lifeguard that our own link is fine.

use std::net::SocketAddr;
use std::time::Instant;

/// The phase of the probe in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Waiting for the direct ack until `ack_deadline`.
    Direct,
    /// Helpers asked; waiting until `end`.
    Indirect,
}

/// The probe in flight (at most one per node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Probe {
    /// Sequence number of our ping; helpers echo it.
    pub seq_no: u32,
    /// Probed member.
    pub target: Vec<u8>,
    /// Its incarnation when the probe started (used for the suspicion).
    pub incarnation: u32,
    /// End of the direct phase.
    pub ack_deadline: Instant,
    /// End of the whole probe (scaled probe interval).
    pub end: Instant,
    /// Current phase.
    pub phase: Phase,
    /// Helpers that promised a nack.
    pub expected_nacks: u32,
    /// Nacks received.
    pub nacks: u32,
}

impl Probe {
    /// The next instant this probe needs attention.
    pub(crate) fn deadline(&self) -> Instant {
        match self.phase {
            Phase::Direct => self.ack_deadline,
            Phase::Indirect => self.end,
        }
    }

    /// Awareness change when the probe fails: one point per missing nack, or one
    /// point when no helper could send nacks.
    pub(crate) fn failure_delta(&self) -> i64 {
        if self.expected_nacks > 0 {
            i64::from(self.expected_nacks.saturating_sub(self.nacks))
        } else {
            1
        }
    }
}

/// An indirect ping we perform for another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relay {
    /// Our ping's sequence number.
    pub local_seq: u32,
    /// The requester's sequence number, echoed in the forwarded ack or nack.
    pub orig_seq: u32,
    /// Where to send the ack or nack.
    pub requester: SocketAddr,
    /// Whether the requester wants a nack on timeout.
    pub nack: bool,
    /// When we give up (`probe_timeout` after the request).
    pub deadline: Instant,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_delta_counts_missing_nacks_or_one_without_helpers() {
        let now = Instant::now();
        let mut p = Probe {
            seq_no: 1,
            target: b"x".to_vec(),
            incarnation: 1,
            ack_deadline: now,
            end: now,
            phase: Phase::Indirect,
            expected_nacks: 3,
            nacks: 1,
        };
        assert_eq!(p.failure_delta(), 2);
        p.nacks = 3;
        assert_eq!(
            p.failure_delta(),
            0,
            "all helpers failed too: our link is fine"
        );
        p.expected_nacks = 0;
        p.nacks = 0;
        assert_eq!(p.failure_delta(), 1);
    }
}
