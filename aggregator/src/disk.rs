//! The free-space reserve of a data directory: the `[disk]` table of the
//! config, how much space is left, and the refusal a sender gets when new
//! reports would eat into the reserve or the disk is full.
//!
//! Below the reserve a tier takes no new report (RESOURCE_EXHAUSTED naming the
//! tier and the space left, with a retry hint), but keeps answering queries,
//! status and duplicates of what it already holds; every group the log writer
//! takes checks again, so intake resumes by itself once space returns. The
//! reserve leaves room for what a tier must still write when the disk is
//! nearly full: the Parquet files of what is in the log (after which the log is
//! trimmed), the forward cursor, the state files.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default `[disk] reserve_mb`.
pub const DEFAULT_RESERVE_MB: u64 = 256;

/// How long a sender refused for lack of space is asked to wait before it sends again.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The `[disk]` table of an aggregator's config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiskConfig {
    /// Free space (MiB) on the data directory's file system below which new reports are refused.
    /// 0 refuses only when a write of the log fails for lack of space.
    pub reserve_mb: u64,
}

impl Default for DiskConfig {
    fn default() -> DiskConfig {
        DiskConfig { reserve_mb: DEFAULT_RESERVE_MB }
    }
}

impl DiskConfig {
    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_mb.saturating_mul(1 << 20)
    }
}

/// A tier refusing new reports for lack of space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskLow {
    /// The tier's unit code.
    pub tier: String,
    /// Bytes available on the data directory's file system (0 when a write found it full).
    pub free_bytes: u64,
    pub reserve_bytes: u64,
}

impl DiskLow {
    /// What the sender (and the log) reads.
    pub fn message(&self) -> String {
        format!(
            "the disk of tier {} is full: {} free, below its reserve of {} ([disk] reserve_mb); \
             new reports are refused until an operator frees space (reports already acknowledged are safe); \
             send again later",
            self.tier,
            mib(self.free_bytes),
            mib(self.reserve_bytes)
        )
    }
}

/// `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

/// Watches the free space of one directory's file system against a reserve.
#[derive(Debug, Clone)]
pub struct Reserve {
    dir: PathBuf,
    tier: String,
    reserve_bytes: u64,
}

impl Reserve {
    pub fn new(dir: &Path, tier: &str, config: &DiskConfig) -> Reserve {
        Reserve { dir: dir.to_path_buf(), tier: tier.to_owned(), reserve_bytes: config.reserve_bytes() }
    }

    /// `Err` when the free space is below the reserve. A file system whose free space cannot be read
    /// (not Unix, or the call failed) passes: the write itself will tell.
    pub fn check(&self) -> Result<(), DiskLow> {
        match free_bytes(&self.dir) {
            Ok(free) if free < self.reserve_bytes => Err(self.low(free)),
            _ => Ok(()),
        }
    }

    /// The refusal after a write failed for lack of space.
    pub fn full(&self) -> DiskLow {
        self.low(free_bytes(&self.dir).unwrap_or(0))
    }

    fn low(&self, free_bytes: u64) -> DiskLow {
        DiskLow { tier: self.tier.clone(), free_bytes, reserve_bytes: self.reserve_bytes }
    }
}

/// Whether an I/O error means the file system is out of space (or of quota).
pub fn is_out_of_space(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded
}

/// Bytes available to this process on the file system holding `dir` (statvfs `f_bavail`).
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `st` is a buffer of the size statvfs writes.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    #[allow(clippy::unnecessary_cast)] // the field types differ between platforms
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> io::Result<u64> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "free space is read on Unix only"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_bytes_of_a_directory_agree_with_df() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let df = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(dir.path()).output().unwrap();
        let avail: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
        // Other processes write meanwhile: within 1 GiB.
        assert!(free.abs_diff(avail) < 1 << 30, "statvfs {free} vs df {avail}");
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn the_reserve_refuses_below_it_and_names_the_tier_and_the_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        let under = Reserve::new(dir.path(), "620982", &DiskConfig { reserve_mb: 0 });
        assert_eq!(under.check(), Ok(()));
        // A reserve larger than any disk: refused.
        let over = Reserve::new(dir.path(), "620982", &DiskConfig { reserve_mb: u64::MAX / 2 });
        let low = over.check().unwrap_err();
        assert!(low.free_bytes > 0 && low.free_bytes < low.reserve_bytes);
        let m = low.message();
        assert!(m.contains("tier 620982") && m.contains("MiB free") && m.contains("[disk] reserve_mb"), "{m}");
        assert_eq!(mib(3 << 19), "1.5 MiB");
        assert!(is_out_of_space(&io::Error::from_raw_os_error(libc::ENOSPC)));
        assert!(!is_out_of_space(&io::Error::from(io::ErrorKind::PermissionDenied)));
    }
}
