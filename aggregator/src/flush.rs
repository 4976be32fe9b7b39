//! Flushing the write-ahead log to Parquet, trimming the log behind it, and
//! compacting small files.
//!
//! Order of operations, so a crash at any point loses and doubles nothing:
//! 1. the accepted records are written as one file per year (atomically, see
//!    `sifa_store::write_file`; in the tier's bucket, one object put, `report_files`);
//! 2. only then may the log segments holding them be deleted (and only once
//!    they are forwarded too). After a crash between 1 and 2 the records are
//!    in both; on restart the log records whose key is already in Parquet are
//!    recognised (the index holds each key once) and not written again.
//!
//! Every tenth flush (after compacting) and at stop, the current figures of each year whose report
//! files changed are derived again (`sifa_store::current`): the latest revision of each unit and
//! month, read by `sifa query` instead of deduplicating every revision.
//!
//! Compaction merges a year's small files: it records its intent in
//! `state/compaction.json` (inputs and output), writes the merged file
//! atomically, deletes the inputs, then the intent. On restart an intent whose
//! output exists has its remaining inputs deleted; one whose output does not
//! exist is simply dropped (the inputs are intact).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sifa_proto::v1::SubmitRequest;
use sifa_proto::{Catalog, Period, Registry};

use crate::http::metrics::Metrics;
use crate::ingest::Unflushed;
use crate::key_files;
use crate::report_files::{ReportFile, ReportFiles};
use crate::wal::{self, Lsn};
use sifa_store::layout::{self, COMPACTION_FILE};
use sifa_store::{StoreError, StoredReport};

/// A year with at least this many small files gets them merged.
pub const COMPACT_MIN_FILES: usize = 8;
/// Files smaller than this are "small".
pub const SMALL_FILE_BYTES: u64 = 16 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct CompactionIntent {
    year: u16,
    inputs: Vec<u64>,
    output: u64,
}

/// Everything the flusher works with.
pub struct Flusher {
    /// The log, `state/` and the key files.
    pub data_dir: PathBuf,
    /// The Parquet store: in the data directory or in a bucket.
    pub files: Arc<ReportFiles>,
    pub catalog: Arc<Catalog>,
    pub registry: Arc<Registry>,
    pub unflushed: Unflushed,
    /// Next file sequence number of the store.
    pub next_seq: u64,
    /// Every record up to this LSN is in Parquet.
    pub flushed: Arc<AtomicU64>,
    /// Every record up to this LSN is forwarded (`u64::MAX` without an upstream).
    pub forwarded: Arc<AtomicU64>,
    /// Set once the index is loaded at start: before, the flusher neither flushes nor compacts (a
    /// compaction would delete files the load reads).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// When the last flush was (`sifa_flush_age_seconds`, the status page).
    pub metrics: Arc<Metrics>,
}

impl Flusher {
    fn wal_dir(&self) -> PathBuf {
        layout::wal_dir(&self.data_dir)
    }

    /// Writes what is pending to Parquet, then trims the log. Returns the rows written.
    ///
    /// A record leaves `unflushed` only once its file is written, so a reader of the tier's log tail
    /// and its Parquet files (the Flight SQL endpoint) never misses it in between.
    pub fn flush(&mut self) -> Result<usize, StoreError> {
        let pending: Vec<(Lsn, Arc<SubmitRequest>)> = self.unflushed.lock().expect("unflushed").clone();
        let Some(&(last, _)) = pending.last() else {
            self.trim();
            return Ok(0);
        };
        let n = pending.len();
        let mut by_year: BTreeMap<u16, Vec<(Lsn, Arc<SubmitRequest>)>> = BTreeMap::new();
        for rec in pending {
            let year = rec.1.report.as_ref().and_then(|r| r.period.get(..4)?.parse().ok()).unwrap_or(0);
            by_year.entry(year).or_default().push(rec);
        }
        let mut written: Vec<Lsn> = Vec::new();
        let mut result = Ok(n);
        for (year, recs) in by_year {
            let rows: Vec<StoredReport> = recs.iter().map(|(_, r)| stored_report(r, &self.registry)).collect();
            let seq = self.next_seq;
            self.next_seq += 1;
            match self.files.write(&self.catalog, year, seq, &rows) {
                Ok(len) => key_files::write_for(&self.data_dir, seq, len, &rows),
                Err(e) => {
                    // What is not in Parquet yet stays pending (it is safe in the log meanwhile) and
                    // is tried again later.
                    result = Err(e);
                    break;
                }
            }
            written.extend(recs.iter().map(|(lsn, _)| *lsn));
        }
        let mut unflushed = self.unflushed.lock().expect("unflushed");
        if result.is_ok() {
            // All of the snapshot is written, and it is what the log held before anything appended
            // since (only the log writer appends, at the end; only this removes).
            unflushed.drain(..n);
        } else {
            let written: HashSet<Lsn> = written.into_iter().collect();
            unflushed.retain(|(lsn, _)| !written.contains(lsn));
        }
        drop(unflushed);
        if result.is_ok() {
            self.flushed.store(last, Ordering::SeqCst);
            self.trim();
        }
        result
    }

    fn trim(&self) {
        let upto = self.flushed.load(Ordering::SeqCst).min(self.forwarded.load(Ordering::SeqCst));
        if let Err(e) = wal::trim(&self.wal_dir(), upto) {
            tracing::warn!("cannot trim the write-ahead log: {e}");
        }
    }

    /// Merges the small files of each year that has many.
    pub fn compact(&mut self) -> Result<usize, StoreError> {
        let mut merged = 0;
        let mut by_year: BTreeMap<u16, Vec<ReportFile>> = BTreeMap::new();
        for file in self.files.list()? {
            if file.len < SMALL_FILE_BYTES {
                by_year.entry(file.year).or_default().push(file);
            }
        }
        for (year, files) in by_year {
            if files.len() < COMPACT_MIN_FILES {
                continue;
            }
            let mut rows = Vec::new();
            for file in &files {
                rows.extend(self.files.read(file, &self.catalog)?);
            }
            let output = self.next_seq;
            self.next_seq += 1;
            let intent = CompactionIntent { year, inputs: files.iter().map(|f| f.seq).collect(), output };
            let state = layout::state_dir(&self.data_dir);
            sifa_proto::fs::write_atomic(&state, COMPACTION_FILE, &serde_json::to_vec(&intent).expect("plain"))?;
            let len = self.files.write(&self.catalog, year, output, &rows)?;
            key_files::write_for(&self.data_dir, output, len, &rows);
            finish_compaction(&self.data_dir, &self.files, &intent)?;
            merged += files.len();
            tracing::info!(year, files = files.len(), rows = rows.len(), output, "compacted small Parquet files");
        }
        Ok(merged)
    }

    /// Derives again the current figures (`current/`, docs/STORAGE.md) of each year whose report
    /// files changed since; until then queries deduplicate that year's report files themselves.
    pub fn refresh_current(&self) {
        match self.files.refresh_current(&self.catalog) {
            Ok(made) => {
                for (year, report_files) in made {
                    tracing::info!(year, report_files, "derived the current figures");
                }
            }
            Err(e) => {
                tracing::error!("cannot derive the current figures (queries deduplicate reports/ meanwhile): {e}")
            }
        }
    }

    /// Flushes every `interval` until `stop` is set, then flushes once more and derives the current
    /// figures; compacts small files and derives the current figures every tenth flush.
    pub fn run(mut self, interval: Duration, stop: Arc<std::sync::atomic::AtomicBool>) {
        let mut ticks: u64 = 0;
        loop {
            let stopping = stop.load(Ordering::SeqCst);
            if !self.ready.load(Ordering::SeqCst) {
                if stopping {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            match self.flush() {
                Ok(n) => {
                    self.metrics.flushed(sifa_proto::period::now_unix_ms());
                    if n > 0 {
                        tracing::debug!(rows = n, "flushed the write-ahead log to Parquet");
                    }
                }
                Err(e) => tracing::error!("cannot flush to Parquet (the reports stay safe in the log): {e}"),
            }
            if let Err(e) = self.files.publish_small_files() {
                tracing::warn!("cannot put the store's small files in its bucket (tried again next flush): {e}");
            }
            if stopping {
                self.refresh_current();
                break;
            }
            ticks += 1;
            if ticks.is_multiple_of(10) {
                if let Err(e) = self.compact() {
                    tracing::error!("cannot compact Parquet files: {e}");
                }
                self.refresh_current();
            }
            // Sleep in short steps so a stop is noticed promptly.
            let t0 = std::time::Instant::now();
            while t0.elapsed() < interval && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(interval.min(Duration::from_millis(20)));
            }
        }
    }
}

/// The row stored for an accepted record.
pub fn stored_report(rec: &SubmitRequest, registry: &Registry) -> StoredReport {
    let report = rec.report.clone().expect("accepted records carry a report");
    let period: Period = report.period.parse().expect("accepted records have a valid period");
    let prov = rec.provenance.clone().unwrap_or_default();
    StoredReport::new(report, period, registry, prov.received_at_ms, &prov.first_accepted_by)
}

fn finish_compaction(data_dir: &Path, files: &ReportFiles, intent: &CompactionIntent) -> Result<(), StoreError> {
    files.delete(intent.year, &intent.inputs)?;
    for seq in &intent.inputs {
        key_files::remove(data_dir, *seq);
    }
    let intent_path = layout::state_dir(data_dir).join(COMPACTION_FILE);
    let _ = std::fs::remove_file(&intent_path);
    Ok(())
}

/// Completes or abandons a compaction interrupted by a crash (see the module notes).
pub fn recover_compaction(data_dir: &Path, files: &ReportFiles) -> Result<(), StoreError> {
    let path = layout::state_dir(data_dir).join(COMPACTION_FILE);
    let Ok(text) = std::fs::read(&path) else { return Ok(()) };
    let Ok(intent) = serde_json::from_slice::<CompactionIntent>(&text) else {
        let _ = std::fs::remove_file(&path);
        return Ok(());
    };
    if files.exists(intent.year, intent.output)? {
        tracing::info!(year = intent.year, "finishing a compaction interrupted by a crash");
        finish_compaction(data_dir, files, &intent)
    } else {
        tracing::info!(year = intent.year, "abandoning a compaction interrupted by a crash; its inputs are intact");
        let _ = std::fs::remove_file(&path);
        Ok(())
    }
}

/// The sequence number after every file of the store.
pub fn next_seq(files: &ReportFiles) -> Result<u64, StoreError> {
    Ok(files.list()?.iter().map(|f| f.seq + 1).max().unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::v1::{Provenance, Report};
    use std::sync::Mutex;

    fn rec(i: u64) -> SubmitRequest {
        SubmitRequest {
            report: Some(Report {
                unit_code: format!("620982{}", 100 + i % 9),
                period: format!("{}-03", 2023 + i % 2),
                revision: 1 + i / 9,
                values: [("lectures".to_string(), i as f64)].into(),
                comment: None,
                generated_at_ms: 1,
                generator: "t".into(),
            }),
            provenance: Some(Provenance { first_accepted_by: "620982".into(), received_at_ms: 5 }),
        }
    }

    fn flusher(dir: &Path) -> Flusher {
        Flusher {
            data_dir: dir.to_path_buf(),
            files: Arc::new(ReportFiles::Directory(dir.to_path_buf())),
            catalog: Arc::new(Catalog::builtin()),
            registry: Arc::new(Registry::demo()),
            unflushed: Arc::new(Mutex::new(Vec::new())),
            next_seq: next_seq(&ReportFiles::Directory(dir.to_path_buf())).unwrap(),
            flushed: Arc::new(AtomicU64::new(0)),
            forwarded: Arc::new(AtomicU64::new(u64::MAX)),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            metrics: Arc::new(Metrics::new("620982")),
        }
    }

    fn keys(dir: &Path) -> Vec<(String, String, u64)> {
        let mut k: Vec<_> = sifa_store::list_files(dir)
            .unwrap()
            .iter()
            .flat_map(|(_, _, p)| sifa_store::read_file(p, &Catalog::builtin()).unwrap())
            .map(|r| (r.report.unit_code, r.report.period, r.report.revision))
            .collect();
        k.sort();
        k
    }

    #[test]
    fn flush_writes_one_file_per_year_and_compaction_keeps_every_row_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(dir.path());
        for round in 0..COMPACT_MIN_FILES as u64 {
            f.unflushed.lock().unwrap().extend((0..4).map(|i| (round * 4 + i + 1, Arc::new(rec(round * 4 + i)))));
            assert_eq!(f.flush().unwrap(), 4);
        }
        assert_eq!(f.flushed.load(Ordering::SeqCst), 4 * COMPACT_MIN_FILES as u64);
        let before = keys(dir.path());
        assert_eq!(before.len(), 4 * COMPACT_MIN_FILES);
        assert_eq!(
            sifa_store::list_files(dir.path()).unwrap().len(),
            2 * COMPACT_MIN_FILES,
            "one file per year per flush"
        );
        assert_eq!(f.compact().unwrap(), 2 * COMPACT_MIN_FILES);
        assert_eq!(sifa_store::list_files(dir.path()).unwrap().len(), 2);
        assert_eq!(keys(dir.path()), before);
    }

    #[test]
    fn the_log_is_trimmed_only_behind_parquet_and_the_forward_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let wal_dir = layout::wal_dir(dir.path());
        let (mut wal, _) = wal::Wal::open(&wal_dir).unwrap();
        wal.set_segment_bytes(1); // one record per segment
        let records: Vec<(Lsn, SubmitRequest)> = (0..5u64).map(|i| (wal.append(&[rec(i)]).unwrap(), rec(i))).collect();
        let segments = || wal::list_segments(&wal_dir).unwrap().iter().map(|(first, _)| *first).collect::<Vec<_>>();
        assert_eq!(segments(), [1, 2, 3, 4, 5, 6], "five closed segments and the one being written");
        let f = flusher(dir.path());
        f.forwarded.store(3, Ordering::SeqCst);

        // Nothing is in Parquet yet: nothing is trimmed, whatever was forwarded.
        let mut f = f;
        assert_eq!(f.flush().unwrap(), 0);
        assert_eq!(segments(), [1, 2, 3, 4, 5, 6]);

        // A failed write to Parquet keeps every record queued and every segment.
        std::fs::write(dir.path().join(layout::REPORTS_DIR), b"not a directory").unwrap();
        f.unflushed.lock().unwrap().extend(records.iter().map(|(lsn, r)| (*lsn, Arc::new(r.clone()))));
        let e = f.flush().unwrap_err().to_string();
        assert!(e.contains("cannot create directory"), "{e}");
        assert_eq!(f.unflushed.lock().unwrap().len(), 5);
        assert_eq!(f.flushed.load(Ordering::SeqCst), 0);
        assert_eq!(segments(), [1, 2, 3, 4, 5, 6]);
        std::fs::remove_file(dir.path().join(layout::REPORTS_DIR)).unwrap();

        // In Parquet: trimmed up to the forward cursor (3), not beyond.
        assert_eq!(f.flush().unwrap(), 5);
        assert_eq!(keys(dir.path()).len(), 5);
        assert_eq!(segments(), [4, 5, 6]);
        // Forwarded too: every closed segment goes; the one being written stays.
        f.forwarded.store(5, Ordering::SeqCst);
        assert_eq!(f.flush().unwrap(), 0);
        assert_eq!(segments(), [6]);
    }

    #[test]
    fn a_compaction_interrupted_after_writing_its_output_is_finished_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = flusher(dir.path());
        for round in 0..3u64 {
            f.unflushed.lock().unwrap().push((round + 1, Arc::new(rec(round * 2))));
            f.flush().unwrap();
        }
        let before = keys(dir.path());
        let inputs: Vec<u64> = sifa_store::list_files(dir.path()).unwrap().iter().map(|(_, s, _)| *s).collect();
        // The crash: intent recorded, merged output written, inputs not yet deleted.
        let rows: Vec<StoredReport> = sifa_store::list_files(dir.path())
            .unwrap()
            .iter()
            .flat_map(|(_, _, p)| sifa_store::read_file(p, &Catalog::builtin()).unwrap())
            .collect();
        let intent = CompactionIntent { year: 2023, inputs: inputs.clone(), output: 99 };
        sifa_proto::fs::write_atomic(
            &layout::state_dir(dir.path()),
            COMPACTION_FILE,
            &serde_json::to_vec(&intent).unwrap(),
        )
        .unwrap();
        sifa_store::write_file(dir.path(), &Catalog::builtin(), 2023, 99, &rows).unwrap();
        assert_eq!(keys(dir.path()).len(), 2 * before.len(), "doubled until recovery");
        recover_compaction(dir.path(), &ReportFiles::Directory(dir.path().to_path_buf())).unwrap();
        assert_eq!(keys(dir.path()), before);
        assert!(!layout::state_dir(dir.path()).join(COMPACTION_FILE).exists());
        // Interrupted before its output existed: abandoned, inputs intact.
        let intent = CompactionIntent { year: 2023, inputs: vec![99], output: 100 };
        sifa_proto::fs::write_atomic(
            &layout::state_dir(dir.path()),
            COMPACTION_FILE,
            &serde_json::to_vec(&intent).unwrap(),
        )
        .unwrap();
        recover_compaction(dir.path(), &ReportFiles::Directory(dir.path().to_path_buf())).unwrap();
        assert_eq!(keys(dir.path()), before);
    }
}
