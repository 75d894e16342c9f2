//! The group coordinator of one shard: its groups, its view of `__consumer_offsets`, start-up
//! replay, and the dispatch of each [`GroupCall`] to the part that serves it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{consumer_group_describe_response, ConsumerGroupHeartbeatResponse, GroupId};

use super::api::{GroupCall, GroupReply, TxnProducer};
use super::consumer;
use super::error::{outcome_code, GroupError};
use super::loading::ServedPartitions;
use super::partition_for;
use super::records::{GroupKey, GroupValue, OffsetValue};
use super::state::{join_error, sb, Group, GroupState, Member};
use crate::codes::ErrorCode;
use crate::config::GroupConfig;

/// A write to `__consumer_offsets` that must be durable before the answer: (partition, records).
pub type GroupWrite = (i32, Vec<(Bytes, Option<Bytes>)>);

/// The consumer group coordinator of one shard. `!Send`.
pub struct GroupCoordinator {
    pub(super) config: GroupConfig,
    pub(super) groups: RefCell<HashMap<String, Group>>,
    pub(super) consumer_groups: RefCell<HashMap<String, consumer::ConsumerGroup>>,
    /// The `__consumer_offsets` partitions whose groups this coordinator serves or is loading.
    pub(super) served: RefCell<ServedPartitions>,
}

/// What the coordinator needs from its shard: durable appends to `__consumer_offsets`.
pub trait GroupLog {
    /// Appends records to a `__consumer_offsets` partition with acks=all; the log's Kafka error code on failure.
    fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> impl std::future::Future<Output = Result<(), ErrorCode>>;
    /// As [`GroupLog::append`], as one transactional batch of `producer` (TxnOffsetCommit).
    fn append_txn(
        &self,
        partition: i32,
        producer: TxnProducer,
        records: Vec<(Bytes, Option<Bytes>)>,
    ) -> impl std::future::Future<Output = Result<(), ErrorCode>>;
    /// Whether a topic partition exists (commits for missing topics are refused).
    fn partition_exists(&self, topic: &str, partition: i32) -> bool;
    /// Every topic's id and partition count (KIP-848 assignors).
    fn topics(&self) -> consumer::TopicInfo;
}

impl GroupCoordinator {
    /// An empty coordinator that serves no group until a partition's load finishes
    /// ([`GroupCoordinator::begin_load`]).
    pub fn new(config: GroupConfig) -> Self {
        GroupCoordinator {
            config,
            groups: RefCell::new(HashMap::new()),
            consumer_groups: RefCell::new(HashMap::new()),
            served: RefCell::new(ServedPartitions::default()),
        }
    }

    /// `group.initial.rebalance.delay.ms`: how long an empty group waits for more members.
    pub(super) fn initial_delay(&self) -> Duration {
        Duration::from_millis(self.config.initial_rebalance_delay_ms)
    }

    /// The `__consumer_offsets` partition that stores `group`.
    pub(super) fn partition_of(&self, group: &str) -> i32 {
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
    /// A group whose `__consumer_offsets` partition is not served here is refused first
    /// (NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while it loads), as in Kafka; an empty
    /// group id goes on to be refused as invalid.
    pub async fn handle(&self, call: GroupCall, log: &impl GroupLog) -> GroupReply {
        if let Some(Err(e)) = call.group().filter(|g| !g.is_empty()).map(|g| self.check_serving(g)) {
            tracing::debug!(error = %e, "group request refused");
            return GroupReply::Refused(ErrorCode::from(&e));
        }
        match call {
            GroupCall::Join { req, version, client_id, client_host } => {
                let group = req.group_id.0.to_string();
                let rx = self.join(req, version, client_id, client_host);
                GroupReply::Join(match rx {
                    // The waiter was dropped: the member must rejoin.
                    Ok(rx) => rx.await.unwrap_or_else(|_| join_error(&GroupError::RebalanceInProgress { group }, "")),
                    Err(resp) => *resp,
                })
            }
            GroupCall::Sync { req, version } => GroupReply::Sync(self.sync(req, version, log).await),
            GroupCall::Heartbeat { group, generation, member_id, instance_id } => {
                GroupReply::Code(outcome_code(&self.heartbeat(&group, generation, &member_id, instance_id.as_deref())))
            }
            GroupCall::Leave { group, members } => {
                let count = members.len();
                match self.leave(&group, members, log).await {
                    Ok(per_member) => GroupReply::Leave(ErrorCode::NONE, per_member.iter().map(outcome_code).collect()),
                    // No such group: every member is unknown too.
                    Err(e) => GroupReply::Leave(ErrorCode::from(&e), vec![ErrorCode::from(&e); count]),
                }
            }
            GroupCall::Commit { group, generation, member_id, instance_id, parts, txn } => {
                let outcomes = self.commit(&group, generation, &member_id, instance_id.as_deref(), parts, txn, log).await;
                GroupReply::Committed(outcomes.iter().map(outcome_code).collect())
            }
            GroupCall::FetchOffsets { group, partitions } => GroupReply::Offsets(self.fetch_offsets(&group, partitions)),
            GroupCall::DeleteOffsets { group, partitions } => match self.delete_offsets(&group, partitions, log).await {
                Ok(per) => GroupReply::Deleted(ErrorCode::NONE, per.iter().map(outcome_code).collect()),
                Err(e) => GroupReply::Deleted(ErrorCode::from(&e), Vec::new()),
            },
            GroupCall::Describe { group } => GroupReply::Described(self.describe(&group)),
            GroupCall::List => GroupReply::Listed(self.list()),
            GroupCall::Delete { group } => GroupReply::Code(outcome_code(&self.delete(&group, log).await)),
            GroupCall::ConsumerHeartbeat { req, client_id, client_host } => {
                let group = req.group_id.0.to_string();
                if group.is_empty() {
                    return GroupReply::ConsumerHeartbeat(
                        ConsumerGroupHeartbeatResponse::default().with_error_code(ErrorCode::from(&GroupError::InvalidGroupId).code()),
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
                    None => {
                        let code = ErrorCode::from(&GroupError::GroupIdNotFound { group: group.clone() }).code();
                        consumer_group_describe_response::DescribedGroup::default().with_group_id(GroupId(sb(&group))).with_error_code(code)
                    }
                })
            }
        }
    }
}
