//! Errors of the KV clients.
//!
//! Every variant says whether the stored value may have changed. The rule of this crate is
//! that a failed call never writes: decode errors, codec mismatches, oversized values and
//! aborted CAS leave the store exactly as it was.

/// A boxed error from a callback or a backend, kept as the source of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a codec could not turn bytes into a value (or find a codec at all).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes are not a valid encoding for this codec (bad input, not a bug).
    #[error("invalid {codec} value: {reason}")]
    Invalid {
        /// Codec id.
        codec: String,
        /// What was wrong with the bytes.
        reason: String,
    },
    /// No codec with this id is registered.
    #[error("no codec registered with id {0:?}")]
    UnknownId(String),
    /// A codec with this id is registered, but for another value type.
    #[error("codec {id:?} is registered for another value type")]
    WrongType {
        /// Codec id.
        id: String,
    },
}

impl CodecError {
    /// Shorthand for [`CodecError::Invalid`], for codec implementations.
    pub fn invalid(codec: &str, reason: impl std::fmt::Display) -> Self {
        CodecError::Invalid {
            codec: codec.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// What went wrong with a KV operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stored bytes do not decode under the client's codec. Bad data in the store (or a
    /// client with the wrong codec); nothing was written.
    #[error("key {key:?}: stored value does not decode: {source}")]
    Decode {
        /// Key read.
        key: String,
        /// The decoder's complaint.
        #[source]
        source: CodecError,
    },
    /// The stored value was written with another codec (stores that record the codec id,
    /// such as the in-memory and gossip stores). Nothing was written.
    #[error("key {key:?}: stored with codec {stored:?}, this client uses {expected:?}")]
    CodecMismatch {
        /// Key read.
        key: String,
        /// Codec id recorded with the stored value.
        stored: String,
        /// Codec id of this client.
        expected: String,
    },
    /// The encoded value is larger than the configured maximum; nothing was written.
    #[error("key {key:?}: encoded value is {size} bytes, above the limit of {max} bytes")]
    TooLarge {
        /// Key written.
        key: String,
        /// Encoded size.
        size: usize,
        /// Configured limit ([`crate::ClientOptions::max_value_size`]).
        max: usize,
    },
    /// CAS gave up after `attempts` tries, each lost to a concurrent writer or failed with a
    /// retryable error (the last one is `last`). Nothing was written by this call.
    #[error("key {key:?}: CAS gave up after {attempts} attempts{}", last.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    CasGaveUp {
        /// Key.
        key: String,
        /// Attempts made.
        attempts: u32,
        /// The last retryable error, if the last attempt failed with one (else it was a
        /// conflict).
        last: Option<BoxError>,
    },
    /// The CAS callback chose to abort; nothing was written. Counted as a success by the
    /// metrics, as dskit does: the caller decided, the store did not fail.
    #[error("key {key:?}: CAS aborted by the caller: {reason}")]
    Aborted {
        /// Key.
        key: String,
        /// The callback's reason.
        reason: BoxError,
    },
    /// The backing store failed or could not be reached (network, server error). The write,
    /// if any, may or may not have happened: re-read to find out.
    #[error("{store} {op} failed: {source}")]
    Store {
        /// Store kind (`etcd`, `inmemory`, ...).
        store: &'static str,
        /// Operation (`get`, `cas`, ...).
        op: &'static str,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The configuration is invalid; nothing was contacted.
    #[error("invalid KV configuration: {0}")]
    Config(String),
}

impl Error {
    /// True for [`Error::Aborted`], which metrics count as a success.
    pub fn is_aborted(&self) -> bool {
        matches!(self, Error::Aborted { .. })
    }
}
