//! Immutable ring snapshot and lookups (spec/ring.md §3.3-3.4).
