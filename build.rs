//! Compiles the vendored official `proto/onnx.proto` into Rust types with
//! prost-build; protoc comes from `protoc-bin-vendored`, so a build needs no
//! system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&["proto/onnx.proto"], &["proto"])?;
    Ok(())
}
