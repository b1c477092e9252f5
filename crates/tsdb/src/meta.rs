//! The block `meta.json`: Prometheus' fields, plus the optional `thanos` section that Thanos
//! and Mimir store-gateways and compactors read (external labels, source, file list).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Counts of what a block holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    /// Samples in all chunks.
    #[serde(default)]
    pub num_samples: u64,
    /// Series in the index.
    #[serde(default)]
    pub num_series: u64,
    /// Chunks in the segment files.
    #[serde(default)]
    pub num_chunks: u64,
    /// Deleted ranges (Prometheus writes it only when non-zero).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// How a block came to be: level 1 for a block cut from a head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockCompaction {
    /// 1 for a head block; compactors raise it.
    pub level: u32,
    /// The ULIDs of the level-1 blocks merged into this one (itself for a head block).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Parent blocks of a compacted block (absent for head blocks).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<serde_json::Value>,
}

/// Thanos' downsampling resolution; 0 for raw data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downsample {
    /// Resolution in ms (0 = raw).
    pub resolution: i64,
}

/// One file of a block with its size, as Thanos and Mimir list them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosFile {
    /// Path inside the block directory, e.g. `chunks/000001`.
    pub rel_path: String,
    /// Size in bytes (absent for `meta.json` itself). Mimir names the field `size_bytes`;
    /// Thanos' `size_in_bytes` is accepted when reading.
    #[serde(
        default,
        rename = "size_bytes",
        alias = "size_in_bytes",
        skip_serializing_if = "Option::is_none"
    )]
    pub size_bytes: Option<u64>,
}

/// The `thanos` section of `meta.json`, as Mimir's `block.ThanosMeta` has it.
///
/// Mimir's ingesters upload with `source` `"receive"` and no external labels; older
/// Cortex/Mimir versions put the tenant in the `__org_id__` external label, which Mimir's
/// compactor still recognises (and drops).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThanosMeta {
    /// Version of the section; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// External labels of every series in the block.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Downsampling resolution.
    #[serde(default)]
    pub downsample: Downsample,
    /// Which component made the block (`"receive"` for ingesters, `"compactor"`, ...).
    #[serde(default)]
    pub source: String,
    /// Chunk segment file names, e.g. `["000001"]` (deprecated in favour of `files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segment_files: Vec<String>,
    /// Files of the block and their sizes, sorted by path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ThanosFile>,
}

/// The contents of a block's `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    /// The block's ULID, also its directory name.
    pub ulid: String,
    /// Earliest sample time the block may hold (ms, inclusive).
    pub min_time: i64,
    /// End of the block's range (ms, exclusive).
    pub max_time: i64,
    /// What the block holds.
    #[serde(default)]
    pub stats: BlockStats,
    /// Compaction lineage.
    pub compaction: BlockCompaction,
    /// Format version of the block directory; 1.
    pub version: u32,
    /// Thanos/Mimir section, when the caller asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thanos: Option<ThanosMeta>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_meta_with_a_thanos_section_and_writes_mimir_field_names() {
        let text = r#"{
            "ulid": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
            "minTime": 7200000, "maxTime": 14400000,
            "stats": {"numSamples": 10, "numSeries": 2, "numChunks": 2},
            "compaction": {"level": 1, "sources": ["01HZZZZZZZZZZZZZZZZZZZZZZZ"]},
            "version": 1,
            "thanos": {
                "labels": {"__org_id__": "team-a"},
                "downsample": {"resolution": 0},
                "source": "receive",
                "segment_files": ["000001"],
                "files": [
                    {"rel_path": "chunks/000001", "size_in_bytes": 1234},
                    {"rel_path": "index", "size_bytes": 99},
                    {"rel_path": "meta.json"}
                ]
            }
        }"#;
        let meta: BlockMeta = serde_json::from_str(text).unwrap();
        let thanos = meta.thanos.as_ref().unwrap();
        assert_eq!(thanos.labels["__org_id__"], "team-a");
        assert_eq!(thanos.files[0].size_bytes, Some(1234));
        assert_eq!(thanos.files[1].size_bytes, Some(99));
        assert_eq!(thanos.files[2].size_bytes, None);
        let out = serde_json::to_value(&meta).unwrap();
        assert_eq!(out["thanos"]["files"][0]["size_bytes"], 1234);
        assert!(out["thanos"]["files"][2].get("size_bytes").is_none());
        assert_eq!(out["maxTime"], 14_400_000);
        assert!(out["stats"].get("numTombstones").is_none());
        let again: BlockMeta = serde_json::from_value(out).unwrap();
        assert_eq!(again, meta);
    }
}
