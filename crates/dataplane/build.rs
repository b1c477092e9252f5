//! Compiles the ingester service with protox, so building needs no `protoc`. The Prometheus
//! messages it carries are the hand-written ones of `ringkit-ingest` (`extern_path`); the
//! `.proto` only declares them so the service definition type-checks. `Push` carries its
//! `WriteRequest` as encoded bytes (`crate::encoded::RawWriteRequest`), read in place.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/ingester.proto");
    println!("cargo:rerun-if-changed=proto/prometheus.proto");
    let fds = protox::compile(["proto/ingester.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .extern_path(".prometheus", "::ringkit_ingest::prompb")
        .extern_path(
            ".prometheus.WriteRequest",
            "crate::encoded::RawWriteRequest",
        )
        .compile_fds(fds)?;
    Ok(())
}
