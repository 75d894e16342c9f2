//! Swapping a cleaned segment in for the segments it replaces, crash-safely, with Kafka's file
//! names:
//!
//! ```text
//!  write <base>.log.cleaned ─► fdatasync ─► rename to <base>.log.swap ─► fsync dir   (commit point)
//!  ─► check the log did not change under the pass (else remove the .swap and give up)
//!  ─► rename each replaced <b>.log to <b>.log.deleted (their .index/.timeindex removed)
//!  ─► rename <base>.log.swap to <base>.log ─► fsync dir ─► write the new .index/.timeindex
//!  ─► file.delete.delay.ms later: remove the .deleted files
//! ```
//! At start-up ([`recover_leftovers`]), a `.cleaned` file is an unfinished cleaning and is
//! removed; a `.swap` file is a committed one whose swap did not finish: every segment in its
//! offset range is removed and the `.swap` takes the base name; `.deleted` files are removed.
//!
//! A fetch that located an old segment before the swap keeps working: open handles survive the
//! renames, and a reader that opens the file by name after the swap checks the inode and falls
//! back to the `.deleted` name (`storage::reader`).

use std::path::{Path, PathBuf};

use crate::storage::StorageError;
use crate::storage::segment;

/// Suffix of a cleaned segment being written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment whose swap is committed.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of a replaced segment file waiting for `file.delete.delay.ms`.
pub const DELETED_SUFFIX: &str = ".deleted";

/// `path` with `suffix` appended (`x.log` → `x.log.swap`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The `.log` path of the segment at `base` in `dir`.
pub fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{}.log", segment::file_stem(base)))
}

/// Makes the renames in `dir` durable. On ext4 this commits the journal and may wait for other
/// writes, so the cleaner runs it off the shard's thread.
pub fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Commits a cleaned file (written and synced at `<final>.cleaned`): renames it to `.swap`. The
/// commit is durable once [`sync_dir`] returns.
pub fn commit(final_path: &Path) -> Result<(), StorageError> {
    std::fs::rename(with_suffix(final_path, CLEANED_SUFFIX), with_suffix(final_path, SWAP_SUFFIX))?;
    Ok(())
}

/// Finishes a committed swap: the replaced segments' `.log` files become `.deleted` (their index
/// files go), then the `.swap` file takes its final name. Returns the `.deleted` paths. Durable
/// once [`sync_dir`] returns; a crash before that redoes it from the `.swap` file.
pub fn finish(final_path: &Path, replaced: &[PathBuf]) -> Result<Vec<PathBuf>, StorageError> {
    let mut deleted = Vec::with_capacity(replaced.len());
    for old in replaced {
        for ext in ["index", "timeindex", "txnindex"] {
            let _ = std::fs::remove_file(old.with_extension(ext));
        }
        let gone = with_suffix(old, DELETED_SUFFIX);
        std::fs::rename(old, &gone)?;
        deleted.push(gone);
    }
    std::fs::rename(with_suffix(final_path, SWAP_SUFFIX), final_path)?;
    Ok(deleted)
}

/// Start-up clean-up of a partition directory (before its segments are listed): removes
/// `.cleaned` and `.deleted` files and completes committed swaps. Returns the swaps completed.
pub fn recover_leftovers(dir: &Path) -> Result<usize, StorageError> {
    let mut swaps = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
        if name.ends_with(CLEANED_SUFFIX) || name.ends_with(DELETED_SUFFIX) {
            std::fs::remove_file(&path)?;
        } else if let Some(log) = name.strip_suffix(SWAP_SUFFIX)
            && let Some(base) = log.strip_suffix(".log").and_then(|b| b.parse::<i64>().ok())
        {
            swaps.push((base, path));
        }
    }
    for (base, swap) in &swaps {
        // The swap's offset range: from its base to its last batch.
        let mut last = base - 1;
        segment::scan_log(swap, 0, false, |h, _, _| last = h.last_offset())?;
        for old in segment::base_offsets(dir)? {
            if old == *base || (old > *base && old <= last) {
                let path = log_path(dir, old);
                for ext in ["index", "timeindex", "txnindex"] {
                    let _ = std::fs::remove_file(path.with_extension(ext));
                }
                std::fs::remove_file(&path)?;
            }
        }
        std::fs::rename(swap, log_path(dir, *base))?;
        tracing::info!(dir = %dir.display(), base_offset = base, "completed an interrupted cleaner swap");
    }
    if !swaps.is_empty() {
        sync_dir(dir)?;
    }
    Ok(swaps.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::batch::{build, stamp};

    fn write_segment(dir: &Path, base: i64, count: i64) {
        let mut bytes = Vec::new();
        for o in base..base + count {
            bytes.extend_from_slice(&stamp(&build(&[(Some(b"k"), Some(b"v"))], 1, -1, -1), o, 0, None).to_bytes());
        }
        std::fs::write(log_path(dir, base), bytes).unwrap();
        std::fs::write(log_path(dir, base).with_extension("index"), b"").unwrap();
    }

    #[test]
    fn leftovers_are_removed_or_completed() {
        let dir = std::env::temp_dir().join(format!("ringlog-swap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Segments 0, 10, 20, 30; a committed swap of 0..=24 (replacing 0, 10 and 20), and an
        // unfinished cleaning of 30.
        for base in [0, 10, 20, 30] {
            write_segment(&dir, base, 10);
        }
        let swap_src = dir.join("swap-src");
        std::fs::create_dir_all(&swap_src).unwrap();
        write_segment(&swap_src, 0, 25);
        std::fs::rename(log_path(&swap_src, 0), with_suffix(&log_path(&dir, 0), SWAP_SUFFIX)).unwrap();
        std::fs::remove_dir_all(&swap_src).unwrap();
        std::fs::write(with_suffix(&log_path(&dir, 30), CLEANED_SUFFIX), b"partial").unwrap();
        std::fs::write(with_suffix(&log_path(&dir, 5), DELETED_SUFFIX), b"old").unwrap();

        assert_eq!(recover_leftovers(&dir).unwrap(), 1);
        assert_eq!(segment::base_offsets(&dir).unwrap(), vec![0, 30]);
        let mut offsets = Vec::new();
        segment::scan_log(&log_path(&dir, 0), 0, true, |h, _, _| offsets.push(h.base_offset)).unwrap();
        assert_eq!(offsets, (0..25).collect::<Vec<_>>(), "the swap took the base name");
        let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, vec!["00000000000000000000.log", "00000000000000000030.index", "00000000000000000030.log"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_then_finish_swaps_the_files() {
        let dir = std::env::temp_dir().join(format!("ringlog-swap-finish-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        write_segment(&dir, 0, 3);
        write_segment(&dir, 3, 3);
        let final_path = log_path(&dir, 0);
        std::fs::write(with_suffix(&final_path, CLEANED_SUFFIX), b"new").unwrap();
        commit(&final_path).unwrap();
        let deleted = finish(&final_path, &[log_path(&dir, 0), log_path(&dir, 3)]).unwrap();
        assert_eq!(std::fs::read(&final_path).unwrap(), b"new");
        assert!(deleted.iter().all(|p| p.exists()));
        assert!(!log_path(&dir, 3).exists() && !log_path(&dir, 0).with_extension("index").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
