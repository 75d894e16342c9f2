//! Group administration: DescribeGroups, ListGroups and DeleteGroups.

use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::GroupId;

use super::coordinator::{GroupCoordinator, GroupLog};
use super::error::GroupError;
use super::records::GroupKey;
use super::state::{sb, GroupState};
use crate::codes::ErrorCode;

impl GroupCoordinator {
    /// DescribeGroups, one group: GROUP_ID_NOT_FOUND (state Dead) when there is none.
    pub(super) fn describe(&self, group_id: &str) -> DescribedGroup {
        let groups = self.groups.borrow();
        let base = DescribedGroup::default().with_group_id(GroupId(sb(group_id)));
        let Some(g) = groups.get(group_id) else {
            return base.with_group_state(sb("Dead")).with_error_code(ErrorCode::from(&GroupError::GroupIdNotFound { group: group_id.to_string() }).code());
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

    /// ListGroups: this shard's classic and KIP-848 groups (of the partitions it serves).
    pub(super) fn list(&self) -> Vec<ListedGroup> {
        let consumer = self.consumer_groups.borrow();
        let mut out: Vec<ListedGroup> = self
            .groups
            .borrow()
            .values()
            .filter(|g| g.state != GroupState::Dead && !consumer.contains_key(&g.id) && self.serves(&g.id))
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(sb(&g.id)))
                    .with_protocol_type(sb(g.protocol_type.as_deref().unwrap_or("")))
                    .with_group_state(sb(g.state.name()))
                    .with_group_type(sb("classic"))
            })
            .collect();
        out.extend(consumer.iter().filter(|(id, _)| self.serves(id)).map(|(id, g)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb("consumer"))
                .with_group_state(sb(g.state_name()))
                .with_group_type(sb("consumer"))
        }));
        out
    }

    /// DeleteGroups, one group: an empty group and its offsets are tombstoned, then forgotten.
    pub(super) async fn delete(&self, group_id: &str, log: &impl GroupLog) -> Result<(), GroupError> {
        let records = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else { return Err(GroupError::GroupIdNotFound { group: group_id.to_string() }) };
            if !matches!(g.state, GroupState::Empty | GroupState::Dead) {
                return Err(GroupError::NonEmptyGroup { group: group_id.to_string() });
            }
            let mut records: Vec<(Bytes, Option<Bytes>)> = g
                .offsets
                .keys()
                .map(|(t, p)| (GroupKey::Offset { group: group_id.to_string(), topic: t.clone(), partition: *p }.encode(), None))
                .collect();
            records.push((GroupKey::Metadata { group: group_id.to_string() }.encode(), None));
            records
        };
        log.append(self.partition_of(group_id), records).await.map_err(GroupError::StateWrite)?;
        self.groups.borrow_mut().remove(group_id);
        tracing::info!(group = group_id, "group deleted");
        Ok(())
    }
}
