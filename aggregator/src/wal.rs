//! The write-ahead log: accepted reports, durable before they are acknowledged.
//! The format and the recovery rules are in `wal.md` beside this file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use prost::Message;
use sifa_proto::v1::SubmitRequest;

/// A log sequence number: the n-th record ever appended to this log, from 1.
pub type Lsn = u64;

/// The first bytes of every segment file.
pub const SEGMENT_MAGIC: &[u8; 8] = b"SIFAWAL1";
/// Length + CRC32 before every record's payload.
pub const FRAME_HEADER: usize = 8;
/// Largest payload accepted when reading; anything larger is a corrupt length.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
/// A segment is closed and a new one started once it grows past this size.
pub const SEGMENT_BYTES: u64 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("write-ahead log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "write-ahead log segment {path} is damaged at byte {offset} ({reason}) and it is not the last segment, \
         so this is not a torn tail of an interrupted write; move the segment aside and restore it from a backup"
    )]
    Corrupt { path: PathBuf, offset: u64, reason: String },
    #[error(
        "write-ahead log segment {path}: record {lsn} cannot be read back ({reason}) although it was \
         acknowledged as durable; stop the aggregator, keep a copy of the data directory and check the disk"
    )]
    Unreadable { path: PathBuf, lsn: Lsn, reason: String },
    #[error(
        "write-ahead log {path}: a write failed ({write}) and cutting the segment back to its last whole record \
         failed too ({rollback}); stop the aggregator and check the disk (a restart drops the torn tail)"
    )]
    RollbackFailed { path: PathBuf, write: io::Error, rollback: io::Error },
}

impl WalError {
    /// A write that failed for lack of space and left the log as it was before it: the records were
    /// not appended, and the log takes the next append normally.
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, WalError::Io { source, .. } if crate::disk::is_out_of_space(source))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.to_path_buf(), source }
}

/// fsyncs the log's directory (the one implementation, `sifa_proto::fs::sync_dir`).
fn sync_dir(dir: &Path) -> Result<(), WalError> {
    sifa_proto::fs::sync_dir(dir).map_err(|e| WalError::Io { path: e.path, source: e.source })
}

/// The file name of the segment whose first record is `first`.
pub fn segment_name(first: Lsn) -> String {
    format!("{first:020}.wal")
}

/// The segments of a log directory as (first LSN, path), in order.
pub fn list_segments(dir: &Path) -> Result<Vec<(Lsn, PathBuf)>, WalError> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(WalError::Io { path: dir.to_path_buf(), source: e }),
    };
    for e in entries {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(first) = name.strip_suffix(".wal").and_then(|s| s.parse::<Lsn>().ok()) {
            out.push((first, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Encodes one record as a frame: length (u32 LE), CRC32 of the payload (u32 LE), payload.
pub fn encode_frame(record: &SubmitRequest, out: &mut Vec<u8>) {
    let len = record.encoded_len();
    out.reserve(FRAME_HEADER + len);
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    record.encode(out).expect("a Vec grows");
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Why reading a frame stopped.
#[derive(Debug, PartialEq, Eq)]
enum FrameEnd {
    /// Clean end of the file.
    Eof,
    /// A frame that is incomplete or fails its checks.
    Bad(String),
}

/// Reads the next frame; `Err` says why there is none.
fn read_frame(r: &mut impl Read) -> Result<(SubmitRequest, u64), FrameEnd> {
    let mut header = [0u8; FRAME_HEADER];
    let mut got = 0;
    while got < FRAME_HEADER {
        match r.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Err(FrameEnd::Eof),
            Ok(0) => return Err(FrameEnd::Bad(format!("a frame header cut off after {got} bytes"))),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameEnd::Bad(format!("read error: {e}"))),
        }
    }
    let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
    if len == 0 || len > MAX_RECORD_BYTES {
        return Err(FrameEnd::Bad(format!("impossible record length {len}")));
    }
    let mut payload = vec![0u8; len];
    if let Err(e) = r.read_exact(&mut payload) {
        return Err(FrameEnd::Bad(format!("a record of {len} bytes cut off ({e})")));
    }
    if crc32fast::hash(&payload) != crc {
        return Err(FrameEnd::Bad("checksum mismatch".into()));
    }
    let record =
        SubmitRequest::decode(payload.as_slice()).map_err(|e| FrameEnd::Bad(format!("undecodable record: {e}")))?;
    Ok((record, (FRAME_HEADER + len) as u64))
}

fn check_magic(r: &mut impl Read) -> Result<(), String> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic).map_err(|_| "the segment header is cut off".to_string())?;
    if &magic != SEGMENT_MAGIC { Err("the segment does not start with SIFAWAL1".into()) } else { Ok(()) }
}

/// What was found on opening a log.
#[derive(Debug)]
pub struct Recovered {
    /// Every record still in the log, in order.
    pub records: Vec<(Lsn, SubmitRequest)>,
    /// Bytes cut from the end of the last segment (a torn or corrupt tail), and why.
    pub dropped_tail: Option<(u64, String)>,
}

/// The log, open for appending. One writer at a time.
pub struct Wal {
    dir: PathBuf,
    file: File,
    segment_first: Lsn,
    segment_len: u64,
    next: Lsn,
    /// A segment is closed once it grows past this ([`SEGMENT_BYTES`]; smaller in tests).
    segment_bytes: u64,
    /// How long the last append's fsync took.
    last_fsync: std::time::Duration,
}

impl Wal {
    /// Opens (or creates) the log in `dir`, reading every record back. A torn
    /// or corrupt tail of the last segment is truncated away (and reported),
    /// never read as data; damage anywhere else is an error.
    pub fn open(dir: &Path) -> Result<(Wal, Recovered), WalError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segments = list_segments(dir)?;
        let mut records = Vec::new();
        let mut dropped_tail = None;
        let mut next: Lsn = 1;
        let mut last: Option<(Lsn, PathBuf, u64)> = None;
        for (i, (first, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let f = File::open(path).map_err(io_err(path))?;
            let file_len = f.metadata().map_err(io_err(path))?.len();
            let mut r = BufReader::with_capacity(1 << 20, f);
            next = (*first).max(next);
            let mut offset = SEGMENT_MAGIC.len() as u64;
            let mut bad = check_magic(&mut r).err();
            if bad.is_some() {
                offset = 0;
            }
            while bad.is_none() {
                match read_frame(&mut r) {
                    Ok((rec, n)) => {
                        records.push((next, rec));
                        next += 1;
                        offset += n;
                    }
                    Err(FrameEnd::Eof) => break,
                    Err(FrameEnd::Bad(why)) => bad = Some(why),
                }
            }
            if let Some(reason) = bad {
                if !is_last {
                    return Err(WalError::Corrupt { path: path.clone(), offset, reason });
                }
                tracing::warn!(
                    segment = %path.display(), offset, dropped_bytes = file_len - offset, %reason,
                    "dropping the torn tail of the write-ahead log (an interrupted write, never acknowledged)"
                );
                dropped_tail = Some((file_len - offset, reason));
            }
            if is_last {
                last = Some((*first, path.clone(), offset));
            }
        }
        let (file, segment_first, segment_len, next) = match last {
            Some((first, path, good_len)) => {
                let mut file = OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
                if good_len < SEGMENT_MAGIC.len() as u64 {
                    file.set_len(0).map_err(io_err(&path))?;
                    file.write_all(SEGMENT_MAGIC).map_err(io_err(&path))?;
                } else {
                    file.set_len(good_len).map_err(io_err(&path))?;
                }
                file.sync_all().map_err(io_err(&path))?;
                let len = file.seek(SeekFrom::End(0)).map_err(io_err(&path))?;
                (file, first, len, next)
            }
            None => {
                let (file, len) = new_segment(dir, 1)?;
                (file, 1, len, 1)
            }
        };
        let wal = Wal {
            dir: dir.to_path_buf(),
            file,
            segment_first,
            segment_len,
            next,
            segment_bytes: SEGMENT_BYTES,
            last_fsync: std::time::Duration::ZERO,
        };
        Ok((wal, Recovered { records, dropped_tail }))
    }

    /// Closes segments once they pass `bytes` instead of [`SEGMENT_BYTES`] (tests of trimming).
    #[cfg(test)]
    pub(crate) fn set_segment_bytes(&mut self, bytes: u64) {
        self.segment_bytes = bytes;
    }

    /// How long the fsync of the last append took.
    pub fn last_fsync(&self) -> std::time::Duration {
        self.last_fsync
    }

    /// The LSN the next appended record gets.
    pub fn next_lsn(&self) -> Lsn {
        self.next
    }

    /// Appends already-encoded frames of `count` records and fsyncs once
    /// (group commit). Returns the LSN of the first. Starts a new segment
    /// afterwards when this one has grown past [`SEGMENT_BYTES`].
    ///
    /// A failed write or fsync (a full disk) cuts the segment back to its last
    /// whole record, so the log is as before the call and replay never meets
    /// a torn record in the middle; the error says so ([`WalError::is_out_of_space`]).
    /// Only when that cut fails too is the log in doubt ([`WalError::RollbackFailed`]).
    pub fn append_frames(&mut self, frames: &[u8], count: u64) -> Result<Lsn, WalError> {
        let first = self.next;
        if count == 0 {
            return Ok(first);
        }
        let path = self.dir.join(segment_name(self.segment_first));
        let mut fsync_started = None;
        let written = self.file.write_all(frames).and_then(|()| {
            fsync_started = Some(std::time::Instant::now());
            self.file.sync_data()
        });
        if let Err(write) = written {
            let good = self.segment_len;
            let rollback = self
                .file
                .set_len(good)
                .and_then(|()| self.file.seek(SeekFrom::Start(good)).map(drop))
                .and_then(|()| self.file.sync_data());
            return Err(match rollback {
                Ok(()) => WalError::Io { path, source: write },
                Err(rollback) => WalError::RollbackFailed { path, write, rollback },
            });
        }
        if let Some(t0) = fsync_started {
            self.last_fsync = t0.elapsed();
        }
        self.segment_len += frames.len() as u64;
        self.next += count;
        if self.segment_len >= self.segment_bytes {
            self.roll_over();
        }
        Ok(first)
    }

    /// Starts a new segment at the next LSN, so the current one can be trimmed as a whole once its
    /// records are in Parquet and forwarded. When the new segment cannot be created (a full disk),
    /// the current one goes on; nothing is lost.
    fn roll_over(&mut self) {
        match new_segment(&self.dir, self.next) {
            Ok((file, len)) => {
                self.file = file;
                self.segment_first = self.next;
                self.segment_len = len;
            }
            Err(e) => tracing::warn!("cannot start a new write-ahead log segment, going on with the current one: {e}"),
        }
    }

    /// Rolls the segment being written over when it holds records and every one of them is at or
    /// below `covered` (in Parquet and forwarded): the trim then deletes it, and an idle tier's log
    /// holds nothing it no longer needs. Returns whether it rolled over.
    pub fn roll_over_if_covered(&mut self, covered: Lsn) -> bool {
        let has_records = self.next > self.segment_first;
        if !has_records || self.next - 1 > covered {
            return false;
        }
        let before = self.segment_first;
        self.roll_over();
        self.segment_first != before
    }

    /// Appends records (encoding them) with one fsync.
    pub fn append(&mut self, records: &[SubmitRequest]) -> Result<Lsn, WalError> {
        let mut buf = Vec::new();
        records.iter().for_each(|r| encode_frame(r, &mut buf));
        self.append_frames(&buf, records.len() as u64)
    }
}

/// Deletes every closed segment of the log in `dir` whose records all have
/// LSN ≤ `upto`. The last segment (the one being written) is never deleted.
/// Safe to call while the writer appends. Returns how many were deleted.
pub fn trim(dir: &Path, upto: Lsn) -> Result<usize, WalError> {
    let segments = list_segments(dir)?;
    let mut deleted = 0;
    for w in segments.windows(2) {
        let ((_, path), (next_first, _)) = (&w[0], &w[1]);
        if *next_first <= upto + 1 {
            fs::remove_file(path).map_err(io_err(path))?;
            deleted += 1;
        }
    }
    if deleted > 0 {
        sync_dir(dir)?;
    }
    Ok(deleted)
}

/// Creates the segment whose first record will be `first`. If that fails, the partly created file is
/// removed: a segment without its header would otherwise be taken for the last one at the next start.
fn new_segment(dir: &Path, first: Lsn) -> Result<(File, u64), WalError> {
    let path = dir.join(segment_name(first));
    let created = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .read(true)
        .open(&path)
        .map_err(io_err(&path))
        .and_then(|mut file| {
            file.write_all(SEGMENT_MAGIC).and_then(|()| file.sync_all()).map_err(io_err(&path))?;
            sync_dir(dir)?;
            Ok(file)
        });
    match created {
        Ok(file) => Ok((file, SEGMENT_MAGIC.len() as u64)),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Reads records from the log in order, for forwarding, while the writer
/// appends. Reads only up to a durable LSN the caller passes, so it never sees
/// a record that is still being written.
pub struct WalReader {
    dir: PathBuf,
    /// The open segment, its first LSN, and the LSN of the next frame in it.
    pos: Option<(BufReader<File>, Lsn, Lsn)>,
}

impl WalReader {
    pub fn new(dir: &Path) -> WalReader {
        WalReader { dir: dir.to_path_buf(), pos: None }
    }

    /// Up to `max` records from LSN `from` on, none beyond `durable`.
    pub fn read(&mut self, from: Lsn, durable: Lsn, max: usize) -> Result<Vec<(Lsn, SubmitRequest)>, WalError> {
        let mut out = Vec::new();
        let mut lsn = from;
        while lsn <= durable && out.len() < max {
            if self.pos.as_ref().is_none_or(|(_, _, next)| *next != lsn) {
                self.seek(lsn)?;
            }
            let Some((r, first, next)) = self.pos.as_mut() else { break };
            match read_frame(r) {
                Ok((rec, _)) => {
                    out.push((lsn, rec));
                    lsn += 1;
                    *next = lsn;
                }
                Err(FrameEnd::Eof) => {
                    // The end of a closed segment: the next one starts here.
                    let first = *first;
                    let segs = list_segments(&self.dir)?;
                    match segs.iter().find(|(f, _)| *f == lsn && *f > first) {
                        Some(_) => self.seek(lsn)?,
                        None => {
                            self.pos = None;
                            break;
                        }
                    }
                }
                Err(FrameEnd::Bad(why)) => {
                    let path = self.dir.join(segment_name(*first));
                    return Err(WalError::Unreadable { path, lsn, reason: why });
                }
            }
        }
        Ok(out)
    }

    fn seek(&mut self, lsn: Lsn) -> Result<(), WalError> {
        self.pos = None;
        let segs = list_segments(&self.dir)?;
        let Some((first, path)) = segs.iter().rev().find(|(f, _)| *f <= lsn) else { return Ok(()) };
        let f = File::open(path).map_err(io_err(path))?;
        let mut r = BufReader::with_capacity(256 << 10, f);
        check_magic(&mut r).map_err(|reason| WalError::Unreadable { path: path.clone(), lsn, reason })?;
        let mut next = *first;
        while next < lsn {
            match read_frame(&mut r) {
                Ok(_) => next += 1,
                Err(_) => return Ok(()),
            }
        }
        self.pos = Some((r, *first, next));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::v1::Report;

    fn rec(i: u64) -> SubmitRequest {
        SubmitRequest {
            report: Some(Report {
                unit_code: format!("620982{:03}", i % 1000),
                period: "2024-03".into(),
                revision: 1 + i / 1000,
                values: [("lectures".to_string(), i as f64)].into(),
                comment: None,
                generated_at_ms: 1,
                generator: "t".into(),
            }),
            provenance: None,
        }
    }

    fn units(records: &[(Lsn, SubmitRequest)]) -> Vec<(Lsn, f64)> {
        records.iter().map(|(l, r)| (*l, r.report.as_ref().unwrap().values["lectures"])).collect()
    }

    #[test]
    fn records_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, rec0) = Wal::open(dir.path()).unwrap();
        assert!(rec0.records.is_empty());
        assert_eq!(wal.append(&[rec(0), rec(1)]).unwrap(), 1);
        assert_eq!(wal.append(&[rec(2)]).unwrap(), 3);
        drop(wal);
        let (wal, got) = Wal::open(dir.path()).unwrap();
        assert_eq!(units(&got.records), vec![(1, 0.0), (2, 1.0), (3, 2.0)]);
        assert!(got.dropped_tail.is_none());
        assert_eq!(wal.next_lsn(), 4);
    }

    #[test]
    fn a_torn_or_corrupt_tail_is_dropped_never_read() {
        for damage in ["cut", "garbage", "flipped"] {
            let dir = tempfile::tempdir().unwrap();
            let (mut wal, _) = Wal::open(dir.path()).unwrap();
            wal.append(&[rec(0), rec(1), rec(2)]).unwrap();
            drop(wal);
            let (_, path) = list_segments(dir.path()).unwrap().pop().unwrap();
            let mut bytes = fs::read(&path).unwrap();
            match damage {
                // The last record half written.
                "cut" => bytes.truncate(bytes.len() - 5),
                // Garbage after the last good record (a preallocated or torn block).
                "garbage" => bytes.extend_from_slice(&[0xAB; 37]),
                // A bit flipped in the last record's payload.
                _ => *bytes.last_mut().unwrap() ^= 0x40,
            }
            fs::write(&path, &bytes).unwrap();
            let (mut wal, got) = Wal::open(dir.path()).unwrap();
            let want: Vec<(Lsn, f64)> =
                if damage == "garbage" { vec![(1, 0.0), (2, 1.0), (3, 2.0)] } else { vec![(1, 0.0), (2, 1.0)] };
            assert_eq!(units(&got.records), want, "{damage}");
            assert!(got.dropped_tail.is_some(), "{damage}");
            // The log goes on after the good records, and the damage is gone for good.
            let next = wal.append(&[rec(7)]).unwrap();
            assert_eq!(next, want.len() as u64 + 1);
            drop(wal);
            let (_, again) = Wal::open(dir.path()).unwrap();
            assert_eq!(again.records.len(), want.len() + 1, "{damage}");
            assert!(again.dropped_tail.is_none());
        }
    }

    #[test]
    fn damage_before_the_last_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&[rec(0), rec(1)]).unwrap();
        drop(wal);
        // A second segment after the first.
        let (f, _) = new_segment(dir.path(), 3).unwrap();
        drop(f);
        let first = dir.path().join(segment_name(1));
        let mut bytes = fs::read(&first).unwrap();
        bytes[12] ^= 1;
        fs::write(&first, bytes).unwrap();
        let e = Wal::open(dir.path()).err().unwrap().to_string();
        assert!(e.contains("not the last segment"), "{e}");
    }

    #[test]
    fn the_segment_being_written_rolls_over_once_covered_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        assert!(!wal.roll_over_if_covered(u64::MAX), "an empty segment stays");
        wal.append(&(0..4).map(rec).collect::<Vec<_>>()).unwrap();
        assert!(!wal.roll_over_if_covered(3), "record 4 is not yet in Parquet and forwarded");
        assert!(wal.roll_over_if_covered(4));
        assert_eq!(trim(dir.path(), 4).unwrap(), 1);
        let names: Vec<Lsn> = list_segments(dir.path()).unwrap().iter().map(|(f, _)| *f).collect();
        assert_eq!(names, [5], "only the new, empty segment is left");
        assert_eq!(fs::metadata(dir.path().join(segment_name(5))).unwrap().len(), SEGMENT_MAGIC.len() as u64);
        // The numbering goes on after a restart, and records after the roll-over are kept.
        wal.append(&[rec(9)]).unwrap();
        drop(wal);
        let (wal, got) = Wal::open(dir.path()).unwrap();
        assert_eq!(units(&got.records), vec![(5, 9.0)]);
        assert_eq!(wal.next_lsn(), 6);
    }

    #[test]
    fn reader_follows_segments_and_trim_keeps_what_is_needed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path()).unwrap();
        wal.append(&(0..5).map(rec).collect::<Vec<_>>()).unwrap();
        // Force a new segment at LSN 6.
        let (f, len) = new_segment(dir.path(), 6).unwrap();
        wal.file = f;
        wal.segment_first = 6;
        wal.segment_len = len;
        wal.append(&(5..9).map(rec).collect::<Vec<_>>()).unwrap();
        let mut r = WalReader::new(dir.path());
        assert_eq!(units(&r.read(1, 9, 3).unwrap()), vec![(1, 0.0), (2, 1.0), (3, 2.0)]);
        let rest = r.read(4, 7, 100).unwrap();
        assert_eq!(rest.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![4, 5, 6, 7]);
        assert_eq!(r.read(8, 9, 100).unwrap().len(), 2);
        assert!(r.read(10, 9, 100).unwrap().is_empty());
        // Trimming up to 4 keeps the first segment (LSN 5 is in it); up to 5 deletes it.
        assert_eq!(trim(dir.path(), 4).unwrap(), 0);
        assert_eq!(trim(dir.path(), 5).unwrap(), 1);
        assert_eq!(trim(dir.path(), 9).unwrap(), 0, "the segment being written is never deleted");
        drop(wal);
        let (wal, got) = Wal::open(dir.path()).unwrap();
        assert_eq!(got.records.first().unwrap().0, 6);
        assert_eq!(wal.next_lsn(), 10);
        assert_eq!(units(&WalReader::new(dir.path()).read(7, 9, 10).unwrap())[0], (7, 6.0));
    }
}
