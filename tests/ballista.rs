//! The standard rollups on Apache DataFusion Ballista (`sifa-cluster`, docs/SCALE.md): a scheduler
//! and two executors as separate processes, over a store in a real S3 API server (moto),
//! give the rows `sifa query` gives over the same copy, every rollup; both executors take tasks;
//! the tables the client stages beside the store are gone afterwards; and wrong settings get
//! errors that say what to fix.

mod support;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sifa_queries::rollup::ROLLUPS;
use support::moto::{KEYS, Moto, SYNC};
use support::sifa_bin;

/// `sifa-cluster`, built beside `sifa` by `cargo test --workspace` (the cluster crate's own tests
/// make cargo build its binary).
fn cluster_bin() -> PathBuf {
    let bin = Path::new(sifa_bin()).with_file_name("sifa-cluster");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p sifa-cluster`)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A process of the cluster, logging to a file, killed when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn spawn(name: &str, dir: &Path, env: &[(&'static str, String)], args: &[&str]) -> Server {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(cluster_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            // "Start to run task" is the executor's debug line for each task it runs.
            .env("RUST_LOG", "info,ballista_executor::executor_server=debug")
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Server { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `what` holds, or fails with `log`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool, log: impl Fn() -> String) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < Duration::from_secs(60), "{what} did not happen in 60 s:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(bin: &Path, env: &[(&'static str, String)], args: &[&str]) -> Output {
    Command::new(bin).args(args).envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().unwrap()
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Two CSV answers hold the same rows in the same order: each field the same text, or, for
/// numbers, the same to 1e-9 of their size (a sum of fractional figures depends on the order
/// its terms are added in, and a cluster adds them in another order than one process).
fn assert_same_csv(rollup: &str, cluster: &str, local: &str) {
    let (c, l): (Vec<&str>, Vec<&str>) = (cluster.lines().collect(), local.lines().collect());
    assert_eq!(c.len(), l.len(), "{rollup}: the cluster gave {} lines, sifa query {}", c.len(), l.len());
    for (i, (a, b)) in c.iter().zip(&l).enumerate() {
        let (fa, fb): (Vec<&str>, Vec<&str>) = (a.split(',').collect(), b.split(',').collect());
        let same = fa.len() == fb.len()
            && fa.iter().zip(&fb).all(|(x, y)| {
                x == y
                    || match (x.parse::<f64>(), y.parse::<f64>()) {
                        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                        _ => false,
                    }
            });
        assert!(same, "{rollup}, line {}:\n  cluster    {a}\n  sifa query {b}", i + 1);
    }
}

#[test]
fn the_rollups_on_a_cluster_give_the_rows_of_the_local_run() {
    let dir = tempfile::tempdir().unwrap();
    // A small nation: ten cities' 1,449 units, two years, a few percent corrected, current/ derived.
    let store = dir.path().join("store");
    ok(
        run(
            Path::new(sifa_bin()),
            &[],
            &["sim", "store", "--cities", "10", "--years", "2", "--out", store.to_str().unwrap()],
        ),
        "sifa sim store",
    );
    let moto = Moto::start();
    let env = moto.env();
    moto.python(SYNC, &[store.to_str().unwrap(), "figures", "nation"]);
    let data = "s3://figures/nation";

    let sched_port = free_port();
    let scheduler_addr = format!("127.0.0.1:{sched_port}");
    let scheduler = Server::spawn("scheduler", dir.path(), &env, &["scheduler", "--bind", &scheduler_addr]);
    wait_until("the scheduler listening", || std::net::TcpStream::connect(&scheduler_addr).is_ok(), || scheduler.log());
    let executors: Vec<Server> = (0..2)
        .map(|i| {
            let bind = format!("127.0.0.1:{}", free_port());
            let grpc = free_port().to_string();
            let work = dir.path().join(format!("work-{i}"));
            std::fs::create_dir_all(&work).unwrap();
            Server::spawn(
                &format!("executor-{i}"),
                dir.path(),
                &env,
                &[
                    "executor",
                    "--scheduler",
                    &scheduler_addr,
                    "--bind",
                    &bind,
                    "--grpc-port",
                    &grpc,
                    "--slots",
                    "2",
                    "--work-dir",
                    work.to_str().unwrap(),
                ],
            )
        })
        .collect();
    wait_until(
        "both executors registered",
        || scheduler.log().matches("Received register executor request").count() == 2,
        || scheduler.log(),
    );

    let logs = || format!("{}\n{}\n{}", scheduler.log(), executors[0].log(), executors[1].log());
    for rollup in ROLLUPS {
        let args = ["--data", data, "--rollup", rollup.name, "--year", "2016", "--format", "csv"];
        let local = ok(run(Path::new(sifa_bin()), &env, &[&["query"][..], &args].concat()), rollup.name);
        assert!(local.lines().count() > 1, "{}: no rows locally:\n{local}", rollup.name);
        let out = run(
            &cluster_bin(),
            &env,
            &[&["query", "--scheduler", &scheduler_addr, "--partitions", "4"][..], &args].concat(),
        );
        assert!(out.status.success(), "{}: {}\n{}", rollup.name, String::from_utf8_lossy(&out.stderr), logs());
        assert_same_csv(rollup.name, &String::from_utf8(out.stdout).unwrap(), &local);
    }
    // Ad-hoc SQL too, and the counts over every revision.
    let sql = "SELECT year, count(*) AS rows, count(DISTINCT unit_code) AS units FROM report_files GROUP BY year ORDER BY year";
    let local = ok(run(Path::new(sifa_bin()), &env, &["query", "--data", data, "--format", "csv", sql]), "sql");
    let cluster = ok(
        run(&cluster_bin(), &env, &["query", "--scheduler", &scheduler_addr, "--data", data, "--format", "csv", sql]),
        "sql",
    );
    assert_eq!(cluster, local);

    for (i, e) in executors.iter().enumerate() {
        assert!(e.log().contains("Start to run task"), "executor {i} ran no task:\n{}", e.log());
    }
    let staged = moto.python(KEYS, &["figures", "nation/cluster"]);
    assert_eq!(staged.trim(), "", "staged tables left in the bucket");

    // Wrong settings: a directory, and a scheduler that is not there.
    let out = run(
        &cluster_bin(),
        &env,
        &["query", "--scheduler", &scheduler_addr, "--data", store.to_str().unwrap(), "SELECT 1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("s3://BUCKET/PREFIX") && err.contains("sifa query --data DIR"),
        "{err}"
    );
    drop(executors);
    drop(scheduler);
    let out = run(&cluster_bin(), &env, &["query", "--scheduler", &scheduler_addr, "--data", data, "SELECT 1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("sifa-cluster scheduler"), "{err}");
}
