//! The group coordinator's side of the core: group calls routed to the coordinator's core, the
//! coordinator's log (`__consumer_offsets` partitions this core owns), and the start-up replay.

use bytes::Bytes;

use super::messages::ShardRequest;
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::group::{GroupCall, GroupLog, GroupReply, OFFSETS_TOPIC};
use crate::storage::{AppendOutcome, StorageError};
use crate::storage::batch::BatchHeader;
use crate::types::{ShardId, TopicPartition};

impl Router {
    /// Runs a group operation on the group's coordinator: the owner of its
    /// `__consumer_offsets` partition.
    pub async fn group_call(&self, group: &str, call: GroupCall) -> GroupReply {
        let partition = crate::group::partition_for(group, self.shard.config.group.offsets_topic_partitions);
        let Some(owner) = self.shard.metadata.load().owner(OFFSETS_TOPIC, partition) else {
            return GroupReply::Unavailable;
        };
        self.call(owner, ShardRequest::Group(Box::new(call))).await.into_group().unwrap_or(GroupReply::Unavailable)
    }

    /// Runs `make()` on every shard's coordinator and collects the answers (ListGroups).
    pub async fn group_call_all(&self, make: fn() -> GroupCall) -> Vec<GroupReply> {
        let answers = self.broadcast((0..self.nr_shards).map(ShardId), || ShardRequest::Group(Box::new(make()))).await;
        answers.into_iter().map(|a| a.into_group().unwrap_or(GroupReply::Unavailable)).collect()
    }
}

impl Shard {
    /// Replays the `__consumer_offsets` partitions this core owns into the group coordinator.
    pub(super) async fn load_groups(&self) -> Result<(), StorageError> {
        let logs: Vec<_> = self.all_logs().into_iter().filter(|l| l.tp.topic == OFFSETS_TOPIC).collect();
        for log in logs {
            let offsets = log.offsets();
            let (mut offset, hw) = (offsets.log_start, offsets.high_watermark);
            let mut replayed = 0usize;
            while offset < hw {
                let read = log.read(offset, 1 << 20).await?;
                let Some(last) = read.records.last().and_then(|b| BatchHeader::parse(b)) else { break };
                for batch in &read.records {
                    for r in crate::storage::batch::records(batch).unwrap_or_default() {
                        if let Some(key) = &r.key {
                            self.groups.replay(key, r.value.as_deref());
                            replayed += 1;
                        }
                    }
                }
                offset = last.last_offset() + 1;
            }
            if replayed > 0 {
                tracing::info!(partition = %log.tp, records = replayed, "group state replayed");
            }
        }
        Ok(())
    }
}

impl GroupLog for Shard {
    async fn append(&self, partition: i32, records: Vec<(Bytes, Option<Bytes>)>) -> Result<(), ErrorCode> {
        let tp = TopicPartition::new(OFFSETS_TOPIC, partition);
        let log = self.log(&tp).ok_or(ErrorCode::NOT_LEADER_OR_FOLLOWER)?;
        let refs: Vec<crate::storage::batch::RecordRef<'_>> = records.iter().map(|(k, v)| (Some(&k[..]), v.as_deref())).collect();
        let batch = crate::storage::batch::build(&refs, crate::types::now_ms(), -1, -1);
        let outcome = log.append(&batch, -1).map_err(|e| ErrorCode::from(&e))?;
        AppendOutcome::written(outcome.done).await.map_err(|e| ErrorCode::from(&e))
    }

    fn partition_exists(&self, topic: &str, partition: i32) -> bool {
        self.metadata.load().owner(topic, partition).is_some()
    }

    fn topics(&self) -> crate::group::consumer::TopicInfo {
        self.metadata
            .load()
            .topics
            .values()
            .filter(|t| !t.name.starts_with("__"))
            .map(|t| (t.name.clone(), (t.id, t.partitions.len() as i32)))
            .collect()
    }
}
