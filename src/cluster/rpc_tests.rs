//! The controller RPC transport end to end: three `ControllerRaft` voters, each on its own glommio
//! executor thread and its own 127.0.0.1 port, talking through [`super::rpc`] only.
//!
//! Each node runs the shared in-memory store of `raft_tests` and a stub [`AppHandler`]; the test
//! thread drives it through a command channel (a Raft handle is `!Send` and stays on its thread).

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::net::TcpListener;
use openraft::error::{RPCError, ReplicationClosed};
use openraft::network::{RPCOption, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::VoteRequest;
use openraft::type_config::alias::{EntryOf, SnapshotOf, VoteOf};
use openraft::{BasicNode, Config, EntryPayload, ServerState};
use openraft_rt::watch::WatchReceiver;
use tokio::sync::{mpsc, oneshot};

use super::raft_tests::{MemConfig, MemLog, MemStateMachine};
use super::rpc::frame::{Frame, FrameKind, read_frame, write_frame};
use super::rpc::{AppHandler, DEFAULT_CONNECT_TIMEOUT, RaftEndpoint, RaftNetwork, RpcClient, RpcError, serve};
use crate::metadata::{MetadataMutation, MetadataRecord, TopicRecord};
use super::types::{AppRequest, AppResponse, BrokerHeartbeat, ControllerCommand, ControllerRaft, ControllerReply, HeartbeatReply, RaftRequest};

/// How long the test waits for an election or a replicated write on a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(20);

impl MemConfig for ControllerRaft {
    fn command(entry: &EntryOf<Self>) -> Option<ControllerCommand> {
        match &entry.payload {
            EntryPayload::Normal(command) => Some(command.clone()),
            EntryPayload::Blank | EntryPayload::Membership(_) => None,
        }
    }

    fn reply(_applied: u64) -> ControllerReply {
        ControllerReply::default()
    }
}

/// A controller stand-in whose answers depend on the request, so a round trip is checkable.
struct StubController {
    node: u64,
}

impl AppHandler for StubController {
    fn handle(&self, request: AppRequest) -> Pin<Box<dyn Future<Output = AppResponse>>> {
        let response = match request {
            AppRequest::Heartbeat(heartbeat) => AppResponse::Heartbeat(HeartbeatReply {
                fenced: heartbeat.applied_index < 10,
                unknown: heartbeat.broker_id != 7,
            }),
            AppRequest::Mutate(_) => AppResponse::NotController { leader: Some(self.node) },
            AppRequest::AddLearner { .. } => AppResponse::LearnerAdded(Ok(())),
        };
        Box::pin(async move { response })
    }
}

/// What the test thread asks a node's thread to do.
enum Command {
    Initialize(BTreeMap<u64, BasicNode>, oneshot::Sender<Result<(), String>>),
    Status(oneshot::Sender<Status>),
    Write(ControllerCommand, oneshot::Sender<Result<(), String>>),
    /// `raft.shutdown()`, with the server left answering (openraft#1357's situation).
    ShutdownRaft(oneshot::Sender<()>),
    /// Ends the executor: the listener and every connection close.
    Stop,
}

/// A node as the test thread sees it.
#[derive(Debug, Clone)]
struct Status {
    state: ServerState,
    leader: Option<u64>,
    applied: Vec<ControllerCommand>,
}

struct Node {
    id: u64,
    addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    thread: std::cell::Cell<Option<glommio::ExecutorJoinHandle<()>>>,
}

impl Node {
    fn start(id: u64) -> Node {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (commands, inbox) = mpsc::unbounded_channel();
        let thread = glommio::LocalExecutorBuilder::default()
            .name(&format!("raft-node-{id}"))
            .spawn(move || run_node(id, ready_tx, inbox))
            .unwrap();
        let addr = ready_rx.recv_timeout(SETTLE).unwrap();
        Node { id, addr, commands, thread: std::cell::Cell::new(Some(thread)) }
    }

    fn ask<T>(&self, command: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (tx, rx) = oneshot::channel();
        self.commands.send(command(tx)).unwrap();
        rx.blocking_recv().unwrap()
    }

    fn status(&self) -> Status {
        self.ask(Command::Status)
    }

    fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn run_node(id: u64, ready: std::sync::mpsc::Sender<SocketAddr>, mut inbox: mpsc::UnboundedReceiver<Command>) {
    let config = Config {
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        ..Default::default()
    };
    let config = Arc::new(config.validate().unwrap());
    let state_machine = MemStateMachine::<ControllerRaft>::default();
    let network = RaftNetwork::new(id, DEFAULT_CONNECT_TIMEOUT);
    let raft = openraft::Raft::<ControllerRaft, _>::new(id, config, network, MemLog::default(), state_machine.clone()).await.unwrap();
    let raft = Rc::new(raft);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    ready.send(listener.local_addr().unwrap()).unwrap();
    let endpoint: Rc<dyn RaftEndpoint> = raft.clone();
    // Kept, not detached: dropping it at the end closes the listening socket.
    let _server = glommio::spawn_local(serve(listener, endpoint, Rc::new(StubController { node: id })));
    while let Some(command) = inbox.recv().await {
        match command {
            Command::Initialize(members, reply) => {
                let _ = reply.send(raft.initialize(members).await.map_err(|e| e.to_string()));
            }
            Command::Status(reply) => {
                let metrics = raft.metrics().borrow_watched().clone();
                let applied = state_machine.applied.borrow().clone();
                let _ = reply.send(Status { state: metrics.state, leader: metrics.current_leader, applied });
            }
            Command::Write(command, reply) => {
                let _ = reply.send(raft.client_write(command).await.map(|_| ()).map_err(|e| e.to_string()));
            }
            Command::ShutdownRaft(reply) => {
                raft.shutdown().await.unwrap();
                let _ = reply.send(());
            }
            Command::Stop => break,
        }
    }
    let _ = raft.shutdown().await;
}

/// Polls until `done` holds for the statuses of `nodes`, or panics with the last ones.
fn wait_for(nodes: &[&Node], what: &str, done: impl Fn(&[Status]) -> bool) -> Vec<Status> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let statuses: Vec<Status> = nodes.iter().map(|node| node.status()).collect();
        if done(&statuses) {
            return statuses;
        }
        assert!(Instant::now() < deadline, "{what}: not within {SETTLE:?}; statuses {statuses:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The leader all of `nodes` agree on, once they do and it is one of them.
fn agreed_leader(nodes: &[&Node]) -> u64 {
    let ids: Vec<u64> = nodes.iter().map(|node| node.id).collect();
    let statuses = wait_for(nodes, "a leader all agree on", |statuses| {
        let leader = statuses[0].leader;
        leader.is_some_and(|id| ids.contains(&id)) && statuses.iter().all(|status| status.leader == leader)
    });
    let leader = statuses[0].leader.unwrap();
    let index = ids.iter().position(|&id| id == leader).unwrap();
    assert_eq!(statuses[index].state, ServerState::Leader);
    leader
}

/// A one-record command that creates topic `name`, so each write is told apart on apply.
fn command(name: &str) -> ControllerCommand {
    let topic = TopicRecord { name: name.to_owned(), topic_id: uuid::Uuid::new_v4() };
    ControllerCommand { records: vec![MetadataRecord::Topic(topic)] }
}

/// Runs `body` on a fresh glommio executor thread (RpcClient needs one) and returns its output.
fn on_executor<T: Send + 'static, F: Future<Output = T> + 'static>(body: impl FnOnce() -> F + Send + 'static) -> T {
    glommio::LocalExecutorBuilder::default().spawn(body).unwrap().join().unwrap()
}

fn vote_request(term: u64, candidate: u64) -> VoteRequest<ControllerRaft> {
    VoteRequest::new(VoteOf::<ControllerRaft>::new(term, candidate), None)
}

#[test]
fn three_voters_elect_replicate_and_survive_the_loss_of_one_over_tcp() {
    let nodes: Vec<Node> = (1..=3).map(Node::start).collect();
    let members: BTreeMap<u64, BasicNode> = nodes.iter().map(|node| (node.id, BasicNode::new(node.addr.to_string()))).collect();
    nodes[0].ask(|reply| Command::Initialize(members, reply)).unwrap();

    // An election over TCP, then a write through the leader applied on all three.
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = agreed_leader(&all);
    let first = command("create topic orders");
    nodes[leader as usize - 1].ask(|reply| Command::Write(first.clone(), reply)).unwrap();
    wait_for(&all, "the first write applied everywhere", |statuses| statuses.iter().all(|status| status.applied == [first.clone()]));

    // A broker request round-trips through the stub controller of node 2.
    let node2 = nodes[1].addr.to_string();
    let (heartbeat, mutate) = on_executor(move || async move {
        let client = RpcClient::new(node2, DEFAULT_CONNECT_TIMEOUT);
        let heartbeat = BrokerHeartbeat { broker_id: 7, incarnation_id: uuid::Uuid::new_v4(), applied_index: 3 };
        let heartbeat = client.call_app(AppRequest::Heartbeat(heartbeat), Duration::from_secs(5)).await.unwrap();
        let mutate = client
            .call_app(AppRequest::Mutate(MetadataMutation::DeleteTopic { name: "t".into() }), Duration::from_secs(5))
            .await
            .unwrap();
        (heartbeat, mutate)
    });
    assert!(matches!(heartbeat, AppResponse::Heartbeat(HeartbeatReply { fenced: true, unknown: false })), "{heartbeat:?}");
    assert!(matches!(mutate, AppResponse::NotController { leader: Some(2) }), "{mutate:?}");

    // A full snapshot from a stale leader (term 0) crosses in one frame and is turned down with
    // the receiver's newer vote; nothing is installed (the survivors' check below sees every write).
    let node3 = nodes[2].addr.to_string();
    let (sent, answered) = on_executor(move || async move {
        let mut network = RaftNetwork::new(9, DEFAULT_CONNECT_TIMEOUT);
        let mut peer = network.new_client(3, &BasicNode::new(node3)).await;
        let stale = VoteOf::<ControllerRaft>::new_committed(0, 9);
        let snapshot = SnapshotOf::<ControllerRaft, Vec<u8>> { meta: Default::default(), snapshot: b"[]".to_vec() };
        let never_closed = std::future::pending::<ReplicationClosed>();
        let answered = peer.full_snapshot(stale, snapshot, never_closed, RPCOption::new(Duration::from_secs(5))).await;
        (stale, answered.map(|response| response.vote))
    });
    let answered = answered.unwrap();
    assert!(answered > sent, "the receiver answers with its own, newer vote: {answered:?}");

    // The leader's Raft stops while its server still answers: peers get an error reply, no panic,
    // and the other two elect a new leader and go on writing.
    let old = leader as usize - 1;
    nodes[old].ask(Command::ShutdownRaft);
    let stopped_addr = nodes[old].addr.to_string();
    let refused = on_executor(move || async move {
        RpcClient::new(stopped_addr, DEFAULT_CONNECT_TIMEOUT).call_raft(RaftRequest::Vote(vote_request(99, 9)), Duration::from_secs(5)).await
    });
    assert!(matches!(refused, Err(RpcError::Remote { .. })), "{refused:?}");
    let survivors: Vec<&Node> = nodes.iter().filter(|node| node.id != leader).collect();
    let new_leader = agreed_leader(&survivors);
    assert_ne!(new_leader, leader);
    let second = command("create topic payments");
    nodes[new_leader as usize - 1].ask(|reply| Command::Write(second.clone(), reply)).unwrap();
    wait_for(&survivors, "the second write applied on the two survivors", |statuses| {
        statuses.iter().all(|status| status.applied == [first.clone(), second.clone()])
    });

    // Its executor stops. The listening socket goes with the executor's io_uring, whose teardown
    // the kernel finishes a little later, so the address refuses connections soon, not at once.
    nodes[old].stop();
    let stopped = nodes[old].addr.to_string();
    let outcome = on_executor(move || async move {
        let mut network = RaftNetwork::new(9, DEFAULT_CONNECT_TIMEOUT);
        let mut peer = network.new_client(leader, &BasicNode::new(stopped)).await;
        let deadline = Instant::now() + SETTLE;
        loop {
            let outcome = peer.vote(vote_request(99, 9), RPCOption::new(Duration::from_secs(1))).await.map(|_| ());
            if matches!(outcome, Err(RPCError::Unreachable(_))) || Instant::now() > deadline {
                return outcome;
            }
            glommio::timer::sleep(Duration::from_millis(50)).await;
        }
    });
    assert!(matches!(outcome, Err(RPCError::Unreachable(_))), "{outcome:?}");

    // A dead address (a port just closed) fails at once, as Unreachable to openraft and as a
    // connect error to a broker.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let (outcome, took, app_outcome) = on_executor(move || async move {
        let mut network = RaftNetwork::new(9, DEFAULT_CONNECT_TIMEOUT);
        let mut peer = network.new_client(leader, &BasicNode::new(dead.clone())).await;
        let started = Instant::now();
        let outcome = peer.vote(vote_request(99, 9), RPCOption::new(Duration::from_secs(5))).await;
        let took = started.elapsed();
        let app = RpcClient::new(dead, DEFAULT_CONNECT_TIMEOUT)
            .call_app(AppRequest::Mutate(MetadataMutation::DeleteTopic { name: "t".into() }), Duration::from_secs(5))
            .await;
        (outcome.map(|_| ()), took, app.map(|_| ()))
    });
    assert!(matches!(outcome, Err(RPCError::Unreachable(_))), "{outcome:?}");
    assert!(took < Duration::from_secs(1), "a refused connection fails fast, took {took:?}");
    assert!(matches!(app_outcome, Err(RpcError::Connect { .. })), "{app_outcome:?}");

    // The survivors still agree after the dead node's address went away.
    assert_eq!(agreed_leader(&survivors), new_leader);
}

#[test]
fn a_silent_peer_times_out_and_a_broken_connection_is_replaced_on_the_next_call() {
    // Connected (the kernel's backlog accepts) but never answered: openraft sees a Timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let (outcome, took) = on_executor(move || async move {
        let mut network = RaftNetwork::new(1, DEFAULT_CONNECT_TIMEOUT);
        let mut peer = network.new_client(2, &BasicNode::new(silent_addr)).await;
        let started = Instant::now();
        let outcome = peer.vote(vote_request(3, 1), RPCOption::new(Duration::from_millis(300))).await;
        (outcome.map(|_| ()), started.elapsed())
    });
    drop(silent);
    match outcome {
        Err(RPCError::Timeout(timeout)) => {
            assert_eq!((timeout.id, timeout.target, timeout.timeout), (1, 2, Duration::from_millis(300)));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(3), "took {took:?}");

    // A server that answers one request per connection and then hangs up: the call that finds the
    // connection closed fails as an I/O error, and the call after it reconnects and succeeds.
    let outcomes = on_executor(|| async {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let _server = glommio::spawn_local(async move {
            loop {
                let mut stream = listener.accept().await.unwrap();
                let request = read_frame(&mut stream).await.unwrap().unwrap();
                let reply = AppResponse::NotController { leader: Some(request.request_id) };
                let reply = Frame::encode(request.request_id, FrameKind::AppResponse, &reply).unwrap();
                write_frame(&mut stream, &reply).await.unwrap();
            }
        });
        let client = RpcClient::new(addr, DEFAULT_CONNECT_TIMEOUT);
        let heartbeat = || AppRequest::Heartbeat(BrokerHeartbeat { broker_id: 1, incarnation_id: uuid::Uuid::nil(), applied_index: 0 });
        let mut outcomes = Vec::new();
        for _ in 0..3 {
            outcomes.push(client.call_app(heartbeat(), Duration::from_secs(5)).await);
        }
        outcomes
    });
    assert!(matches!(outcomes[0], Ok(AppResponse::NotController { leader: Some(1) })), "{:?}", outcomes[0]);
    assert!(matches!(outcomes[1], Err(RpcError::Io { .. })), "{:?}", outcomes[1]);
    // Request ids keep counting across connections.
    assert!(matches!(outcomes[2], Ok(AppResponse::NotController { leader: Some(3) })), "{:?}", outcomes[2]);
}
