//! A store on S3-compatible object storage, against a real S3 API server (moto, provisioned by
//! tests/support/peers.rs): a tier whose `store` is a bucket keeps its Parquet there alone, through
//! an outage of the link, compaction and a restart; a tier moves its directory's store into a
//! bucket; a real county aggregator's store, put in a bucket as `aws s3 sync` would, answers `sifa query --data s3://...` and `sifa publish --data s3://...` exactly as the
//! directory does (through `current/` while it covers the year, deduplicating `reports/` when it
//! does not); pyarrow reads the same files from the bucket; and wrong settings get errors that say
//! what to fix.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use sifa_proto::v1::{SubmitRequest, ack};
use support::moto::{Gate, KEYS, MAKE_BUCKET, Moto, SYNC};
use support::{TestAggregator, TierSpec, report, sifa_bin};

/// Deletes every object under `bucket/prefix/`.
const DELETE: &str = r#"
import os, sys, boto3
bucket, prefix = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", []):
    s3.delete_object(Bucket=bucket, Key=o["Key"])
"#;

/// Rows of a Hive-partitioned Parquet dataset in the bucket, read by pyarrow's own S3 client.
const PYARROW_ROWS: &str = r#"
import os, sys
import pyarrow.dataset as ds
from pyarrow import fs
s3 = fs.S3FileSystem(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                     endpoint_override=os.environ["AWS_ENDPOINT_URL"], scheme="http", region="us-east-1")
print(ds.dataset(sys.argv[1], filesystem=s3, format="parquet", partitioning="hive").count_rows())
"#;

fn sifa(env: &[(&str, String)], args: &[&str]) -> Output {
    Command::new(sifa_bin()).args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn refused(out: Output, words: &[&str]) {
    assert!(!out.status.success(), "expected a refusal: {}", String::from_utf8_lossy(&out.stdout));
    let text = String::from_utf8_lossy(&out.stderr);
    for w in words {
        assert!(text.contains(w), "{w:?} not in: {text}");
    }
}

/// A county store with three offices' months of 2024, one of them corrected, flushed and with its
/// current figures derived (the tier stopped).
async fn county_store() -> TestAggregator {
    let mut tier = TestAggregator::spawn(TierSpec::top("620982"));
    submit_months(&tier).await;
    tier.stop();
    tier
}

/// Three offices' first three months of 2024, and a correction of one month.
async fn submit_months(tier: &TestAggregator) {
    let mut client = tier.client().await;
    for (unit, resolved) in [("620982100", 4.0), ("620982101", 9.0), ("620982102", 6.0)] {
        for m in 1..=3 {
            let values = [("disputes_mediated", resolved + 2.0), ("disputes_resolved", resolved)];
            let r = report(unit, &format!("2024-{m:02}"), 1, &values);
            let a = client.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap().into_inner();
            assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
        }
    }
    let fix = report("620982101", "2024-02", 2, &[("disputes_mediated", 30.0), ("disputes_resolved", 25.0)]);
    client.submit(SubmitRequest { report: Some(fix), provenance: None }).await.unwrap();
}

/// Polls `sifa query` on `data` until `sql`'s CSV answer is `want`.
fn wait_for_answer(env: &[(&str, String)], data: &str, sql: &str, want: &str, log: impl Fn() -> String) {
    let t0 = Instant::now();
    loop {
        let out = sifa(env, &["query", "--data", data, "--format", "csv", sql]);
        if out.status.success() && out.stdout == want.as_bytes() {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{data}: {sql} never gave {want:?}; last: {}{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_in_a_bucket_answers_as_its_directory_does() {
    let moto = Moto::start();
    let tier = county_store().await;
    let dir = tier.data_dir();
    assert!(dir.join("current").is_dir(), "the stopped tier derived current/");
    moto.python(SYNC, &[dir.to_str().unwrap(), "sifa", "gansu/620982"]);
    let env = moto.env();
    let remote = "s3://sifa/gansu/620982";
    let local = dir.to_str().unwrap();

    let select = "SELECT unit_code, period, revision, disputes_resolved FROM reports ORDER BY unit_code, period";
    let from_s3 = ok(sifa(&env, &["query", "--data", remote, "--format", "csv", select]));
    let in_force = ok(sifa(&env, &["query", "--data", local, "--format", "csv", select]));
    assert_eq!(from_s3, in_force);
    assert!(from_s3.contains("620982101,2024-02,2,25"), "the correction is the figure in force: {from_s3}");
    assert_eq!(from_s3.lines().count(), 1 + 9);
    let revisions = "SELECT count(*) AS n FROM report_revisions";
    assert_eq!(ok(sifa(&env, &["query", "--data", remote, "--format", "csv", revisions])), "n\n10\n");
    for rollup in ["share_of_mediations", "totals", "completeness"] {
        let args = |data| ["query", "--data", data, "--rollup", rollup, "--year", "2024", "--format", "csv"];
        let from_s3 = ok(sifa(&env, &args(remote)));
        assert_eq!(from_s3, ok(sifa(&env, &args(local))), "{rollup}");
        assert!(from_s3.lines().count() > 1, "{rollup}: {from_s3}");
    }
    // The figures in force are read from current/ in the bucket.
    let plan = ok(sifa(&env, &["query", "--data", remote, "EXPLAIN SELECT unit_code FROM reports"]));
    assert!(plan.contains("gansu/620982/current/year=2024/part-"), "{plan}");

    // `sifa publish` from the bucket writes the very files the directory gives.
    let out = tempfile::tempdir().unwrap();
    let (a, b) = (out.path().join("s3"), out.path().join("local"));
    ok(sifa(&env, &["publish", "--data", remote, "--year", "2024", "--out", a.to_str().unwrap()]));
    ok(sifa(&env, &["publish", "--data", local, "--year", "2024", "--out", b.to_str().unwrap()]));
    for name in ["index.html", "figures.csv", "figures.json", "figures.sdmx.csv", "figures.adx.xml"] {
        assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap(), "{name}");
    }

    // Every Parquet reader: pyarrow's own S3 client reads the report files from the bucket.
    assert_eq!(moto.python(PYARROW_ROWS, &["sifa/gansu/620982/reports"]).trim(), "10");

    // Without current/ (a copy that left it out) the year is deduplicated from reports/: the same rows.
    moto.python(DELETE, &["sifa", "gansu/620982/current"]);
    assert_eq!(ok(sifa(&env, &["query", "--data", remote, "--format", "csv", select])), in_force);
    let plan = ok(sifa(&env, &["query", "--data", remote, "EXPLAIN SELECT unit_code FROM reports"]));
    assert!(!plan.contains("current") && plan.contains("gansu/620982/reports/year=2024/part-"), "{plan}");
}

#[test]
fn wrong_settings_get_errors_that_say_what_to_fix() {
    let moto = Moto::start();
    moto.python(SYNC, &[Path::new(env!("CARGO_MANIFEST_DIR")).join("config").to_str().unwrap(), "sifa", "other"]);
    let env = moto.env();
    let q = |env: &[(&str, String)], data: &str| sifa(env, &["query", "--data", data, "SELECT 1"]);

    refused(q(&env, "s3://"), &["s3://", "no bucket: write s3://BUCKET/PREFIX"]);
    refused(
        q(&env, "s3://sifa/nothing-here"),
        &["s3://sifa/nothing-here is not a sifa data directory: store.toml is missing"],
    );
    refused(q(&env, "s3://sifa/other"), &["store.toml is missing"]);
    refused(q(&env, "s3://no-such-bucket/x"), &["s3://no-such-bucket/x", "the bucket no-such-bucket does not exist"]);
    let without_keys: Vec<(&str, String)> = env.iter().filter(|(k, _)| !k.contains("KEY")).cloned().collect();
    let out = Command::new(sifa_bin())
        .args(["query", "--data", "s3://sifa/other", "SELECT 1"])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .envs(without_keys.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    refused(out, &["no AWS credentials", "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"]);
    // Nothing listens there: refused within the bounded retries, naming the store.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut dead = env.clone();
    dead.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    dead.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    refused(
        q(&dead, "s3://sifa/gansu"),
        &["the store at s3://sifa/gansu", "cannot read store.toml", "AWS_ENDPOINT_URL"],
    );
}

/// `sql`'s CSV answer from the tier's Flight SQL endpoint, through `sifa query --connect` as an analyst
/// of the tier's unit.
fn live(tier: &TestAggregator, sql: &str) -> Output {
    let (cert, key) = support::pki().files(sifa_aggregator::auth::Role::Analyst, &tier.spec.unit);
    Command::new(sifa_bin())
        .args(["query", "--connect", &format!("https://{}", tier.sql_addr()), "--ca"])
        .arg(support::pki().ca_cert())
        .args([std::ffi::OsStr::new("--cert"), cert.as_os_str(), "--key".as_ref(), key.as_os_str()])
        .args(["--format", "csv", sql])
        .output()
        .unwrap()
}

/// Polls until `pred` holds for the tier's log.
fn wait_for_log(tier: &TestAggregator, what: &str, pred: impl Fn(&str) -> bool) {
    let t0 = Instant::now();
    while !pred(&tier.log()) {
        assert!(t0.elapsed() < Duration::from_secs(60), "never logged {what}:\n{}", tier.log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The report files' keys in the bucket under `prefix/` (relative to it).
fn report_keys(moto: &Moto, bucket: &str, prefix: &str) -> Vec<String> {
    let keys = moto.python(KEYS, &[bucket, prefix]);
    let strip = format!("{prefix}/");
    keys.lines()
        .filter_map(|k| k.strip_prefix(&strip))
        .filter(|k| k.starts_with("reports/"))
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_keeps_its_store_in_a_bucket_through_an_outage() {
    let moto = Moto::start();
    moto.python(MAKE_BUCKET, &["stores"]);
    let mut gate = Gate::to(&moto.endpoint);
    let remote = "s3://stores/gansu/620982";
    let spec = TierSpec {
        store: Some(remote.into()),
        env: gate.env(&moto.env()),
        flush_interval_ms: 200,
        sql: true,
        ..TierSpec::top("620982")
    };
    let mut tier = TestAggregator::spawn(spec);
    submit_months(&tier).await;
    let env = moto.env();
    let count = "SELECT count(*) AS n FROM report_revisions";
    wait_for_answer(&env, remote, count, "n\n10\n", || tier.log());
    // The Parquet lives in the bucket alone: the data directory holds the log, the state and the
    // small files.
    let data = tier.data_dir();
    assert!(!data.join("reports").exists() && !data.join("current").exists(), "Parquet in {}", data.display());
    assert!(data.join("wal").is_dir() && data.join("state").is_dir());

    // The link to the bucket goes away: reports are still acknowledged (durable in the log), the
    // flush says why it waits, and once the link is back the bucket has them.
    gate.cut();
    let mut client = tier.client().await;
    let late = report("620982103", "2024-03", 1, &[("disputes_mediated", 8.0), ("disputes_resolved", 7.0)]);
    let a = client.submit(SubmitRequest { report: Some(late.clone()), provenance: None }).await.unwrap().into_inner();
    assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "accepted while the bucket is unreachable: {a:?}");
    wait_for_log(&tier, "the flush waiting for the bucket", |log| {
        log.contains("cannot flush to Parquet (the reports stay safe in the log)") && log.contains(remote)
    });
    // The tier's Flight SQL endpoint reads the bucket and the log's tail: without the bucket it
    // says which store it cannot reach; with it back, it answers again.
    refused(live(&tier, count), &["the store at s3://stores/gansu/620982", "cannot list reports/"]);
    // Killed while the report waits for the bucket: it is in the log, and the tier started again
    // (with the link back) puts it in the bucket.
    tier.kill9();
    gate.open();
    tier.restart();
    let mut client = tier.client().await;
    wait_for_answer(&env, remote, count, "n\n11\n", || tier.log());
    assert_eq!(ok(live(&tier, count)), "n\n11\n");

    // Many small files in the bucket are compacted there: the merged file replaces its inputs.
    for m in 4..=12 {
        let r =
            report("620982104", &format!("2024-{m:02}"), 1, &[("disputes_mediated", 3.0), ("disputes_resolved", 2.0)]);
        let a = client.submit(SubmitRequest { report: Some(r), provenance: None }).await.unwrap().into_inner();
        assert_eq!(a.outcome, ack::Outcome::Accepted as i32, "{a:?}");
        tokio::time::sleep(Duration::from_millis(450)).await;
    }
    wait_for_log(&tier, "a compaction", |log| log.contains("compacted small Parquet files"));
    wait_for_answer(&env, remote, count, "n\n20\n", || tier.log());
    let files = report_keys(&moto, "stores", "gansu/620982");
    assert!(files.len() < 11, "the compacted inputs are gone from the bucket: {files:?}");

    // Stopped, the tier has derived the current figures in the bucket: one current file for the
    // year, beside the report files and the small files; never the log or the state.
    tier.stop();
    let keys = moto.python(KEYS, &["stores", "gansu/620982"]);
    let keys: Vec<&str> = keys.lines().map(|k| k.strip_prefix("gansu/620982/").unwrap()).collect();
    assert_eq!(keys.iter().filter(|k| k.starts_with("current/year=2024/")).count(), 1, "{keys:?}");
    for small in ["store.toml", "catalog.toml", "registry.csv"] {
        assert!(keys.contains(&small), "{small} in {keys:?}");
    }
    assert!(
        keys.iter().all(|k| ["reports/", "current/", "store.toml", "catalog.toml", "registry.csv"]
            .iter()
            .any(|p| k.starts_with(p))),
        "{keys:?}"
    );
    let select = "SELECT unit_code, period, revision, disputes_resolved FROM reports \
                  WHERE unit_code IN ('620982101', '620982103') ORDER BY unit_code, period";
    let rows = ok(sifa(&env, &["query", "--data", remote, "--format", "csv", select]));
    assert_eq!(
        rows,
        "unit_code,period,revision,disputes_resolved\n620982101,2024-01,1,9\n620982101,2024-02,2,25\n\
         620982101,2024-03,1,9\n620982103,2024-03,1,7\n"
    );
    let plan = ok(sifa(&env, &["query", "--data", remote, "EXPLAIN SELECT unit_code FROM reports"]));
    assert!(plan.contains("gansu/620982/current/year=2024/part-"), "{plan}");
    assert_eq!(moto.python(PYARROW_ROWS, &["stores/gansu/620982/reports"]).trim(), "20");

    // Started again, the tier knows what the bucket holds from its key files: a retried report is
    // stored once.
    tier.restart();
    let mut client = tier.client().await;
    let a = client.submit(SubmitRequest { report: Some(late), provenance: None }).await.unwrap().into_inner();
    assert_eq!(a.outcome, ack::Outcome::Duplicate as i32, "{a:?}");
    wait_for_log(&tier, "the recovery", |log| {
        log.contains("recovered the store") && log.contains("parquet_files_read=0")
    });
    tier.stop();
    assert_eq!(ok(sifa(&env, &["query", "--data", remote, "--format", "csv", count])), "n\n20\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tier_moves_its_directory_store_into_a_bucket() {
    let moto = Moto::start();
    moto.python(MAKE_BUCKET, &["stores"]);
    let mut tier = TestAggregator::spawn(TierSpec { env: moto.env(), ..TierSpec::top("620982") });
    submit_months(&tier).await;
    tier.stop();
    let env = moto.env();
    let local = tier.data_dir();
    let select = "SELECT unit_code, period, revision, disputes_resolved FROM reports ORDER BY unit_code, period";
    let in_force = ok(sifa(&env, &["query", "--data", local.to_str().unwrap(), "--format", "csv", select]));

    let remote = "s3://stores/moved/620982";
    tier.spec.store = Some(remote.into());
    tier.restart();
    assert!(
        tier.log().contains("moved the report files of the data directory into the store's bucket"),
        "{}",
        tier.log()
    );
    assert!(!local.join("reports").exists() && !local.join("current").exists());
    tier.stop();
    assert_eq!(ok(sifa(&env, &["query", "--data", remote, "--format", "csv", select])), in_force);
    let plan = ok(sifa(&env, &["query", "--data", remote, "EXPLAIN SELECT unit_code FROM reports"]));
    assert!(plan.contains("moved/620982/current/year=2024/part-"), "{plan}");
}

#[test]
fn a_tier_whose_bucket_cannot_be_reached_does_not_start() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aggregator.toml");
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        &config,
        format!(
            "unit = \"620982\"\nlisten = \"127.0.0.1:0\"\ndata_dir = \"data\"\nregistry = \"{}\"\n\
             store = \"s3://no-such-bucket/gansu\"\n[tls]\ninsecure = true\n",
            support::demo_registry_path().display()
        ),
    )
    .unwrap();
    let run = |env: &[(&str, String)]| {
        Command::new(sifa_bin())
            .args(["aggregator", "--config", config.to_str().unwrap()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .unwrap()
    };
    refused(run(&moto.env()), &["cannot open the store", "the bucket no-such-bucket does not exist"]);
    let mut dead = moto.env();
    dead.retain(|(k, _)| *k != "AWS_ENDPOINT_URL");
    dead.push(("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")));
    refused(run(&dead), &["cannot open the store", "s3://no-such-bucket/gansu", "AWS_ENDPOINT_URL"]);
}
