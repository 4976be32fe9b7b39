//! Compiles `sifa/v1/*.proto` with protox (pure Rust): no system `protoc`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["sifa/v1/report.proto", "sifa/v1/directory.proto"];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().build_server(true).build_client(true).compile_fds(descriptors)?;
    Ok(())
}
