#![doc = include_str!("../README.md")]
//! Ships finished TSDB blocks from an ingester's local disk to object storage, in the bucket
//! layout that Mimir's store-gateways and compactor (and Thanos) read:
//! `<tenant>/<ULID>/meta.json`, `<tenant>/<ULID>/index`, `<tenant>/<ULID>/chunks/000001`...
//!
//! Why it can be trusted across crashes (the rules Thanos' and Mimir's shippers follow):
//! - every object is written whole or not at all (object_store's put and multipart upload
//!   are atomic), and a block's `meta.json` is uploaded **last**: a block without it in the
//!   bucket is partial, ignored by readers, and uploaded again from the start;
//! - shipped blocks are recorded in `<tsdb dir>/<tenant>/mimir.shipper.json` (Mimir's name
//!   and format), written to a temporary file, synced and renamed;
//! - before uploading a block that file does not list, the shipper asks the bucket whether
//!   its `meta.json` is there: a crash between the last upload and the file update adopts the
//!   block instead of uploading it twice.
//!
//! [`Shipper::is_shipped`] tells local retention which blocks it may delete.

mod block;
mod bucket;
mod error;
mod marker;
mod metrics;
mod shipper;

pub use block::{BlockMeta, LocalBlock, list_blocks};
pub use bucket::{BucketConfig, RequestRetry, open_bucket};
pub use error::ShipError;
pub use marker::{MARKER_FILE, ShippedMarker};
pub use metrics::ShipperMetrics;
pub use shipper::{Shipper, ShipperConfig, SyncReport};
pub use ulid::Ulid;
