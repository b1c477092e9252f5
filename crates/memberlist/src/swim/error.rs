//! Errors of the SWIM core's commands and stream inputs.

use thiserror::Error;

use super::config::ConfigError;

/// Why a command or a push/pull was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is unusable; no core was created.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Node metadata above memberlist's 512 bytes (Go panics here); state unchanged.
    #[error("node metadata of {0} bytes exceeds 512")]
    MetaTooLong(usize),
    /// Explicit node metadata together with zone-aware routing, which announces its
    /// own (role and zone); nothing was created.
    #[error("node metadata conflicts with the zone-aware routing metadata")]
    MetaConflict,
    /// A push/pull whose protocol versions are incompatible with ours or with the
    /// cluster (memberlist `verifyProtocol`). Peer input, not a bug; nothing of the
    /// exchange was merged.
    #[error("node {node:?} speaks {what} version {version}, outside [{min}, {max}]")]
    IncompatibleVersions {
        /// The offending node's name (lossy UTF-8).
        node: String,
        /// `"protocol"` or `"delegate"`.
        what: &'static str,
        /// Its current version.
        version: u8,
        /// Highest minimum in the cluster.
        min: u8,
        /// Lowest maximum in the cluster.
        max: u8,
    },
}
