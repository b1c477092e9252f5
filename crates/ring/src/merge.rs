//! Gossip CRDT merge of ring descriptors (spec/ring.md §3.8).
