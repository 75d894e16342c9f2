//! The controller quorum's durable Raft log: openraft's `RaftLogStorage` on files in
//! `<data_dir>/meta/raft/`.
//!
//! ```text
//! meta/raft/log        frame*   one frame per entry: serde_json(Entry<ControllerRaft>)
//! meta/raft/vote       frame    serde_json(Vote), replaced atomically
//! meta/raft/committed  frame    serde_json(Option<LogId>), replaced atomically
//! meta/raft/purged     frame    serde_json(LogId), replaced atomically
//! ```
//!
//! Frames are the metadata log's (`metadata::log::frame`: length, CRC32C, payload). The log is
//! appended with glommio's file I/O and fdatasynced before openraft hears the entries are durable
//! (`IOFlushed::io_completed`). Every entry is kept in memory too, with the byte position of its
//! frame: reads never touch the disk, and `truncate_after` cuts the file at the first removed
//! entry's frame. `purge` writes the purged id first, then rewrites the file without the purged
//! frames (temp file, fdatasync, rename); a crash between the two leaves dead frames that the next
//! open skips. The small files are written whole to a temp file, synced and renamed, so they are
//! either old or new, never torn.
//!
//! Opening replays the log file. A frame that is cut short, fails its CRC, does not decode, or
//! leaves a hole in the indexes ends the log: it and everything after it are truncated away
//! with a warning. Such bytes were never acknowledged to openraft, since an append is reported
//! only after its fdatasync.
//!
//! openraft serialises every write (vote, append, truncate, purge) through `&mut self`, so the
//! store needs no lock; log readers (replication tasks) only read the in-memory index.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{BufferedFile, Directory, OpenOptions};
use openraft::storage::{IOFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::OptionalSend;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::types::ControllerRaft;
use crate::metadata::log::{frame, meta_dir, scan};
use crate::metadata::store::write_all_at;
use crate::types::FilePos;

/// The entry log's file name in the Raft directory.
pub const LOG_FILE: &str = "log";
/// The vote's file name.
pub const VOTE_FILE: &str = "vote";
/// The committed log id's file name.
pub const COMMITTED_FILE: &str = "committed";
/// The last purged log id's file name.
pub const PURGED_FILE: &str = "purged";

/// The controller's Raft directory under a data directory: `<data_dir>/meta/raft/`.
pub fn raft_dir(data_dir: &Path) -> PathBuf {
    meta_dir(data_dir).join("raft")
}

/// The durable Raft log of one controller voter. Cheap to clone: clones share one store (the
/// log reader openraft asks for is such a clone). `!Send`: it lives on the controller shard.
#[derive(Clone)]
pub struct RaftLogStore {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    /// The open log file; replaced when `purge` rewrites it.
    file: RefCell<Rc<BufferedFile>>,
    state: RefCell<LogIndex>,
}

/// One entry in memory and where its frame starts in the log file.
struct StoredEntry {
    entry: EntryOf<ControllerRaft>,
    pos: FilePos,
}

/// What the files hold, in memory.
struct LogIndex {
    entries: BTreeMap<u64, StoredEntry>,
    /// Where the next frame is written: the end of the last whole frame.
    end: FilePos,
    vote: Option<VoteOf<ControllerRaft>>,
    committed: Option<LogIdOf<ControllerRaft>>,
    purged: Option<LogIdOf<ControllerRaft>>,
    /// A write or sync failed: the file may not hold what memory says, so nothing more is
    /// written until a restart replays what is durable.
    failed: bool,
}

impl Debug for RaftLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("RaftLogStore")
            .field("dir", &self.inner.dir)
            .field("entries", &state.entries.len())
            .field("end", &state.end)
            .field("purged", &state.purged)
            .finish_non_exhaustive()
    }
}

impl RaftLogStore {
    /// Opens (or creates) the Raft log in `dir`: reads the vote, committed and purged ids and
    /// replays the entry log, truncating a torn or corrupt tail with a warning. Call inside the
    /// executor that will own the store. Start-up reads use std I/O, like the metadata store's.
    pub async fn open(dir: &Path) -> io::Result<RaftLogStore> {
        std::fs::create_dir_all(dir)?;
        let mut state = LogIndex {
            vote: read_small(dir, VOTE_FILE)?,
            committed: read_small::<Option<LogIdOf<ControllerRaft>>>(dir, COMMITTED_FILE)?.flatten(),
            purged: read_small(dir, PURGED_FILE)?,
            entries: BTreeMap::new(),
            end: FilePos(0),
            failed: false,
        };
        replay(&dir.join(LOG_FILE), &mut state)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .buffered_open(dir.join(LOG_FILE))
            .await
            .map_err(io::Error::from)?;
        // A log file (or directory) created just now must still be there after a crash.
        sync_dir(dir).await?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent).await?;
        }
        tracing::info!(dir = %dir.display(), entries = state.entries.len(), bytes = state.end.0,
            purged = ?state.purged.map(|l| l.index()), committed = ?state.committed.map(|l| l.index()),
            "raft log opened");
        Ok(RaftLogStore {
            inner: Rc::new(Inner { dir: dir.to_path_buf(), file: RefCell::new(Rc::new(file)), state: RefCell::new(state) }),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The committed log id last saved (what openraft re-applies up to after a restart).
    pub fn committed(&self) -> Option<LogIdOf<ControllerRaft>> {
        self.inner.state.borrow().committed
    }

    /// The last purged log id.
    pub fn purged(&self) -> Option<LogIdOf<ControllerRaft>> {
        self.inner.state.borrow().purged
    }

    /// The log file's length in bytes as the store sees it (tests and diagnostics).
    pub fn file_len(&self) -> u64 {
        self.inner.state.borrow().end.0
    }

    fn file(&self) -> Rc<BufferedFile> {
        Rc::clone(&self.inner.file.borrow())
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.inner.state.borrow().failed {
            return Err(io::Error::other("raft log unusable after an earlier write failure; restart the node"));
        }
        Ok(())
    }

    fn mark_failed(&self, what: &str, err: &io::Error) {
        self.inner.state.borrow_mut().failed = true;
        tracing::error!(dir = %self.inner.dir.display(), op = what, error = %err, "raft log write failed; no more writes until restart");
    }

    /// Writes the remaining frames (from `from` on) to a new file and renames it over the log.
    async fn rewrite_from(&self, from: FilePos) -> io::Result<()> {
        let end = self.inner.state.borrow().end;
        let old = self.file();
        let tail = if end.0 > from.0 {
            old.read_at(from.0, (end.0 - from.0) as usize).await.map_err(io::Error::from)?.to_vec()
        } else {
            Vec::new()
        };
        let dir = &self.inner.dir;
        write_atomically(dir, LOG_FILE, &tail).await?;
        let new = OpenOptions::new().read(true).write(true).buffered_open(dir.join(LOG_FILE)).await.map_err(io::Error::from)?;
        *self.inner.file.borrow_mut() = Rc::new(new);
        let mut state = self.inner.state.borrow_mut();
        for stored in state.entries.values_mut() {
            stored.pos = FilePos(stored.pos.0 - from.0);
        }
        state.end = FilePos(end.0 - from.0);
        tracing::info!(dir = %dir.display(), dropped_bytes = from.0, kept_bytes = tail.len(), "raft log rewritten without purged entries");
        Ok(())
    }
}

impl RaftLogReader<ControllerRaft> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<ControllerRaft>>, io::Error> {
        Ok(self.inner.state.borrow().entries.range(range).map(|(_, stored)| stored.entry.clone()).collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<ControllerRaft>>, io::Error> {
        Ok(self.inner.state.borrow().vote)
    }
}

impl RaftLogStorage<ControllerRaft> for RaftLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<ControllerRaft>, io::Error> {
        let state = self.inner.state.borrow();
        let last = state.entries.values().next_back().map(|stored| stored.entry.log_id);
        Ok(LogState { last_purged_log_id: state.purged, last_log_id: last.or(state.purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<ControllerRaft>) -> Result<(), io::Error> {
        self.check_usable()?;
        write_small(&self.inner.dir, VOTE_FILE, vote).await?;
        self.inner.state.borrow_mut().vote = Some(*vote);
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<ControllerRaft>>) -> Result<(), io::Error> {
        if self.inner.state.borrow().committed == committed {
            return Ok(());
        }
        self.check_usable()?;
        write_small(&self.inner.dir, COMMITTED_FILE, &committed).await?;
        self.inner.state.borrow_mut().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<ControllerRaft>>, io::Error> {
        Ok(self.inner.state.borrow().committed)
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<ControllerRaft>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<ControllerRaft>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.check_usable()?;
        let start = self.inner.state.borrow().end;
        let mut bytes = Vec::new();
        let mut encoded = Vec::new();
        for entry in entries {
            let payload = serde_json::to_vec(&entry).map_err(io::Error::other)?;
            encoded.push(StoredEntry { entry, pos: FilePos(start.0 + bytes.len() as u64) });
            bytes.extend_from_slice(&frame(&payload));
        }
        let (first, count) = (encoded.first().map(|s| s.entry.log_id.index()), encoded.len());
        // Into memory first: openraft may read the entries as soon as this returns.
        {
            let mut state = self.inner.state.borrow_mut();
            for stored in encoded {
                let index = stored.entry.log_id.index();
                // openraft truncates before it overwrites; if it ever did not, the new entry
                // replaces the old ones from its index on, as a replay of the file would.
                state.entries.split_off(&index);
                state.entries.insert(index, stored);
            }
            state.end = FilePos(start.0 + bytes.len() as u64);
        }
        let file = self.file();
        let written = async {
            write_all_at(&file, &bytes, start.0).await?;
            file.fdatasync().await.map_err(io::Error::from)
        };
        match written.await {
            Ok(()) => {
                tracing::debug!(first = ?first, count, at_byte = start.0, bytes = bytes.len(), "raft log entries durable");
                callback.io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                self.mark_failed("append", &e);
                callback.io_completed(Err(io::Error::new(e.kind(), e.to_string())));
                Err(e)
            }
        }
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<ControllerRaft>>) -> Result<(), io::Error> {
        self.check_usable()?;
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        let cut = {
            let mut state = self.inner.state.borrow_mut();
            let removed = state.entries.split_off(&first_removed);
            let Some(first) = removed.values().next() else { return Ok(()) };
            state.end = first.pos;
            tracing::info!(first_removed, removed = removed.len(), at_byte = first.pos.0, "raft log truncated");
            first.pos
        };
        let file = self.file();
        let result = async {
            file.truncate(cut.0).await?;
            file.fdatasync().await
        };
        result.await.map_err(io::Error::from).inspect_err(|e| self.mark_failed("truncate", e))
    }

    async fn purge(&mut self, log_id: LogIdOf<ControllerRaft>) -> Result<(), io::Error> {
        self.check_usable()?;
        // The purged id is durable before any frame goes: a crash in between leaves dead frames
        // that the next open skips, never a log that starts with a hole.
        write_small(&self.inner.dir, PURGED_FILE, &log_id).await?;
        let first_kept = {
            let mut state = self.inner.state.borrow_mut();
            let kept = state.entries.split_off(&(log_id.index() + 1));
            state.entries = kept;
            state.purged = Some(log_id);
            state.entries.values().next().map_or(state.end, |stored| stored.pos)
        };
        tracing::info!(upto = log_id.index(), dead_bytes = first_kept.0, "raft log purged");
        if first_kept.0 == 0 {
            return Ok(());
        }
        self.rewrite_from(first_kept).await.inspect_err(|e| self.mark_failed("purge rewrite", e))
    }
}

/// Replays the log file at `path` into `state`, truncating a bad tail (std I/O, start-up only).
fn replay(path: &Path, state: &mut LogIndex) -> io::Result<()> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let found = scan(&bytes);
    let mut cut: Option<(u64, String)> = found.stopped.map(|reason| (found.valid_len, reason));
    let purged_index = state.purged.map(|l| l.index());
    for &(pos, payload) in &found.frames {
        let entry: EntryOf<ControllerRaft> = match serde_json::from_slice(payload) {
            Ok(entry) => entry,
            Err(e) => {
                cut = Some((pos, format!("frame does not decode: {e}")));
                break;
            }
        };
        let index = entry.log_id.index();
        if purged_index.is_some_and(|purged| index <= purged) {
            continue; // a dead frame left before a purge's rewrite
        }
        let expected = state.entries.keys().next_back().map(|last| last + 1).or(purged_index.map(|p| p + 1));
        match expected {
            Some(next) if index > next => {
                cut = Some((pos, format!("entry {index} where {next} was expected")));
                break;
            }
            _ => {
                state.entries.split_off(&index);
                state.entries.insert(index, StoredEntry { entry, pos: FilePos(pos) });
            }
        }
    }
    state.end = FilePos(found.valid_len);
    if let Some((at, reason)) = cut {
        tracing::warn!(path = %path.display(), at_byte = at, dropped_bytes = bytes.len() as u64 - at, reason = %reason,
            "raft log tail truncated");
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        file.set_len(at)?;
        file.sync_all()?;
        state.end = FilePos(at);
    }
    Ok(())
}

/// Reads a small framed JSON file; `None` when there is none. Such files are renamed into place
/// whole, so a bad one is an error, not a tail to cut.
pub(crate) fn read_small<T: DeserializeOwned>(dir: &Path, name: &str) -> io::Result<Option<T>> {
    let path = dir.join(name);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let found = scan(&bytes);
    let corrupt = |reason: String| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {reason}", path.display()));
    match (found.frames.as_slice(), found.stopped) {
        ([(_, payload)], None) => serde_json::from_slice(payload).map(Some).map_err(|e| corrupt(e.to_string())),
        (_, stopped) => Err(corrupt(stopped.unwrap_or_else(|| "expected one frame".to_string()))),
    }
}

/// Writes `value` as one framed JSON file, atomically.
async fn write_small<T: Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let payload = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomically(dir, name, &frame(&payload)).await
}

/// Replaces `dir/name` with `bytes`: temp file, fdatasync, rename, directory sync (glommio I/O).
pub(crate) async fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .buffered_open(&tmp)
        .await
        .map_err(io::Error::from)?;
    write_all_at(&file, bytes, 0).await?;
    file.fdatasync().await.map_err(io::Error::from)?;
    file.close().await.map_err(io::Error::from)?;
    glommio::io::rename(&tmp, dir.join(name)).await.map_err(io::Error::from)?;
    sync_dir(dir).await
}

/// Makes a rename in `dir` durable.
async fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = Directory::open(dir).await.map_err(io::Error::from)?;
    d.sync().await.map_err(io::Error::from)?;
    d.close().await.map_err(io::Error::from)
}
