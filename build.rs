//! Links the optimised `sifa` binary with identical code folding: every crate of the workspace
//! instantiates DataFusion's, arrow's and tonic's generic code on its own (a release build shares
//! no instantiations between crates), and the linker merges the copies that came out byte for
//! byte the same. The toolchain's linker on x86_64 Linux is LLD (docs/PERFORMANCE.md, "The first
//! build"); other targets link as before.

fn main() {
    let optimised = std::env::var("OPT_LEVEL").is_ok_and(|level| level != "0");
    let lld_target = std::env::var("TARGET").is_ok_and(|target| target == "x86_64-unknown-linux-gnu");
    if optimised && lld_target {
        println!("cargo::rustc-link-arg-bin=sifa=-Wl,--icf=all");
    }
    println!("cargo::rerun-if-changed=build.rs");
}
