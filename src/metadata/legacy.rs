//! The JSON store of earlier versions (`meta/cluster.json`, the whole snapshot rewritten per
//! change), read once and converted into a checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use uuid::Uuid;

use super::image::{apply_in_place, partition_record};
use super::mutation::PRODUCER_ID_BLOCK;
use super::records::{ConfigRecord, ConfigResource, MetadataRecord, ProducerIdsRecord, TopicRecord};
use super::{ClusterSnapshot, MetadataError, PartitionMeta, TopicMeta};
use crate::types::ShardId;

/// The old file's name in the metadata directory.
pub const LEGACY_FILE: &str = "cluster.json";
/// What the old file is renamed to once converted (kept, never read again).
pub const LEGACY_CONVERTED_FILE: &str = "cluster.json.converted";

#[derive(Deserialize)]
struct OldSnapshot {
    cluster_id: String,
    topics: BTreeMap<String, OldTopic>,
    next_producer_id: i64,
}

#[derive(Deserialize)]
struct OldTopic {
    name: String,
    id: Uuid,
    partitions: Vec<OldPartition>,
    configs: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct OldPartition {
    owner: ShardId,
    leader_epoch: i32,
}

/// Reads `cluster.json` from `dir` as a snapshot, if it is there. The old broker knew no
/// replicas: each partition gets `node_id` as its only replica, in-sync and leader.
pub fn read(dir: &Path, node_id: i32) -> Result<Option<ClusterSnapshot>, MetadataError> {
    let path = dir.join(LEGACY_FILE);
    let Some(bytes) = super::log::read_if_present(&path)? else { return Ok(None) };
    let corrupt = |reason: String| MetadataError::Corrupt { path: path.clone(), reason };
    let old: OldSnapshot = serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
    // Built through the records, so the converted snapshot is one that replay could produce.
    let mut snapshot = ClusterSnapshot::empty(old.cluster_id);
    for t in old.topics.into_values() {
        let mut records = vec![MetadataRecord::Topic(TopicRecord { name: t.name.clone(), topic_id: t.id })];
        let meta = TopicMeta { name: t.name.clone(), id: t.id, partitions: Vec::new(), configs: BTreeMap::new() };
        records.extend(t.partitions.iter().enumerate().map(|(i, p)| {
            let p = PartitionMeta {
                owner: p.owner,
                leader_epoch: p.leader_epoch,
                replicas: vec![node_id],
                isr: vec![node_id],
                leader: node_id,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
            };
            MetadataRecord::Partition(partition_record(&meta, i, &p))
        }));
        records.extend(t.configs.into_iter().map(|(name, value)| {
            MetadataRecord::Config(ConfigRecord { resource: ConfigResource::Topic { name: t.name.clone() }, name, value: Some(value) })
        }));
        for record in &records {
            apply_in_place(&mut snapshot, record).map_err(|e| corrupt(e.to_string()))?;
        }
    }
    // Ids of the old store's last block may be in use: start after that whole block, as it did.
    let next_block = (old.next_producer_id / PRODUCER_ID_BLOCK + 1) * PRODUCER_ID_BLOCK;
    let record = MetadataRecord::ProducerIds(ProducerIdsRecord { broker_id: node_id, next_producer_id_block: next_block });
    apply_in_place(&mut snapshot, &record).map_err(|e| corrupt(e.to_string()))?;
    Ok(Some(snapshot))
}
