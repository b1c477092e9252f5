//! The ring key of a series.
//!
//! A series is placed on the ring by [`ringkit_ring::hash::shard_by_all_labels`]: FNV-1 32 over the
//! tenant, then every label name and value in order. The labels must be the *validated* ones
//! (sorted by name, empty values dropped), or two spellings of one series would land on
//! different ingesters.

use crate::prompb::Label;

/// The ring token of a series of `tenant` with validated (sorted) `labels`.
pub fn series_key(tenant: &str, labels: &[Label]) -> u32 {
    ringkit_ring::hash::shard_by_all_labels(
        tenant,
        labels.iter().map(|l| (l.name.as_str(), l.value.as_str())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
