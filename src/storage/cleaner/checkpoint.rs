//! The cleaner's checkpoint, Kafka's `cleaner-offset-checkpoint` in the log dir: for each
//! compacted partition, the first offset not yet cleaned (its "first dirty offset"), so a restart
//! resumes where cleaning stopped instead of treating the whole log as dirty.
//!
//! ```text
//! 0                  <- version
//! 2                  <- entries
//! topic 0 1234       <- topic, partition, offset
//! other 3 88
//! ```
//! Every shard of the broker shares the file: an update takes an exclusive `flock` on a lock file
//! beside it, reads the file, changes its own entries, writes a temporary file and renames it.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::storage::StorageError;
use crate::types::TopicPartition;

/// Kafka's name of the file.
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Reads the checkpoint in `dir` (empty when there is none or it does not parse).
pub fn read(dir: &Path) -> BTreeMap<TopicPartition, i64> {
    let Ok(text) = std::fs::read_to_string(dir.join(CHECKPOINT_FILE)) else { return BTreeMap::new() };
    parse(&text).unwrap_or_else(|| {
        tracing::warn!(dir = %dir.display(), "cleaner checkpoint does not parse; starting every log dirty");
        BTreeMap::new()
    })
}

fn parse(text: &str) -> Option<BTreeMap<TopicPartition, i64>> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut out = BTreeMap::new();
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let (topic, partition, offset) = (parts.next()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        out.insert(TopicPartition::new(topic.to_string(), partition), offset);
    }
    (out.len() == count).then_some(out)
}

/// Sets the entries of `updates` (an offset of -1 removes the entry) in the checkpoint in `dir`.
/// Blocking, small I/O.
pub fn update(dir: &Path, updates: &[(TopicPartition, i64)]) -> Result<(), StorageError> {
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(format!("{CHECKPOINT_FILE}.lock")))?;
    // SAFETY: flock reads only its integer arguments; the descriptor is open (we hold `lock`).
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let mut entries = read(dir);
    for (tp, offset) in updates {
        if *offset < 0 {
            entries.remove(tp);
        } else {
            entries.insert(tp.clone(), *offset);
        }
    }
    let mut text = format!("0\n{}\n", entries.len());
    for (tp, offset) in &entries {
        text.push_str(&format!("{} {} {offset}\n", tp.topic, tp.partition));
    }
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    std::fs::rename(&tmp, dir.join(CHECKPOINT_FILE))?;
    // The lock goes with `lock`.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_merge_and_read_back() {
        let dir = std::env::temp_dir().join(format!("ringlog-ckpt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read(&dir).is_empty());
        let a = TopicPartition::new("a", 0);
        let b = TopicPartition::new("b", 3);
        update(&dir, &[(a.clone(), 10), (b.clone(), 7)]).unwrap();
        update(&dir, &[(a.clone(), 25)]).unwrap();
        assert_eq!(read(&dir), BTreeMap::from([(a.clone(), 25), (b.clone(), 7)]));
        assert_eq!(std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).unwrap(), "0\n2\na 0 25\nb 3 7\n");
        update(&dir, &[(b, -1)]).unwrap();
        assert_eq!(read(&dir), BTreeMap::from([(a, 25)]));
        std::fs::write(dir.join(CHECKPOINT_FILE), "0\n3\nx 0 1\n").unwrap();
        assert!(read(&dir).is_empty(), "a short file is not trusted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
