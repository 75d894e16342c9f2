//! openraft itself on [`GlommioRuntime`]: a single voter initialises itself, elects itself leader
//! and applies a client write. This exercises the runtime the way openraft uses it (its core,
//! tick, state machine worker and responders as glommio tasks), not only the trait suite.
//!
//! The log store and state machine are the smallest in-memory shapes of openraft's
//! `raft-kv-memstore-single-threaded` example: `Rc<RefCell<..>>`, which `single-threaded` allows.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::{
    EntryResponder, IOFlushed, LogState, RaftLogReader, RaftLogStorage, RaftSnapshotBuilder,
    RaftStateMachine,
};
use openraft::type_config::alias::{
    EntryOf, LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf, VoteOf,
};
use openraft::{BasicNode, Config, EntryPayload, OptionalSend, ServerState};

use super::runtime::GlommioRuntime;

openraft::declare_raft_types!(
    /// One voter's types: string commands, the count of applied writes as the reply.
    TestConfig:
        D = String,
        R = u64,
        AsyncRuntime = GlommioRuntime,
);

/// The in-memory Raft log: entries by index, the vote and the committed id.
#[derive(Default)]
struct MemLog {
    entries: RefCell<BTreeMap<u64, EntryOf<TestConfig>>>,
    vote: RefCell<Option<VoteOf<TestConfig>>>,
    committed: RefCell<Option<LogIdOf<TestConfig>>>,
    last_purged: RefCell<Option<LogIdOf<TestConfig>>>,
}

impl RaftLogReader<TestConfig> for Rc<MemLog> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TestConfig>>, io::Error> {
        Ok(self
            .entries
            .borrow()
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TestConfig>>, io::Error> {
        Ok(*self.vote.borrow())
    }
}

impl RaftLogStorage<TestConfig> for Rc<MemLog> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TestConfig>, io::Error> {
        let last_purged = *self.last_purged.borrow();
        let last = self
            .entries
            .borrow()
            .values()
            .next_back()
            .map(|entry| entry.log_id);
        Ok(LogState {
            last_purged_log_id: last_purged,
            last_log_id: last.or(last_purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TestConfig>) -> Result<(), io::Error> {
        *self.vote.borrow_mut() = Some(*vote);
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TestConfig>>,
    ) -> Result<(), io::Error> {
        *self.committed.borrow_mut() = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TestConfig>>, io::Error> {
        Ok(*self.committed.borrow())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TestConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TestConfig>> + OptionalSend,
    {
        let mut log = self.entries.borrow_mut();
        for entry in entries {
            log.insert(entry.log_id.index(), entry);
        }
        // Memory is "durable" as soon as it is written.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TestConfig>>,
    ) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        self.entries.borrow_mut().split_off(&first_removed);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<TestConfig>) -> Result<(), io::Error> {
        let mut log = self.entries.borrow_mut();
        *log = log.split_off(&(log_id.index() + 1));
        *self.last_purged.borrow_mut() = Some(log_id);
        Ok(())
    }
}

/// The state machine: every applied command, in order, and the applied position.
#[derive(Default)]
struct MemStateMachine {
    applied: RefCell<Vec<String>>,
    last_applied: RefCell<Option<LogIdOf<TestConfig>>>,
    membership: RefCell<StoredMembershipOf<TestConfig>>,
}

impl RaftSnapshotBuilder<TestConfig> for Rc<MemStateMachine> {
    type SnapshotData = Vec<String>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<TestConfig, Vec<String>>, io::Error> {
        let meta = SnapshotMetaOf::<TestConfig> {
            last_log_id: *self.last_applied.borrow(),
            last_membership: self.membership.borrow().clone(),
        };
        Ok(SnapshotOf::<TestConfig, Vec<String>> {
            meta,
            snapshot: self.applied.borrow().clone(),
        })
    }
}

impl RaftStateMachine<TestConfig> for Rc<MemStateMachine> {
    type SnapshotData = Vec<String>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TestConfig>>, StoredMembershipOf<TestConfig>), io::Error> {
        Ok((
            *self.last_applied.borrow(),
            self.membership.borrow().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TestConfig>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            *self.last_applied.borrow_mut() = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(command) => self.applied.borrow_mut().push(command),
                EntryPayload::Membership(membership) => {
                    *self.membership.borrow_mut() =
                        StoredMembershipOf::<TestConfig>::new(Some(entry.log_id), membership);
                }
            }
            if let Some(responder) = responder {
                responder.send(self.applied.borrow().len() as u64);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TestConfig>,
        snapshot: Vec<String>,
    ) -> Result<(), io::Error> {
        *self.applied.borrow_mut() = snapshot;
        *self.last_applied.borrow_mut() = meta.last_log_id;
        *self.membership.borrow_mut() = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TestConfig, Vec<String>>>, io::Error> {
        Ok(None)
    }
}

/// A network with no peers: a single voter never sends an RPC, so every call is a failure.
struct NoPeers;

fn unreachable() -> Unreachable<TestConfig> {
    Unreachable::new(&io::Error::other("a single-voter test has no peers"))
}

impl RaftNetworkFactory<TestConfig> for NoPeers {
    type Network = NoPeers;

    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoPeers {
        NoPeers
    }
}

impl RaftNetworkV2<TestConfig> for NoPeers {
    type SnapshotData = Vec<String>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TestConfig>, RPCError<TestConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TestConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TestConfig>, RPCError<TestConfig>> {
        Err(RPCError::Unreachable(unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: VoteOf<TestConfig>,
        _snapshot: SnapshotOf<TestConfig, Vec<String>>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TestConfig>, StreamingError<TestConfig>> {
        Err(StreamingError::Unreachable(unreachable()))
    }
}

#[test]
fn a_single_voter_elects_itself_and_applies_a_client_write() {
    glommio::LocalExecutorBuilder::default()
        .spawn(|| async {
            let config = Config {
                heartbeat_interval: 50,
                election_timeout_min: 150,
                election_timeout_max: 300,
                ..Default::default()
            };
            let config = Arc::new(config.validate().unwrap());
            let log = Rc::new(MemLog::default());
            let state_machine = Rc::new(MemStateMachine::default());
            let raft = openraft::Raft::<TestConfig, _>::new(
                1,
                config,
                NoPeers,
                log.clone(),
                state_machine.clone(),
            )
            .await
            .unwrap();

            raft.initialize(BTreeMap::from([(1u64, BasicNode::default())]))
                .await
                .unwrap();
            raft.wait(Some(Duration::from_secs(5)))
                .state(ServerState::Leader, "node 1 leads its one-node cluster")
                .await
                .unwrap();

            let written = raft
                .client_write("create topic orders".to_owned())
                .await
                .unwrap();
            assert_eq!(written.data, 1, "the reply comes from the state machine");
            assert_eq!(
                *state_machine.applied.borrow(),
                vec!["create topic orders".to_owned()]
            );
            assert_eq!(*state_machine.last_applied.borrow(), Some(written.log_id));
            assert!(log.entries.borrow().contains_key(&written.log_id.index()));
            assert!(
                log.vote.borrow().is_some(),
                "the election's vote was persisted"
            );

            raft.shutdown().await.unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
}
