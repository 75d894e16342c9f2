//! A classic group's state machine: its members, the rebalance phases, and the JoinGroup
//! answers it hands out when a join phase ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::error::GroupError;
use super::records::{GroupKey, GroupValue, OffsetValue, StoredMember};
use crate::codes::ErrorCode;
use crate::types::now_ms;

/// A group's state, as DescribeGroups names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignments.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

pub(super) struct Member {
    pub(super) id: String,
    pub(super) instance_id: Option<String>,
    pub(super) client_id: String,
    pub(super) client_host: String,
    pub(super) session_timeout: Duration,
    pub(super) rebalance_timeout: Duration,
    pub(super) protocols: Vec<(String, Bytes)>,
    pub(super) assignment: Bytes,
    pub(super) last_heartbeat: Instant,
    pub(super) join_waiter: Option<(i16, oneshot::Sender<JoinGroupResponse>)>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    pub(super) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

pub(super) struct Group {
    pub(super) id: String,
    pub(super) state: GroupState,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) generation: i32,
    pub(super) leader: Option<String>,
    /// Members in join order (the first is the default leader).
    pub(super) members: BTreeMap<u64, Member>,
    pub(super) next_seq: u64,
    pub(super) pending: HashSet<String>,
    pub(super) offsets: HashMap<(String, i32), OffsetValue>,
    /// Offsets committed inside transactions not yet ended, by producer id (TxnOffsetCommit).
    pub(super) txn_offsets: HashMap<i64, HashMap<(String, i32), OffsetValue>>,
    pub(super) rebalance_deadline: Option<Instant>,
    pub(super) join_not_before: Option<Instant>,
    pub(super) state_timestamp: i64,
}

impl Group {
    pub(super) fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            next_seq: 0,
            pending: HashSet::new(),
            offsets: HashMap::new(),
            txn_offsets: HashMap::new(),
            rebalance_deadline: None,
            join_not_before: None,
            state_timestamp: now_ms(),
        }
    }

    pub(super) fn seq_of(&self, member_id: &str) -> Option<u64> {
        self.members.iter().find(|(_, m)| m.id == member_id).map(|(s, _)| *s)
    }

    pub(super) fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.id == member_id)
    }

    pub(super) fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.values_mut().find(|m| m.id == member_id)
    }

    pub(super) fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance))
    }

    pub(super) fn set_state(&mut self, state: GroupState) {
        if self.state != state {
            tracing::info!(group = %self.id, from = self.state.name(), to = state.name(), generation = self.generation, "group state");
        }
        self.state = state;
        self.state_timestamp = now_ms();
    }

    /// Checks a request's member and instance ids: an unknown member, or a fenced instance.
    pub(super) fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if let Some((instance, m)) = instance_id.and_then(|i| Some((i, self.by_instance(i)?)))
            && m.id != member_id
        {
            return Err(GroupError::FencedInstanceId { instance_id: instance.to_string(), member_id: member_id.to_string() });
        }
        match self.member(member_id) {
            Some(_) => Ok(()),
            None => Err(GroupError::UnknownMemberId { member_id: member_id.to_string() }),
        }
    }

    pub(super) fn subscribed_topics(&self) -> HashSet<String> {
        let Some(protocol) = &self.protocol else { return HashSet::new() };
        if self.protocol_type.as_deref() != Some("consumer") {
            return HashSet::new();
        }
        let mut topics = HashSet::new();
        for m in self.members.values() {
            let meta = m.metadata_for(protocol);
            if let Some(sub) = decode_subscription(&meta) {
                topics.extend(sub);
            }
        }
        topics
    }

    /// Starts a rebalance: members must rejoin; syncs in flight are told to rejoin.
    pub(super) fn prepare_rebalance(&mut self, initial_delay: Duration) {
        let was_empty = self.state == GroupState::Empty;
        let rejoin = ErrorCode::from(&GroupError::RebalanceInProgress { group: self.id.clone() }).code();
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncGroupResponse::default().with_error_code(rejoin));
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::from_secs(60));
        let now = Instant::now();
        self.rebalance_deadline = Some(now + timeout);
        self.join_not_before = if was_empty { Some(now + initial_delay) } else { None };
        self.set_state(GroupState::PreparingRebalance);
    }

    pub(super) fn all_joined(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Ends the join phase: a new generation, the protocol everyone supports, and the answers.
    pub(super) fn complete_join(&mut self) {
        // Members that did not rejoin in time are out.
        let gone: Vec<u64> = self.members.iter().filter(|(_, m)| m.join_waiter.is_none()).map(|(s, _)| *s).collect();
        for s in gone {
            if let Some(m) = self.members.remove(&s) {
                tracing::info!(group = %self.id, member = %m.id, "member removed: did not rejoin in time");
            }
        }
        self.generation += 1;
        self.rebalance_deadline = None;
        self.join_not_before = None;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            return;
        }
        self.protocol = select_protocol(&self.members);
        if self.leader.as_ref().is_none_or(|l| self.member(l).is_none()) {
            self.leader = self.members.values().next().map(|m| m.id.clone());
        }
        self.set_state(GroupState::CompletingRebalance);
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all = self.member_list(&protocol);
        let now = Instant::now();
        for m in self.members.values_mut() {
            m.last_heartbeat = now;
            m.assignment = Bytes::new();
            let Some((version, tx)) = m.join_waiter.take() else { continue };
            let members = if m.id == leader { all.clone() } else { Vec::new() };
            let _ = tx.send(join_response(version, self.generation, &self.protocol_type, &protocol, &leader, &m.id, members));
        }
    }

    /// The members with their metadata for `protocol`: what the leader gets in JoinGroup.
    pub(super) fn member_list(&self, protocol: &str) -> Vec<JoinGroupResponseMember> {
        self.members
            .values()
            .map(|m| {
                JoinGroupResponseMember::default()
                    .with_member_id(sb(&m.id))
                    .with_group_instance_id(m.instance_id.as_deref().map(sb))
                    .with_metadata(m.metadata_for(protocol))
            })
            .collect()
    }

    fn to_value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_timestamp,
            members: self
                .members
                .values()
                .map(|m| StoredMember {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: m.session_timeout.as_millis() as i32,
                    subscription: m.metadata_for(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn metadata_record(&self) -> (Bytes, Option<Bytes>) {
        (GroupKey::Metadata { group: self.id.clone() }.encode(), Some(self.to_value().encode()))
    }

    /// Removes members; the group rebalances, or becomes Empty when none are left.
    pub(super) fn remove_members(&mut self, ids: &[String], initial_delay: Duration) {
        for id in ids {
            if let Some(s) = self.seq_of(id) {
                self.members.remove(&s);
            }
        }
        if self.members.is_empty() {
            if self.state != GroupState::Empty {
                self.generation += 1;
                self.protocol = None;
                self.leader = None;
                self.rebalance_deadline = None;
                self.set_state(GroupState::Empty);
            }
        } else if matches!(self.state, GroupState::Stable | GroupState::CompletingRebalance) {
            self.prepare_rebalance(initial_delay);
        } else if self.state == GroupState::PreparingRebalance && self.all_joined() {
            self.complete_join();
        }
    }
}

/// An owned string in the protocol's string type.
pub(super) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Topics in a consumer-protocol subscription (version, topics array, ...).
fn decode_subscription(meta: &Bytes) -> Option<Vec<String>> {
    use kafka_protocol::protocol::Decodable;
    let mut buf = meta.clone();
    if buf.len() < 2 {
        return None;
    }
    let version = i16::from_be_bytes([buf[0], buf[1]]);
    bytes::Buf::advance(&mut buf, 2);
    let sub = kafka_protocol::messages::ConsumerProtocolSubscription::decode(&mut buf, version.min(3)).ok()?;
    Some(sub.topics.iter().map(|t| t.to_string()).collect())
}

/// The protocol all members support that most members prefer (Kafka's vote).
fn select_protocol(members: &BTreeMap<u64, Member>) -> Option<String> {
    let first = members.values().next()?;
    let candidates: Vec<&String> = first
        .protocols
        .iter()
        .map(|(n, _)| n)
        .filter(|n| members.values().all(|m| m.protocols.iter().any(|(p, _)| p == *n)))
        .collect();
    let mut votes: HashMap<&String, usize> = HashMap::new();
    for m in members.values() {
        if let Some((n, _)) = m.protocols.iter().find(|(n, _)| candidates.contains(&n)) {
            *votes.entry(n).or_default() += 1;
        }
    }
    candidates.iter().max_by_key(|c| (votes.get(**c).copied().unwrap_or(0), std::cmp::Reverse(candidates.iter().position(|x| x == *c)))).map(|c| (*c).clone())
}

/// A successful JoinGroup answer (the leader's carries the members).
pub(super) fn join_response(
    version: i16,
    generation: i32,
    protocol_type: &Option<String>,
    protocol: &str,
    leader: &str,
    member_id: &str,
    members: Vec<JoinGroupResponseMember>,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(ErrorCode::NONE.code())
        .with_generation_id(generation)
        .with_protocol_name(Some(sb(protocol)))
        .with_leader(sb(leader))
        .with_member_id(sb(member_id))
        .with_members(members);
    if version >= 7 {
        r = r.with_protocol_type(protocol_type.as_deref().map(sb));
    }
    r
}

/// A failed JoinGroup answer.
pub(super) fn join_error(error: &GroupError, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(ErrorCode::from(error).code())
        .with_generation_id(-1)
        .with_member_id(sb(member_id))
        // Nullable only from v7; Kafka sends "" on errors.
        .with_protocol_name(Some(sb("")))
}

/// A fresh member id: the client id (or static instance id) and a UUID, as Kafka makes them.
pub(super) fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
