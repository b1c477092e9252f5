//! Compiles `proto/ring.proto` and `proto/partition_ring.proto` with protox, so building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ring.proto");
    println!("cargo:rerun-if-changed=proto/partition_ring.proto");
    let fds = protox::compile(
        ["proto/ring.proto", "proto/partition_ring.proto"],
        ["proto"],
    )?;
    let mut config = prost_build::Config::new();
    // Ordered maps: deterministic iteration (merge, conflict resolution, encoding).
    config.btree_map(["."]);
    config.type_attribute(
        ".ring.Desc",
        "#[derive(serde::Serialize, serde::Deserialize)]",
    );
    config.type_attribute(
        ".ring.InstanceDesc",
        "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
    );
    // JSON form uses dskit's field names and omits zero values, as Go's encoding/json
    // does with `omitempty`.
    for (field, skip) in [
        ("addr", "String::is_empty"),
        ("timestamp", "crate::codec::json::is_zero_i64"),
        ("state", "crate::codec::json::is_zero_i32"),
        ("tokens", "Vec::is_empty"),
        ("zone", "String::is_empty"),
        ("registered_timestamp", "crate::codec::json::is_zero_i64"),
        ("id", "String::is_empty"),
        (
            "read_only_updated_timestamp",
            "crate::codec::json::is_zero_i64",
        ),
        ("read_only", "crate::codec::json::is_false"),
        ("versions", "::std::collections::BTreeMap::is_empty"),
    ] {
        config.field_attribute(
            format!(".ring.InstanceDesc.{field}"),
            format!("#[serde(skip_serializing_if = \"{skip}\")]"),
        );
    }
    // Partition ring JSON: Go's encoding/json form of dskit's types (camelCase names, map
    // keys as strings, enums as numbers, zero fields omitted except the two maps).
    for ty in ["PartitionRingDesc", "PartitionDesc", "OwnerDesc"] {
        config.type_attribute(
            format!(".ring.{ty}"),
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        );
    }
    for (field, rename, skip) in [
        ("PartitionDesc.tokens", "tokens", "Vec::is_empty"),
        (
            "PartitionDesc.state",
            "state",
            "crate::codec::json::is_zero_i32",
        ),
        (
            "PartitionDesc.stateTimestamp",
            "stateTimestamp",
            "crate::codec::json::is_zero_i64",
        ),
        ("PartitionDesc.id", "id", "crate::codec::json::is_zero_i32"),
        (
            "OwnerDesc.ownedPartition",
            "ownedPartition",
            "crate::codec::json::is_zero_i32",
        ),
        (
            "OwnerDesc.state",
            "state",
            "crate::codec::json::is_zero_i32",
        ),
        (
            "OwnerDesc.updatedTimestamp",
            "updatedTimestamp",
            "crate::codec::json::is_zero_i64",
        ),
    ] {
        config.field_attribute(
            format!(".ring.{field}"),
            format!("#[serde(rename = \"{rename}\", skip_serializing_if = \"{skip}\")]"),
        );
    }
    config.compile_fds(fds)?;
    Ok(())
}
