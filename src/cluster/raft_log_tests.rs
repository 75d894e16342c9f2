//! The durable Raft log and the metadata state machine, each on its own: openraft's storage
//! suite, then what the files hold across a close and reopen, a torn tail, and snapshots.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use futures::stream;
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::{Membership, StorageError};
use uuid::Uuid;

use super::raft_log::{LOG_FILE, RaftLogStore};
use super::state_machine::{AppliedObserver, MetadataStateMachine};
use super::types::{ControllerCommand, ControllerRaft};
use crate::metadata::{ClusterSnapshot, MetadataRecord, PartitionRecord, SnapshotHandle, TopicRecord};
use crate::types::ShardId;

type C = ControllerRaft;

/// A fresh, empty directory for one test.
pub(super) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringlog-raftlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `test` on a glommio executor of its own.
pub(super) fn on_executor<F, Fut>(test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default().spawn(test).unwrap().join().unwrap();
}

fn log_id(term: u64, index: u64) -> LogIdOf<C> {
    openraft::testing::log_id::<C>(term, 1, index)
}

/// The records of a new topic with one partition.
pub(super) fn topic_records(name: &str) -> Vec<MetadataRecord> {
    let topic_id = Uuid::new_v4();
    vec![
        MetadataRecord::Topic(TopicRecord { name: name.to_string(), topic_id }),
        MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 0,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            owner_shard: ShardId(0),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }),
    ]
}

fn topic_entry(term: u64, index: u64, name: &str) -> EntryOf<C> {
    EntryOf::<C>::new_normal(log_id(term, index), ControllerCommand { records: topic_records(name) })
}

pub(super) fn empty_handle() -> SnapshotHandle {
    Arc::new(ArcSwap::from_pointee(ClusterSnapshot::empty("raft-test")))
}

pub(super) fn no_observer() -> AppliedObserver {
    Rc::new(|_, _, _| {})
}

/// Appends and waits for the durability callback.
async fn append(store: &mut RaftLogStore, entries: Vec<EntryOf<C>>) {
    let (tx, rx) = C::oneshot();
    store.append(entries, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

async fn indexes(store: &mut RaftLogStore) -> Vec<u64> {
    store.try_get_log_entries(..).await.unwrap().iter().map(|e| e.log_id.index()).collect()
}

/// A builder of stores in numbered directories for openraft's suite.
struct DirBuilder {
    base: PathBuf,
    next: AtomicU64,
}

impl StoreBuilder<C, RaftLogStore, MetadataStateMachine> for DirBuilder {
    async fn build(&self) -> Result<((), RaftLogStore, MetadataStateMachine), StorageError<C>> {
        let dir = self.base.join(self.next.fetch_add(1, Ordering::Relaxed).to_string());
        let log = RaftLogStore::open(&dir.join("log")).await.unwrap();
        let sm = MetadataStateMachine::open(&dir.join("sm"), empty_handle(), no_observer()).await.unwrap();
        Ok(((), log, sm))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    on_executor(|| async {
        let builder = DirBuilder { base: temp_dir("suite"), next: AtomicU64::new(0) };
        Suite::test_all(builder).await.unwrap();
    });
}

#[test]
fn entries_vote_and_committed_survive_a_reopen() {
    on_executor(|| async {
        let dir = temp_dir("reopen");
        let vote = VoteOf::<C>::new_committed(2, 1);
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            append(&mut store, (0..5).map(|i| topic_entry(1, i, &format!("t{i}"))).collect()).await;
            append(&mut store, vec![topic_entry(2, 5, "t5")]).await;
            store.save_vote(&vote).await.unwrap();
            store.save_committed(Some(log_id(2, 5))).await.unwrap();
            assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3, 4, 5]);
        }
        let mut store = RaftLogStore::open(&dir).await.unwrap();
        let entries = store.try_get_log_entries(..).await.unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(entries[5].log_id, log_id(2, 5));
        let openraft::EntryPayload::Normal(command) = &entries[5].payload else { panic!("not a command: {:?}", entries[5]) };
        assert!(matches!(&command.records[0], MetadataRecord::Topic(t) if t.name == "t5"), "{command:?}");
        assert_eq!(command.records.len(), 2);
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), Some(log_id(2, 5)));
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 5)));
        assert_eq!(state.last_purged_log_id, None);
    });
}

#[test]
fn truncate_after_cuts_the_file_and_new_entries_follow() {
    on_executor(|| async {
        let dir = temp_dir("truncate");
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            append(&mut store, (0..6).map(|i| topic_entry(1, i, "t")).collect()).await;
            let len_before = store.file_len();
            store.truncate_after(Some(log_id(1, 2))).await.unwrap();
            assert_eq!(indexes(&mut store).await, vec![0, 1, 2]);
            assert!(store.file_len() < len_before);
            assert_eq!(std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(), store.file_len(), "the file is cut");
            // The new leader's entries replace the removed ones.
            append(&mut store, vec![topic_entry(3, 3, "new"), topic_entry(3, 4, "new2")]).await;
        }
        let mut store = RaftLogStore::open(&dir).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3, 4]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(3, 4)), "the entries after the cut are the new term's");
        store.truncate_after(None).await.unwrap();
        assert!(indexes(&mut store).await.is_empty());
        assert_eq!(store.file_len(), 0);
    });
}

#[test]
fn purge_drops_entries_rewrites_the_file_and_is_remembered() {
    on_executor(|| async {
        let dir = temp_dir("purge");
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            append(&mut store, (0..10).map(|i| topic_entry(1, i, "t")).collect()).await;
            let len_before = store.file_len();
            store.purge(log_id(1, 6)).await.unwrap();
            assert_eq!(indexes(&mut store).await, vec![7, 8, 9]);
            assert!(store.file_len() < len_before / 2, "the purged frames are gone from the file");
            assert_eq!(std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(), store.file_len());
            // Positions moved with the rewrite: a truncate still cuts at the right frame.
            store.truncate_after(Some(log_id(1, 8))).await.unwrap();
            append(&mut store, vec![topic_entry(2, 9, "t"), topic_entry(2, 10, "t")]).await;
        }
        let mut store = RaftLogStore::open(&dir).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![7, 8, 9, 10]);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 6)));
        assert_eq!(state.last_log_id, Some(log_id(2, 10)));
        // Purging past the end leaves no entry; the last log id is then the purged one.
        store.purge(log_id(2, 12)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_log_id, Some(log_id(2, 12)));
        assert_eq!(store.file_len(), 0);
    });
}

#[test]
fn a_crash_between_the_purged_id_and_the_rewrite_leaves_dead_frames_that_are_skipped() {
    on_executor(|| async {
        let dir = temp_dir("purge-crash");
        let whole_log = {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            append(&mut store, (0..6).map(|i| topic_entry(1, i, "t")).collect()).await;
            let whole_log = std::fs::read(dir.join(LOG_FILE)).unwrap();
            store.purge(log_id(1, 2)).await.unwrap();
            whole_log
        };
        // The purged id is durable, the rewrite is not: the old file is back.
        std::fs::write(dir.join(LOG_FILE), &whole_log).unwrap();
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            assert_eq!(indexes(&mut store).await, vec![3, 4, 5]);
            assert_eq!(store.get_log_state().await.unwrap().last_purged_log_id, Some(log_id(1, 2)));
            store.truncate_after(Some(log_id(1, 3))).await.unwrap();
            append(&mut store, vec![topic_entry(2, 4, "t")]).await;
        }
        let mut store = RaftLogStore::open(&dir).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![3, 4]);
        assert_eq!(store.get_log_state().await.unwrap().last_log_id, Some(log_id(2, 4)));
    });
}

#[test]
fn a_torn_tail_is_cut_and_the_entries_before_it_survive() {
    on_executor(|| async {
        let dir = temp_dir("torn");
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            append(&mut store, (0..4).map(|i| topic_entry(1, i, "t")).collect()).await;
        }
        let good_len = std::fs::metadata(dir.join(LOG_FILE)).unwrap().len();
        let mut file = std::fs::OpenOptions::new().append(true).open(dir.join(LOG_FILE)).unwrap();
        file.write_all(&[0x40, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']).unwrap(); // a frame cut short
        drop(file);
        {
            let mut store = RaftLogStore::open(&dir).await.unwrap();
            assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3]);
            assert_eq!(std::fs::metadata(dir.join(LOG_FILE)).unwrap().len(), good_len, "the torn bytes are cut");
            append(&mut store, vec![topic_entry(1, 4, "t")]).await;
        }
        // A whole frame with a bad CRC ends the log the same way.
        let mut bytes = std::fs::read(dir.join(LOG_FILE)).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(dir.join(LOG_FILE), &bytes).unwrap();
        let mut store = RaftLogStore::open(&dir).await.unwrap();
        assert_eq!(indexes(&mut store).await, vec![0, 1, 2, 3]);
        assert_eq!(store.file_len(), good_len);
    });
}

#[test]
fn a_corrupt_vote_file_is_an_error_not_a_panic() {
    on_executor(|| async {
        let dir = temp_dir("badvote");
        std::fs::write(dir.join(super::raft_log::VOTE_FILE), b"garbage").unwrap();
        let err = RaftLogStore::open(&dir).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    });
}

fn applied(entries: Vec<EntryOf<C>>) -> impl futures::Stream<Item = Result<openraft::storage::EntryResponder<C>, std::io::Error>> + Unpin {
    stream::iter(entries.into_iter().map(|entry| Ok((entry, None))))
}

fn membership_entry(index: u64) -> EntryOf<C> {
    EntryOf::<C>::new_membership(log_id(1, index), Membership::new_with_defaults(vec![BTreeSet::from([1, 2, 3])], []))
}

#[test]
fn the_state_machine_publishes_tells_the_observer_and_rejects_what_does_not_apply() {
    on_executor(|| async {
        let dir = temp_dir("sm-apply");
        let seen: Rc<std::cell::RefCell<Vec<(usize, usize, u64)>>> = Rc::default();
        let observer: AppliedObserver = {
            let seen = Rc::clone(&seen);
            Rc::new(move |old, new, index| seen.borrow_mut().push((old.topics.len(), new.topics.len(), index)))
        };
        let handle = empty_handle();
        let mut sm = MetadataStateMachine::open(&dir, Arc::clone(&handle), observer).await.unwrap();
        assert_eq!(sm.applied_index(), 0);
        let records = topic_records("orders");
        let duplicate = ControllerCommand { records: records[..1].to_vec() };
        let entries = vec![
            membership_entry(0),
            EntryOf::<C>::new_normal(log_id(1, 1), ControllerCommand { records }),
            EntryOf::<C>::new_normal(log_id(1, 2), duplicate),
        ];
        sm.apply(applied(entries)).await.unwrap();
        assert!(handle.load().topics.contains_key("orders"));
        assert_eq!(handle.load().topics["orders"].partitions.len(), 1);
        assert_eq!(*seen.borrow(), vec![(0, 1, 1)], "one publish, none for the rejected entry");
        assert_eq!(sm.applied_index(), 2, "a rejected entry is still applied (skipped alike on every node)");
        let (last, membership) = sm.applied_state().await.unwrap();
        assert_eq!(last, Some(log_id(1, 2)));
        assert_eq!(membership.log_id(), &Some(log_id(1, 0)));
    });
}

#[test]
fn a_built_snapshot_is_durable_and_reopening_starts_from_it() {
    on_executor(|| async {
        let dir = temp_dir("sm-snapshot");
        let built = {
            let mut sm = MetadataStateMachine::open(&dir, empty_handle(), no_observer()).await.unwrap();
            let entries = vec![membership_entry(0), topic_entry(1, 1, "a"), topic_entry(1, 2, "b")];
            sm.apply(applied(entries)).await.unwrap();
            let built = sm.get_snapshot_builder().await.build_snapshot().await.unwrap();
            assert_eq!(built.meta.last_log_id, Some(log_id(1, 2)));
            built
        };
        let handle = empty_handle();
        let mut sm = MetadataStateMachine::open(&dir, Arc::clone(&handle), no_observer()).await.unwrap();
        assert_eq!(sm.applied_index(), 2);
        assert_eq!(sm.snapshot_index(), Some(2));
        let topics: Vec<String> = handle.load().topics.keys().cloned().collect();
        assert_eq!(topics, vec!["a".to_string(), "b".to_string()]);
        let current = sm.get_current_snapshot().await.unwrap().unwrap();
        assert_eq!(current.meta, built.meta);
        assert_eq!(current.snapshot, built.snapshot);

        // Installed elsewhere, the same bytes give the same metadata and position.
        let other_dir = temp_dir("sm-install");
        let other_handle = empty_handle();
        let mut other = MetadataStateMachine::open(&other_dir, Arc::clone(&other_handle), no_observer()).await.unwrap();
        other.install_snapshot(&built.meta, built.snapshot.clone()).await.unwrap();
        assert_eq!(other.applied_index(), 2);
        assert_eq!(*other_handle.load_full(), *handle.load_full());
        // Garbage is refused and changes nothing.
        assert!(other.install_snapshot(&built.meta, b"not a checkpoint".to_vec()).await.is_err());
        assert_eq!(*other_handle.load_full(), *handle.load_full());
        assert_is_snapshot_file(&other_dir);
    });
}

fn assert_is_snapshot_file(dir: &Path) {
    let bytes = std::fs::read(dir.join(super::state_machine::SNAPSHOT_FILE)).unwrap();
    assert_eq!(crate::metadata::log::scan(&bytes).frames.len(), 2, "meta frame + checkpoint frame");
}
