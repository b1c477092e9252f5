//! Compiles our minimal etcd v3 proto with protox, so building needs no `protoc`. Only
//! with the `etcd` feature; without it there is nothing to generate.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/etcd.proto");
    #[cfg(feature = "etcd")]
    {
        let fds = protox::compile(["proto/etcd.proto"], ["proto"])?;
        tonic_prost_build::configure()
            .build_server(false)
            .compile_fds(fds)?;
    }
    Ok(())
}
