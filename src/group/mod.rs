//! Consumer groups: Kafka's classic rebalance protocol and committed offsets.
//!
//! A group lives on the shard that owns its `__consumer_offsets` partition
//! (`abs(javaHash(group)) % offsets.topic.num.partitions`). Its state changes synchronously inside
//! one `RefCell` borrow; writes to `__consumer_offsets` happen between borrows, never across one.
//!
//! ```text
//!  Empty ──join──► PreparingRebalance ──all joined / rebalance timeout──► CompletingRebalance
//!    ▲                   ▲                                                     │ leader's SyncGroup
//!    └──last member out──┴──────────── join / leave / session expiry ◄── Stable ◄┘
//! ```

pub mod api;
pub mod consumer;
pub mod records;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, JoinGroupResponse, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::config::GroupConfig;
use crate::error::code;
pub use api::{CommitPart, GroupCall, GroupReply, OffsetEntry};
use crate::types::now_ms;
use records::{GroupKey, GroupValue, OffsetValue, StoredMember};

/// The internal topic that stores group state.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka error codes of the group coordinator.
#[allow(missing_docs)]
pub mod gcode {
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
}

/// The `__consumer_offsets` partition of a group: Java's `String.hashCode`, as Kafka computes it.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(unit));
    }
    (h & 0x7fff_ffff) % partitions.max(1)
}

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

struct Member {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<(i16, oneshot::Sender<JoinGroupResponse>)>,
    sync_waiter: Option<oneshot::Sender<SyncGroupResponse>>,
}

impl Member {
    fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols.iter().find(|(n, _)| n == protocol).map(|(_, m)| m.clone()).unwrap_or_default()
    }
}

struct Group {
    id: String,
    state: GroupState,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    /// Members in join order (the first is the default leader).
    members: BTreeMap<u64, Member>,
    next_seq: u64,
    pending: HashSet<String>,
    offsets: HashMap<(String, i32), OffsetValue>,
    rebalance_deadline: Option<Instant>,
    join_not_before: Option<Instant>,
    state_timestamp: i64,
}

impl Group {
    fn new(id: &str) -> Group {
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
            rebalance_deadline: None,
            join_not_before: None,
            state_timestamp: now_ms(),
        }
    }

    fn seq_of(&self, member_id: &str) -> Option<u64> {
        self.members.iter().find(|(_, m)| m.id == member_id).map(|(s, _)| *s)
    }

    fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.values().find(|m| m.id == member_id)
    }

    fn member_mut(&mut self, member_id: &str) -> Option<&mut Member> {
        self.members.values_mut().find(|m| m.id == member_id)
    }

    fn by_instance(&self, instance: &str) -> Option<&Member> {
        self.members.values().find(|m| m.instance_id.as_deref() == Some(instance))
    }

    fn set_state(&mut self, state: GroupState) {
        if self.state != state {
            tracing::info!(group = %self.id, from = self.state.name(), to = state.name(), generation = self.generation, "group state");
        }
        self.state = state;
        self.state_timestamp = now_ms();
    }

    /// Checks a request's member and instance ids: UNKNOWN_MEMBER_ID or FENCED_INSTANCE_ID.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), i16> {
        if let Some(m) = instance_id.and_then(|i| self.by_instance(i))
            && m.id != member_id
        {
            return Err(gcode::FENCED_INSTANCE_ID);
        }
        match self.member(member_id) {
            Some(_) => Ok(()),
            None => Err(gcode::UNKNOWN_MEMBER_ID),
        }
    }

    fn subscribed_topics(&self) -> HashSet<String> {
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
    fn prepare_rebalance(&mut self, initial_delay: Duration) {
        let was_empty = self.state == GroupState::Empty;
        for m in self.members.values_mut() {
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send(SyncGroupResponse::default().with_error_code(gcode::REBALANCE_IN_PROGRESS));
            }
        }
        let timeout = self.members.values().map(|m| m.rebalance_timeout).max().unwrap_or(Duration::from_secs(60));
        let now = Instant::now();
        self.rebalance_deadline = Some(now + timeout);
        self.join_not_before = if was_empty { Some(now + initial_delay) } else { None };
        self.set_state(GroupState::PreparingRebalance);
    }

    fn all_joined(&self) -> bool {
        !self.members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some())
    }

    /// Ends the join phase: a new generation, the protocol everyone supports, and the answers.
    fn complete_join(&mut self) {
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
    fn member_list(&self, protocol: &str) -> Vec<JoinGroupResponseMember> {
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

    fn metadata_record(&self) -> (Bytes, Option<Bytes>) {
        (GroupKey::Metadata { group: self.id.clone() }.encode(), Some(self.to_value().encode()))
    }

    /// Removes members; the group rebalances, or becomes Empty when none are left.
    fn remove_members(&mut self, ids: &[String], initial_delay: Duration) {
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

fn sb(s: &str) -> StrBytes {
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

fn join_response(
    version: i16,
    generation: i32,
    protocol_type: &Option<String>,
    protocol: &str,
    leader: &str,
    member_id: &str,
    members: Vec<JoinGroupResponseMember>,
) -> JoinGroupResponse {
    let mut r = JoinGroupResponse::default()
        .with_error_code(code::NONE)
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

fn join_error(error: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(error)
        .with_generation_id(-1)
        .with_member_id(sb(member_id))
        // Nullable only from v7; Kafka sends "" on errors.
        .with_protocol_name(Some(sb("")))
}

/// A write to `__consumer_offsets` that must be durable before the answer: (partition, records).
pub type GroupWrite = (i32, Vec<(Bytes, Option<Bytes>)>);

/// The consumer group coordinator of one shard. `!Send`.
pub struct GroupCoordinator {
    config: GroupConfig,
    groups: RefCell<HashMap<String, Group>>,
    consumer_groups: RefCell<HashMap<String, consumer::ConsumerGroup>>,
}

/// What the coordinator needs from its shard: durable appends to `__consumer_offsets`.
pub trait GroupLog {
    /// Appends records to a `__consumer_offsets` partition with acks=all; a Kafka error code on failure.
    fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> impl std::future::Future<Output = Result<(), i16>>;
    /// Whether a topic partition exists (commits for missing topics are refused).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// Every topic's id and partition count (KIP-848 assignors).
    fn topics(&self) -> consumer::TopicInfo;
}

impl GroupCoordinator {
    /// An empty coordinator.
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator { config, groups: RefCell::new(HashMap::new()), consumer_groups: RefCell::new(HashMap::new()) }
    }

    fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms)
    }

    fn partition_of(&self, group: &str) -> i32 {
        partition_for(group, self.config.offsets_topic_partitions)
    }

    /// Replays one record of `__consumer_offsets` (start-up).
    pub fn replay(&self, key: &[u8], value: Option<&[u8]>) {
        let Some(key) = GroupKey::decode(key) else { return };
        let mut groups = self.groups.borrow_mut();
        match (key, value) {
            (GroupKey::Offset { group, topic, partition }, Some(v)) => {
                if let Some(v) = OffsetValue::decode(v) {
                    groups.entry(group.clone()).or_insert_with(|| Group::new(&group)).offsets.insert((topic, partition), v);
                }
            }
            (GroupKey::Offset { group, topic, partition }, None) => {
                if let Some(g) = groups.get_mut(&group) {
                    g.offsets.remove(&(topic, partition));
                }
            }
            (GroupKey::Metadata { group }, Some(v)) => {
                let Some(v) = GroupValue::decode(v) else { return };
                let g = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                g.protocol_type = Some(v.protocol_type).filter(|s| !s.is_empty());
                g.generation = v.generation;
                g.protocol = v.protocol.clone();
                g.leader = v.leader;
                g.members.clear();
                let now = Instant::now();
                for m in v.members {
                    let seq = g.next_seq;
                    g.next_seq += 1;
                    g.members.insert(
                        seq,
                        Member {
                            id: m.member_id,
                            instance_id: m.instance_id,
                            client_id: m.client_id,
                            client_host: m.client_host,
                            session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                            rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                            protocols: vec![(v.protocol.clone().unwrap_or_default(), m.subscription)],
                            assignment: m.assignment,
                            last_heartbeat: now,
                            join_waiter: None,
                            sync_waiter: None,
                        },
                    );
                }
                g.state = if g.members.is_empty() { GroupState::Empty } else { GroupState::Stable };
            }
            (GroupKey::Metadata { group }, None) => {
                groups.remove(&group);
            }
        }
    }

    /// Serves one group request. `log` makes the coordinator's writes durable.
    pub async fn handle(&self, call: GroupCall, log: &impl GroupLog) -> GroupReply {
        match call {
            GroupCall::Join { req, version, client_id, client_host } => {
                let rx = self.join(req, version, client_id, client_host);
                GroupReply::Join(match rx {
                    Ok(rx) => rx.await.unwrap_or_else(|_| join_error(gcode::REBALANCE_IN_PROGRESS, "")),
                    Err(resp) => *resp,
                })
            }
            GroupCall::Sync { req, version } => GroupReply::Sync(self.sync(req, version, log).await),
            GroupCall::Heartbeat { group, generation, member_id, instance_id } => {
                GroupReply::Code(self.heartbeat(&group, generation, &member_id, instance_id.as_deref()))
            }
            GroupCall::Leave { group, members } => {
                let (code, per_member) = self.leave(&group, members, log).await;
                GroupReply::Leave(code, per_member)
            }
            GroupCall::Commit { group, generation, member_id, instance_id, parts } => {
                GroupReply::Committed(self.commit(&group, generation, &member_id, instance_id.as_deref(), parts, log).await)
            }
            GroupCall::FetchOffsets { group, partitions } => GroupReply::Offsets(self.fetch_offsets(&group, partitions)),
            GroupCall::DeleteOffsets { group, partitions } => {
                let (code, per) = self.delete_offsets(&group, partitions, log).await;
                GroupReply::Deleted(code, per)
            }
            GroupCall::Describe { group } => GroupReply::Described(self.describe(&group)),
            GroupCall::List => GroupReply::Listed(self.list()),
            GroupCall::Delete { group } => GroupReply::Code(self.delete(&group, log).await),
            GroupCall::ConsumerHeartbeat { req, client_id, client_host } => {
                let group = req.group_id.0.to_string();
                if group.is_empty() {
                    return GroupReply::ConsumerHeartbeat(
                        kafka_protocol::messages::ConsumerGroupHeartbeatResponse::default().with_error_code(gcode::INVALID_GROUP_ID),
                    );
                }
                let topics = log.topics();
                let mut groups = self.consumer_groups.borrow_mut();
                let g = groups.entry(group.clone()).or_insert_with(|| consumer::ConsumerGroup::new(&group));
                GroupReply::ConsumerHeartbeat(g.heartbeat(&req, &client_id, &client_host, &topics))
            }
            GroupCall::ConsumerDescribe { group } => {
                let names = log.topics().into_iter().map(|(name, (id, _))| (id, name)).collect();
                GroupReply::ConsumerDescribed(match self.consumer_groups.borrow().get(&group) {
                    Some(g) => g.describe(&names),
                    None => kafka_protocol::messages::consumer_group_describe_response::DescribedGroup::default()
                        .with_group_id(GroupId(sb(&group)))
                        .with_error_code(gcode::GROUP_ID_NOT_FOUND),
                })
            }
        }
    }

    fn join(
        &self,
        req: kafka_protocol::messages::JoinGroupRequest,
        version: i16,
        client_id: String,
        client_host: String,
    ) -> Result<oneshot::Receiver<JoinGroupResponse>, Box<JoinGroupResponse>> {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        if group_id.is_empty() {
            return Err(Box::new(join_error(gcode::INVALID_GROUP_ID, &member_id)));
        }
        let session = req.session_timeout_ms;
        if session < self.config.min_session_timeout_ms || session > self.config.max_session_timeout_ms {
            return Err(Box::new(join_error(gcode::INVALID_SESSION_TIMEOUT, &member_id)));
        }
        let rebalance_ms = if version == 0 { session } else { req.rebalance_timeout_ms };
        let protocols: Vec<(String, Bytes)> = req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
        let protocol_type = req.protocol_type.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id));
        if g.state == GroupState::Dead {
            return Err(Box::new(join_error(gcode::COORDINATOR_NOT_AVAILABLE, &member_id)));
        }
        if protocols.is_empty() || protocol_type.is_empty() {
            return Err(Box::new(join_error(gcode::INCONSISTENT_GROUP_PROTOCOL, &member_id)));
        }
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(protocol_type.as_str());
            let common = g.members.values().next().is_some_and(|first| {
                protocols.iter().any(|(n, _)| first.protocols.iter().any(|(p, _)| p == n))
            });
            if !same_type || !common {
                return Err(Box::new(join_error(gcode::INCONSISTENT_GROUP_PROTOCOL, &member_id)));
            }
        }

        // Static members: a known instance rejoining takes over its old member id's place.
        let mut static_rejoin = false;
        let member_id = if let Some(instance) = &instance_id {
            match g.by_instance(instance).map(|m| m.id.clone()) {
                Some(old) if member_id.is_empty() || member_id == old => {
                    static_rejoin = true;
                    let new_id = if member_id.is_empty() { new_member_id(instance) } else { old.clone() };
                    if let Some(m) = g.member_mut(&old) {
                        m.id = new_id.clone();
                        if g.leader.as_deref() == Some(old.as_str()) {
                            g.leader = Some(new_id.clone());
                        }
                    }
                    new_id
                }
                Some(_) => return Err(Box::new(join_error(gcode::FENCED_INSTANCE_ID, &member_id))),
                None if member_id.is_empty() => new_member_id(instance),
                None => return Err(Box::new(join_error(gcode::UNKNOWN_MEMBER_ID, &member_id))),
            }
        } else if member_id.is_empty() {
            let new_id = new_member_id(&client_id);
            if version >= 4 {
                // KIP-394: the client must rejoin with the id we hand out.
                g.pending.insert(new_id.clone());
                return Err(Box::new(join_error(gcode::MEMBER_ID_REQUIRED, &new_id)));
            }
            new_id
        } else if g.member(&member_id).is_none() && !g.pending.remove(&member_id) {
            return Err(Box::new(join_error(gcode::UNKNOWN_MEMBER_ID, &member_id)));
        } else {
            member_id
        };

        let (tx, rx) = oneshot::channel();
        if g.protocol_type.is_none() || g.members.is_empty() {
            g.protocol_type = Some(protocol_type);
        }
        let changed = match g.member_mut(&member_id) {
            Some(m) => {
                let changed = m.protocols != protocols;
                m.protocols = protocols;
                m.session_timeout = Duration::from_millis(session as u64);
                m.rebalance_timeout = Duration::from_millis(rebalance_ms.max(0) as u64);
                m.last_heartbeat = Instant::now();
                changed
            }
            None => {
                let seq = g.next_seq;
                g.next_seq += 1;
                g.members.insert(
                    seq,
                    Member {
                        id: member_id.clone(),
                        instance_id: instance_id.clone(),
                        client_id,
                        client_host,
                        session_timeout: Duration::from_millis(session as u64),
                        rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
                        protocols,
                        assignment: Bytes::new(),
                        last_heartbeat: Instant::now(),
                        join_waiter: None,
                        sync_waiter: None,
                    },
                );
                true
            }
        };
        tracing::info!(group = %group_id, member = %member_id, state = g.state.name(), "join group");

        // A static member back within its session, with the same subscription, keeps its
        // assignment: no rebalance (KIP-345).
        if static_rejoin && !changed && g.state == GroupState::Stable {
            let protocol = g.protocol.clone().unwrap_or_default();
            let leader = g.leader.clone().unwrap_or_default();
            let members = if leader == member_id {
                g.member_list(&protocol)
            } else {
                Vec::new()
            };
            let mut resp = join_response(version, g.generation, &g.protocol_type, &protocol, &leader, &member_id, members);
            if version >= 9 && leader == member_id {
                resp = resp.with_skip_assignment(true);
            }
            let _ = tx.send(resp);
            return Ok(rx);
        }
        if let Some(m) = g.member_mut(&member_id) {
            m.join_waiter = Some((version, tx));
        }
        match g.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => g.prepare_rebalance(self.initial_delay()),
            GroupState::PreparingRebalance | GroupState::Dead => {}
        }
        if g.all_joined() && g.join_not_before.is_none_or(|t| Instant::now() >= t) {
            g.complete_join();
        }
        Ok(rx)
    }

    async fn sync(&self, req: kafka_protocol::messages::SyncGroupRequest, version: i16, log: &impl GroupLog) -> SyncGroupResponse {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let err = |code| SyncGroupResponse::default().with_error_code(code);
        let (rx, write) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&group_id) else { return err(gcode::UNKNOWN_MEMBER_ID) };
            if let Err(e) = g.check_member(&member_id, req.group_instance_id.as_deref()) {
                return err(e);
            }
            if req.generation_id != g.generation {
                return err(gcode::ILLEGAL_GENERATION);
            }
            let protocol = g.protocol.clone().map(|p| sb(&p));
            let protocol_type = g.protocol_type.clone().map(|p| sb(&p));
            let ok = |assignment: Bytes| {
                let r = SyncGroupResponse::default().with_assignment(assignment);
                if version >= 5 { r.with_protocol_type(protocol_type.clone()).with_protocol_name(protocol.clone()) } else { r }
            };
            match g.state {
                GroupState::Empty | GroupState::Dead => return err(gcode::UNKNOWN_MEMBER_ID),
                GroupState::PreparingRebalance => return err(gcode::REBALANCE_IN_PROGRESS),
                GroupState::Stable => {
                    let assignment = g.member(&member_id).map(|m| m.assignment.clone()).unwrap_or_default();
                    return ok(assignment);
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = g.member_mut(&member_id) {
                m.sync_waiter = Some(tx);
            }
            let write = if g.leader.as_deref() == Some(member_id.as_str()) {
                let assignments: HashMap<String, Bytes> =
                    req.assignments.iter().map(|a| (a.member_id.to_string(), a.assignment.clone())).collect();
                for m in g.members.values_mut() {
                    m.assignment = assignments.get(&m.id).cloned().unwrap_or_default();
                }
                Some((g.generation, g.metadata_record()))
            } else {
                None
            };
            (rx, write)
        };
        if let Some((generation, record)) = write {
            let stored = log.append(self.partition_of(&group_id), vec![record]).await;
            let mut groups = self.groups.borrow_mut();
            if let Some(g) = groups.get_mut(&group_id)
                && g.generation == generation
                && g.state == GroupState::CompletingRebalance
            {
                {
                    let protocol = g.protocol.clone().map(|p| sb(&p));
                    let protocol_type = g.protocol_type.clone().map(|p| sb(&p));
                    match stored {
                        Ok(()) => g.set_state(GroupState::Stable),
                        Err(_) => g.prepare_rebalance(Duration::ZERO),
                    }
                    for m in g.members.values_mut() {
                        let Some(tx) = m.sync_waiter.take() else { continue };
                        let resp = match stored {
                            Ok(()) => {
                                let r = SyncGroupResponse::default().with_assignment(m.assignment.clone());
                                if version >= 5 { r.with_protocol_type(protocol_type.clone()).with_protocol_name(protocol.clone()) } else { r }
                            }
                            Err(e) => err(e),
                        };
                        let _ = tx.send(resp);
                    }
                }
            }
        }
        rx.await.unwrap_or_else(|_| err(gcode::REBALANCE_IN_PROGRESS))
    }

    fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, instance_id: Option<&str>) -> i16 {
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group_id) else { return gcode::UNKNOWN_MEMBER_ID };
        if let Err(e) = g.check_member(member_id, instance_id) {
            return e;
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => gcode::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => gcode::REBALANCE_IN_PROGRESS,
            _ if generation != g.generation => gcode::ILLEGAL_GENERATION,
            _ => code::NONE,
        }
    }

    async fn leave(&self, group_id: &str, members: Vec<(String, Option<String>)>, log: &impl GroupLog) -> (i16, Vec<i16>) {
        let (codes, record) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                return (gcode::UNKNOWN_MEMBER_ID, vec![gcode::UNKNOWN_MEMBER_ID; members.len()]);
            };
            let mut leaving = Vec::new();
            let codes: Vec<i16> = members
                .iter()
                .map(|(id, instance)| {
                    let resolved = match instance {
                        Some(inst) => match g.by_instance(inst) {
                            Some(m) if id.is_empty() || *id == m.id => Ok(m.id.clone()),
                            Some(_) => Err(gcode::FENCED_INSTANCE_ID),
                            None => Err(gcode::UNKNOWN_MEMBER_ID),
                        },
                        None => g.member(id).map(|m| m.id.clone()).ok_or(gcode::UNKNOWN_MEMBER_ID),
                    };
                    match resolved {
                        Ok(id) => {
                            tracing::info!(group = %group_id, member = %id, "member left");
                            leaving.push(id);
                            code::NONE
                        }
                        Err(e) => e,
                    }
                })
                .collect();
            g.remove_members(&leaving, self.initial_delay());
            let record = (g.state == GroupState::Empty && !leaving.is_empty()).then(|| g.metadata_record());
            (codes, record)
        };
        if let Some(record) = record {
            let _ = log.append(self.partition_of(group_id), vec![record]).await;
        }
        (code::NONE, codes)
    }

    async fn commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        parts: Vec<CommitPart>,
        log: &impl GroupLog,
    ) -> Vec<i16> {
        let all = |code| vec![code; parts.len()];
        if group_id.is_empty() {
            return all(gcode::INVALID_GROUP_ID);
        }
        let consumer_check = self.consumer_groups.borrow().get(group_id).map(|g| g.check_commit(member_id, generation));
        if let Some(Err(e)) = consumer_check.filter(|_| !member_id.is_empty()) {
            return all(e);
        }
        {
            let mut groups = self.groups.borrow_mut();
            let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
            // generation -1 with no member: a "simple" commit from outside the group protocol.
            let simple = (generation < 0 && member_id.is_empty()) || consumer_check.is_some();
            if !simple {
                if let Err(e) = g.check_member(member_id, instance_id) {
                    return all(e);
                }
                if generation != g.generation {
                    return all(gcode::ILLEGAL_GENERATION);
                }
                if g.state == GroupState::CompletingRebalance {
                    return all(gcode::REBALANCE_IN_PROGRESS);
                }
                if let Some(m) = g.member_mut(member_id) {
                    m.last_heartbeat = Instant::now();
                }
            } else if !g.members.is_empty() {
                // Kafka: a commit from outside the group while it has members names no member.
                return all(gcode::UNKNOWN_MEMBER_ID);
            }
        }
        let now = now_ms();
        let mut codes = Vec::with_capacity(parts.len());
        let mut records = Vec::new();
        let mut accepted = Vec::new();
        for p in &parts {
            let c = if !log.partition_exists(&p.topic, p.partition) {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else if p.metadata.as_ref().is_some_and(|m| m.len() > self.config.offset_metadata_max_bytes) {
                gcode::OFFSET_METADATA_TOO_LARGE
            } else {
                let value = OffsetValue {
                    offset: p.offset,
                    leader_epoch: p.leader_epoch,
                    metadata: p.metadata.clone().unwrap_or_default(),
                    commit_timestamp: now,
                };
                let key = GroupKey::Offset { group: group_id.to_string(), topic: p.topic.clone(), partition: p.partition };
                records.push((key.encode(), Some(value.encode())));
                accepted.push(((p.topic.clone(), p.partition), value));
                code::NONE
            };
            codes.push(c);
        }
        if records.is_empty() {
            return codes;
        }
        match log.append(self.partition_of(group_id), records).await {
            Ok(()) => {
                let mut groups = self.groups.borrow_mut();
                let g = groups.entry(group_id.to_string()).or_insert_with(|| Group::new(group_id));
                for (k, v) in accepted {
                    g.offsets.insert(k, v);
                }
                codes
            }
            Err(e) => codes.into_iter().map(|c| if c == code::NONE { e } else { c }).collect(),
        }
    }

    fn fetch_offsets(&self, group_id: &str, partitions: Option<Vec<(String, i32)>>) -> Vec<OffsetEntry> {
        let groups = self.groups.borrow();
        let g = groups.get(group_id);
        let entry = |topic: &str, partition: i32| {
            let v = g.and_then(|g| g.offsets.get(&(topic.to_string(), partition)));
            OffsetEntry {
                topic: topic.to_string(),
                partition,
                offset: v.map(|v| v.offset).unwrap_or(-1),
                leader_epoch: v.map(|v| v.leader_epoch).unwrap_or(-1),
                metadata: v.map(|v| v.metadata.clone()).unwrap_or_default(),
            }
        };
        match partitions {
            Some(list) => list.iter().map(|(t, p)| entry(t, *p)).collect(),
            None => {
                let mut keys: Vec<_> = g.map(|g| g.offsets.keys().cloned().collect()).unwrap_or_default();
                keys.sort();
                keys.iter().map(|(t, p)| entry(t, *p)).collect()
            }
        }
    }

    async fn delete_offsets(&self, group_id: &str, partitions: Vec<(String, i32)>, log: &impl GroupLog) -> (i16, Vec<i16>) {
        let (codes, records, removed) = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else { return (gcode::GROUP_ID_NOT_FOUND, Vec::new()) };
            let subscribed = g.subscribed_topics();
            let mut records = Vec::new();
            let mut removed = Vec::new();
            let codes = partitions
                .iter()
                .map(|(t, p)| {
                    if subscribed.contains(t) {
                        return gcode::GROUP_SUBSCRIBED_TO_TOPIC;
                    }
                    if g.offsets.contains_key(&(t.clone(), *p)) {
                        let key = GroupKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p };
                        records.push((key.encode(), None));
                        removed.push((t.clone(), *p));
                    }
                    code::NONE
                })
                .collect();
            (codes, records, removed)
        };
        if !records.is_empty() {
            if let Err(e) = log.append(self.partition_of(group_id), records).await {
                return (e, Vec::new());
            }
            if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
                for k in removed {
                    g.offsets.remove(&k);
                }
            }
        }
        (code::NONE, codes)
    }

    fn describe(&self, group_id: &str) -> DescribedGroup {
        let groups = self.groups.borrow();
        let base = DescribedGroup::default().with_group_id(GroupId(sb(group_id)));
        let Some(g) = groups.get(group_id) else {
            return base.with_group_state(sb("Dead")).with_error_code(gcode::GROUP_ID_NOT_FOUND);
        };
        let protocol = g.protocol.clone().unwrap_or_default();
        let members = if matches!(g.state, GroupState::Stable | GroupState::CompletingRebalance | GroupState::PreparingRebalance) {
            g.members
                .values()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(sb(&m.id))
                        .with_group_instance_id(m.instance_id.as_deref().map(sb))
                        .with_client_id(sb(&m.client_id))
                        .with_client_host(sb(&m.client_host))
                        .with_member_metadata(m.metadata_for(&protocol))
                        .with_member_assignment(m.assignment.clone())
                })
                .collect()
        } else {
            Vec::new()
        };
        base.with_group_state(sb(g.state.name()))
            .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")))
            .with_protocol_data(sb(&protocol))
            .with_members(members)
    }

    fn list(&self) -> Vec<ListedGroup> {
        let consumer = self.consumer_groups.borrow();
        let mut out: Vec<ListedGroup> = self
            .groups
            .borrow()
            .values()
            .filter(|g| g.state != GroupState::Dead && !consumer.contains_key(&g.id))
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")))
                    .with_group_state(sb(g.state.name()))
                    .with_group_type(sb("classic"))
            })
            .collect();
        out.extend(consumer.iter().map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb("consumer"))
                .with_group_state(sb(g.state_name()))
                .with_group_type(sb("consumer"))
        }));
        out
    }

    async fn delete(&self, group_id: &str, log: &impl GroupLog) -> i16 {
        let records = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else { return gcode::GROUP_ID_NOT_FOUND };
            if !matches!(g.state, GroupState::Empty | GroupState::Dead) {
                return gcode::NON_EMPTY_GROUP;
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| (GroupKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p }.encode(), None))
                .collect();
            records.push((GroupKey::Metadata { group: group_id.to_string() }.encode(), None));
            records
        };
        if let Err(e) = log.append(self.partition_of(group_id), records).await {
            return e;
        }
        self.groups.borrow_mut().remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        code::NONE
    }

    /// Timers: session expiry, rebalance timeouts, the initial rebalance delay, offset retention.
    pub async fn tick(&self, log: &impl GroupLog) {
        if !self.consumer_groups.borrow().is_empty() {
            let topics = log.topics();
            for g in self.consumer_groups.borrow_mut().values_mut() {
                g.expire(&topics);
            }
        }
        let now = Instant::now();
        let retention_ms = self.config.offsets_retention_minutes.saturating_mul(60_000);
        let mut writes: Vec<GroupWrite> = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            for g in groups.values_mut() {
                let expired: Vec<String> = g
                    .members
                    .values()
                    .filter(|m| {
                        // A member parked in JoinGroup is waiting on us, not silent.
                        m.join_waiter.is_none() && now.duration_since(m.last_heartbeat) > m.session_timeout
                    })
                    .map(|m| m.id.clone())
                    .collect();
                let was_empty = g.state == GroupState::Empty;
                if !expired.is_empty() {
                    for id in &expired {
                        tracing::info!(group = %g.id, member = %id, "member session expired");
                    }
                    g.remove_members(&expired, self.initial_delay());
                }
                if g.state == GroupState::PreparingRebalance {
                    let deadline_passed = g.rebalance_deadline.is_some_and(|d| now >= d);
                    let delay_over = g.join_not_before.is_none_or(|t| now >= t);
                    if deadline_passed || (delay_over && g.all_joined()) {
                        g.complete_join();
                    }
                }
                let mut records = Vec::new();
                if g.state == GroupState::Empty && !was_empty {
                    records.push(g.metadata_record());
                }
                if g.state == GroupState::Empty {
                    let cutoff = now_ms() - retention_ms;
                    let old: Vec<(String, i32)> =
                        g.offsets.iter().filter(|(_, v)| v.commit_timestamp < cutoff).map(|(k, _)| k.clone()).collect();
                    for (t, p) in old {
                        g.offsets.remove(&(t.clone(), p));
                        tracing::info!(group = %g.id, topic = %t, partition = p, "committed offset expired");
                        records.push((GroupKey::Offset { group: g.id.clone(), topic: t, partition: p }.encode(), None));
                    }
                }
                if !records.is_empty() {
                    writes.push((partition_for(&g.id, self.config.offsets_topic_partitions), records));
                }
            }
        }
        for (partition, records) in writes {
            if let Err(e) = log.append(partition, records).await {
                tracing::warn!(partition, error_code = e, "group state write failed");
            }
        }
    }
}

fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// An in-memory `__consumer_offsets` for coordinator unit tests.
    #[derive(Default)]
    struct MemLog {
        records: RefCell<Vec<(i32, Bytes, Option<Bytes>)>>,
    }

    impl GroupLog for MemLog {
        async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), i16> {
            self.records.borrow_mut().extend(records.into_iter().map(|(k, v)| (partition, k, v)));
            Ok(())
        }
        fn partition_exists(&self, topic: &str, _partition: i32) -> bool {
            topic == "t"
        }
        fn topics(&self) -> consumer::TopicInfo {
            Default::default()
        }
    }

    fn commit_part(offset: i64) -> CommitPart {
        CommitPart { topic: "t".into(), partition: 0, offset, leader_epoch: -1, metadata: Some("m".into()) }
    }

    #[test]
    fn offsets_replay_and_expire_by_retention() {
        let log = MemLog::default();
        let config = GroupConfig { offsets_retention_minutes: 0, ..GroupConfig::default() };
        let c = GroupCoordinator::new(config);
        let codes = futures::executor::block_on(c.commit("g", -1, "", None, vec![commit_part(7)], &log));
        assert_eq!(codes, vec![code::NONE]);
        let missing = futures::executor::block_on(c.commit(
            "g",
            -1,
            "",
            None,
            vec![CommitPart { topic: "nope".into(), ..commit_part(1) }],
            &log,
        ));
        assert_eq!(missing, vec![code::UNKNOWN_TOPIC_OR_PARTITION]);

        // A fresh coordinator rebuilds the offset from the records, metadata included.
        let replayed = GroupCoordinator::new(GroupConfig::default());
        for (_, k, v) in log.records.borrow().iter() {
            replayed.replay(k, v.as_deref());
        }
        let got = replayed.fetch_offsets("g", Some(vec![("t".into(), 0)]));
        assert_eq!((got[0].offset, got[0].metadata.as_str()), (7, "m"));

        // offsets.retention.minutes = 0: an empty group's offsets expire at the next tick, with a tombstone.
        std::thread::sleep(Duration::from_millis(5));
        futures::executor::block_on(c.tick(&log));
        assert_eq!(c.fetch_offsets("g", Some(vec![("t".into(), 0)]))[0].offset, -1);
        let last = log.records.borrow().last().cloned().unwrap();
        assert_eq!(last.1, GroupKey::Offset { group: "g".into(), topic: "t".into(), partition: 0 }.encode());
        assert!(last.2.is_none(), "tombstone");
    }

    #[test]
    fn group_partition_matches_kafka() {
        // Java: ("my-group".hashCode() & 0x7fffffff) % 50 == 36; "".hashCode() == 0.
        assert_eq!(partition_for("my-group", 50), 36);
        assert_eq!(partition_for("", 50), 0);
    }
}
