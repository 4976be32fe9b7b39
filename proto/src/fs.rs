//! Durable files: the one way sifa writes a file that must be either absent or
//! whole after a crash, and durable once the call returns (the agent's outbox,
//! the aggregator's state and Parquet files, the CA's files, published figures).
//!
//! The steps are: write a temporary file `.NAME.tmp` beside the target, fsync
//! it, rename it over the target, fsync the directory (so the rename itself
//! survives a power cut). A reader never sees a partial file. A write that
//! fails removes its temporary file (on a full disk it would hold space); one
//! left by a crash is ignored by every listing (its name starts with a dot),
//! replaced by the next write of the same name, and removed by
//! [`remove_temporary_files`] (an aggregator does so at start).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A file-system step that failed, naming the step and the path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {path}: {source}")]
pub struct FsError {
    /// What was being done: "create", "write", "fsync", "rename into place", ...
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn fs_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsError + use<> {
    let path = path.to_path_buf();
    move |source| FsError { action, path, source }
}

/// The temporary name a write of `name` goes through.
pub fn temp_name(name: &str) -> String {
    format!(".{name}.tmp")
}

/// Whether `name` is a [`temp_name`].
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")).is_some_and(|n| !n.is_empty())
}

/// Removes the temporary files of interrupted writes directly in `dir` (not below it); returns their
/// paths. A missing directory holds none.
pub fn remove_temporary_files(dir: &Path) -> Result<Vec<PathBuf>, FsError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fs_err("list", dir)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(fs_err("list", dir))?;
        if entry.file_name().to_str().is_some_and(is_temp_name) && entry.file_type().is_ok_and(|t| t.is_file()) {
            let path = entry.path();
            fs::remove_file(&path).map_err(fs_err("remove", &path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Writes `bytes` to `dir/name` atomically and durably (see the module
/// documentation). Creates `dir` if needed. Returns the file's path.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, FsError> {
    write_atomic_with(dir, name, None, |f| f.write_all(bytes).map_err(fs_err("write", &dir.join(temp_name(name)))))
}

/// [`write_atomic`] with the file's Unix permission bits (e.g. `0o600` for a
/// private key); other platforms ignore `mode`.
pub fn write_atomic_mode(dir: &Path, name: &str, bytes: &[u8], mode: u32) -> Result<PathBuf, FsError> {
    write_atomic_with(dir, name, Some(mode), |f| {
        f.write_all(bytes).map_err(fs_err("write", &dir.join(temp_name(name))))
    })
}

/// The general form: `fill` writes the content into the temporary file (e.g. a
/// Parquet writer over it); then it is fsynced, renamed into place and the
/// directory fsynced. On an error the temporary file is removed.
pub fn write_atomic_with<E: From<FsError>>(
    dir: &Path,
    name: &str,
    mode: Option<u32>,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<PathBuf, E> {
    fs::create_dir_all(dir).map_err(fs_err("create directory", dir))?;
    let path = dir.join(name);
    let tmp = dir.join(temp_name(name));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let mut file = with_mode(options, mode).open(&tmp).map_err(fs_err("create", &tmp))?;
    let mut written = fill(&mut file);
    if written.is_ok() {
        written = file.sync_all().map_err(|e| fs_err("fsync", &tmp)(e).into());
    }
    drop(file);
    if written.is_ok() {
        written = fs::rename(&tmp, &path).map_err(|e| fs_err("rename into place", &path)(e).into());
    }
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir)?;
    Ok(path)
}

/// Writes a file that must not exist yet (a private key is never
/// overwritten), with Unix permission bits `mode`, durably: the file and its
/// directory fsynced.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FsError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut file = with_mode(options, Some(mode)).open(path).map_err(fs_err("create", path))?;
    file.write_all(bytes).and_then(|_| file.sync_all()).map_err(fs_err("write", path))?;
    sync_dir(path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")))
}

fn with_mode(mut options: OpenOptions, mode: Option<u32>) -> OpenOptions {
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options
}

/// fsyncs a directory, so that a rename, a new file or a deletion in it
/// survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(fs_err("fsync directory", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("state");
        let path = write_atomic(&sub, "cursor", b"17").unwrap();
        assert_eq!(path, sub.join("cursor"));
        assert_eq!(fs::read(&path).unwrap(), b"17");
        // A torn temporary file of an interrupted write is replaced, not appended to.
        fs::write(sub.join(temp_name("cursor")), b"garbage of a crash").unwrap();
        write_atomic(&sub, "cursor", b"18").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"18");
        let names: Vec<String> =
            fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["cursor"]);
        // Those a crash left are removed; nothing else is.
        fs::write(sub.join(temp_name("part-7.parquet")), b"torn").unwrap();
        fs::write(sub.join(".hidden"), b"kept").unwrap();
        assert_eq!(remove_temporary_files(&sub).unwrap(), [sub.join(".part-7.parquet.tmp")]);
        let mut names: Vec<String> =
            fs::read_dir(&sub).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, [".hidden", "cursor"]);
        assert!(remove_temporary_files(&dir.path().join("missing")).unwrap().is_empty());
        assert!(is_temp_name(&temp_name("a")) && !is_temp_name(".tmp") && !is_temp_name("a.tmp"));
    }

    #[cfg(unix)]
    #[test]
    fn mode_is_applied() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = write_atomic_mode(dir.path(), "key.pem", b"secret", 0o600).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let new = dir.path().join("ca.key");
        write_new(&new, b"key", 0o600).unwrap();
        assert_eq!(fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o600);
        // Never overwritten.
        let e = write_new(&new, b"other", 0o600).unwrap_err();
        assert_eq!((e.action, e.source.kind()), ("create", io::ErrorKind::AlreadyExists));
        assert_eq!(fs::read(&new).unwrap(), b"key");
    }

    #[test]
    fn a_failing_fill_leaves_the_old_file_and_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "a", b"old").unwrap();
        let e = write_atomic_with(dir.path(), "a", None, |_| {
            Err::<(), FsError>(FsError {
                action: "write",
                path: dir.path().join(".a.tmp"),
                source: io::Error::other("disk full"),
            })
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("cannot write ") && e.to_string().contains("disk full"), "{e}");
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"old");
        assert!(!dir.path().join(temp_name("a")).exists(), "a failed write leaves no temporary file");
        // Not a directory: the error says which path and what was tried.
        fs::write(dir.path().join("file"), b"").unwrap();
        let e = write_atomic(&dir.path().join("file"), "b", b"x").unwrap_err();
        assert_eq!(e.action, "create directory");
    }
}
