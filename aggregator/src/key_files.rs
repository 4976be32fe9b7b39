//! The keys of each Parquet file of the store, kept in `state/index/` so a
//! start rebuilds the index (`index.rs`) without decoding every row of every
//! Parquet file: a tier's start-up then does not grow with what it holds
//! beyond reading these small files.
//!
//! `state/index/part-NNN….keys` belongs to `reports/year=YYYY/part-NNN….parquet`
//! and holds, for each of its rows, what the index needs: unit, month,
//! revision, arrival and the content digest. It is written (atomically) right
//! after its Parquet file, by the flush and by a compaction, and carries the
//! Parquet file's size: a key file that is missing, damaged or of another size
//! than its Parquet file is ignored, the Parquet file read instead, and the key
//! file written again (when the disk allows; nothing depends on it).
//!
//! Format: `SIFAKEY1`, the Parquet file's size (u64 LE), the row count (u64
//! LE), then per row: unit code length (u8), unit code (ASCII), year (u16 LE),
//! month (u8), revision (u64 LE), received_at in Unix ms (i64 LE), the first
//! 16 bytes of the content digest (`index::Digest`); then the CRC32 of
//! everything before it (u32 LE). About 45 bytes a row.

use std::path::{Path, PathBuf};

use sifa_proto::Period;
use sifa_proto::validate::content_digest;
use sifa_store::StoredReport;
use sifa_store::layout;

use crate::index::{Digest, Index, short_digest};

const MAGIC: &[u8; 8] = b"SIFAKEY1";

/// One row's key as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub unit_code: String,
    pub period: Period,
    pub revision: u64,
    pub received_at_ms: i64,
    pub digest: Digest,
}

impl RowKey {
    pub fn of(row: &StoredReport) -> RowKey {
        RowKey {
            unit_code: row.report.unit_code.clone(),
            period: row.period,
            revision: row.report.revision,
            received_at_ms: row.received_at_ms,
            digest: short_digest(&content_digest(&row.report)),
        }
    }
}

/// The key file of the Parquet file `seq`.
pub fn path(data_dir: &Path, seq: u64) -> PathBuf {
    layout::index_dir(data_dir).join(layout::key_file_name(seq))
}

/// Writes the key file of the Parquet file `seq` (of `parquet_len` bytes) holding `keys`.
pub fn write(data_dir: &Path, seq: u64, parquet_len: u64, keys: &[RowKey]) -> Result<(), sifa_proto::fs::FsError> {
    let mut out = Vec::with_capacity(28 + keys.len() * 48);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&parquet_len.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for k in keys {
        let unit = k.unit_code.as_bytes();
        out.push(unit.len().min(255) as u8);
        out.extend_from_slice(&unit[..unit.len().min(255)]);
        out.extend_from_slice(&k.period.year().to_le_bytes());
        out.push(k.period.month());
        out.extend_from_slice(&k.revision.to_le_bytes());
        out.extend_from_slice(&k.received_at_ms.to_le_bytes());
        out.extend_from_slice(&k.digest);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    sifa_proto::fs::write_atomic(&layout::index_dir(data_dir), &layout::key_file_name(seq), &out)?;
    Ok(())
}

/// Writes the key file of a Parquet file just written at `parquet` from its rows. A failure is logged:
/// the next start reads the Parquet file instead.
pub fn write_for(data_dir: &Path, seq: u64, parquet: &Path, rows: &[StoredReport]) {
    let keys: Vec<RowKey> = rows.iter().map(RowKey::of).collect();
    let written = std::fs::metadata(parquet)
        .map_err(|e| e.to_string())
        .and_then(|m| write(data_dir, seq, m.len(), &keys).map_err(|e| e.to_string()));
    if let Err(e) = written {
        tracing::warn!(
            seq,
            "cannot write the key file of {} (the next start reads it instead): {e}",
            parquet.display()
        );
    }
}

/// Feeds the keys of the key file `seq` into `index`, if that file is whole and belongs to a Parquet
/// file of `parquet_len` bytes. Returns the rows fed, or `None` (nothing fed) when it cannot be used.
pub fn load(data_dir: &Path, seq: u64, parquet_len: u64, index: &mut Index) -> Option<usize> {
    let bytes = std::fs::read(path(data_dir, seq)).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc || body.len() < 24 || &body[..8] != MAGIC {
        return None;
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    if u64_at(body, 8) != parquet_len {
        return None;
    }
    let count = u64_at(body, 16) as usize;
    // Parse all first, feed after: a damaged file feeds nothing.
    let mut keys = Vec::with_capacity(count.min(body.len() / 36));
    let mut at = 24;
    for _ in 0..count {
        let len = *body.get(at)? as usize;
        let rec = body.get(at + 1..at + 1 + len + 2 + 1 + 8 + 8 + 16)?;
        let unit = std::str::from_utf8(&rec[..len]).ok()?;
        let r = &rec[len..];
        let period = Period::new(u16::from_le_bytes([r[0], r[1]]), r[2])?;
        let revision = u64_at(r, 3);
        let received = u64_at(r, 11) as i64;
        let digest: Digest = r[19..35].try_into().expect("16 bytes");
        keys.push((unit, period, revision, received, digest));
        at += 1 + rec.len();
    }
    if at != body.len() {
        return None;
    }
    index.reserve(keys.len());
    for (unit, period, revision, received, digest) in keys {
        index.insert_key(unit, period, revision, digest, received);
    }
    Some(count)
}

/// Removes the key files whose Parquet file is gone (the inputs of a compaction). Best effort.
pub fn remove_orphans(data_dir: &Path, seqs: &std::collections::BTreeSet<u64>) {
    let Ok(entries) = std::fs::read_dir(layout::index_dir(data_dir)) else { return };
    for e in entries.flatten() {
        let orphan = layout::parse_key_file_name(&e.file_name().to_string_lossy()).is_some_and(|s| !seqs.contains(&s));
        if orphan {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes the key file of the Parquet file `seq` (deleted by a compaction). Best effort.
pub fn remove(data_dir: &Path, seq: u64) {
    let _ = std::fs::remove_file(path(data_dir, seq));
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::v1::Report;

    fn key(unit: &str, rev: u64) -> RowKey {
        let report = Report {
            unit_code: unit.into(),
            period: "2024-03".into(),
            revision: rev,
            values: [("lectures".to_string(), rev as f64)].into(),
            ..Default::default()
        };
        RowKey {
            unit_code: unit.into(),
            period: "2024-03".parse().unwrap(),
            revision: rev,
            received_at_ms: 1000 + rev as i64,
            digest: short_digest(&content_digest(&report)),
        }
    }

    #[test]
    fn keys_round_trip_and_a_damaged_or_foreign_file_feeds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let keys = [key("620982100", 1), key("620982100", 2), key("620982901", 1)];
        write(dir.path(), 7, 4096, &keys).unwrap();
        let mut index = Index::new();
        assert_eq!(load(dir.path(), 7, 4096, &mut index), Some(3));
        assert_eq!(index.len(), 3);
        let p: Period = "2024-03".parse().unwrap();
        let e = index.get("620982100", p).unwrap();
        assert_eq!((e.revisions().len(), e.first_received_ms), (2, 1001));
        assert_eq!(e.revisions()[1], (2, keys[1].digest));
        // Of another Parquet file size (the file was replaced): not used.
        let mut other = Index::new();
        assert_eq!(load(dir.path(), 7, 4097, &mut other), None);
        // A flipped byte: not used, nothing fed.
        let mut bytes = std::fs::read(path(dir.path(), 7)).unwrap();
        bytes[30] ^= 1;
        std::fs::write(path(dir.path(), 7), &bytes).unwrap();
        assert_eq!(load(dir.path(), 7, 4096, &mut other), None);
        assert!(other.is_empty());
        assert_eq!(load(dir.path(), 8, 4096, &mut other), None, "missing");
        // Orphans (no Parquet file of that seq) are removed.
        write(dir.path(), 9, 1, &keys).unwrap();
        remove_orphans(dir.path(), &[7].into());
        assert!(path(dir.path(), 7).exists() && !path(dir.path(), 9).exists());
    }
}
