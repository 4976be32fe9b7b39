//! The disk under a real tier: a full disk is a refusal, not a crash (on a
//! small tmpfs mounted by the test when it runs as root); the write-ahead log
//! is trimmed behind Parquet and forwarding, the segment being written
//! included; the temporary files of interrupted writes are removed at start.

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sifa_aggregator::disk::{DiskConfig, free_bytes};
use sifa_proto::v1::{Report, SubmitRequest, ack};
use sifa_store::layout;
use support::{TestAggregator, TierSpec, as_agent, report};

const WAIT: Duration = Duration::from_secs(30);

/// A tmpfs of `size_mb` mounted on a tier's data directory; unmounted when dropped, and the tier's
/// directory removed with it (its own cleanup stopped at the busy mount point).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts it on `dir`, or says why it cannot (not root, no mount permission in this container).
    fn mount(dir: &Path, size_mb: u64) -> Result<Tmpfs, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("not running as root".into());
        }
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        if let Some(tier_dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(tier_dir);
        }
    }
}

/// Grows `ballast` until the file system has at most `leave` bytes free (0: until a write fails).
fn fill(ballast: &Path, leave: u64) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(ballast).unwrap();
    let dir = ballast.parent().unwrap();
    for chunk in [1 << 20, 4096] {
        let block = vec![0x5Au8; chunk];
        loop {
            let free = free_bytes(dir).unwrap();
            if leave > 0 && free <= leave {
                return;
            }
            let n = if leave > 0 { (free - leave).min(chunk as u64) as usize } else { chunk };
            if f.write_all(&block[..n]).and_then(|()| f.sync_all()).is_err() {
                break;
            }
        }
    }
    assert_eq!(leave, 0, "a write failed before {leave} bytes were left");
}

fn outcome(a: &sifa_proto::v1::Ack) -> ack::Outcome {
    ack::Outcome::try_from(a.outcome).unwrap()
}

/// Reports of one office of 敦煌市 (620982100), `n` of them from `start`: 2024's months, each
/// corrected again and again (one path per report: one office streams its own).
fn reports(start: usize, n: usize) -> Vec<Report> {
    (start..start + n)
        .map(|i| {
            let period = format!("2024-{:02}", 1 + i % 12);
            let comment = "备注".repeat(40);
            let mut r = report("620982100", &period, 1 + (i / 12) as u64, &[("lectures", i as f64)]);
            r.comment = Some(comment);
            r
        })
        .collect()
}

/// Streams `batch` (one office's reports) as the office; the outcomes, and the status the stream ended with.
async fn stream(agg: &TestAggregator, batch: &[Report]) -> (Vec<ack::Outcome>, Option<tonic::Status>) {
    let mut client = agg.client().await;
    let reqs: Vec<SubmitRequest> =
        batch.iter().map(|r| SubmitRequest { report: Some(r.clone()), provenance: None }).collect();
    let mut outcomes = Vec::new();
    let acks = client.submit_stream(reqs).await;
    let mut acks = match acks {
        Ok(a) => a.into_inner(),
        Err(s) => return (outcomes, Some(s)),
    };
    loop {
        match acks.message().await {
            Ok(Some(a)) => outcomes.push(outcome(&a)),
            Ok(None) => return (outcomes, None),
            Err(s) => return (outcomes, Some(s)),
        }
    }
}

fn assert_disk_full(status: &tonic::Status, what: &str) {
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{what}: {status:?}");
    let m = status.message();
    assert!(m.contains("the disk of tier 620982 is full") && m.contains("MiB free"), "{what}: {m}");
    assert!(m.contains("[disk] reserve_mb") && m.contains("send again later"), "{what}: {m}");
    assert!(sifa_proto::upstream::retry_after(status).is_some(), "{what}: a retry hint");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_new_reports_and_serves_the_rest_until_space_returns() {
    let mut spec = TierSpec::top("620982");
    spec.disk = Some(DiskConfig { reserve_mb: 8 });
    let mut mount = None;
    let mut skipped = None;
    let mut county = TestAggregator::spawn_on(spec, |data| match Tmpfs::mount(data, 32) {
        Ok(m) => mount = Some(m),
        Err(why) => skipped = Some(why),
    });
    if let Some(why) = skipped {
        println!("SKIPPED a_full_disk_refuses_new_reports...: needs a small tmpfs ({why}); run the tests as root");
        return;
    }
    let data = county.data_dir();
    let ballast = data.join("ballast");
    let mut c = county.client().await;
    let first = reports(0, 1).remove(0);
    assert_eq!(outcome(&c.submit(as_agent(first.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);
    county.wait_for_rows(WAIT, |rows| rows.len() == 1);

    // Below the reserve: a new report is refused, naming the tier and the space left.
    fill(&ballast, 4 << 20);
    let second = reports(1, 1).remove(0);
    let e = c.submit(as_agent(second.clone())).await.unwrap_err();
    assert_disk_full(&e, "below the reserve");
    assert!(e.message().contains("below its reserve of 8.0 MiB"), "{}", e.message());
    // What is already acknowledged still answers: a retry of it, status, queries.
    assert_eq!(outcome(&c.submit(as_agent(first.clone())).await.unwrap().into_inner()), ack::Outcome::Duplicate);
    let status = county.cli(&["status", "--period", "2024-01"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let query = Command::new(support::sifa_bin())
        .args(["query", "--data"])
        .arg(&data)
        .args(["--format", "csv", "SELECT count(*) AS n FROM reports"])
        .output()
        .unwrap();
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
    assert!(String::from_utf8_lossy(&query.stdout).lines().any(|l| l.trim() == "1"), "{query:?}");

    // A restart on the full disk starts, and still refuses.
    county.restart();
    let mut c = county.client().await;
    assert_disk_full(&c.submit(as_agent(second.clone())).await.unwrap_err(), "after a restart");

    // Space returns: intake resumes by itself.
    std::fs::remove_file(&ballast).unwrap();
    assert_eq!(outcome(&c.submit(as_agent(second.clone())).await.unwrap().into_inner()), ack::Outcome::Accepted);
    county.wait_for_rows(WAIT, |rows| rows.len() == 2);

    // No reserve, and the disk truly full: the write of the log fails, the reports are refused, the
    // tier keeps running and its log stays whole.
    county.spec.disk = Some(DiskConfig { reserve_mb: 0 });
    county.restart();
    fill(&ballast, 0);
    let batch = reports(2, 400);
    let (acked, end) = stream(&county, &batch).await;
    assert_disk_full(end.as_ref().expect("the stream is refused"), "a write of the log on a full disk");
    assert!(acked.len() < batch.len());
    assert!(county.is_running(), "a full disk does not stop the tier");
    assert!(county.log().contains("refusing new reports until there is space"), "{}", county.log());
    std::fs::remove_file(&ballast).unwrap();
    let (again, end) = stream(&county, &batch).await;
    assert!(end.is_none(), "{end:?}");
    assert_eq!(again.len(), batch.len());
    // What was acknowledged before the disk filled is a duplicate now; the rest is stored now (or
    // was, in a later small group that still fitted the log's last page).
    assert!(again[..acked.len()].iter().all(|o| *o == ack::Outcome::Duplicate), "{again:?}");
    assert!(again.contains(&ack::Outcome::Accepted), "{again:?}");
    // After a crash, the log replays cleanly: every acknowledged report once, nothing doubled.
    county.kill9();
    county.restart();
    assert!(!county.log().contains("dropping the torn tail"), "{}", county.log());
    let rows = county.wait_for_rows(WAIT, |rows| rows.len() >= 402);
    assert_eq!(rows.len(), 402, "each report exactly once");
    drop(county);
    drop(mount);
}

/// The size of the write-ahead log's files.
fn wal_bytes(data: &Path) -> u64 {
    std::fs::read_dir(layout::wal_dir(data)).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_trimmed_behind_parquet_and_forwarding_and_a_restart_loses_and_doubles_nothing() {
    let province = TestAggregator::spawn(TierSpec::top("62"));
    let mut county = TestAggregator::spawn(TierSpec::below("620982", &province.url()));
    let batch = reports(0, 300);
    let (acked, end) = stream(&county, &batch).await;
    assert!(end.is_none() && acked.iter().all(|o| *o == ack::Outcome::Accepted), "{end:?}");
    province.wait_for_rows(WAIT, |rows| rows.len() == 300);
    county.wait_for_rows(WAIT, |rows| rows.len() == 300);
    // In Parquet and forwarded: the segment being written rolls over and the log is trimmed to an
    // empty segment (its 8-byte header).
    let t0 = std::time::Instant::now();
    while wal_bytes(&county.data_dir()) > 8 {
        assert!(t0.elapsed() < WAIT, "the log is never trimmed: {} bytes", wal_bytes(&county.data_dir()));
        std::thread::sleep(Duration::from_millis(100));
    }

    // A crash left temporary files of a flush and of a state file: removed at start.
    let torn = [
        layout::year_dir(&county.data_dir(), 2024).join(sifa_proto::fs::temp_name(&layout::file_name(999))),
        layout::state_dir(&county.data_dir()).join(sifa_proto::fs::temp_name(layout::FORWARD_CURSOR_FILE)),
    ];
    for p in &torn {
        std::fs::write(p, vec![7u8; 4096]).unwrap();
    }
    county.kill9();
    county.restart();
    assert!(torn.iter().all(|p| !p.exists()), "{}", county.log());
    assert!(county.log().contains("removed the temporary files of writes a crash interrupted"), "{}", county.log());
    // Nothing lost, nothing doubled: the reports are duplicates, the stores hold each once.
    let (again, end) = stream(&county, &batch).await;
    assert!(end.is_none() && again.iter().all(|o| *o == ack::Outcome::Duplicate), "{end:?}");
    let more = reports(300, 5);
    let (acked, _) = stream(&county, &more).await;
    assert!(acked.iter().all(|o| *o == ack::Outcome::Accepted));
    assert_eq!(province.wait_for_rows(WAIT, |rows| rows.len() >= 305).len(), 305);
    assert_eq!(county.wait_for_rows(WAIT, |rows| rows.len() >= 305).len(), 305);
}
