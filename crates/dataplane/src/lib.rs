#![doc = include_str!("../README.md")]
//! The networked data path of a ringkit node.
//!
//! # Layout
//! - [`proto`]: the `Ingester` gRPC service (`Push`, `Query`), compiled by protox from
//!   `proto/ingester.proto`; its messages are [`ringkit_ingest::prompb`]'s.
//! - [`tenant`]: the tenant id (`X-Scope-OrgID` / gRPC `x-scope-orgid`) and its rules.
//! - [`ingester`]: [`ingester::IngesterService`], the gRPC server over a
//!   [`ringkit_ingest::head::Head`] (per-tenant heads, WALs and blocks), the load step that
//!   replays them, and the head compaction loop that keeps them bounded.
//! - [`client`]: [`client::IngesterPool`], one lazily connected tonic channel per address.
//! - [`encoded`]: `WriteRequest` as its encoded bytes, the message of `Push` on both sides:
//!   built by copying encoded series, read in place.
//! - [`distributor`]: [`distributor::Distributor`]: validate, shard, DoBatch with quorum
//!   over the current ring snapshot; remote-read fan-out and merge.
//! - [`metrics`]: Cortex/Mimir-named counters of both.
//! - [`limits`]: the distributor's in-flight push, ingestion-rate and read-size limits.
//! - [`server`]: HTTP and gRPC serving with Mimir's `-server.*` connection limits,
//!   timeouts and keepalive.
//! - [`http`]: the distributor's Prometheus endpoints, `POST /api/v1/push` and
//!   `POST /api/v1/read`, as an axum router.
//!
//! # Call contract
//! An ingester binds its gRPC listener, registers in the ring with no tokens, calls
//! [`ingester::load`] (WAL replay) and serves [`ingester::IngesterService`] on the listener,
//! then claims tokens. A distributor holds a [`ringkit_lifecycle::RingWatcher`] and serves
//! [`http::router`]. Client faults are 4xx (HTTP) / `INVALID_ARGUMENT` (gRPC); 5xx only when
//! a quorum of ingesters could not take a write or answer a read.
#![deny(missing_docs)]

pub mod client;
pub mod distributor;
pub mod encoded;
pub mod http;
pub mod ingester;
pub mod limits;
pub mod metrics;
pub mod server;
pub mod tenant;

/// The generated gRPC code of `proto/ingester.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod proto {
    tonic::include_proto!("ringkit.ingester.v1");
}
