//! KIP-848 consumer groups (`group.protocol=consumer`): the broker computes assignments and
//! hands them out incrementally through ConsumerGroupHeartbeat.
//!
//! Each membership or subscription change bumps the group epoch and recomputes the target
//! assignment (uniform or range). A member then reconciles toward its target: first it is told to
//! drop partitions that move away; a partition is given to its new owner only once no other member
//! still holds it. A member that holds exactly its target is at the group's epoch.
//!
//! Group state here is soft: after a broker restart members rejoin (UNKNOWN_MEMBER_ID). Committed
//! offsets are shared with the classic groups and are durable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::error::GroupError;
use crate::codes::ErrorCode;

/// `group.consumer.heartbeat.interval.ms` default.
const HEARTBEAT_INTERVAL_MS: i32 = 5000;
/// `group.consumer.session.timeout.ms` default.
const SESSION_TIMEOUT: Duration = Duration::from_secs(45);

type Tp = (Uuid, i32);

/// What the assignor needs to know of a topic: its id and partition count.
pub type TopicInfo = BTreeMap<String, (Uuid, i32)>;

struct Member {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    epoch: i32,
    /// The epoch before the last bump: a heartbeat in flight may still carry it.
    prev_epoch: i32,
    client_id: String,
    client_host: String,
    subscribed: Vec<String>,
    /// What the broker has told the member to own.
    assigned: BTreeSet<Tp>,
    /// What the member last reported owning.
    owned: BTreeSet<Tp>,
    last_heartbeat: Instant,
}

/// One KIP-848 group.
pub struct ConsumerGroup {
    id: String,
    epoch: i32,
    assignor: String,
    members: BTreeMap<String, Member>,
    target: BTreeMap<String, BTreeSet<Tp>>,
    /// Partition counts the target was computed from; a change triggers a new target.
    topics_seen: TopicInfo,
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

impl ConsumerGroup {
    /// An empty group.
    pub fn new(id: &str) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            epoch: 0,
            assignor: "uniform".into(),
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            topics_seen: BTreeMap::new(),
        }
    }

    /// Whether `member_id` may commit offsets at `epoch`: an unknown member, or a stale epoch.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        match self.members.get(member_id) {
            None => Err(GroupError::UnknownMemberId { member_id: member_id.to_string() }),
            Some(m) if m.epoch != epoch => {
                Err(GroupError::StaleMemberEpoch { member_id: member_id.to_string(), epoch, current: m.epoch })
            }
            Some(_) => Ok(()),
        }
    }

    /// Topics any member subscribes to.
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members.values().flat_map(|m| m.subscribed.iter().cloned()).collect()
    }

    /// Kafka's state name for ListGroups and describe.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.members.values().all(|m| m.epoch == self.epoch) {
            "Stable"
        } else {
            "Reconciling"
        }
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn recompute_target(&mut self, topics: &TopicInfo) {
        self.epoch += 1;
        self.topics_seen = topics.clone();
        self.target = match self.assignor.as_str() {
            "range" => assign_range(&self.members, topics),
            _ => assign_uniform(&self.members, topics, &self.target),
        };
        tracing::info!(group = %self.id, epoch = self.epoch, members = self.members.len(), assignor = %self.assignor,
            "consumer group target assignment");
    }

    /// Serves one ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        client_id: &str,
        client_host: &str,
        topics: &TopicInfo,
    ) -> ConsumerGroupHeartbeatResponse {
        // The error's text goes to the client with its code.
        let err = |e: GroupError| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(ErrorCode::from(&e).code())
                .with_error_message(Some(sb(&e.to_string())))
                .with_member_epoch(-1)
                .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
        };
        let mut member_id = req.member_id.to_string();
        if let Some(a) = &req.server_assignor {
            match a.as_str() {
                "uniform" | "range" => self.assignor = a.to_string(),
                other => return err(GroupError::UnsupportedAssignor { assignor: other.to_string() }),
            }
        }
        let mut changed = false;
        match req.member_epoch {
            0 => {
                if member_id.is_empty() {
                    member_id = Uuid::new_v4().to_string();
                }
                let Some(subscribed) = &req.subscribed_topic_names else {
                    return err(GroupError::SubscriptionRequired);
                };
                let subscribed: Vec<String> = subscribed.iter().map(|t| t.0.to_string()).collect();
                let existing = self.members.remove(&member_id);
                let assigned = existing.map(|m| m.assigned).unwrap_or_default();
                self.members.insert(
                    member_id.clone(),
                    Member {
                        id: member_id.clone(),
                        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
                        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
                        epoch: 0,
                        prev_epoch: 0,
                        client_id: client_id.to_string(),
                        client_host: client_host.to_string(),
                        subscribed,
                        assigned,
                        owned: BTreeSet::new(),
                        last_heartbeat: Instant::now(),
                    },
                );
                tracing::info!(group = %self.id, member = %member_id, "consumer group member joined");
                changed = true;
            }
            -1 | -2 => {
                if self.members.remove(&member_id).is_some() {
                    tracing::info!(group = %self.id, member = %member_id, "consumer group member left");
                    self.recompute_target(topics);
                }
                return ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(sb(&member_id)))
                    .with_member_epoch(req.member_epoch)
                    .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS);
            }
            epoch => {
                let group_epoch = self.epoch;
                let Some(m) = self.members.get_mut(&member_id) else {
                    return err(GroupError::UnknownMemberId { member_id });
                };
                if epoch > group_epoch || (epoch != m.epoch && epoch != m.prev_epoch) {
                    return err(GroupError::FencedMemberEpoch { member_id, epoch });
                }
                if let Some(sub) = &req.subscribed_topic_names {
                    let sub: Vec<String> = sub.iter().map(|t| t.0.to_string()).collect();
                    if sub != m.subscribed {
                        m.subscribed = sub;
                        changed = true;
                    }
                }
                m.last_heartbeat = Instant::now();
            }
        }
        if let Some(m) = self.members.get_mut(&member_id) {
            if let Some(owned) = &req.topic_partitions {
                m.owned = owned.iter().flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p))).collect();
            }
            m.last_heartbeat = Instant::now();
        }
        let subscribed_now: TopicInfo =
            topics.iter().filter(|(n, _)| self.subscribed_topics().contains(*n)).map(|(n, v)| (n.clone(), *v)).collect();
        let seen: TopicInfo =
            self.topics_seen.iter().filter(|(n, _)| subscribed_now.contains_key(*n)).map(|(n, v)| (n.clone(), *v)).collect();
        if changed || seen != subscribed_now {
            self.recompute_target(topics);
        }
        self.reconcile(&member_id);
        let m = &self.members[&member_id];
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(&member_id)))
            .with_member_epoch(m.epoch)
            .with_heartbeat_interval_ms(HEARTBEAT_INTERVAL_MS)
            .with_assignment(Some(Assignment::default().with_topic_partitions(to_wire(&m.assigned))))
    }

    /// Moves a member toward its target: revoke first, then add what no one else holds.
    fn reconcile(&mut self, member_id: &str) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let held_elsewhere: BTreeSet<Tp> = self
            .members
            .values()
            .filter(|o| o.id != member_id)
            .flat_map(|o| o.assigned.iter().chain(o.owned.iter()).copied())
            .collect();
        let epoch = self.epoch;
        let Some(m) = self.members.get_mut(member_id) else { return };
        let revoking = m.assigned.difference(&target).next().is_some();
        if revoking {
            m.assigned = m.assigned.intersection(&target).copied().collect();
            return;
        }
        // The member must have acknowledged its revocations before it gets more.
        if m.owned.difference(&target).next().is_some() {
            return;
        }
        // Nothing left to revoke: the member moves to the group epoch, and gets every target
        // partition no one else still holds (the rest follow once they are released).
        let grantable: BTreeSet<Tp> = target.difference(&held_elsewhere).copied().collect();
        m.assigned = m.assigned.union(&grantable).copied().collect();
        if m.epoch != epoch {
            m.prev_epoch = m.epoch;
            m.epoch = epoch;
        }
    }

    /// Removes members whose session expired; true when any did.
    pub fn expire(&mut self, topics: &TopicInfo) -> bool {
        let now = Instant::now();
        let gone: Vec<String> =
            self.members.values().filter(|m| now.duration_since(m.last_heartbeat) > SESSION_TIMEOUT).map(|m| m.id.clone()).collect();
        for id in &gone {
            self.members.remove(id);
            tracing::info!(group = %self.id, member = %id, "consumer group member session expired");
        }
        if !gone.is_empty() {
            self.recompute_target(topics);
        }
        !gone.is_empty()
    }

    /// ConsumerGroupDescribe's view of the group.
    pub fn describe(&self, names: &BTreeMap<Uuid, String>) -> describe::DescribedGroup {
        let wire = |set: &BTreeSet<Tp>| {
            let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (t, p) in set {
                by_topic.entry(*t).or_default().push(*p);
            }
            describe::Assignment::default().with_topic_partitions(
                by_topic
                    .into_iter()
                    .map(|(id, partitions)| {
                        describe::TopicPartitions::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(sb(names.get(&id).map(String::as_str).unwrap_or(""))))
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
        };
        let members = self
            .members
            .values()
            .map(|m| {
                describe::Member::default()
                    .with_member_id(sb(&m.id))
                    .with_instance_id(m.instance_id.as_deref().map(sb))
                    .with_rack_id(m.rack_id.as_deref().map(sb))
                    .with_member_epoch(m.epoch)
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
                    .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(sb(t))).collect())
                    .with_assignment(wire(&m.assigned))
                    .with_target_assignment(wire(&self.target.get(&m.id).cloned().unwrap_or_default()))
            })
            .collect();
        describe::DescribedGroup::default()
            .with_group_id(GroupId(sb(&self.id)))
            .with_group_state(sb(self.state_name()))
            .with_group_epoch(self.epoch)
            .with_assignment_epoch(self.epoch)
            .with_assignor_name(sb(&self.assignor))
            .with_members(members)
    }
}

fn to_wire(set: &BTreeSet<Tp>) -> Vec<TopicPartitions> {
    let mut by_topic: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (t, p) in set {
        by_topic.entry(*t).or_default().push(*p);
    }
    by_topic.into_iter().map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions)).collect()
}

/// Range: per topic, contiguous runs of partitions to the subscribed members in id order.
fn assign_range(members: &BTreeMap<String, Member>, topics: &TopicInfo) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> = members.keys().map(|k| (k.clone(), BTreeSet::new())).collect();
    for (name, (id, count)) in topics {
        let subs: Vec<&String> = members.values().filter(|m| m.subscribed.contains(name)).map(|m| &m.id).collect();
        if subs.is_empty() {
            continue;
        }
        let (per, extra) = (*count as usize / subs.len(), *count as usize % subs.len());
        let mut p = 0;
        for (i, m) in subs.iter().enumerate() {
            let n = per + usize::from(i < extra);
            for _ in 0..n {
                out.entry((*m).clone()).or_default().insert((*id, p));
                p += 1;
            }
        }
    }
    out
}

/// Uniform: every partition to a subscribed member, as evenly as possible, keeping each
/// member's previous target where the balance allows (sticky).
fn assign_uniform(
    members: &BTreeMap<String, Member>,
    topics: &TopicInfo,
    previous: &BTreeMap<String, BTreeSet<Tp>>,
) -> BTreeMap<String, BTreeSet<Tp>> {
    let mut out: BTreeMap<String, BTreeSet<Tp>> = members.keys().map(|k| (k.clone(), BTreeSet::new())).collect();
    let all: Vec<(String, Tp)> = topics
        .iter()
        .flat_map(|(name, (id, count))| (0..*count).map(move |p| (name.clone(), (*id, p))))
        .collect();
    let eligible = |name: &str| -> Vec<&String> { members.values().filter(|m| m.subscribed.iter().any(|s| s == name)).map(|m| &m.id).collect() };
    let assignable: Vec<&(String, Tp)> = all.iter().filter(|(n, _)| !eligible(n).is_empty()).collect();
    let quota = if members.is_empty() { 0 } else { assignable.len().div_ceil(members.len()) };
    let mut unplaced = Vec::new();
    for (name, tp) in &assignable {
        let keeper = previous
            .iter()
            .find(|(m, set)| set.contains(tp) && members.get(*m).is_some_and(|mm| mm.subscribed.contains(name)))
            .map(|(m, _)| m.clone());
        match keeper {
            Some(m) if out[&m].len() < quota => {
                out.entry(m).or_default().insert(*tp);
            }
            _ => unplaced.push((name.clone(), *tp)),
        }
    }
    for (name, tp) in unplaced {
        if let Some(m) = eligible(&name).into_iter().min_by_key(|m| out[*m].len()) {
            out.entry(m.clone()).or_default().insert(tp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions as Owned;

    fn join(g: &mut ConsumerGroup, topics: &TopicInfo) -> (String, ConsumerGroupHeartbeatResponse) {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&g.id)))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![TopicName(sb("t"))]));
        let r = g.heartbeat(&req, "c", "/127.0.0.1", topics);
        (r.member_id.clone().unwrap().to_string(), r)
    }

    fn beat(g: &mut ConsumerGroup, id: &str, epoch: i32, owned: &[i32], topics: &TopicInfo) -> ConsumerGroupHeartbeatResponse {
        let tid = topics["t"].0;
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(sb(&g.id)))
            .with_member_id(sb(id))
            .with_member_epoch(epoch)
            .with_topic_partitions(Some(vec![Owned::default().with_topic_id(tid).with_partitions(owned.to_vec())]));
        g.heartbeat(&req, "c", "/127.0.0.1", topics)
    }

    fn parts(r: &ConsumerGroupHeartbeatResponse) -> Vec<i32> {
        r.assignment.as_ref().map(|a| a.topic_partitions.iter().flat_map(|t| t.partitions.clone()).collect()).unwrap_or_default()
    }

    #[test]
    fn second_member_gets_partitions_only_after_revocation() {
        let topics: TopicInfo = [("t".to_string(), (Uuid::new_v4(), 4))].into_iter().collect();
        let mut g = ConsumerGroup::new("g");
        let (a, r) = join(&mut g, &topics);
        assert_eq!(parts(&r), vec![0, 1, 2, 3]);
        let epoch_a = r.member_epoch;
        let (b, r) = join(&mut g, &topics);
        assert!(parts(&r).is_empty(), "b waits while a still holds everything");
        let epoch_b = r.member_epoch;
        // a is told to give up two partitions, keeps the other two (no stop-the-world revoke).
        let r = beat(&mut g, &a, epoch_a, &[0, 1, 2, 3], &topics);
        assert_eq!(parts(&r).len(), 2);
        let kept = parts(&r);
        let r = beat(&mut g, &a, r.member_epoch, &kept, &topics);
        assert_eq!(r.member_epoch, g.epoch, "a reaches the group epoch once it acknowledged");
        let r = beat(&mut g, &b, epoch_b, &[], &topics);
        let mut all: Vec<i32> = parts(&r).into_iter().chain(kept).collect();
        all.sort();
        assert_eq!(all, vec![0, 1, 2, 3], "disjoint and complete");
        assert_eq!(g.state_name(), "Stable");
    }

    #[test]
    fn refusals_carry_kafkas_codes() {
        let topics: TopicInfo = [("t".to_string(), (Uuid::new_v4(), 2))].into_iter().collect();
        let mut g = ConsumerGroup::new("g");
        let (a, r) = join(&mut g, &topics);
        let code = |r: &ConsumerGroupHeartbeatResponse| ErrorCode::from_code(r.error_code);
        assert_eq!(code(&beat(&mut g, &a, r.member_epoch + 5, &[], &topics)), ErrorCode::FENCED_MEMBER_EPOCH);
        assert_eq!(code(&beat(&mut g, "nobody", 1, &[], &topics)), ErrorCode::UNKNOWN_MEMBER_ID);
        let no_subscription = ConsumerGroupHeartbeatRequest::default().with_group_id(GroupId(sb("g"))).with_member_epoch(0);
        assert_eq!(code(&g.heartbeat(&no_subscription, "c", "h", &topics)), ErrorCode::INVALID_REQUEST);
        let odd_assignor = no_subscription.with_server_assignor(Some(sb("sticky")));
        let r = g.heartbeat(&odd_assignor, "c", "h", &topics);
        assert_eq!(code(&r), ErrorCode::UNSUPPORTED_ASSIGNOR);
        assert_eq!(r.error_message.as_deref(), Some("assignor sticky is not served"));
        assert_eq!(g.check_commit(&a, -1), Err(GroupError::StaleMemberEpoch { member_id: a.clone(), epoch: -1, current: g.epoch }));
        assert_eq!(g.check_commit(&a, g.epoch), Ok(()));
    }
}
