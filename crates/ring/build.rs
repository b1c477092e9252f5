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
    config.compile_fds(fds)?;
    Ok(())
}
