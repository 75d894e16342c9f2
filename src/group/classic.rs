//! The classic rebalance protocol: JoinGroup, SyncGroup, Heartbeat and LeaveGroup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};

use super::coordinator::{GroupCoordinator, GroupLog};
use super::error::GroupError;
use super::state::{join_error, join_response, new_member_id, sb, Group, GroupState, Member};
use crate::codes::ErrorCode;

/// A JoinGroup that fails at once.
type JoinFailure = Box<JoinGroupResponse>;

fn join_failure(error: GroupError, member_id: &str) -> JoinFailure {
    Box::new(join_error(&error, member_id))
}

impl GroupCoordinator {
    /// JoinGroup: the member's place in the next generation, answered when the join phase ends
    /// (the receiver), or an answer now.
    pub(super) fn join(
        &self,
        req: kafka_protocol::messages::JoinGroupRequest,
        version: i16,
        client_id: String,
        client_host: String,
    ) -> Result<oneshot::Receiver<JoinGroupResponse>, JoinFailure> {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        if group_id.is_empty() {
            return Err(join_failure(GroupError::InvalidGroupId, &member_id));
        }
        let session = req.session_timeout_ms;
        if session < self.config.min_session_timeout_ms || session > self.config.max_session_timeout_ms {
            let (min_ms, max_ms) = (self.config.min_session_timeout_ms, self.config.max_session_timeout_ms);
            return Err(join_failure(GroupError::InvalidSessionTimeout { timeout_ms: session, min_ms, max_ms }, &member_id));
        }
        let rebalance_ms = if version == 0 { session } else { req.rebalance_timeout_ms };
        let protocols: Vec<(String, Bytes)> = req.protocols.iter().map(|p| (p.name.to_string(), p.metadata.clone())).collect();
        let protocol_type = req.protocol_type.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let mut groups = self.groups.borrow_mut();
        let g = groups.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id));
        if g.state == GroupState::Dead {
            return Err(join_failure(GroupError::GroupDead { group: group_id }, &member_id));
        }
        if protocols.is_empty() || protocol_type.is_empty() {
            return Err(join_failure(GroupError::InconsistentGroupProtocol { group: group_id }, &member_id));
        }
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(protocol_type.as_str());
            let common = g.members.values().next().is_some_and(|first| {
                protocols.iter().any(|(n, _)| first.protocols.iter().any(|(p, _)| p == n))
            });
            if !same_type || !common {
                return Err(join_failure(GroupError::InconsistentGroupProtocol { group: group_id }, &member_id));
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
                Some(_) => {
                    let fenced = GroupError::FencedInstanceId { instance_id: instance.clone(), member_id: member_id.clone() };
                    return Err(join_failure(fenced, &member_id));
                }
                None if member_id.is_empty() => new_member_id(instance),
                None => return Err(join_failure(GroupError::UnknownMemberId { member_id: member_id.clone() }, &member_id)),
            }
        } else if member_id.is_empty() {
            let new_id = new_member_id(&client_id);
            if version >= 4 {
                // KIP-394: the client must rejoin with the id we hand out.
                g.pending.insert(new_id.clone());
                return Err(join_failure(GroupError::MemberIdRequired { member_id: new_id.clone() }, &new_id));
            }
            new_id
        } else if g.member(&member_id).is_none() && !g.pending.remove(&member_id) {
            return Err(join_failure(GroupError::UnknownMemberId { member_id: member_id.clone() }, &member_id));
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

    /// SyncGroup: the leader's assignments are stored, then every member gets its own.
    pub(super) async fn sync(&self, req: kafka_protocol::messages::SyncGroupRequest, version: i16, log: &impl GroupLog) -> SyncGroupResponse {
        let group_id = req.group_id.0.to_string();
        let member_id = req.member_id.to_string();
        let err = |e: &GroupError| SyncGroupResponse::default().with_error_code(ErrorCode::from(e).code());
        let unknown = || GroupError::UnknownMemberId { member_id: member_id.clone() };
        let rebalancing = || GroupError::RebalanceInProgress { group: group_id.clone() };
        let (rx, write) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&group_id) else { return err(&unknown()) };
            if let Err(e) = g.check_member(&member_id, req.group_instance_id.as_deref()) {
                return err(&e);
            }
            if req.generation_id != g.generation {
                return err(&GroupError::IllegalGeneration { generation: req.generation_id, current: g.generation });
            }
            let protocol = g.protocol.clone().map(|p| sb(&p));
            let protocol_type = g.protocol_type.clone().map(|p| sb(&p));
            let ok = |assignment: Bytes| {
                let r = SyncGroupResponse::default().with_assignment(assignment);
                if version >= 5 { r.with_protocol_type(protocol_type.clone()).with_protocol_name(protocol.clone()) } else { r }
            };
            match g.state {
                GroupState::Empty | GroupState::Dead => return err(&unknown()),
                GroupState::PreparingRebalance => return err(&rebalancing()),
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
            let stored = log.append(self.partition_of(&group_id), vec![record]).await.map_err(GroupError::StateWrite);
            let mut groups = self.groups.borrow_mut();
            if let Some(g) = groups.get_mut(&group_id)
                && g.generation == generation
                && g.state == GroupState::CompletingRebalance
            {
                {
                    let protocol = g.protocol.clone().map(|p| sb(&p));
                    let protocol_type = g.protocol_type.clone().map(|p| sb(&p));
                    match &stored {
                        Ok(()) => g.set_state(GroupState::Stable),
                        Err(_) => g.prepare_rebalance(Duration::ZERO),
                    }
                    for m in g.members.values_mut() {
                        let Some(tx) = m.sync_waiter.take() else { continue };
                        let resp = match &stored {
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
        // The waiter was dropped: the member must rejoin.
        rx.await.unwrap_or_else(|_| err(&rebalancing()))
    }

    /// Heartbeat: keeps the member's session alive; an error tells it to rejoin.
    pub(super) fn heartbeat(&self, group_id: &str, generation: i32, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        let unknown = || GroupError::UnknownMemberId { member_id: member_id.to_string() };
        let mut groups = self.groups.borrow_mut();
        let Some(g) = groups.get_mut(group_id) else { return Err(unknown()) };
        g.check_member(member_id, instance_id)?;
        if let Some(m) = g.member_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        match g.state {
            GroupState::Empty | GroupState::Dead => Err(unknown()),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress { group: group_id.to_string() }),
            _ if generation != g.generation => Err(GroupError::IllegalGeneration { generation, current: g.generation }),
            _ => Ok(()),
        }
    }

    /// LeaveGroup: one outcome per member; an error for the whole request when the group is unknown.
    pub(super) async fn leave(
        &self,
        group_id: &str,
        members: Vec<(String, Option<String>)>,
        log: &impl GroupLog,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let (outcomes, record) = {
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(group_id) else {
                // Kafka names no member here: the group itself is unknown.
                return Err(GroupError::UnknownMemberId { member_id: String::new() });
            };
            let mut leaving = Vec::new();
            let outcomes: Vec<Result<(), GroupError>> = members
                .iter()
                .map(|(id, instance)| {
                    let resolved = match instance {
                        Some(inst) => match g.by_instance(inst) {
                            Some(m) if id.is_empty() || *id == m.id => Ok(m.id.clone()),
                            Some(_) => Err(GroupError::FencedInstanceId { instance_id: inst.clone(), member_id: id.clone() }),
                            None => Err(GroupError::UnknownMemberId { member_id: id.clone() }),
                        },
                        None => g.member(id).map(|m| m.id.clone()).ok_or_else(|| GroupError::UnknownMemberId { member_id: id.clone() }),
                    };
                    let id = resolved?;
                    tracing::info!(group = %group_id, member = %id, "member left");
                    leaving.push(id);
                    Ok(())
                })
                .collect();
            g.remove_members(&leaving, self.initial_delay());
            let record = (g.state == GroupState::Empty && !leaving.is_empty()).then(|| g.metadata_record());
            (outcomes, record)
        };
        if let Some(record) = record {
            // The members are gone either way; a lost record only means they replay as members.
            let _ = log.append(self.partition_of(group_id), vec![record]).await;
        }
        Ok(outcomes)
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    use kafka_protocol::messages::{GroupId, JoinGroupRequest};

    use super::*;
    use crate::config::GroupConfig;
    use crate::group::api::{GroupCall, GroupReply};
    use crate::group::testing::MemLog;

    fn join_call(group: &str, member_id: &str, session_timeout_ms: i32, version: i16) -> GroupCall {
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(sb(group)))
            .with_member_id(sb(member_id))
            .with_session_timeout_ms(session_timeout_ms)
            .with_rebalance_timeout_ms(1000)
            .with_protocol_type(sb("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default().with_name(sb("range"))]);
        GroupCall::Join { req, version, client_id: "c".into(), client_host: "/127.0.0.1".into() }
    }

    fn join_code(c: &GroupCoordinator, call: GroupCall) -> (ErrorCode, String) {
        match futures::executor::block_on(c.handle(call, &MemLog::default())) {
            GroupReply::Join(r) => (ErrorCode::from_code(r.error_code), r.member_id.to_string()),
            other => panic!("not a join reply: {other:?}"),
        }
    }

    #[test]
    fn join_refusals_carry_kafkas_codes() {
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        assert_eq!(join_code(&c, join_call("", "", 10_000, 5)).0, ErrorCode::INVALID_GROUP_ID);
        assert_eq!(join_code(&c, join_call("g", "", 1, 5)).0, ErrorCode::INVALID_SESSION_TIMEOUT);
        assert_eq!(join_code(&c, join_call("g", "who", 10_000, 5)).0, ErrorCode::UNKNOWN_MEMBER_ID);
        // KIP-394: a v4+ member without an id is handed one and must rejoin with it.
        let (code, member_id) = join_code(&c, join_call("g", "", 10_000, 5));
        assert_eq!(code, ErrorCode::MEMBER_ID_REQUIRED);
        assert!(member_id.starts_with("c-"), "{member_id}");
    }

    #[test]
    fn requests_for_an_unknown_group_name_no_member() {
        let c = GroupCoordinator::serving_all(GroupConfig::default());
        let log = MemLog::default();
        let beat = GroupCall::Heartbeat { group: "g".into(), generation: 1, member_id: "m".into(), instance_id: None };
        assert!(matches!(futures::executor::block_on(c.handle(beat, &log)), GroupReply::Code(ErrorCode::UNKNOWN_MEMBER_ID)));
        let leave = GroupCall::Leave { group: "g".into(), members: vec![("a".into(), None), ("b".into(), Some("i".into()))] };
        let reply = futures::executor::block_on(c.handle(leave, &log));
        let unknown = ErrorCode::UNKNOWN_MEMBER_ID;
        assert!(matches!(&reply, GroupReply::Leave(top, per) if *top == unknown && per == &[unknown, unknown]), "{reply:?}");
        let delete = GroupCall::Delete { group: "g".into() };
        assert!(matches!(futures::executor::block_on(c.handle(delete, &log)), GroupReply::Code(ErrorCode::GROUP_ID_NOT_FOUND)));
    }
}
