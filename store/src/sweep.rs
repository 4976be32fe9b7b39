//! Temporary files of writes a crash interrupted (a flush, a compaction, a
//! state file): removed when a tier starts, so they do not hold disk space.
//! Readers ignore them anyway (`sifa_proto::fs`).

use std::path::{Path, PathBuf};

use crate::StoreError;
use crate::error::io_err;
use crate::layout;

/// Removes the temporary files in `data_dir`, `state/`, `state/index/` and every year of `reports/` and
/// `current/`; returns
/// their paths.
pub fn remove_interrupted_writes(data_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut dirs = vec![data_dir.to_path_buf(), layout::state_dir(data_dir), layout::index_dir(data_dir)];
    for parent in [layout::reports_dir(data_dir), layout::current_dir(data_dir)] {
        match std::fs::read_dir(&parent) {
            Ok(entries) => {
                for e in entries {
                    let e = e.map_err(io_err("cannot list", &parent))?;
                    if layout::parse_year_dir(&e.file_name().to_string_lossy()).is_some() {
                        dirs.push(e.path());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot list", &parent)(e)),
        }
    }
    let mut removed = Vec::new();
    for dir in dirs {
        removed.extend(sifa_proto::fs::remove_temporary_files(&dir)?);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sifa_proto::fs::temp_name;

    #[test]
    fn the_temporary_files_of_a_crash_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let year = layout::year_dir(dir.path(), 2024);
        let state = layout::state_dir(dir.path());
        std::fs::create_dir_all(&year).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let torn = [
            year.join(temp_name(&layout::file_name(8))),
            state.join(temp_name(layout::FORWARD_CURSOR_FILE)),
            dir.path().join(temp_name(layout::REGISTRY_FILE)),
        ];
        let kept = [year.join(layout::file_name(7)), state.join(layout::LOCKS_FILE)];
        for p in torn.iter().chain(&kept) {
            std::fs::write(p, b"x").unwrap();
        }
        let mut removed = remove_interrupted_writes(dir.path()).unwrap();
        removed.sort();
        let mut want = torn.to_vec();
        want.sort();
        assert_eq!(removed, want);
        assert!(torn.iter().all(|p| !p.exists()) && kept.iter().all(|p| p.exists()));
        assert!(remove_interrupted_writes(&dir.path().join("nothing")).unwrap().is_empty());
    }
}
