//! The ring key of a series.
//!
//! A series is placed on the ring by [`ringkit_ring::hash::shard_by_all_labels`]: FNV-1 32 over the
//! tenant, then every label name and value in order. The labels must be the *validated* ones
//! (sorted by name, empty values dropped), or two spellings of one series would land on
//! different ingesters.

use crate::labels::LabelPair;

/// The ring token of a series of `tenant` with validated (sorted) `labels`, owned or
/// borrowed from the request body.
pub fn series_key<L: LabelPair>(tenant: &str, labels: &[L]) -> u32 {
    ringkit_ring::hash::shard_by_all_labels(tenant, labels.iter().map(|l| (l.name(), l.value())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompb::Label;

    #[test]
    fn matches_the_go_fnv1_value_for_a_known_series() {
        // Same input as ringkit-ring's own check against Go's fnv.New32.
        let labels = [Label::new("__name__", "up"), Label::new("job", "node")];
        assert_eq!(series_key("user-1", &labels), 3_624_131_105);
    }

    #[test]
    fn the_tenant_changes_the_key() {
        let labels = [Label::new("__name__", "up")];
        assert_ne!(series_key("a", &labels), series_key("b", &labels));
    }
}
