//! openraft itself on [`GlommioRuntime`]: a single voter initialises itself, elects itself leader
//! and applies a client write. This exercises the runtime the way openraft uses it (its core,
//! tick, state machine worker and responders as glommio tasks), not only the trait suite.
//!
//! The log store and state machine are the smallest in-memory shapes of openraft's
//! `raft-kv-memstore-single-threaded` example: `Rc<RefCell<..>>`, which `single-threaded` allows.
//! They are generic over the type config ([`MemConfig`]) so the RPC tests run three
//! `ControllerRaft` voters on the same store.

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
use openraft::entry::RaftEntry;
use openraft::{BasicNode, Config, EntryPayload, OptionalSend, RaftTypeConfig, ServerState};

use super::runtime::GlommioRuntime;

openraft::declare_raft_types!(
    /// One voter's types: string commands, the count of applied writes as the reply.
    TestConfig:
        D = String,
        R = u64,
        AsyncRuntime = GlommioRuntime,
);

/// What the in-memory store needs of a type config beyond openraft's traits: `TestConfig` here
/// and `ControllerRaft` in the RPC tests share this one store.
pub(super) trait MemConfig: RaftTypeConfig<NodeId = u64, Node = BasicNode> {
    /// The command a normal entry carries (`None` for blank and membership entries).
    fn command(entry: &EntryOf<Self>) -> Option<Self::D>;
    /// The state machine's reply once `applied` commands have been applied.
    fn reply(applied: u64) -> Self::R;
}

impl MemConfig for TestConfig {
    fn command(entry: &EntryOf<Self>) -> Option<String> {
        match &entry.payload {
            EntryPayload::Normal(command) => Some(command.clone()),
            EntryPayload::Blank | EntryPayload::Membership(_) => None,
        }
    }

    fn reply(applied: u64) -> u64 {
        applied
    }
}

/// The in-memory Raft log: entries by index, the vote and the committed id. A clone shares
/// them (openraft takes the store by value; the test keeps a clone to look inside).
pub(super) struct MemLog<C: RaftTypeConfig> {
    pub(super) entries: Rc<RefCell<BTreeMap<u64, EntryOf<C>>>>,
    pub(super) vote: Rc<RefCell<Option<VoteOf<C>>>>,
    committed: Rc<RefCell<Option<LogIdOf<C>>>>,
    last_purged: Rc<RefCell<Option<LogIdOf<C>>>>,
}

impl<C: RaftTypeConfig> Default for MemLog<C> {
    fn default() -> Self {
        MemLog {
            entries: Rc::default(),
            vote: Rc::default(),
            committed: Rc::default(),
            last_purged: Rc::default(),
        }
    }
}

impl<C: RaftTypeConfig> Clone for MemLog<C> {
    fn clone(&self) -> Self {
        MemLog {
            entries: Rc::clone(&self.entries),
            vote: Rc::clone(&self.vote),
            committed: Rc::clone(&self.committed),
            last_purged: Rc::clone(&self.last_purged),
        }
    }
}

impl<C: MemConfig> RaftLogReader<C> for MemLog<C>
where
    EntryOf<C>: Clone,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<C>>, io::Error> {
        Ok(self
            .entries
            .borrow()
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<C>>, io::Error> {
        Ok(self.vote.borrow().clone())
    }
}

impl<C: MemConfig> RaftLogStorage<C> for MemLog<C>
where
    EntryOf<C>: Clone,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, io::Error> {
        let last_purged = self.last_purged.borrow().clone();
        let last = self
            .entries
            .borrow()
            .values()
            .next_back()
            .map(|entry| entry.log_id());
        Ok(LogState {
            last_log_id: last.or_else(|| last_purged.clone()),
            last_purged_log_id: last_purged,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<C>) -> Result<(), io::Error> {
        *self.vote.borrow_mut() = Some(vote.clone());
        Ok(())
    }

    async fn save_committed(&mut self, committed: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        *self.committed.borrow_mut() = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<C>>, io::Error> {
        Ok(self.committed.borrow().clone())
    }

    async fn append<I>(&mut self, entries: I, callback: IOFlushed<C>) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<C>> + OptionalSend,
    {
        let mut log = self.entries.borrow_mut();
        for entry in entries {
            log.insert(entry.index(), entry);
        }
        // Memory is "durable" as soon as it is written.
        callback.io_completed(Ok(()));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogIdOf<C>>) -> Result<(), io::Error> {
        let first_removed = last_log_id.map_or(0, |log_id| log_id.index() + 1);
        self.entries.borrow_mut().split_off(&first_removed);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<C>) -> Result<(), io::Error> {
        let mut log = self.entries.borrow_mut();
        *log = log.split_off(&(log_id.index() + 1));
        *self.last_purged.borrow_mut() = Some(log_id);
        Ok(())
    }
}

/// The state machine: every applied command, in order, and the applied position. A snapshot is
/// the commands as JSON bytes, the shape `ControllerRaft`'s network sends. A clone shares them.
pub(super) struct MemStateMachine<C: RaftTypeConfig> {
    pub(super) applied: Rc<RefCell<Vec<C::D>>>,
    pub(super) last_applied: Rc<RefCell<Option<LogIdOf<C>>>>,
    membership: Rc<RefCell<StoredMembershipOf<C>>>,
}

impl<C: RaftTypeConfig> Default for MemStateMachine<C> {
    fn default() -> Self {
        MemStateMachine {
            applied: Rc::default(),
            last_applied: Rc::default(),
            membership: Rc::default(),
        }
    }
}

impl<C: RaftTypeConfig> Clone for MemStateMachine<C> {
    fn clone(&self) -> Self {
        MemStateMachine {
            applied: Rc::clone(&self.applied),
            last_applied: Rc::clone(&self.last_applied),
            membership: Rc::clone(&self.membership),
        }
    }
}

impl<C: MemConfig> RaftSnapshotBuilder<C> for MemStateMachine<C> {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<SnapshotOf<C, Vec<u8>>, io::Error> {
        let meta = SnapshotMetaOf::<C> {
            last_log_id: self.last_applied.borrow().clone(),
            last_membership: self.membership.borrow().clone(),
        };
        let snapshot = serde_json::to_vec(&*self.applied.borrow()).map_err(io::Error::other)?;
        Ok(SnapshotOf::<C, Vec<u8>> { meta, snapshot })
    }
}

impl<C: MemConfig> RaftStateMachine<C> for MemStateMachine<C> {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<C>>, StoredMembershipOf<C>), io::Error> {
        Ok((
            self.last_applied.borrow().clone(),
            self.membership.borrow().clone(),
        ))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<C>, io::Error>> + Unpin + OptionalSend,
    {
        while let Some((entry, responder)) = entries.try_next().await? {
            *self.last_applied.borrow_mut() = Some(entry.log_id());
            if let Some(command) = C::command(&entry) {
                self.applied.borrow_mut().push(command);
            }
            if let Some(membership) = entry.get_membership() {
                *self.membership.borrow_mut() =
                    StoredMembershipOf::<C>::new(Some(entry.log_id()), membership);
            }
            if let Some(responder) = responder {
                responder.send(C::reply(self.applied.borrow().len() as u64));
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<C>,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        *self.applied.borrow_mut() = serde_json::from_slice(&snapshot).map_err(io::Error::other)?;
        *self.last_applied.borrow_mut() = meta.last_log_id.clone();
        *self.membership.borrow_mut() = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<SnapshotOf<C, Vec<u8>>>, io::Error> {
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
    type SnapshotData = Vec<u8>;

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
        _snapshot: SnapshotOf<TestConfig, Vec<u8>>,
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
            let log = MemLog::<TestConfig>::default();
            let state_machine = MemStateMachine::<TestConfig>::default();
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
