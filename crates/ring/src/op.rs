//! Ring operations and per-operation health (spec/ring.md §3.2).
