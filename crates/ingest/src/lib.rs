#![doc = include_str!("../README.md")]
//! The remote-write data path of a ringkit node that needs no network.
//!
//! # Layout
//! - [`prompb`]: Prometheus remote-write 1.0 / remote-read messages (hand-written prost derives).
//! - [`decode`]: HTTP body (snappy block + protobuf) to [`prompb::WriteRequest`], with size limits.
//! - [`view`]: a `WriteRequest` read in place (labels borrowed from the body, no allocation per
//!   label), accepting exactly what prost accepts.
//! - [`validate`]: Mimir-like series validation and normalisation (sorted labels, no empty values).
//! - [`hash`]: the shard key of a series (FNV-1 32 over tenant and labels, from `ringkit-ring`).
//! - [`labels`]: label sets packed into one allocation (the head's and the WAL's form).
//! - [`store`]: the in-memory per-tenant heads: series references, XOR chunks, Prometheus'
//!   append answers, block ranges, truncation.
//! - [`head_chunks`]: full head chunks written to `chunks_head/` files (Prometheus' format)
//!   and memory-mapped, so a series keeps only its open chunk in memory.
//! - [`record`]: WAL record payloads (series once, samples by reference, checkpoint chunks).
//! - [`wal`]: the checksummed, append-only write-ahead log and its replay.
//! - [`checkpoint`]: what a head still needs, replacing older WAL segments.
//! - [`block`]: where cut ranges go ([`block::BlockStore`]; Prometheus blocks by default).
//! - [`head`]: an ingester's TSDB: per-tenant store + WAL in the order that makes an
//!   acknowledged sample durable, block cuts, checkpoints, retention, replay.
//!
//! # Call contract
//! A distributor calls [`decode::decode_write_request`], then [`validate::validate_request`],
//! then [`hash::series_key`] per series. An ingester hands the validated series to
//! [`head::Head::push`], which appends them to its [`store::Store`] and logs what the store
//! accepted with [`wal::Wal::log`] before returning; [`head::Head::open_with`] replays the
//! checkpoints and WALs first, and [`head::Head::compact`], run periodically, keeps the heads
//! bounded. Everything here is synchronous and never panics on input; every bad-input error reports
//! a 4xx status through an `http_status` method, and only WAL I/O errors mean a 5xx.
#![deny(missing_docs)]

pub mod block;
pub mod checkpoint;
pub mod decode;
pub mod hash;
pub mod head;
pub mod head_chunks;
pub mod labels;
pub mod prompb;
pub mod record;
pub mod store;
pub mod validate;
pub mod view;
pub mod wal;
