//! The agent stays small: neither it nor the contract crate may depend, even
//! transitively, on Arrow, Parquet or DataFusion. And the workspace holds a
//! single Arrow, the one DataFusion is built on.
//!
//! Reading the store is not running a tier: `sifa-queries` reaches the store
//! through `sifa-proto` and `sifa-store` only (no aggregator, so no write-ahead
//! log, no certificate authority), and `sifa-store` carries no gRPC server.

use std::collections::{BTreeSet, HashMap};

fn lock() -> Vec<(String, String, Vec<String>)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).expect("Cargo.lock");
    let doc: toml::Table = toml::from_str(&text).expect("Cargo.lock is TOML");
    doc["package"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let deps = p
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|d| d.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            (p["name"].as_str().unwrap().to_string(), p["version"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Every package reachable from `root` in Cargo.lock (an over-approximation:
/// the lock records dependencies of every platform and feature in use).
fn closure(root: &str) -> BTreeSet<String> {
    let pkgs = lock();
    let mut by_name: HashMap<&str, Vec<&(String, String, Vec<String>)>> = HashMap::new();
    for p in &pkgs {
        by_name.entry(p.0.as_str()).or_default().push(p);
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![(root.to_string(), None::<String>)];
    while let Some((name, version)) = todo.pop() {
        let key = format!("{name} {}", version.clone().unwrap_or_default());
        if !seen.insert(key) {
            continue;
        }
        for p in by_name.get(name.as_str()).into_iter().flatten() {
            if version.as_ref().is_some_and(|v| v != &p.1) {
                continue;
            }
            for d in &p.2 {
                let mut parts = d.split(' ');
                let n = parts.next().unwrap().to_string();
                todo.push((n, parts.next().map(str::to_string)));
            }
        }
    }
    seen.into_iter().map(|k| k.split(' ').next().unwrap().to_string()).collect()
}

fn heavy(names: &BTreeSet<String>) -> Vec<&String> {
    names.iter().filter(|n| n.starts_with("arrow") || n.starts_with("parquet") || n.starts_with("datafusion")).collect()
}

#[test]
fn agent_has_no_arrow_parquet_or_datafusion() {
    let deps = closure("sifa-agent");
    assert!(deps.contains("tonic") && deps.contains("sifa-proto"), "the walk reaches the agent's real dependencies");
    assert_eq!(heavy(&deps), Vec::<&String>::new());
}

#[test]
fn contract_has_no_arrow_parquet_or_datafusion() {
    let deps = closure("sifa-proto");
    assert!(deps.contains("prost"));
    assert_eq!(heavy(&deps), Vec::<&String>::new());
}

#[test]
fn one_arrow_the_one_datafusion_uses() {
    let pkgs = lock();
    let arrows: Vec<_> = pkgs.iter().filter(|p| p.0 == "arrow").map(|p| p.1.clone()).collect();
    assert_eq!(arrows.len(), 1, "arrow versions in Cargo.lock: {arrows:?}");
    assert!(heavy(&closure("sifa-queries")).iter().any(|n| n.as_str() == "datafusion"));
}

#[test]
fn queries_read_the_store_without_the_aggregator() {
    // Resolved as a build of sifa-queries resolves it: sifa-proto's optional
    // certificate reading (feature `x509`, the aggregator's) is not in it.
    let deps = built_with("sifa-queries");
    assert!(
        deps.contains("sifa-store") && deps.contains("sifa-proto") && deps.contains("datafusion"),
        "the walk reaches the queries' real dependencies"
    );
    // The write-ahead log, the services and the CA are the aggregator's: none of it.
    for banned in ["sifa-aggregator", "rcgen", "x509-parser"] {
        assert!(!deps.contains(banned), "sifa-queries depends on {banned}");
    }
    // Nor does the store crate reach the aggregator (where the write-ahead log lives).
    assert!(!closure("sifa-store").contains("sifa-aggregator"));
}

/// `cargo tree -p root -e normal` with one line per package in `format`: the
/// dependency tree as a build of `root` alone resolves it (features included).
fn cargo_tree(root: &str, format: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--offline", "--locked", "-e", "normal", "--prefix", "none", "-f", format, "-p", root])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {root}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Every package a build of `root` alone compiles.
fn built_with(root: &str) -> BTreeSet<String> {
    cargo_tree(root, "{p}").lines().filter_map(|l| l.split(' ').next()).map(str::to_string).collect()
}

/// The features cargo enables for `package` in the dependency tree of `root`
/// built alone (`cargo tree -p root`), as a build of `root` would resolve them.
fn features_of(root: &str, package: &str) -> Option<BTreeSet<String>> {
    let text = cargo_tree(root, "{p}|{f}");
    text.lines().find(|l| l.starts_with(&format!("{package} v"))).map(|l| {
        l.split_once('|')
            .map(|(_, f)| f)
            .unwrap_or("")
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect()
    })
}

#[test]
fn the_store_and_the_agent_carry_no_grpc_server() {
    // The aggregator does (the probe sees server features where they are).
    let server = features_of("sifa-aggregator", "tonic").expect("the aggregator uses tonic");
    assert!(server.contains("server") && server.contains("router"), "{server:?}");
    for root in ["sifa-store", "sifa-queries", "sifa-agent"] {
        let Some(features) = features_of(root, "tonic") else { continue };
        assert!(
            !features.contains("server") && !features.contains("router"),
            "{root} builds tonic with its server side: {features:?}"
        );
        assert!(features_of(root, "axum").is_none(), "{root} links axum");
        let hyper = features_of(root, "hyper").unwrap_or_default();
        assert!(!hyper.contains("server"), "{root} builds hyper's server: {hyper:?}");
    }
}

#[test]
fn the_demo_machinery_is_not_shipped_with_the_agent() {
    // Cargo.lock lists dev-dependencies too, so the agent's closure above includes sifa-sim (its tests'
    // synthetic books): sifa-sim must itself be free of Arrow, Parquet and DataFusion ...
    let sim = closure("sifa-sim");
    assert!(sim.contains("sifa-agent") && sim.contains("zip"), "the walk reaches sifa-sim's dependencies");
    assert_eq!(heavy(&sim), Vec::<&String>::new());
    // ... and never a normal dependency of the agent's binary.
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/agent/Cargo.toml")).unwrap())
            .unwrap();
    let deps = manifest["dependencies"].as_table().expect("[dependencies]");
    assert!(!deps.contains_key("sifa-sim"), "{deps:?}");
}

#[test]
fn the_flight_sql_server_is_its_own_crate() {
    // The endpoint (arrow-flight, tonic's server) is sifa-sql's; reading a store needs none of it.
    let queries = built_with("sifa-queries");
    for banned in ["arrow-flight", "sifa-sql"] {
        assert!(!queries.contains(banned), "sifa-queries depends on {banned}");
    }
    let sql = built_with("sifa-sql");
    assert!(sql.contains("arrow-flight") && sql.contains("sifa-queries"), "the walk reaches sifa-sql's dependencies");
    // It is handed who may query and the log's tail: it knows no aggregator, WAL or certificate parser.
    for banned in ["sifa-aggregator", "x509-parser", "rcgen"] {
        assert!(!sql.contains(banned), "sifa-sql depends on {banned}");
    }
    // One tonic: arrow-flight speaks the same gRPC stack as the tiers.
    let tonics: Vec<_> = lock().into_iter().filter(|p| p.0 == "tonic").map(|p| p.1).collect();
    assert_eq!(tonics.len(), 1, "tonic versions in Cargo.lock: {tonics:?}");
}

#[test]
fn the_distributed_engine_is_not_in_sifa() {
    // Ballista is sifa-cluster's: `cargo run --release -- demo` builds `sifa` without it, and with
    // DataFusion's features as sifa chose them (Ballista's enable all of DataFusion's defaults).
    let sifa = built_with("sifa");
    assert!(sifa.contains("datafusion") && sifa.contains("sifa-sql"), "the walk reaches sifa's dependencies");
    let ballista: Vec<_> = sifa.iter().filter(|p| p.starts_with("ballista")).collect();
    assert!(ballista.is_empty(), "sifa links {ballista:?}");
    let cluster = built_with("sifa-cluster");
    assert!(cluster.contains("ballista-scheduler") && cluster.contains("ballista-executor"));
    let datafusion = features_of("sifa", "datafusion").expect("sifa builds datafusion");
    assert!(!datafusion.contains("compression"), "sifa's datafusion features: {datafusion:?}");
}
