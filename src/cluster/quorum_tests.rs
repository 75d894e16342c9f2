//! Three controller voters in one process, on the durable log and the metadata state machine:
//! they elect a leader and apply its writes, survive the leader's loss, and a node restarted from
//! its directories catches up (through a snapshot when the leader has purged its log) or
//! recovers on its own from its snapshot and the log tail after it.
//!
//! The network is a map of node id → `Raft` handle: an RPC calls the target's `append_entries`,
//! `vote` or `install_full_snapshot` directly. A node missing from the map is unreachable.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{BasicNode, Config, OptionalSend, Raft, RaftMetrics};
use openraft_rt::watch::WatchReceiver;

use super::raft_log::{RaftLogStore, raft_dir};
use super::raft_log_tests::{empty_handle, no_observer, on_executor, temp_dir, topic_records};
use super::state_machine::MetadataStateMachine;
use super::types::{ControllerCommand, ControllerRaft};
use crate::metadata::SnapshotHandle;

type C = ControllerRaft;
type NodeRaft = Raft<C, MetadataStateMachine>;
type Nodes = Rc<RefCell<BTreeMap<u64, NodeRaft>>>;

const WAIT: Option<Duration> = Some(Duration::from_secs(20));

/// The in-process network: every node's `Raft` by id.
#[derive(Clone)]
struct Net {
    nodes: Nodes,
}

/// A connection to one node of the map.
struct Conn {
    target: u64,
    nodes: Nodes,
}

impl Conn {
    /// The target's handle, cloned out of the map so no borrow is held across the call.
    fn target(&self) -> Result<NodeRaft, Unreachable<C>> {
        let found = self.nodes.borrow().get(&self.target).cloned();
        found.ok_or_else(|| unreachable(format!("node {} is down", self.target)))
    }
}

fn unreachable(why: String) -> Unreachable<C> {
    Unreachable::new(&io::Error::other(why))
}

impl RaftNetworkFactory<C> for Net {
    type Network = Conn;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Conn {
        Conn { target, nodes: Rc::clone(&self.nodes) }
    }
}

impl RaftNetworkV2<C> for Conn {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<C>, RPCError<C>> {
        let raft = self.target().map_err(RPCError::Unreachable)?;
        raft.append_entries(rpc).await.map_err(|e| RPCError::Unreachable(unreachable(e.to_string())))
    }

    async fn vote(&mut self, rpc: VoteRequest<C>, _option: RPCOption) -> Result<VoteResponse<C>, RPCError<C>> {
        let raft = self.target().map_err(RPCError::Unreachable)?;
        raft.vote(rpc).await.map_err(|e| RPCError::Unreachable(unreachable(e.to_string())))
    }

    async fn full_snapshot(
        &mut self,
        vote: VoteOf<C>,
        snapshot: SnapshotOf<C, Vec<u8>>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<C>, StreamingError<C>> {
        let raft = self.target().map_err(StreamingError::Unreachable)?;
        raft.install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::Unreachable(unreachable(e.to_string())))
    }
}

/// One voter: its Raft, its stores and the snapshot handle its shards would read.
struct Node {
    raft: NodeRaft,
    log: RaftLogStore,
    sm: MetadataStateMachine,
    handle: SnapshotHandle,
}

impl Node {
    fn topics(&self) -> Vec<String> {
        self.handle.load().topics.keys().cloned().collect()
    }
}

fn node_dir(base: &Path, id: u64) -> PathBuf {
    raft_dir(&base.join(format!("node{id}")))
}

/// Opens node `id`'s stores from its directory and builds its Raft; it is not yet reachable.
async fn start(base: &Path, id: u64, nodes: &Nodes) -> Node {
    let config = Config { heartbeat_interval: 100, election_timeout_min: 400, election_timeout_max: 800, ..Default::default() };
    let dir = node_dir(base, id);
    let log = RaftLogStore::open(&dir).await.unwrap();
    let handle = empty_handle();
    let sm = MetadataStateMachine::open(&dir, Arc::clone(&handle), no_observer()).await.unwrap();
    let net = Net { nodes: Rc::clone(nodes) };
    let raft = Raft::new(id, Arc::new(config.validate().unwrap()), net, log.clone(), sm.clone()).await.unwrap();
    Node { raft, log, sm, handle }
}

fn join(nodes: &Nodes, id: u64, node: &Node) {
    nodes.borrow_mut().insert(id, node.raft.clone());
}

async fn stop(nodes: &Nodes, id: u64, node: Node) {
    nodes.borrow_mut().remove(&id);
    node.raft.shutdown().await.unwrap();
}

async fn wait_for(node: &Node, what: &str, check: impl Fn(&RaftMetrics<C>) -> bool + 'static) -> RaftMetrics<C> {
    node.raft.wait(WAIT).metrics(check, what).await.unwrap()
}

/// Starts nodes `1..=count`, each reachable by the others, initialises `1..=voters` as the
/// quorum, and returns the nodes and the first leader.
async fn start_quorum(base: &Path, nodes: &Nodes, count: u64, voters: u64) -> (BTreeMap<u64, Node>, u64) {
    let mut up: BTreeMap<u64, Node> = BTreeMap::new();
    for id in 1..=count {
        let node = start(base, id, nodes).await;
        join(nodes, id, &node);
        up.insert(id, node);
    }
    let members: BTreeMap<u64, BasicNode> = (1..=voters).map(|id| (id, BasicNode::default())).collect();
    up[&1].raft.initialize(members).await.unwrap();
    let leader = wait_for(&up[&1], "a leader", |m| m.current_leader.is_some()).await.current_leader.unwrap();
    (up, leader)
}

async fn wait_applied(node: &Node, index: u64) {
    wait_for(node, "applied", move |m| m.last_applied.is_some_and(|l| l.index() >= index)).await;
}

/// Writes a topic through `leader` once its leadership is acknowledged by a quorum (a write is
/// refused while its lease is not; a loaded machine can delay the acks, so it tries again).
async fn write_topic(leader: &Node, name: &str) -> u64 {
    let command = ControllerCommand { records: topic_records(name) };
    for _ in 0..50 {
        leader.raft.wait(WAIT).leader_with_quorum_acked(None, "leader lease").await.unwrap();
        match leader.raft.client_write(command.clone()).await {
            Ok(written) => {
                assert_eq!(written.data.rejected, None, "the records apply");
                return written.log_id.index();
            }
            Err(e) if e.forward_to_leader().is_some() => {
                tracing::info!(error = %e, "write refused; trying again");
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("write of {name} failed: {e}"),
        }
    }
    panic!("write of {name} refused 50 times")
}

#[test]
fn three_voters_replicate_fail_over_and_restart_from_their_directories() {
    on_executor(|| async {
        let base = temp_dir("quorum");
        let nodes: Nodes = Rc::default();
        let (mut up, leader) = start_quorum(&base, &nodes, 3, 3).await;
        tracing::info!(leader, "first leader");

        // A write reaches every node's metadata.
        let first = write_topic(&up[&leader], "orders").await;
        for node in up.values() {
            wait_applied(node, first).await;
            assert_eq!(node.topics(), vec!["orders".to_string()]);
            assert_eq!(node.sm.applied_index(), first);
        }

        // The leader goes; the two left elect another and apply a second write.
        let old_leader = leader;
        stop(&nodes, old_leader, up.remove(&old_leader).unwrap()).await;
        let some = *up.keys().next().unwrap();
        let leader = wait_for(&up[&some], "a new leader", move |m| m.current_leader.is_some_and(|l| l != old_leader))
            .await
            .current_leader
            .unwrap();
        let second = write_topic(&up[&leader], "payments").await;
        for node in up.values() {
            wait_applied(node, second).await;
            assert_eq!(node.topics(), vec!["orders".to_string(), "payments".to_string()]);
        }

        // Both survivors snapshot and purge their logs: the restarted node can only catch up
        // through the leader's snapshot.
        for node in up.values() {
            node.raft.trigger().snapshot().await.unwrap();
            wait_for(node, "snapshot", move |m| m.snapshot.is_some_and(|s| s.index() >= second)).await;
            node.raft.trigger().purge_log(second).await.unwrap();
            wait_for(node, "purged", move |m| m.purged.is_some_and(|p| p.index() >= second)).await;
            assert_eq!(node.log.purged().map(|p| p.index()), Some(second));
            assert!(node.sm.snapshot_index() >= Some(second));
        }

        let node = start(&base, old_leader, &nodes).await;
        assert_eq!(node.topics(), vec!["orders".to_string()], "it starts from its own log");
        join(&nodes, old_leader, &node);
        up.insert(old_leader, node);
        wait_applied(&up[&old_leader], second).await;
        assert_eq!(up[&old_leader].topics(), vec!["orders".to_string(), "payments".to_string()]);
        assert!(up[&old_leader].sm.snapshot_index() >= Some(second), "it caught up through an installed snapshot");

        // A third write, then a follower restarts: its snapshot plus the log tail after it give
        // all three topics before it hears from the leader again.
        let third = write_topic(&up[&leader], "audit").await;
        for node in up.values() {
            wait_applied(node, third).await;
        }
        let follower = *up.keys().find(|&&id| id != leader).unwrap();
        let before = up[&follower].topics();
        assert_eq!(before.len(), 3);
        stop(&nodes, follower, up.remove(&follower).unwrap()).await;
        let node = start(&base, follower, &nodes).await;
        assert!(node.sm.snapshot_index() >= Some(second), "it started from its snapshot");
        assert!(node.sm.snapshot_index() < Some(third), "and needed the log tail after it");
        assert_eq!(node.topics(), before, "snapshot + committed log tail, applied locally");
        assert!(node.sm.applied_index() >= third);
        join(&nodes, follower, &node);
        up.insert(follower, node);
        let fourth = write_topic(&up[&leader], "billing").await;
        for node in up.values() {
            wait_applied(node, fourth).await;
            assert_eq!(node.topics().len(), 4);
        }

        for (id, node) in std::mem::take(&mut up) {
            stop(&nodes, id, node).await;
        }
    });
}

/// The learner's address as the membership in `node`'s metrics has it.
fn learner_addr(m: &RaftMetrics<C>, id: u64) -> Option<String> {
    m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())
}

#[test]
fn a_learner_follows_the_log_never_campaigns_and_keeps_its_membership_across_restarts() {
    on_executor(|| async {
        let base = temp_dir("learner");
        let nodes: Nodes = Rc::default();
        // Nodes 1-3 are the voters; 4 is a broker-only node, added as a learner (as AddLearner does).
        let (mut up, leader) = start_quorum(&base, &nodes, 4, 3).await;
        // Added once the leader has committed in its term (before, the initial membership is
        // still uncommitted and openraft refuses a change: InProgress), after a first write it
        // then catches up on.
        let first = write_topic(&up[&leader], "orders").await;
        up[&leader].raft.add_learner(4, BasicNode::new("a:1"), false).await.unwrap();
        wait_applied(&up[&4], first).await;
        assert_eq!(up[&4].topics(), vec!["orders".to_string()], "the learner's image applies the log");
        let m = up[&4].raft.metrics().borrow_watched().clone();
        assert_eq!(m.state, openraft::ServerState::Learner);
        assert_eq!(m.membership_config.membership().voter_ids().collect::<Vec<_>>(), vec![1, 2, 3]);

        // openraft's AddNodes keeps a known node's old address (so Controller::add_learner
        // writes SetNodes when a learner moved): re-adding writes an entry and changes nothing.
        up[&leader].raft.add_learner(4, BasicNode::new("b:2"), false).await.unwrap();
        assert_eq!(learner_addr(&up[&leader].raft.metrics().borrow_watched(), 4).as_deref(), Some("a:1"));
        let set = openraft::ChangeMembers::SetNodes(BTreeMap::from([(4, BasicNode::new("b:2"))]));
        up[&leader].raft.change_membership(set, true).await.unwrap();
        let moved = wait_for(&up[&4], "the moved address", |m| learner_addr(m, 4).as_deref() == Some("b:2")).await;
        assert_eq!(moved.membership_config.membership().voter_ids().collect::<Vec<_>>(), vec![1, 2, 3], "still a learner");

        // The leader goes: a voter takes over (the learner never campaigns) and its writes reach the learner.
        let old_leader = leader;
        stop(&nodes, old_leader, up.remove(&old_leader).unwrap()).await;
        let leader = wait_for(&up[&4], "a new leader", move |m| m.current_leader.is_some_and(|l| l != old_leader))
            .await
            .current_leader
            .unwrap();
        assert_ne!(leader, 4, "a learner never leads");
        let second = write_topic(&up[&leader], "payments").await;
        wait_applied(&up[&4], second).await;
        assert_eq!(up[&4].raft.metrics().borrow_watched().state, openraft::ServerState::Learner);

        // Restarted from its directory, the learner keeps its id and its membership, and follows on.
        stop(&nodes, 4, up.remove(&4).unwrap()).await;
        let node = start(&base, 4, &nodes).await;
        assert_eq!(node.topics(), vec!["orders".to_string(), "payments".to_string()]);
        assert_eq!(learner_addr(&node.raft.metrics().borrow_watched(), 4).as_deref(), Some("b:2"), "its membership is in its own log");
        join(&nodes, 4, &node);
        up.insert(4, node);
        let third = write_topic(&up[&leader], "audit").await;
        wait_applied(&up[&4], third).await;
        assert_eq!(up[&4].topics().len(), 3);

        for (id, node) in std::mem::take(&mut up) {
            stop(&nodes, id, node).await;
        }
    });
}
