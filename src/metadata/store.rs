//! The metadata writer: validate → records → durable append → apply → publish.
//!
//! [`MetadataBootstrap`] loads the metadata at start-up (checkpoint, then the log after it) and
//! runs the start-up mutations with std I/O, before the executors exist. [`MetadataBootstrap::start`]
//! then turns it, on shard 0, into the [`MetadataStore`], which appends with glommio's io_uring
//! file I/O (write and fdatasync never block the shard). Both go through the same [`Core`]: the
//! same planning, framing, apply and publish; only the two lines of I/O differ.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use glommio::io::{BufferedFile, Directory, OpenOptions};
use uuid::Uuid;

use super::image::apply_all;
use super::log::{self, CHECKPOINT_FILE, CHECKPOINT_TMP_FILE, LOG_FILE};
use super::mutation::{MetadataMutation, MutationOutcome, Plan, PlanContext, plan};
use super::{ClusterSnapshot, MetadataError, SnapshotHandle, legacy};

/// A checkpoint is written after this many records since the last one.
pub const CHECKPOINT_EVERY_RECORDS: u64 = 1000;

/// State shared by the start-up and the live writer; only ever touched by one of them at a time.
#[derive(Debug)]
struct Core {
    dir: PathBuf,
    shards: usize,
    node_id: i32,
    handle: SnapshotHandle,
    /// Offset of the next record.
    next_offset: u64,
    /// Every record below this is in the checkpoint.
    checkpoint_end: u64,
    checkpoint_every: u64,
    /// Where the next frame is written.
    log_len: u64,
    /// Producer ids of the reserved block not yet handed out.
    producer_ids: Range<i64>,
    /// Set when a write or sync failed: nothing more is appended until a restart.
    failed: bool,
}

/// A validated mutation and the snapshot it leads to.
struct Staged {
    plan: Plan,
    current: Arc<ClusterSnapshot>,
    next: ClusterSnapshot,
}

impl Core {
    /// Plans `m` and applies the records to a copy of the snapshot (a record that would not
    /// apply is never written). Returns the frame to append, if anything is to be written.
    fn stage(
        &self,
        m: MetadataMutation,
        defaults: &BTreeMap<String, String>,
    ) -> Result<(Staged, Option<Vec<u8>>), MetadataError> {
        if self.failed {
            return Err(MetadataError::LogFailed);
        }
        let current = self.handle.load_full();
        let ctx = PlanContext {
            shards: self.shards,
            node_id: self.node_id,
            defaults,
            producer_ids_left: !self.producer_ids.is_empty(),
            // This store serves a single node (its own quorum); the cluster's controller plans
            // with its own context (voters and `default.replication.factor` from the config).
            voters: 1,
            default_replication_factor: 1,
        };
        let plan = plan(&current, m, &ctx)?;
        let next = apply_all(&current, &plan.records)?;
        let frame = match (plan.validate_only, plan.records.is_empty()) {
            (false, false) => Some(log::encode_records(self.next_offset, &plan.records)?),
            _ => None,
        };
        Ok((Staged { plan, current, next }, frame))
    }

    /// The frame of `appended` bytes is durable (or there was none): publish and answer.
    fn commit(&mut self, staged: Staged, appended: Option<usize>) -> MutationOutcome {
        let Staged { plan, current, next } = staged;
        let records = plan.records.len() as u64;
        let outcome = plan.outcome(&current, &next, &mut self.producer_ids);
        if let Some(len) = appended {
            self.log_len += len as u64;
            self.next_offset += records;
            self.handle.store(Arc::new(next));
        }
        outcome
    }

    fn checkpoint_due(&self) -> bool {
        self.next_offset - self.checkpoint_end >= self.checkpoint_every
    }
}

/// The metadata at start-up, before the executors: loaded, and writable with blocking I/O.
#[derive(Debug)]
pub struct MetadataBootstrap {
    core: Core,
    log: std::fs::File,
}

impl MetadataBootstrap {
    /// Loads `<data_dir>/meta/`: the checkpoint and the log after it, or the old `cluster.json`
    /// (converted once into a checkpoint), or nothing (a new cluster id). A torn or corrupt
    /// frame at the log's tail is truncated away with a warning.
    pub fn load(data_dir: &Path, shards: usize, node_id: i32) -> Result<MetadataBootstrap, MetadataError> {
        let dir = log::meta_dir(data_dir);
        std::fs::create_dir_all(&dir)?;
        let (mut snapshot, checkpoint_end) = match log::read_checkpoint(&dir)? {
            Some(found) => found,
            None => {
                let (snapshot, converted) = match legacy::read(&dir, node_id)? {
                    Some(s) => (s, true),
                    None => (ClusterSnapshot::empty(&Uuid::new_v4().simple().to_string()[..22]), false),
                };
                // The first start writes the checkpoint before any record, so records without
                // one mean a lost checkpoint: refuse rather than replay them onto nothing.
                let log_path = dir.join(LOG_FILE);
                if std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 0) {
                    let reason = format!("{LOG_FILE} holds records but {CHECKPOINT_FILE} is missing");
                    return Err(MetadataError::Corrupt { path: log_path, reason });
                }
                log::write_checkpoint_sync(&dir, &snapshot, 0)?;
                if converted {
                    std::fs::rename(dir.join(legacy::LEGACY_FILE), dir.join(legacy::LEGACY_CONVERTED_FILE))?;
                    tracing::info!(topics = snapshot.topics.len(), dir = %dir.display(), "metadata converted from cluster.json");
                }
                (snapshot, 0)
            }
        };
        let replayed = log::replay(&dir, &mut snapshot, checkpoint_end)?;
        tracing::info!(topics = snapshot.topics.len(), brokers = snapshot.brokers.len(), checkpoint_end,
            frames = replayed.frames_applied, next_offset = replayed.next_offset, "metadata loaded");
        let log = std::fs::OpenOptions::new().write(true).open(dir.join(LOG_FILE))?;
        // The first id handed out comes from a new block: ids of the last one may be in use.
        let producer_ids = snapshot.next_producer_id_block..snapshot.next_producer_id_block;
        let core = Core {
            dir,
            shards,
            node_id,
            handle: Arc::new(ArcSwap::from_pointee(snapshot)),
            next_offset: replayed.next_offset,
            checkpoint_end,
            checkpoint_every: CHECKPOINT_EVERY_RECORDS,
            log_len: replayed.log_len,
            producer_ids,
            failed: false,
        };
        Ok(MetadataBootstrap { core, log })
    }

    /// The handle every shard reads the latest snapshot from.
    pub fn handle(&self) -> SnapshotHandle {
        Arc::clone(&self.core.handle)
    }

    /// Writes a checkpoint after this many records (default [`CHECKPOINT_EVERY_RECORDS`]).
    pub fn set_checkpoint_every(&mut self, records: u64) {
        self.core.checkpoint_every = records.max(1);
    }

    /// Runs a mutation with blocking I/O (start-up only): validate, append one frame and
    /// fdatasync it, apply, publish.
    pub fn apply(&mut self, m: MetadataMutation, defaults: &BTreeMap<String, String>) -> Result<MutationOutcome, MetadataError> {
        let (staged, frame) = self.core.stage(m, defaults)?;
        if let Some(frame) = &frame {
            let written = self.log.write_all_at(frame, self.core.log_len).and_then(|()| self.log.sync_data());
            if let Err(e) = written {
                self.core.failed = true;
                return Err(e.into());
            }
        }
        let outcome = self.core.commit(staged, frame.map(|f| f.len()));
        if self.core.checkpoint_due() {
            let snapshot = self.core.handle.load_full();
            log::write_checkpoint_sync(&self.core.dir, &snapshot, self.core.next_offset)?;
            self.log.set_len(0)?;
            self.log.sync_all()?;
            self.core.log_len = 0;
            self.core.checkpoint_end = self.core.next_offset;
        }
        Ok(outcome)
    }

    /// Opens the log for asynchronous appends: call on the shard that will own the store,
    /// inside its executor.
    pub async fn start(self) -> Result<MetadataStore, MetadataError> {
        let path = self.core.dir.join(LOG_FILE);
        let log = OpenOptions::new().read(true).write(true).buffered_open(&path).await.map_err(std::io::Error::from)?;
        Ok(MetadataStore { core: RefCell::new(self.core), log, turn: glommio::sync::Semaphore::new(1) })
    }
}

/// The live metadata writer on shard 0. `!Send`: it stays on its executor.
pub struct MetadataStore {
    core: RefCell<Core>,
    log: BufferedFile,
    /// One mutation at a time, from validation to publication.
    turn: glommio::sync::Semaphore,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore").field("core", &self.core).finish_non_exhaustive()
    }
}

impl MetadataStore {
    /// Runs a mutation: validate → records → append one frame and fdatasync it (io_uring; the
    /// shard keeps serving meanwhile) → apply → publish. Mutations run one at a time, in order.
    pub async fn apply(&self, m: MetadataMutation, defaults: &BTreeMap<String, String>) -> Result<MutationOutcome, MetadataError> {
        let _turn = self.turn.acquire_permit(1).await.map_err(|_| MetadataError::ControllerUnavailable)?;
        let (staged, frame) = self.core.borrow().stage(m, defaults)?;
        if let Some(frame) = &frame {
            let pos = self.core.borrow().log_len;
            let written = async {
                write_all_at(&self.log, frame, pos).await?;
                self.log.fdatasync().await.map_err(std::io::Error::from)
            };
            if let Err(e) = written.await {
                self.core.borrow_mut().failed = true;
                tracing::error!(error = %e, pos, "metadata log append failed; no more metadata changes until restart");
                return Err(e.into());
            }
        }
        let outcome = self.core.borrow_mut().commit(staged, frame.map(|f| f.len()));
        // The borrow ends here: checkpoint() borrows the core mutably.
        let due = self.core.borrow().checkpoint_due();
        if due && let Err(e) = self.checkpoint().await {
            tracing::warn!(error = %e, "metadata checkpoint failed; the log keeps growing");
        }
        Ok(outcome)
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<ClusterSnapshot> {
        self.core.borrow().handle.load_full()
    }

    /// Writes the snapshot as a checkpoint (temp file, fdatasync, rename, directory sync), then
    /// empties the log: everything in it is in the checkpoint.
    async fn checkpoint(&self) -> Result<(), MetadataError> {
        let (bytes, dir, end) = {
            let core = self.core.borrow();
            (log::encode_checkpoint(&core.handle.load(), core.next_offset)?, core.dir.clone(), core.next_offset)
        };
        let tmp = dir.join(CHECKPOINT_TMP_FILE);
        let file = BufferedFile::create(&tmp).await.map_err(std::io::Error::from)?;
        write_all_at(&file, &bytes, 0).await?;
        file.fdatasync().await.map_err(std::io::Error::from)?;
        file.close().await.map_err(std::io::Error::from)?;
        glommio::io::rename(&tmp, dir.join(CHECKPOINT_FILE)).await.map_err(std::io::Error::from)?;
        let d = Directory::open(&dir).await.map_err(std::io::Error::from)?;
        d.sync().await.map_err(std::io::Error::from)?;
        d.close().await.map_err(std::io::Error::from)?;
        self.core.borrow_mut().checkpoint_end = end;
        // A log that keeps its frames is still right (replay skips what the checkpoint holds),
        // but one whose truncation failed half-way is not trusted further.
        let emptied = async {
            self.log.truncate(0).await?;
            self.log.fdatasync().await
        };
        if let Err(e) = emptied.await {
            self.core.borrow_mut().failed = true;
            return Err(std::io::Error::from(e).into());
        }
        self.core.borrow_mut().log_len = 0;
        tracing::info!(end_offset = end, bytes = bytes.len(), "metadata checkpoint written");
        Ok(())
    }
}

/// Writes all of `bytes` at `pos` (a buffered write may be short).
pub(crate) async fn write_all_at(file: &BufferedFile, bytes: &[u8], pos: u64) -> std::io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        let n = file.write_at(bytes[done..].to_vec(), pos + done as u64).await?;
        if n == 0 {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "write wrote nothing"));
        }
        done += n;
    }
    Ok(())
}
