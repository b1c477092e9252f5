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
    // InstanceDesc is written by hand (src/model/instance.rs) so its tokens can be shared
    // between copies of a descriptor; prost cannot give a repeated field another type.
    config.extern_path(".ring.InstanceDesc", "crate::model::InstanceDesc");
    config.type_attribute(
        ".ring.Desc",
        "#[derive(serde::Serialize, serde::Deserialize)]",
    );
    // InstanceDesc's JSON form (dskit's field names, zero values left out as Go's
    // `omitempty` does) is declared on the hand-written type.
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
            "PartitionDesc.stateChangeLocked",
            "stateChangeLocked",
            "crate::codec::json::is_false",
        ),
        (
            "PartitionDesc.stateChangeLockedTimestamp",
            "stateChangeLockedTimestamp",
            "crate::codec::json::is_zero_i64",
        ),
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
