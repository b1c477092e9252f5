//! Errors of the shipper.

use std::path::PathBuf;

/// Why a block, a marker file or a bucket could not be handled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShipError {
    /// A local file or directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A block's `meta.json` is not the JSON a block must carry.
    #[error("{path}: invalid block meta: {reason}")]
    BadMeta {
        /// The `meta.json` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The object store refused or failed an operation.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The bucket configuration cannot work (missing bucket name, backend not compiled in...).
    #[error("bucket configuration: {0}")]
    Config(String),
    /// Some blocks of a sync could not be uploaded (they are retried on the next sync).
    #[error("{failed} block(s) could not be uploaded; last error: {last}")]
    UploadsFailed {
        /// How many blocks failed every attempt.
        failed: usize,
        /// The last error seen.
        last: String,
    },
}

impl ShipError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ShipError {
        ShipError::Io {
            path: path.into(),
            source,
        }
    }
}
