//! Ring operations and per-operation health (spec/ring.md §3.2).
//!
//! An [`Operation`] is a bitmask with dskit's layout, so custom operations built in Go and
//! in Rust mean the same thing: bit `s` (0-15) set means state `s` is healthy for the
//! operation; bit `16 + s` set means an instance in state `s` is included in a replica set
//! but does not count toward the replication factor (the set is extended).

use crate::model::InstanceState;

/// Which instance states an operation may use, and which states extend a replica set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation(pub u32);

impl Operation {
    /// Writes go to ACTIVE instances; any other state met on the walk extends the set, so
    /// the write still lands on RF ACTIVE instances.
    pub const WRITE: Operation = Operation::new(
        &[InstanceState::Active],
        &[
            InstanceState::Leaving,
            InstanceState::Pending,
            InstanceState::Joining,
            InstanceState::Left,
        ],
    );
    /// Writes to ACTIVE instances without extending the set (what Mimir and Loki
    /// distributors use).
    pub const WRITE_NO_EXTEND: Operation = Operation::new(&[InstanceState::Active], &[]);
    /// Reads may use ACTIVE, PENDING and LEAVING instances; PENDING, JOINING and LEFT extend
    /// the set, matching the extension of writes.
    pub const READ: Operation = Operation::new(
        &[
            InstanceState::Active,
            InstanceState::Pending,
            InstanceState::Leaving,
        ],
        &[
            InstanceState::Pending,
            InstanceState::Joining,
            InstanceState::Left,
        ],
    );
    /// Every state is healthy and nothing extends: for "who is out there" questions.
    pub const REPORTING: Operation = Operation(0x0000_ffff);

    /// Builds an operation from its healthy states and the states that extend a set.
    pub const fn new(healthy: &[InstanceState], extend_on: &[InstanceState]) -> Operation {
        let mut bits = 0u32;
        let mut i = 0;
        while i < healthy.len() {
            bits |= 1 << (healthy[i] as u32);
            i += 1;
        }
        let mut j = 0;
        while j < extend_on.len() {
            bits |= 0x1_0000 << (extend_on[j] as u32);
            j += 1;
        }
        Operation(bits)
    }

    /// Whether an instance in raw wire state `state` may serve this operation (heartbeat
    /// aside). Unknown states beyond bit 15 are never healthy.
    #[inline]
    pub fn is_state_healthy(self, state: i32) -> bool {
        (0..16).contains(&state) && self.0 & (1 << state) != 0
    }

    /// Whether meeting an instance in raw wire state `state` extends the replica set.
    #[inline]
    pub fn extends_on(self, state: i32) -> bool {
        (0..16).contains(&state) && self.0 & (0x1_0000 << state) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InstanceState::*;

    #[test]
    fn bit_layout_matches_dskit() {
        // dskit: Write = healthy ACTIVE, extend on every non-ACTIVE of the 5 states.
        assert_eq!(Operation::WRITE.0, 0x1 | (0x1e << 16));
        assert_eq!(Operation::WRITE_NO_EXTEND.0, 0x1);
        assert_eq!(Operation::READ.0, 0b111 | (0b11100 << 16));
        assert_eq!(Operation::REPORTING.0, 0xffff);
    }

    #[test]
    fn health_and_extension_per_state() {
        let cases = [
            (Operation::WRITE, Active, true, false),
            (Operation::WRITE, Leaving, false, true),
            (Operation::WRITE, Joining, false, true),
            (Operation::WRITE_NO_EXTEND, Leaving, false, false),
            (Operation::READ, Leaving, true, false),
            (Operation::READ, Pending, true, true),
            (Operation::READ, Joining, false, true),
            (Operation::REPORTING, Left, true, false),
        ];
        for (op, state, healthy, extends) in cases {
            assert_eq!(op.is_state_healthy(state as i32), healthy, "{op:?} {state}");
            assert_eq!(op.extends_on(state as i32), extends, "{op:?} {state}");
        }
    }

    #[test]
    fn unknown_states_are_never_healthy() {
        assert!(!Operation::REPORTING.is_state_healthy(-1));
        assert!(!Operation::REPORTING.is_state_healthy(16));
        assert!(
            Operation::REPORTING.is_state_healthy(5),
            "Cortex READONLY is within the mask"
        );
    }
}
