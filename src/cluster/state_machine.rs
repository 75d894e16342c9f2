//! The controller quorum's state machine: committed Raft entries applied to the cluster metadata
//! every shard reads.
//!
//! ```text
//!  committed entry ──► Normal(records) ──► image::apply_all ──► SnapshotHandle.store ──► observer
//!                      Membership       ──► kept (StoredMembership)
//!  snapshot  = metadata::log::encode_checkpoint(ClusterSnapshot)        <dir>/snapshot
//! ```
//!
//! The state itself is not written on every apply: it is the [`SnapshotHandle`] in memory. What
//! is durable is the last snapshot, in `<dir>/snapshot`: one frame with the snapshot's meta as
//! JSON, then the checkpoint bytes (their own frame), replaced atomically. On open the state
//! machine starts from that snapshot (its applied position is the snapshot's), and openraft
//! re-applies the log entries after it up to the saved committed id
//! (`RaftLogStorage::save_committed`), so the applied state is right after a restart.
//!
//! The checkpoint's `end_offset` is the Raft index after the last applied entry (the snapshot's
//! meta says the same as a log id); decoding ignores it.
//!
//! A command whose records do not apply (a bug: the leader validates before it writes) leaves
//! the snapshot as it was and is answered with `rejected`, on every node alike.

use std::cell::RefCell;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::type_config::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::{EntryPayload, OptionalSend};

use super::raft_log::write_atomically;
use super::types::{ControllerCommand, ControllerRaft, ControllerReply};
use crate::metadata::image::apply_all;
use crate::metadata::log::{decode_checkpoint, encode_checkpoint, frame, scan};
use crate::metadata::{ClusterSnapshot, SnapshotHandle};

/// The snapshot's file name in the state machine's directory.
pub const SNAPSHOT_FILE: &str = "snapshot";

/// Called after every publish of a new snapshot, with the old one, the new one and the Raft log
/// index that made it, so the node can act on the change (start or stop replicas, ...). It runs
/// inside the apply loop: it must be quick and must not wait.
pub type AppliedObserver = Rc<dyn Fn(&Arc<ClusterSnapshot>, &Arc<ClusterSnapshot>, u64)>;

/// The metadata state machine of one controller voter. Cheap to clone: clones share one state.
/// `!Send`: it lives on the controller shard.
#[derive(Clone)]
pub struct MetadataStateMachine {
    inner: Rc<Inner>,
}

struct Inner {
    dir: PathBuf,
    handle: SnapshotHandle,
    observer: AppliedObserver,
    state: RefCell<Applied>,
    /// One snapshot file write at a time (a build and an install may overlap).
    snapshot_turn: glommio::sync::Semaphore,
}

struct Applied {
    last_applied: Option<LogIdOf<ControllerRaft>>,
    membership: StoredMembershipOf<ControllerRaft>,
    /// The last durable snapshot: its meta and checkpoint bytes.
    current: Option<(SnapshotMetaOf<ControllerRaft>, Vec<u8>)>,
}

impl Debug for MetadataStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.state.borrow();
        f.debug_struct("MetadataStateMachine")
            .field("dir", &self.inner.dir)
            .field("last_applied", &state.last_applied)
            .field("snapshot", &state.current.as_ref().map(|(meta, _)| meta.last_log_id))
            .finish_non_exhaustive()
    }
}

impl MetadataStateMachine {
    /// Opens the state machine in `dir`: when `<dir>/snapshot` exists it is decoded, published
    /// into `handle` (the observer is called) and its position becomes the applied one.
    /// Otherwise `handle` keeps what it holds and nothing is applied yet: openraft then applies
    /// the log from its start on top of it, so it must hold an empty snapshot of the cluster,
    /// not the metadata of a single-node store.
    pub async fn open(dir: &Path, handle: SnapshotHandle, observer: AppliedObserver) -> io::Result<MetadataStateMachine> {
        std::fs::create_dir_all(dir)?;
        let mut state = Applied { last_applied: None, membership: Default::default(), current: None };
        if let Some((meta, data)) = read_snapshot_file(&dir.join(SNAPSHOT_FILE))? {
            let snapshot = decode(&data, dir)?;
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
            state.current = Some((meta, data));
            let next = Arc::new(snapshot);
            let old = handle.swap(Arc::clone(&next));
            tracing::info!(dir = %dir.display(), applied = ?state.last_applied.map(|l| l.index()), topics = next.topics.len(),
                "metadata state machine loaded its snapshot");
            observer(&old, &next, state.last_applied.map_or(0, |l| l.index()));
        }
        let inner = Inner {
            dir: dir.to_path_buf(),
            handle,
            observer,
            state: RefCell::new(state),
            snapshot_turn: glommio::sync::Semaphore::new(1),
        };
        Ok(MetadataStateMachine { inner: Rc::new(inner) })
    }

    /// The Raft log index applied last (0 when nothing is): what a broker heartbeat reports.
    pub fn applied_index(&self) -> u64 {
        self.inner.state.borrow().last_applied.map_or(0, |l| l.index())
    }

    /// The handle every shard reads the latest snapshot from.
    pub fn handle(&self) -> SnapshotHandle {
        Arc::clone(&self.inner.handle)
    }

    /// The log index the durable snapshot covers, if there is one.
    pub fn snapshot_index(&self) -> Option<u64> {
        self.inner.state.borrow().current.as_ref().and_then(|(meta, _)| meta.last_log_id.map(|l| l.index()))
    }

    /// Applies one command's records: publish and tell the observer, or leave the snapshot.
    fn apply_command(&self, log_id: LogIdOf<ControllerRaft>, command: &ControllerCommand) -> ControllerReply {
        let current = self.inner.handle.load_full();
        let applied = apply_all(&current, &command.records);
        self.inner.state.borrow_mut().last_applied = Some(log_id);
        match applied {
            Ok(next) => {
                let next = Arc::new(next);
                self.inner.handle.store(Arc::clone(&next));
                (self.inner.observer)(&current, &next, log_id.index());
                ControllerReply::default()
            }
            Err(e) => {
                tracing::error!(index = log_id.index(), records = command.records.len(), error = %e,
                    "controller log entry does not apply; metadata left unchanged");
                ControllerReply { rejected: Some(e.to_string()) }
            }
        }
    }

    /// Writes a snapshot to `<dir>/snapshot` atomically and makes it the current one.
    async fn save_snapshot(&self, meta: &SnapshotMetaOf<ControllerRaft>, data: &[u8]) -> io::Result<()> {
        let meta_json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        let mut bytes = frame(&meta_json);
        bytes.extend_from_slice(data);
        write_atomically(&self.inner.dir, SNAPSHOT_FILE, &bytes).await?;
        self.inner.state.borrow_mut().current = Some((meta.clone(), data.to_vec()));
        Ok(())
    }
}

/// Decodes checkpoint bytes, naming the snapshot file in errors.
fn decode(data: &[u8], dir: &Path) -> io::Result<ClusterSnapshot> {
    decode_checkpoint(data, &dir.join(SNAPSHOT_FILE))
        .map(|(snapshot, _)| snapshot)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// Reads `<dir>/snapshot`: the meta frame and the checkpoint bytes after it. The file is
/// renamed into place whole, so a damaged one is an error.
fn read_snapshot_file(path: &Path) -> io::Result<Option<(SnapshotMetaOf<ControllerRaft>, Vec<u8>)>> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let corrupt = |reason: String| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {reason}", path.display()));
    let found = scan(&bytes);
    let ([(_, meta_json), (data_at, _)], None) = (found.frames.as_slice(), &found.stopped) else {
        return Err(corrupt(format!("expected two whole frames ({})", found.stopped.as_deref().unwrap_or("wrong count"))));
    };
    let meta = serde_json::from_slice(meta_json).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some((meta, bytes[*data_at as usize..].to_vec())))
}

impl RaftSnapshotBuilder<ControllerRaft> for MetadataStateMachine {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<ControllerRaft, Vec<u8>>, io::Error> {
        // The image and its position are read together, with no await between: they match.
        let (meta, data) = {
            let state = self.inner.state.borrow();
            let end = state.last_applied.map_or(0, |l| l.index() + 1);
            let data = encode_checkpoint(&self.inner.handle.load(), end).map_err(io::Error::other)?;
            let meta = SnapshotMetaOf::<ControllerRaft> {
                last_log_id: state.last_applied,
                last_membership: state.membership.clone(),
            };
            (meta, data)
        };
        let _turn = self.inner.snapshot_turn.acquire_permit(1).await.map_err(|e| io::Error::other(e.to_string()))?;
        let newer_exists = self.inner.state.borrow().current.as_ref().is_some_and(|(m, _)| m.last_log_id > meta.last_log_id);
        if !newer_exists {
            self.save_snapshot(&meta, &data).await?;
        }
        tracing::info!(dir = %self.inner.dir.display(), upto = ?meta.last_log_id.map(|l| l.index()), bytes = data.len(),
            "metadata snapshot built");
        Ok(SnapshotOf::<ControllerRaft, Vec<u8>> { meta, snapshot: data })
    }
}

impl RaftStateMachine<ControllerRaft> for MetadataStateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<ControllerRaft>>, StoredMembershipOf<ControllerRaft>), io::Error> {
        let state = self.inner.state.borrow();
        Ok((state.last_applied, state.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<ControllerRaft>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            let reply = match entry.payload {
                EntryPayload::Blank => {
                    self.inner.state.borrow_mut().last_applied = Some(entry.log_id);
                    ControllerReply::default()
                }
                EntryPayload::Normal(command) => self.apply_command(entry.log_id, &command),
                EntryPayload::Membership(membership) => {
                    let mut state = self.inner.state.borrow_mut();
                    state.last_applied = Some(entry.log_id);
                    state.membership = StoredMembershipOf::<ControllerRaft>::new(Some(entry.log_id), membership);
                    ControllerReply::default()
                }
            };
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<ControllerRaft>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let decoded = decode(&snapshot, &self.inner.dir)?;
        {
            // Durable before it is published: a crash after this starts from it.
            let _turn = self.inner.snapshot_turn.acquire_permit(1).await.map_err(|e| io::Error::other(e.to_string()))?;
            self.save_snapshot(meta, &snapshot).await?;
        }
        let next = Arc::new(decoded);
        let old = self.inner.handle.swap(Arc::clone(&next));
        {
            let mut state = self.inner.state.borrow_mut();
            state.last_applied = meta.last_log_id;
            state.membership = meta.last_membership.clone();
        }
        let index = meta.last_log_id.map_or(0, |l| l.index());
        tracing::info!(dir = %self.inner.dir.display(), upto = index, topics = next.topics.len(), "metadata snapshot installed");
        (self.inner.observer)(&old, &next, index);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<ControllerRaft, Vec<u8>>>, io::Error> {
        let state = self.inner.state.borrow();
        Ok(state
            .current
            .as_ref()
            .map(|(meta, data)| SnapshotOf::<ControllerRaft, Vec<u8>> { meta: meta.clone(), snapshot: data.clone() }))
    }
}
