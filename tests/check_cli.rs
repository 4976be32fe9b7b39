//! `sifa check`: a statistician's edited files are read as the aggregator would
//! read them, and what is wrong is named.

use std::process::Command;

fn sifa(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sifa")).args(args).output().expect("run sifa");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn the_shipped_files_check_out() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (ok, out, err) = sifa(&["check", "registry", &format!("{root}/proto/registry/demo.csv")]);
    assert!(ok, "{err}");
    assert!(out.contains("144 office"), "{out}");
    let (ok, out, err) = sifa(&["check", "catalog", &format!("{root}/proto/catalog/catalog.toml")]);
    assert!(ok, "{err}");
    assert!(out.contains("32 metrics (18 flows, 14 stocks) and 3 cross-field rules"), "{out}");
}

#[test]
fn a_broken_gbk_registry_is_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.csv");
    let (gbk, _, _) =
        encoding_rs::GBK.encode("代码,名称,类型,上级代码\n62,甘肃省,省,\n620982100,沙州镇司法所,司法所,620982\n");
    std::fs::write(&path, gbk).unwrap();
    let (ok, _, err) = sifa(&["check", "registry", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(err.contains("is not a valid registry"), "{err}");
    assert!(err.contains("names parent 620982, which is not in the registry"), "{err}");
}
