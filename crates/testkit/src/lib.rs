//! Test support for the ringkit workspace: **not an API**, never published
//! (`publish = false`), used only as a dev-dependency of the workspace's own tests and
//! example checks.
//!
//! The tests start real processes (ringkit nodes, etcd, Prometheus, Alertmanager, dskit
//! peers) and listeners on 127.0.0.1. Before this crate each test file wrote its own port
//! picker, kill-on-drop guard, polling loop and "binary missing: skip or fail" check; they
//! live here once:
//!
//! - [`port`]: free 127.0.0.1 ports that two test binaries running at once do not both get.
//! - [`proc`]: a child-process guard that kills (by pid) and reaps on drop and keeps the
//!   path of the child's log for failure messages.
//! - [`wait`]: polling loops bounded in time, sync and async, for "this port accepts",
//!   "this URL answers 200" and any probe.
//! - [`require`]: the `RINGKIT_REQUIRE_*` rule: a missing server binary skips the test
//!   loudly, or fails it when scripts/test.sh says the binary must be there.
//! - [`conn`]: idle TCP connections that hold a server's connection slots, and the
//!   server's descriptors and memory from `/proc`.
//! - `push` (feature `remote-write`): remote-write bodies for pushing to a node.

#![deny(missing_docs)]

pub mod conn;
pub mod port;
pub mod proc;
#[cfg(feature = "remote-write")]
pub mod push;
pub mod require;
pub mod wait;
