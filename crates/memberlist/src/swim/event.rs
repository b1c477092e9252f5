//! What the core tells its owner: membership changes and the delegate seam.

use std::net::SocketAddr;

use super::member::Member;

/// An event for the application, taken with [`super::Core::poll_event`].
///
/// Membership events carry a copy of the member as it is after the change. The
/// last three variants are the delegate seam towards the gossip KV: memberlist
/// calls `NotifyMsg` and `MergeRemoteState` there.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A member became alive: first seen, or back from dead/left (memberlist
    /// `NotifyJoin`; also emitted once for the local node at start).
    MemberJoined(Member),
    /// An alive member changed its metadata (memberlist `NotifyUpdate`).
    MemberUpdated(Member),
    /// A member failed a probe and is suspected (no memberlist callback; useful for
    /// metrics and tests).
    MemberSuspect(Member),
    /// A member was declared dead (memberlist `NotifyLeave`).
    MemberDead(Member),
    /// A member left gracefully (memberlist `NotifyLeave`).
    MemberLeft(Member),
    /// A user (delegate) message arrived in a packet (memberlist `NotifyMsg`).
    UserMessage {
        /// Packet source.
        from: SocketAddr,
        /// The bytes after the `0x08` type byte (for dskit: one `KeyValuePair`).
        bytes: Vec<u8>,
    },
    /// A push/pull exchange brought the peer's delegate state, to be merged
    /// (memberlist `MergeRemoteState`). Only emitted after the membership part
    /// passed the version check.
    RemoteState {
        /// The peer.
        from: SocketAddr,
        /// True for a join exchange.
        join: bool,
        /// The raw user state (for dskit: length-prefixed `KeyValuePair`s).
        state: Vec<u8>,
    },
    /// After [`super::Core::leave`]: the leave message went out as often as the
    /// retransmit limit asks (or nobody was alive to tell); the node may shut down.
    LeaveBroadcastDone,
}
