//! The keys of each Parquet file of the store, kept in `state/index/` so a
//! start rebuilds the index (`index.rs`) without decoding every row of every
//! Parquet file: a tier's start-up then does not grow with what it holds
//! beyond reading these small files.
//!
//! `state/index/part-NNN….keys` belongs to `reports/year=YYYY/part-NNN….parquet`
//! and holds, for each of its rows, what the index needs: unit, month,
//! revision, arrival and the content digest. It is written (atomically) right
//! after its Parquet file, by the flush and by a compaction, and carries the
//! Parquet file's size: a key file that is missing, damaged, of an older
//! format or of another size than its Parquet file is ignored, the Parquet
//! file read instead, and the key file written again (when the disk allows;
//! nothing depends on it).
//!
//! Format: `SIFAKEY2`, the Parquet file's size (u64 LE), the row count (u64
//! LE), then one record of 44 bytes per row, sorted by month, unit and
//! revision (the order of `index::StoredKey`), so a start only merges a few
//! sorted runs: the month (`index::pack_period`, u32 LE), the unit code
//! (`index::pack_unit`, u64 LE), the revision (u64 LE), received_at in Unix
//! ms (i64 LE), the first 16 bytes of the content digest (`index::Digest`);
//! then the CRC32 of everything before it (u32 LE). (`SIFAKEY1` files, with
//! unit codes as text and unsorted, are read as missing and rewritten.)

use std::path::{Path, PathBuf};

use sifa_proto::validate::content_digest;
use sifa_store::StoredReport;
use sifa_store::layout;

use crate::index::{StoredKey, short_digest};

const MAGIC: &[u8; 8] = b"SIFAKEY2";
const HEADER: usize = 24;
const RECORD: usize = 44;

/// A stored row's key as the index records it; `None` for a unit code that is not digits (never
/// one that passed validation).
pub fn key_of(row: &StoredReport) -> Option<StoredKey> {
    let digest = short_digest(&content_digest(&row.report));
    StoredKey::new(&row.report.unit_code, row.period, row.report.revision, row.received_at_ms, digest)
}

/// The keys of `rows`, in the index's order.
pub fn keys_of(rows: &[StoredReport]) -> Vec<StoredKey> {
    let mut keys: Vec<StoredKey> = rows.iter().filter_map(key_of).collect();
    keys.sort_by_key(|k| (k.period, k.unit, k.revision));
    keys
}

/// The key file of the Parquet file `seq`.
pub fn path(data_dir: &Path, seq: u64) -> PathBuf {
    layout::index_dir(data_dir).join(layout::key_file_name(seq))
}

/// Writes the key file of the Parquet file `seq` (of `parquet_len` bytes) holding `keys` (in the
/// index's order, [`keys_of`]).
pub fn write(data_dir: &Path, seq: u64, parquet_len: u64, keys: &[StoredKey]) -> Result<(), sifa_proto::fs::FsError> {
    let mut out = Vec::with_capacity(HEADER + keys.len() * RECORD + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&parquet_len.to_le_bytes());
    out.extend_from_slice(&(keys.len() as u64).to_le_bytes());
    for k in keys {
        out.extend_from_slice(&k.period.to_le_bytes());
        out.extend_from_slice(&k.unit.to_le_bytes());
        out.extend_from_slice(&k.revision.to_le_bytes());
        out.extend_from_slice(&k.received_at_ms.to_le_bytes());
        out.extend_from_slice(&k.digest);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    sifa_proto::fs::write_atomic(&layout::index_dir(data_dir), &layout::key_file_name(seq), &out)?;
    Ok(())
}

/// Writes the key file of the Parquet file `seq` just written (`parquet_len` bytes) from its rows.
/// A failure is logged: the next start reads the Parquet file instead.
pub fn write_for(data_dir: &Path, seq: u64, parquet_len: u64, rows: &[StoredReport]) {
    if let Err(e) = write(data_dir, seq, parquet_len, &keys_of(rows)) {
        tracing::warn!(
            seq,
            "cannot write the key file of report file {seq} (the next start reads that file instead): {e}"
        );
    }
}

/// Appends the keys of the key file `seq` to `keys`, if that file is whole and belongs to a Parquet
/// file of `parquet_len` bytes. Returns the keys added, or `None` (nothing added) when it cannot be
/// used.
pub fn load(data_dir: &Path, seq: u64, parquet_len: u64, keys: &mut Vec<StoredKey>) -> Option<usize> {
    let bytes = std::fs::read(path(data_dir, seq)).ok()?;
    let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
    if crc32fast::hash(body).to_le_bytes() != crc || body.len() < HEADER || &body[..8] != MAGIC {
        return None;
    }
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let count = u64_at(body, 16) as usize;
    let records = &body[HEADER..];
    if u64_at(body, 8) != parquet_len || records.len() != count.checked_mul(RECORD)? {
        return None;
    }
    keys.reserve(count);
    keys.extend(records.chunks_exact(RECORD).map(|r| StoredKey {
        period: u32::from_le_bytes(r[0..4].try_into().expect("4 bytes")),
        unit: u64_at(r, 4),
        revision: u64_at(r, 12),
        received_at_ms: u64_at(r, 20) as i64,
        digest: r[28..44].try_into().expect("16 bytes"),
    }));
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
    use crate::index::Index;
    use sifa_proto::Period;

    fn key(unit: &str, rev: u64) -> StoredKey {
        StoredKey::new(unit, "2024-03".parse().unwrap(), rev, 1000 + rev as i64, [rev as u8; 16]).unwrap()
    }

    #[test]
    fn keys_round_trip_and_a_damaged_foreign_or_old_file_feeds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let keys = [key("620982100", 1), key("620982100", 2), key("620982901", 1)];
        write(dir.path(), 7, 4096, &keys).unwrap();
        let mut loaded = Vec::new();
        assert_eq!(load(dir.path(), 7, 4096, &mut loaded), Some(3));
        assert_eq!(loaded, keys);
        let index = Index::with_stored(loaded);
        assert_eq!(index.len(), 3);
        let p: Period = "2024-03".parse().unwrap();
        let e = index.get("620982100", p).unwrap();
        assert_eq!((e.revisions().len(), e.first_received_ms), (2, 1001));
        assert_eq!(e.revisions()[1], (2, keys[1].digest));
        // Of another Parquet file size (the file was replaced): not used.
        let mut other = vec![key("1", 1)];
        assert_eq!(load(dir.path(), 7, 4097, &mut other), None);
        // A flipped byte: not used, nothing added.
        let mut bytes = std::fs::read(path(dir.path(), 7)).unwrap();
        bytes[30] ^= 1;
        std::fs::write(path(dir.path(), 7), &bytes).unwrap();
        assert_eq!(load(dir.path(), 7, 4096, &mut other), None);
        // The first format (unit codes as text): read as missing, so its Parquet file is read instead.
        let mut old = b"SIFAKEY1".to_vec();
        old.extend_from_slice(&4096u64.to_le_bytes());
        old.extend_from_slice(&0u64.to_le_bytes());
        let crc = crc32fast::hash(&old);
        old.extend_from_slice(&crc.to_le_bytes());
        std::fs::write(path(dir.path(), 7), &old).unwrap();
        assert_eq!(load(dir.path(), 7, 4096, &mut other), None);
        assert_eq!(other, [key("1", 1)]);
        assert_eq!(load(dir.path(), 8, 4096, &mut other), None, "missing");
        // Orphans (no Parquet file of that seq) are removed.
        write(dir.path(), 7, 4096, &keys).unwrap();
        write(dir.path(), 9, 1, &keys).unwrap();
        remove_orphans(dir.path(), &[7].into());
        assert!(path(dir.path(), 7).exists() && !path(dir.path(), 9).exists());
    }
}
