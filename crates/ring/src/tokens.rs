//! Token generators and the tokens file (spec/ring.md §1.3, §3.9).
