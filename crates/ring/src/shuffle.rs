//! Shuffle sharding (spec/ring.md §3.5).
