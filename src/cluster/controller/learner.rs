//! Broker-only nodes (`process.roles=broker`): openraft learners of the controller quorum.
//!
//! ```text
//!  broker-only node ── AddLearner{id, addr} ─► every controller address in turn ─► the active controller
//!                                                                                   └► raft.add_learner(id, addr)
//!  active controller ── AppendEntries / snapshots ─► the learner's controller listener ─► its state machine
//! ```
//!
//! A broker-only node is not in `controller.quorum.voters`. It runs openraft like a voter but
//! never initialises the quorum: it asks the active controller to add it as a learner, and the
//! leader then replicates the log and snapshots to it; its state machine applies them to the local
//! metadata image exactly as on voters. Learners never vote or campaign (openraft elects among
//! voters only). Kafka's brokers pull the metadata log from the controllers; openraft pushes it,
//! which is why a broker-only node has a controller RPC listener of its own.
//!
//! Membership lives in the Raft log, so a learner that restarts keeps its id and is still a
//! learner. It asks again anyway (its address may have changed): the active controller writes
//! nothing when the membership already names it at that address, and only updates the address
//! (`SetNodes`) when it moved; openraft's `AddNodes` would keep the old one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers};
use openraft_rt::watch::WatchReceiver;

use super::{Controller, RETRY};
use crate::cluster::rpc::{DEFAULT_CONNECT_TIMEOUT, RpcClient};
use crate::cluster::types::{AppRequest, AppResponse, RemoteError};
use crate::codes::ErrorCode;
use crate::config::ClusterConfig;

/// How long a learner waits for one controller's answer to AddLearner before it asks the next:
/// adding a learner does not wait for it to catch up, so a live controller answers at once.
const ADD_LEARNER_TIMEOUT: Duration = Duration::from_secs(2);

/// How this node takes part in the controller quorum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumRole {
    /// A voter of `controller.quorum.voters` (combined or controller-only): it initialises the
    /// quorum on a new cluster and may become the active controller.
    Voter,
    /// A broker-only node: a learner that asks the quorum to add it, announcing its controller
    /// listener at `advertised_host` and `advertised_port` (none: the port it bound).
    Learner {
        /// The host the leader dials.
        advertised_host: String,
        /// The port the leader dials; none when the listener binds an ephemeral port.
        advertised_port: Option<u16>,
    },
}

impl QuorumRole {
    /// The address a learner announces, given the address its listener bound.
    pub fn announced_addr(&self, bound: SocketAddr) -> Option<String> {
        match self {
            QuorumRole::Voter => None,
            QuorumRole::Learner { advertised_host, advertised_port } => {
                Some(format!("{advertised_host}:{}", advertised_port.unwrap_or(bound.port())))
            }
        }
    }
}

impl Controller {
    /// The RPC client of node `id`: a configured voter, or a node the membership names (a
    /// broker that knows the quorum by bootstrap servers only learns the voters' addresses
    /// from the log).
    pub(super) fn peer(&self, id: u64) -> Option<Rc<RpcClient>> {
        if let Some(peer) = self.peers.borrow().get(&id) {
            return Some(Rc::clone(peer));
        }
        let addr = self.raft.metrics().borrow_watched().membership_config.membership().get_node(&id)?.addr.clone();
        let client = Rc::new(RpcClient::new(addr, DEFAULT_CONNECT_TIMEOUT));
        self.peers.borrow_mut().insert(id, Rc::clone(&client));
        Some(client)
    }

    /// On the active controller: makes `node_id` a learner reached at `addr`. Harmless when it
    /// already is one there; refused for a voter (a voter is never demoted by a broker's ask).
    pub(super) async fn add_learner(&self, node_id: i32, addr: String) -> AppResponse {
        let id = node_id as u64;
        let refuse = |message: String| AppResponse::LearnerAdded(Err(RemoteError { code: ErrorCode::INVALID_REQUEST.code(), message }));
        let known = {
            // The borrow ends here, before any await.
            let metrics = self.raft.metrics().borrow_watched().membership_config.clone();
            let membership = metrics.membership();
            if membership.voter_ids().any(|v| v == id) {
                return refuse(format!("node {node_id} is a voter of the quorum, not a broker-only node"));
            }
            membership.get_node(&id).map(|node| node.addr.clone())
        };
        if known.as_deref() == Some(addr.as_str()) {
            return AppResponse::LearnerAdded(Ok(()));
        }
        // One membership change at a time, in turn with the metadata mutations.
        let Ok(_turn) = self.turn.acquire_permit(1).await else {
            return AppResponse::NotController { leader: None };
        };
        // A new leader has not committed the membership it inherited until an entry of its own
        // term commits; openraft refuses a change before that (InProgress).
        match self.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(_) => {}
            Err(e) if e.forward_to_leader().is_some() => return AppResponse::NotController { leader: None },
            Err(e) => return refuse(format!("cannot confirm leadership: {e}")),
        }
        let node = BasicNode::new(addr.clone());
        let written = match known {
            None => self.raft.add_learner(id, node, false).await,
            Some(_) => self.raft.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true).await,
        };
        match written {
            Ok(_) => {
                tracing::info!(node_id, %addr, moved = known.is_some(), "learner added to the quorum");
                AppResponse::LearnerAdded(Ok(()))
            }
            Err(e) if e.forward_to_leader().is_some() => AppResponse::NotController { leader: None },
            Err(e) => {
                tracing::warn!(node_id, %addr, error = %e, "learner not added");
                refuse(e.to_string())
            }
        }
    }

    /// On a broker-only node: asks every controller address in turn to add this node as a
    /// learner at `addr`, until the active controller says it did.
    pub(super) async fn join_as_learner(self: Rc<Self>, addr: String) {
        let clients: Vec<RpcClient> = self
            .config
            .cluster
            .controller_addresses()
            .into_iter()
            .map(|controller| RpcClient::new(controller, DEFAULT_CONNECT_TIMEOUT))
            .collect();
        let ask = AppRequest::AddLearner { node_id: self.me, addr: addr.clone() };
        loop {
            for client in &clients {
                match client.call_app(ask.clone(), ADD_LEARNER_TIMEOUT).await {
                    Ok(AppResponse::LearnerAdded(Ok(()))) => {
                        tracing::info!(node_id = self.me, %addr, controller = client.addr(), "joined the quorum as a learner");
                        self.adopt_cluster_id().await;
                        return;
                    }
                    Ok(AppResponse::LearnerAdded(Err(e))) => {
                        tracing::warn!(node_id = self.me, controller = client.addr(), error = %e.message, "the quorum refused this learner")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(controller = client.addr(), error = %e, "controller did not answer AddLearner"),
                }
            }
            glommio::timer::sleep(RETRY * 5).await;
        }
    }

    /// A broker that knows the quorum by bootstrap servers only started with the cluster id of no
    /// voters: once the membership in the log names the voters, its image takes the id every
    /// voter derived from them (`ClusterConfig::cluster_id_of`).
    async fn adopt_cluster_id(&self) {
        if !self.config.cluster.voters.is_empty() {
            return;
        }
        let known = self.raft.wait(None).metrics(|m| m.membership_config.membership().voter_ids().next().is_some(), "voters known").await;
        let Ok(metrics) = known else { return };
        let membership = metrics.membership_config.membership();
        let voters = membership.voter_ids().filter_map(|id| membership.get_node(&id).map(|node| (id as i32, node.addr.clone())));
        let cluster_id = ClusterConfig::cluster_id_of(voters);
        tracing::info!(node_id = self.me, %cluster_id, "cluster id taken from the quorum's voters");
        // No await between load and store: the state machine applies on this thread only.
        self.handle.rcu(|current| {
            let mut next = (**current).clone();
            next.cluster_id = cluster_id.clone();
            Arc::new(next)
        });
    }
}
