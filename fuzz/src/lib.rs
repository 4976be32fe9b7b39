//! The bodies of sifa's fuzz targets: every reader of bytes that come from
//! outside — a gRPC request, a clerk's ledger, a registry or catalog file, the
//! write-ahead log and the agent's outbox after a crash or a bad disk. Each
//! must return an answer or an error for any bytes, never panic, hang or
//! allocate without bound.
//!
//! `cargo fuzz run <name> -s none` drives them (fuzz_targets/), and
//! tests/fuzz_corpus.rs replays fuzz/corpus/ through them on every
//! `cargo test`. docs/RELIABILITY.md has the commands and the figures.

use std::path::Path;
use std::sync::LazyLock;

use prost::Message;
use sifa_agent::ledger::{self, SheetLimits};
use sifa_agent::outbox::{self, Outbox};
use sifa_aggregator::wal::{self, Wal, WalReader};
use sifa_proto::v1::SubmitRequest;
use sifa_proto::{Catalog, Registry, validate};

static CATALOG: LazyLock<Catalog> = LazyLock::new(Catalog::builtin);
static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::demo);
/// The demo province: the root a tier of the demo registry checks units against.
const ROOT: &str = "62";

/// A scratch directory in memory where there is one (`/dev/shm`), removed when dropped.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new().prefix("sifa-fuzz").tempdir_in(if shm.is_dir() { shm } else { Path::new("/tmp") });
    b.or_else(|_| tempfile::tempdir()).expect("a scratch directory")
}

/// A gRPC SubmitRequest as an aggregator receives it: decoded, then every check
/// of the one validation library.
pub fn submit_request(data: &[u8]) {
    let Ok(req) = SubmitRequest::decode(data) else { return };
    // A fixed clock (2026-11-23), so that a run is reproducible.
    let now = validate::Now::at(1_795_392_000_000);
    if let Some(provenance) = req.provenance.as_ref() {
        let _ = validate::check_provenance(provenance, now);
    }
    let Some(report) = req.report.as_ref() else { return };
    let _ = validate::check_report(report, &CATALOG, now);
    let _ = validate::check_unit(report, &REGISTRY, ROOT);
    let _ = validate::content_digest(report);
    let _ = validate::report_label(report);
}

/// A ledger read as the agent reads it, every cell asked for its number, day and month.
fn read_ledger(file_name: &str, data: &[u8]) {
    let dir = scratch();
    let path = dir.path().join(file_name);
    std::fs::write(&path, data).expect("write the ledger");
    let _ = ledger::read_table(&path, None, "日期", &SheetLimits::from_mb(1), &mut |header, row| {
        let _ = header.column("人数");
        for cell in &row.cells {
            let _ = (cell.number(), cell.day(), cell.month(), cell.text());
        }
        true
    });
}

/// A CSV ledger in any encoding (UTF-8, GBK, or neither).
pub fn ledger_csv(data: &[u8]) {
    read_ledger("台账.csv", data)
}

/// An .xlsx ledger (a zip of XML parts).
pub fn ledger_xlsx(data: &[u8]) {
    read_ledger("台账.xlsx", data)
}

/// A registry file; one that parses writes out as CSV and parses back the same.
pub fn registry(data: &[u8]) {
    let Ok(reg) = Registry::from_csv_bytes(data) else { return };
    let again = Registry::from_csv_bytes(reg.to_csv().as_bytes()).expect("a registry's own CSV parses");
    assert_eq!(reg.units(), again.units(), "a registry's CSV reads back as the same units");
    for unit in reg.units() {
        let _ = (reg.lineage(&unit.code), reg.subtree(&unit.code).len(), reg.ancestry(&unit.code).count());
    }
}

/// A catalog file (TOML).
pub fn catalog(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Catalog::from_toml(text);
    }
}

/// A log segment after a crash or a bad disk: `data[0]` chooses raw bytes,
/// the segment magic and raw bytes, or frames with valid checksums around
/// arbitrary payloads (so replay reaches the decoder) followed by a raw tail.
/// Replay keeps what it can and truncates a torn tail; reading again after
/// must agree with what replay returned.
pub fn wal_replay(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut segment = Vec::new();
    match mode % 3 {
        0 => segment.extend_from_slice(rest),
        1 => {
            segment.extend_from_slice(wal::SEGMENT_MAGIC);
            segment.extend_from_slice(rest);
        }
        _ => {
            segment.extend_from_slice(wal::SEGMENT_MAGIC);
            let mut pieces = rest.split(|&b| b == 0xFF).peekable();
            while let Some(piece) = pieces.next() {
                if pieces.peek().is_none() {
                    segment.extend_from_slice(piece); // the torn tail
                } else if !piece.is_empty() {
                    segment.extend_from_slice(&(piece.len() as u32).to_le_bytes());
                    segment.extend_from_slice(&crc32fast::hash(piece).to_le_bytes());
                    segment.extend_from_slice(piece);
                }
            }
        }
    }
    let dir = scratch();
    std::fs::write(dir.path().join(wal::segment_name(1)), &segment).expect("write the segment");
    let Ok((log, recovered)) = Wal::open(dir.path()) else { return };
    let durable = log.next_lsn() - 1;
    let again = WalReader::new(dir.path()).read(1, durable, usize::MAX).expect("a replayed log reads back");
    assert_eq!(again.len(), recovered.records.len(), "reading the log back after replay finds what replay found");
}

/// An office's outbox after a crash or a bad disk: a queued report file (raw,
/// or with a valid header around arbitrary bytes), a rejected-report record
/// and the state file, split from `data` at 0xFF bytes. Opening reconciles
/// them or refuses with an error; listing and reading never panic.
pub fn outbox(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut parts = rest.splitn(3, |&b| b == 0xFF);
    let (report, rejected, state) = (parts.next().unwrap_or(&[]), parts.next().unwrap_or(&[]), parts.next());
    let dir = scratch();
    let queue = dir.path().join(outbox::QUEUE_DIR);
    let rejected_dir = dir.path().join(outbox::REJECTED_DIR);
    std::fs::create_dir_all(&queue).expect("queue folder");
    std::fs::create_dir_all(&rejected_dir).expect("rejected folder");
    let report_file = if mode % 2 == 0 {
        report.to_vec()
    } else {
        let mut f = outbox::MAGIC.to_vec();
        f.extend_from_slice(&crc32fast::hash(report).to_le_bytes());
        f.extend_from_slice(report);
        f
    };
    std::fs::write(queue.join("2024-03.r000001.report"), report_file).expect("write a queued report");
    std::fs::write(rejected_dir.join("2024-02.r000001.json"), rejected).expect("write a rejected record");
    if let Some(state) = state {
        std::fs::write(dir.path().join(outbox::STATE_FILE), state).expect("write the state");
    }
    let _ = outbox::read_state(dir.path());
    let _ = outbox::list_rejected(dir.path());
    if let Ok(list) = outbox::list_queue(dir.path()) {
        for q in list {
            let _ = outbox::read_report(&q.path);
        }
    }
    let _ = Outbox::open(dir.path(), "620982100");
}
