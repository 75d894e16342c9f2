//! The controller of a multi-node cluster, on shard 0 of every node: openraft over the metadata
//! records, the broker's registration and heartbeats, and (on the Raft leader, the active
//! controller) the broker sessions that fence a silent broker.
//!
//! ```text
//!  client mutation ─► Controller::mutate ─► leader here? ─► plan ─► raft.client_write ─► applied on every node
//!                                          └► no: forward (RPC) to the leader, wait until applied here too
//!  heartbeat loop ──► the active controller ─► session expired? ─► FenceBroker (leaders move, epochs bump)
//! ```
//!
//! Voters (combined or controller-only nodes) run it as members of the quorum; a broker-only node
//! runs it as an openraft learner that asks to be added (`controller/learner.rs`). A controller-only node
//! never runs [`Controller::run_broker`].
//!
//! openraft runs in a glommio task queue of its own (openraft #1403: its heartbeats must not
//! starve behind the shard's data-plane work), and never sees a `RefCell` borrow across an await.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::{BasicNode, ServerState};

mod learner;
pub use learner::QuorumRole;
use openraft_rt::watch::WatchReceiver;

use super::liveness::PeerRefusals;
use super::raft_log::RaftLogStore;
use super::rpc::{AppHandler, RaftNetwork, RpcClient};
use super::state_machine::{AppliedObserver, MetadataStateMachine};
use super::types::{
    AppRequest, AppResponse, BrokerHeartbeat, ControllerCommand, ControllerRaft, HeartbeatReply, RemoteError,
    RemoteOutcome,
};
use crate::codes::ErrorCode;
use crate::config::BrokerConfig;
use crate::config::dynamic::{DynamicLayers, effective_topic_defaults};
use crate::metadata::mutation::{PlanContext, plan};
use crate::metadata::{BrokerRegistration, MetadataError, MetadataMutation, MutationOutcome, MutationResult, SnapshotHandle};

/// The active controller's node id as this process last saw it (-1: none known). One
/// controller runs per process; the protocol handlers of every shard read it for Metadata and
/// DescribeCluster.
static ACTIVE_CONTROLLER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The active controller's node id, when this process runs a controller and knows it.
pub fn active_controller_id() -> Option<i32> {
    let id = ACTIVE_CONTROLLER.load(std::sync::atomic::Ordering::Relaxed);
    (id >= 0).then_some(id)
}

/// The node id Metadata and DescribeCluster report as the controller: the active controller when
/// it is a live broker, else this broker (Kafka 4 reports a live broker too, since clients cannot
/// reach a controller-only node and a broker forwards their admin requests).
pub fn controller_id_for_clients(snapshot: &crate::metadata::ClusterSnapshot, me: i32) -> i32 {
    active_controller_id().filter(|id| snapshot.is_unfenced(*id)).unwrap_or(me)
}

/// The Raft handle of a node.
pub type ControllerRaftHandle = openraft::Raft<ControllerRaft, MetadataStateMachine>;

/// How long a mutation waits for an active controller before it gives up.
const CONTROLLER_WAIT: Duration = Duration::from_secs(30);
/// Retry pace while no leader is known or the leader does not answer.
const RETRY: Duration = Duration::from_millis(100);
/// A gap this long between two session checks means this node itself did not run.
const STALL: Duration = Duration::from_millis(1000);
/// The longest one RPC to the active controller may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the controller could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControllerError {
    /// The Raft directories or the RPC listener.
    #[error("controller i/o: {0}")]
    Io(#[from] std::io::Error),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// The controller of this node (shard 0). `!Send`.
pub struct Controller {
    me: i32,
    raft: ControllerRaftHandle,
    state_machine: MetadataStateMachine,
    handle: SnapshotHandle,
    config: Arc<BrokerConfig>,
    /// RPC clients to the other voters, by node id (`controller.quorum.voters`, then the
    /// membership's addresses as [`Controller::peer`] learns them).
    peers: RefCell<HashMap<u64, Rc<RpcClient>>>,
    /// Active controller only: when each broker last sent a heartbeat.
    heartbeats: RefCell<HashMap<i32, Instant>>,
    /// Active controller only: the nodes whose ports closed (`liveness`), fenced at once.
    refusals: Rc<PeerRefusals>,
    /// A follower probing its silent leader's port: one probe at a time, however many of the
    /// leader's connections closed.
    probing_leader: Cell<bool>,
    /// Active controller only: since when this node leads (brokers get a session's grace).
    leading_since: Cell<Option<Instant>>,
    /// Active controller only: brokers whose fence or unfence is being written.
    changing: RefCell<HashSet<i32>>,
    /// Producer ids of the reserved block not yet handed out (active controller).
    producer_ids: RefCell<Range<i64>>,
    /// One mutation at a time, from planning to the applied write.
    turn: glommio::sync::Semaphore,
    /// This controller, for the tasks it spawns.
    this: std::rc::Weak<Controller>,
}

impl Controller {
    /// Opens the Raft log and state machine under `<data_dir>/meta/raft`, starts openraft in its
    /// own task queue and the RPC server on `listener` (bound by the caller); a voter initialises the quorum on a new
    /// cluster, a learner asks the quorum to add it ([`QuorumRole`]).
    pub async fn start(
        config: Arc<BrokerConfig>,
        handle: SnapshotHandle,
        listener: glommio::net::TcpListener,
        observer: AppliedObserver,
        role: QuorumRole,
    ) -> Result<Rc<Controller>, ControllerError> {
        let dir = config.data_dir.join("meta").join("raft");
        std::fs::create_dir_all(&dir)?;
        let log = RaftLogStore::open(&dir).await?;
        let state_machine = MetadataStateMachine::open(&dir, Arc::clone(&handle), observer).await?;
        // A follower that hears nothing from the leader for `controller.quorum.fetch.timeout.ms`
        // campaigns; openraft's leader lease (votes refused meanwhile) is the same span.
        let fetch_timeout = config.cluster.quorum_fetch_timeout_ms.max(100);
        let raft_config = openraft::Config {
            cluster_name: "ringlog".into(),
            heartbeat_interval: (fetch_timeout / 10).clamp(20, 150),
            election_timeout_min: fetch_timeout / 2,
            election_timeout_max: fetch_timeout,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(crate::metadata::store::CHECKPOINT_EVERY_RECORDS),
            ..Default::default()
        };
        let raft_config = Arc::new(raft_config.validate().map_err(|e| ControllerError::Raft(e.to_string()))?);
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(1000),
            glommio::Latency::Matters(Duration::from_millis(5)),
            "controller",
        );
        let me = config.node_id;
        let sm = state_machine.clone();
        let network = RaftNetwork::new(me as u64, super::rpc::DEFAULT_CONNECT_TIMEOUT);
        let refusals = network.refusals();
        let raft = glommio::spawn_local_into(
            async move { openraft::Raft::new(me as u64, raft_config, network, log, sm).await },
            queue,
        )
        .map_err(|e| ControllerError::Raft(e.to_string()))?
        .await
        .map_err(|e| ControllerError::Raft(e.to_string()))?;
        let voters: BTreeMap<u64, BasicNode> = config
            .cluster
            .voters
            .iter()
            .map(|v| (v.id as u64, BasicNode::new(format!("{}:{}", v.host, v.port))))
            .collect();
        let peers = voters
            .iter()
            .filter(|(id, _)| **id != me as u64)
            .map(|(id, node)| (*id, Rc::new(RpcClient::new(node.addr.clone(), super::rpc::DEFAULT_CONNECT_TIMEOUT))))
            .collect();
        let controller = Rc::new_cyclic(|this| Controller {
            me,
            raft,
            state_machine,
            handle,
            config: Arc::clone(&config),
            peers: RefCell::new(peers),
            heartbeats: RefCell::new(HashMap::new()),
            refusals,
            probing_leader: Cell::new(false),
            leading_since: Cell::new(None),
            changing: RefCell::new(HashSet::new()),
            producer_ids: RefCell::new(0..0),
            turn: glommio::sync::Semaphore::new(1),
            this: this.clone(),
        });
        let bound = listener.local_addr().map_err(|e| std::io::Error::other(e.to_string()))?;
        tracing::info!(node_id = me, listen = %bound, voters = voters.len(), learner = role != QuorumRole::Voter, "controller listening");
        let app: Rc<dyn AppHandler> = Rc::clone(&controller) as Rc<dyn AppHandler>;
        let endpoint: Rc<dyn super::rpc::RaftEndpoint> = Rc::new(controller.raft.clone());
        glommio::spawn_local_into(super::rpc::serve(listener, endpoint, app), queue)
            .map_err(|e| ControllerError::Raft(e.to_string()))?
            .detach();
        if let Some(addr) = role.announced_addr(bound) {
            glommio::spawn_local_into(Rc::clone(&controller).join_as_learner(addr), queue)
                .map_err(|e| ControllerError::Raft(e.to_string()))?
                .detach();
        } else if let Err(e) = controller.raft.initialize(voters).await {
            // Every voter of a new cluster proposes the same voters; openraft keeps the first
            // and refuses the rest (NotAllowed), which is why a refusal here is not an error.
            tracing::debug!(node_id = me, error = %e, "quorum already initialised");
        }
        glommio::spawn_local_into(Rc::clone(&controller).run_sessions(), queue)
            .map_err(|e| ControllerError::Raft(e.to_string()))?
            .detach();
        Ok(controller)
    }

    /// The Raft log index this node has applied.
    pub fn applied_index(&self) -> u64 {
        self.state_machine.applied_index()
    }

    /// The active controller's node id, when one is known.
    pub async fn active_controller(&self) -> Option<i32> {
        self.raft.current_leader().await.map(|id| id as i32)
    }

    /// Runs a metadata mutation on the active controller (here, or forwarded to it) and returns
    /// once this node has applied it, so the caller reads its own write.
    pub async fn mutate(&self, m: MetadataMutation) -> MutationResult {
        match self.ask(AppRequest::Mutate(m)).await {
            Some(AppResponse::Mutated(Ok(remote))) => {
                if let Some(index) = remote.log_index {
                    let waited = self.raft.wait(Some(RPC_TIMEOUT)).applied_index_at_least(Some(index), "forwarded mutation").await;
                    if waited.is_err() {
                        return Err(MetadataError::ControllerUnavailable);
                    }
                }
                Ok(MutationOutcome { topic: remote.topic.map(Arc::new), producer_id: remote.producer_id })
            }
            Some(AppResponse::Mutated(Err(e))) => Err(MetadataError::Remote { code: e.code, message: e.message }),
            _ => Err(MetadataError::ControllerUnavailable),
        }
    }

    /// Sends `req` to the active controller, this node or another, until one answers it or
    /// [`CONTROLLER_WAIT`] passes.
    async fn ask(&self, req: AppRequest) -> Option<AppResponse> {
        let deadline = Instant::now() + CONTROLLER_WAIT;
        let rpc_timeout = match req {
            AppRequest::Heartbeat(_) => self.heartbeat_rpc_timeout(),
            _ => RPC_TIMEOUT,
        };
        while Instant::now() < deadline {
            let answer = match self.raft.current_leader().await {
                Some(leader) if leader == self.me as u64 => Some(self.answer(req.clone()).await),
                Some(leader) => match self.peer(leader) {
                    Some(peer) => match peer.call_app(req.clone(), rpc_timeout).await {
                        Ok(answer) => Some(answer),
                        Err(e) => {
                            tracing::debug!(leader, error = %e, "active controller did not answer; retrying");
                            None
                        }
                    },
                    None => None,
                },
                None => None,
            };
            match answer {
                Some(AppResponse::NotController { .. }) | None => glommio::timer::sleep(RETRY).await,
                Some(answer) => return Some(answer),
            }
        }
        tracing::warn!(node_id = self.me, "no active controller answered within {}s", CONTROLLER_WAIT.as_secs());
        None
    }

    /// How long one heartbeat waits for the active controller: half a session. A heartbeat sent
    /// to a controller that went silent (cut off: no reset, no answer) must give up in time to
    /// reach the new one within the session it grants every broker when it takes over;
    /// [`RPC_TIMEOUT`] would outlast that and get every broker fenced. Resending is harmless.
    fn heartbeat_rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.config.cluster.broker_session_timeout_ms / 2).clamp(RETRY, RPC_TIMEOUT)
    }

    /// Answers a broker's request as the active controller (or says it is not).
    async fn answer(&self, req: AppRequest) -> AppResponse {
        if !self.is_leader() {
            return AppResponse::NotController { leader: self.raft.current_leader().await };
        }
        match req {
            AppRequest::Mutate(m) => match self.mutate_as_leader(m).await {
                Ok(outcome) => AppResponse::Mutated(Ok(outcome)),
                Err(MetadataError::NotController) => AppResponse::NotController { leader: None },
                Err(e) => AppResponse::Mutated(Err(RemoteError { code: ErrorCode::from(&e).code(), message: e.to_string() })),
            },
            AppRequest::Heartbeat(hb) => AppResponse::Heartbeat(self.heartbeat(hb)),
            AppRequest::AddLearner { node_id, addr } => self.add_learner(node_id, addr).await,
        }
    }

    fn is_leader(&self) -> bool {
        self.raft.metrics().borrow_watched().state == ServerState::Leader
    }

    /// Plans `m` against this node's image and writes its records as one Raft entry; returns
    /// after the entry is applied here.
    async fn mutate_as_leader(&self, m: MetadataMutation) -> Result<RemoteOutcome, MetadataError> {
        let _turn = self.turn.acquire_permit(1).await.map_err(|_| MetadataError::ControllerUnavailable)?;
        // Plan on everything committed: a newly elected leader may not have applied all of it
        // yet, and a plan on a stale image would write partition states over newer ones.
        match self.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(_) => {}
            Err(e) if e.forward_to_leader().is_some() => return Err(MetadataError::NotController),
            Err(e) => {
                tracing::warn!(error = %e, "cannot confirm leadership before a metadata change");
                return Err(MetadataError::ControllerUnavailable);
            }
        }
        let current = self.handle.load_full();
        // The controller plans with the cluster-wide dynamic defaults over its file's (KRaft's
        // controller reads cluster-level configs, not one broker's).
        let cluster_only = DynamicLayers { cluster_default: &current.broker_default_configs, ..DynamicLayers::NONE };
        let defaults = effective_topic_defaults(&self.config.topic_defaults, cluster_only);
        let ctx = PlanContext {
            shards: self.config.cores.max(1),
            node_id: self.me,
            defaults: &defaults,
            producer_ids_left: !self.producer_ids.borrow().is_empty(),
            // A lone controller-only voter is no single node: its brokers are elsewhere.
            voters: if self.config.cluster.is_controller_only() { self.config.cluster.voters.len().max(2) } else { self.config.cluster.voters.len().max(1) },
            default_replication_factor: self.config.cluster.default_replication_factor,
        };
        let plan = plan(&current, m, &ctx)?;
        let mut log_index = None;
        if !plan.validate_only && !plan.records.is_empty() {
            let written = self.raft.client_write(ControllerCommand { records: plan.records.clone() }).await;
            match written {
                Ok(w) => {
                    if let Some(why) = w.data.rejected {
                        return Err(MetadataError::InvalidRecord { reason: why });
                    }
                    log_index = Some(w.log_id.index());
                }
                Err(e) if e.forward_to_leader().is_some() => return Err(MetadataError::NotController),
                Err(e) => {
                    tracing::warn!(error = %e, "metadata write failed");
                    return Err(MetadataError::ControllerUnavailable);
                }
            }
        }
        let next = self.handle.load_full();
        let outcome = plan.outcome(&current, &next, &mut self.producer_ids.borrow_mut());
        Ok(RemoteOutcome { topic: outcome.topic.map(|t| (*t).clone()), producer_id: outcome.producer_id, log_index })
    }

    /// A broker's heartbeat, on the active controller: its session is renewed, and a fenced
    /// broker that has caught up with the metadata is unfenced.
    fn heartbeat(self: &Controller, hb: BrokerHeartbeat) -> HeartbeatReply {
        let snapshot = self.handle.load();
        let known = snapshot.brokers.get(&hb.broker_id).is_some_and(|r| r.incarnation_id == hb.incarnation_id);
        if !known {
            return HeartbeatReply { fenced: true, unknown: true };
        }
        self.heartbeats.borrow_mut().insert(hb.broker_id, Instant::now());
        let fenced = !snapshot.is_unfenced(hb.broker_id);
        if fenced && hb.applied_index + 1 >= self.applied_index() {
            self.change_fencing(hb.broker_id, false, "caught up");
        }
        HeartbeatReply { fenced, unknown: false }
    }

    /// Writes a fence or unfence of `broker_id` in the background, one change per broker at a
    /// time; says `why` in one line when it starts one.
    fn change_fencing(&self, broker_id: i32, fence: bool, why: &str) {
        if !self.changing.borrow_mut().insert(broker_id) {
            return;
        }
        if fence {
            tracing::warn!(broker_id, why, "fencing broker");
        }
        let Some(this) = self.this.upgrade() else { return };
        glommio::spawn_local(async move {
            let m = if fence { MetadataMutation::FenceBroker { broker_id } } else { MetadataMutation::UnfenceBroker { broker_id } };
            match this.mutate_as_leader(m).await {
                Ok(_) => tracing::info!(broker_id, fenced = fence, "broker fencing changed"),
                Err(e) => tracing::warn!(broker_id, fenced = fence, error = %e, "broker fencing not changed"),
            }
            this.changing.borrow_mut().remove(&broker_id);
        })
        .detach();
    }
}

impl Controller {
    /// The active controller's duties, checked every [`RETRY`]: fence brokers whose session
    /// expired, and create `__consumer_offsets` once enough brokers are up to hold it.
    async fn run_sessions(self: Rc<Self>) {
        let session = Duration::from_millis(self.config.cluster.broker_session_timeout_ms);
        let mut last_tick = Instant::now();
        loop {
            glommio::timer::sleep(RETRY).await;
            let leader = self.raft.current_leader().await.map_or(-1, |id| id as i32);
            ACTIVE_CONTROLLER.store(leader, std::sync::atomic::Ordering::Relaxed);
            let now = Instant::now();
            // This loop did not run for a while (the process was paused, SIGSTOP, or starved):
            // the heartbeats it missed say nothing about the brokers, so every broker gets a
            // fresh session rather than being fenced for this node's own silence.
            let gap = now.duration_since(last_tick);
            last_tick = now;
            let stalled = gap > STALL;
            if stalled {
                tracing::warn!(node_id = self.me, stalled_ms = gap.as_millis() as u64, "controller did not run for a while; broker sessions restart");
            }
            if !self.is_leader() || stalled {
                self.leading_since.set(None);
                continue;
            }
            // A new active controller has heard from nobody yet: every broker gets one session.
            let since = *self.leading_since.get().get_or_insert(now);
            self.leading_since.set(Some(since));
            let snapshot = self.handle.load_full();
            for &broker_id in snapshot.brokers.keys() {
                if !snapshot.is_unfenced(broker_id) {
                    continue;
                }
                let heard = self.heartbeats.borrow().get(&broker_id).copied().filter(|at| *at >= since);
                let last = heard.unwrap_or(since);
                if now.duration_since(last) > session {
                    self.change_fencing(broker_id, true, "session expired");
                } else if self.refusals.died_after(broker_id as u64, heard) {
                    self.change_fencing(broker_id, true, "its controller port refuses connections");
                }
            }
            self.ensure_offsets_topic(&snapshot).await;
            self.ensure_txn_state_topic(&snapshot).await;
        }
    }

    /// Creates `__consumer_offsets` with `offsets.topic.replication.factor` replicas once that
    /// many brokers are unfenced (Kafka creates it on the first FindCoordinator; here the
    /// controller does, so every broker finds it).
    async fn ensure_offsets_topic(&self, snapshot: &crate::metadata::ClusterSnapshot) {
        if snapshot.topics.contains_key(crate::group::OFFSETS_TOPIC) {
            return;
        }
        let rf = self.config.cluster.offsets_replication_factor(self.me);
        let live = snapshot.brokers.keys().filter(|id| snapshot.is_unfenced(**id)).count();
        if live < rf as usize {
            return;
        }
        let m = MetadataMutation::create_offsets_topic(self.config.group.offsets_topic_partitions, rf, self.config.group.offsets_topic_segment_bytes);
        match self.mutate_as_leader(m).await {
            Ok(_) => tracing::info!(replication_factor = rf, "created __consumer_offsets"),
            Err(e) => tracing::warn!(error = %e, "cannot create __consumer_offsets yet"),
        }
    }

    /// Creates `__transaction_state` with `transaction.state.log.replication.factor` replicas
    /// once that many brokers are unfenced, as `__consumer_offsets` is.
    async fn ensure_txn_state_topic(&self, snapshot: &crate::metadata::ClusterSnapshot) {
        if snapshot.topics.contains_key(crate::txn::TXN_STATE_TOPIC) {
            return;
        }
        let rf = self.config.txn_state_replication_factor();
        let live = snapshot.brokers.keys().filter(|id| snapshot.is_unfenced(**id)).count();
        if live < rf as usize {
            return;
        }
        let t = &self.config.txn;
        let m = MetadataMutation::create_txn_state_topic(t.state_log_partitions, rf, self.config.txn_state_min_isr(rf), t.state_log_segment_bytes);
        match self.mutate_as_leader(m).await {
            Ok(_) => tracing::info!(replication_factor = rf, "created __transaction_state"),
            Err(e) => tracing::warn!(error = %e, "cannot create __transaction_state yet"),
        }
    }

    /// The broker side of this node: registers (again after a restart, with a new incarnation)
    /// and sends a heartbeat every `broker.heartbeat.interval.ms`; re-registers when the active
    /// controller no longer knows this incarnation.
    pub async fn run_broker(self: Rc<Self>, registration: BrokerRegistration) {
        let interval = Duration::from_millis(self.config.cluster.broker_heartbeat_interval_ms);
        let mut registered = false;
        loop {
            if !registered {
                match self.mutate(MetadataMutation::RegisterBroker(registration.clone())).await {
                    Ok(_) => {
                        tracing::info!(broker_id = self.me, incarnation_id = %registration.incarnation_id, "broker registered");
                        registered = true;
                    }
                    Err(e) => {
                        tracing::warn!(broker_id = self.me, error = %e, "broker registration failed; retrying");
                        glommio::timer::sleep(interval).await;
                        continue;
                    }
                }
            }
            let hb = BrokerHeartbeat {
                broker_id: self.me,
                incarnation_id: registration.incarnation_id,
                applied_index: self.applied_index(),
            };
            if let Some(AppResponse::Heartbeat(reply)) = self.ask(AppRequest::Heartbeat(hb)).await
                && reply.unknown
            {
                registered = false;
                continue;
            }
            glommio::timer::sleep(interval).await;
        }
    }
}

impl AppHandler for Controller {
    fn handle(&self, req: AppRequest) -> std::pin::Pin<Box<dyn std::future::Future<Output = AppResponse>>> {
        let Some(this) = self.this.upgrade() else {
            return Box::pin(async { AppResponse::NotController { leader: None } });
        };
        Box::pin(async move { this.answer(req).await })
    }

    fn leader_hung_up(&self, leader: u64) {
        if self.probing_leader.get() {
            return;
        }
        if let Some(this) = self.this.upgrade() {
            self.probing_leader.set(true);
            glommio::spawn_local(async move {
                this.elect_past_dead_leader(leader).await;
                this.probing_leader.set(false);
            })
            .detach();
        }
    }
}

/// How long a probe of a silent leader's port may take, and the pause between probes.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// Probes of a leader's port after its connection closed: two seconds' worth, Kafka's default
/// `controller.quorum.fetch.timeout.ms`, after which a normal election has started anyway.
const PROBES: usize = 10;
/// The successor campaigns this much later than the others drop their lease on the dead leader,
/// so their votes are free when its request comes.
const SUCCESSOR_HEAD_START: Duration = Duration::from_millis(50);

impl Controller {
    /// The leader's replication connection closed: if its port now refuses connections, its
    /// process is gone, and this voter stops honouring its lease. The successor (the lowest
    /// other voter id) campaigns at once through openraft's leadership-transfer path; the
    /// votes and log checks of a normal election still decide (`liveness` module).
    async fn elect_past_dead_leader(&self, leader: u64) {
        let vote = self.raft.metrics().borrow_watched().vote;
        tracing::debug!(node_id = self.me, leader, vote = %vote, "leader's replication connection closed");
        if self.is_leader() || vote.leader_id().node_id != leader || !vote.is_committed() {
            return;
        }
        let Some(addr) = self.peer(leader).map(|p| p.addr().to_owned()) else { return };
        // A killed process's listener may outlive its connections by a moment (the kernel
        // tears down its io_uring first) and still complete handshakes: probe a few times.
        let mut refused = false;
        for _ in 0..PROBES {
            refused = super::liveness::refuses_connections(&addr, PROBE_TIMEOUT).await;
            let still = self.raft.metrics().borrow_watched().vote == vote;
            if refused || !still {
                break;
            }
            glommio::timer::sleep(PROBE_TIMEOUT).await;
        }
        tracing::debug!(node_id = self.me, leader, refused, "probed the leader's port");
        if !refused || self.raft.metrics().borrow_watched().vote != vote {
            return;
        }
        let voters: Vec<u64> = self.raft.metrics().borrow_watched().membership_config.membership().voter_ids().collect();
        let successor = voters.into_iter().filter(|id| *id != leader).min();
        let Some(successor) = successor else { return };
        tracing::warn!(node_id = self.me, leader, successor, "active controller's port refuses connections; electing a new one without waiting out its lease");
        if successor == self.me as u64 {
            glommio::timer::sleep(SUCCESSOR_HEAD_START).await;
        }
        let transfer = openraft::raft::TransferLeaderRequest::new(vote, successor, None);
        if let Err(e) = self.raft.handle_transfer_leader(transfer).await {
            tracing::warn!(node_id = self.me, error = %e, "cannot drop the dead controller's lease");
        }
    }
}
