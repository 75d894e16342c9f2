//! The metadata state machine: one function, [`apply`], turns a snapshot and a record into the
//! next snapshot. Start-up replay, the live store and (later) the Raft log all drive it, so a
//! record means the same thing wherever it comes from. [`to_records`] goes the other way: the
//! snapshot written out as records, which is what a checkpoint holds.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::{
    BrokerFenceRecord, ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, ProducerIdsRecord, RemoveTopicRecord,
    TopicRecord,
};
use super::{ClusterSnapshot, MetadataError, PartitionMeta, TopicMeta};

/// The snapshot after `record`; `snapshot` itself is left as it was.
pub fn apply(snapshot: &ClusterSnapshot, record: &MetadataRecord) -> Result<ClusterSnapshot, MetadataError> {
    let mut next = snapshot.clone();
    apply_in_place(&mut next, record)?;
    Ok(next)
}

/// The snapshot after all of `records`, or the first record's error and no change at all: a
/// frame of records is applied whole or not at all.
pub fn apply_all(snapshot: &ClusterSnapshot, records: &[MetadataRecord]) -> Result<ClusterSnapshot, MetadataError> {
    let mut next = snapshot.clone();
    for record in records {
        apply_in_place(&mut next, record)?;
    }
    Ok(next)
}

/// [`apply`] on a snapshot the caller owns (replay applies thousands of records to one copy).
/// On error the snapshot may be partly changed: callers that keep it use [`apply_all`].
pub fn apply_in_place(s: &mut ClusterSnapshot, record: &MetadataRecord) -> Result<(), MetadataError> {
    match record {
        MetadataRecord::Topic(TopicRecord { name, topic_id }) => {
            if s.topics.contains_key(name) {
                return Err(MetadataError::TopicAlreadyExists { name: name.clone() });
            }
            if s.topic_names.contains_key(topic_id) {
                return Err(invalid(format!("topic id {topic_id} is already topic {}", s.topic_names[topic_id])));
            }
            let topic = TopicMeta { name: name.clone(), id: *topic_id, partitions: Vec::new(), configs: BTreeMap::new() };
            s.topics.insert(name.clone(), Arc::new(topic));
            s.topic_names.insert(*topic_id, name.clone());
        }
        MetadataRecord::Partition(p) => {
            let name = s.topic_names.get(&p.topic_id).ok_or(MetadataError::UnknownTopicId { id: p.topic_id })?;
            let topic = s.topics.get_mut(name).ok_or_else(|| invalid(format!("topic {name} missing from the index")))?;
            let topic = Arc::make_mut(topic);
            let meta = PartitionMeta {
                owner: p.owner_shard,
                leader_epoch: p.leader_epoch,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                partition_epoch: p.partition_epoch,
                adding_replicas: p.adding_replicas.clone(),
                removing_replicas: p.removing_replicas.clone(),
            };
            match usize::try_from(p.partition) {
                Ok(i) if i < topic.partitions.len() => topic.partitions[i] = meta,
                Ok(i) if i == topic.partitions.len() => topic.partitions.push(meta),
                _ => {
                    return Err(invalid(format!(
                        "partition {} of {} after {} partitions",
                        p.partition,
                        topic.name,
                        topic.partitions.len()
                    )));
                }
            }
        }
        MetadataRecord::Config(ConfigRecord { resource, name, value }) => {
            let configs = match resource {
                ConfigResource::Topic { name: topic } => {
                    let t = s.topics.get_mut(topic).ok_or_else(|| MetadataError::UnknownTopic { name: topic.clone() })?;
                    &mut Arc::make_mut(t).configs
                }
                ConfigResource::Broker { broker_id } => s.broker_configs.entry(*broker_id).or_default(),
                ConfigResource::BrokerDefault => &mut s.broker_default_configs,
            };
            match value {
                Some(v) => {
                    configs.insert(name.clone(), v.clone());
                }
                None => {
                    configs.remove(name);
                }
            }
            if let ConfigResource::Broker { broker_id } = resource
                && s.broker_configs.get(broker_id).is_some_and(BTreeMap::is_empty)
            {
                s.broker_configs.remove(broker_id);
            }
        }
        MetadataRecord::RemoveTopic(RemoveTopicRecord { topic_id }) => {
            let name = s.topic_names.remove(topic_id).ok_or(MetadataError::UnknownTopicId { id: *topic_id })?;
            s.topics.remove(&name);
        }
        MetadataRecord::ProducerIds(ProducerIdsRecord { next_producer_id_block, .. }) => {
            // Blocks only move forward: an id once handed out is never handed out again.
            if *next_producer_id_block <= s.next_producer_id_block {
                return Err(invalid(format!(
                    "producer id block {next_producer_id_block} is not after {}",
                    s.next_producer_id_block
                )));
            }
            s.next_producer_id_block = *next_producer_id_block;
        }
        MetadataRecord::RegisterBroker(registration) => {
            // A new incarnation has not caught up yet: fenced until its controller says so.
            s.brokers.insert(registration.broker_id, registration.clone());
            s.fenced.insert(registration.broker_id);
        }
        MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id, fenced }) => {
            if !s.brokers.contains_key(broker_id) {
                return Err(MetadataError::UnknownBroker { broker_id: *broker_id });
            }
            if *fenced {
                s.fenced.insert(*broker_id);
            } else {
                s.fenced.remove(broker_id);
            }
        }
    }
    Ok(())
}

fn invalid(reason: String) -> MetadataError {
    MetadataError::InvalidRecord { reason }
}

/// The snapshot as records: applied in order to an empty snapshot of the same cluster id, they
/// give `snapshot` back. A registration applies as fenced, so each unfenced broker's registration
/// is followed by its unfence record. Brokers first, then each topic with its partitions and configs, then
/// broker configs (each broker's, then the cluster default) and the producer-id block.
pub fn to_records(snapshot: &ClusterSnapshot) -> Vec<MetadataRecord> {
    let mut out = Vec::new();
    for registration in snapshot.brokers.values() {
        out.push(MetadataRecord::RegisterBroker(registration.clone()));
        if snapshot.is_unfenced(registration.broker_id) {
            out.push(MetadataRecord::BrokerFence(BrokerFenceRecord { broker_id: registration.broker_id, fenced: false }));
        }
    }
    for t in snapshot.topics.values() {
        out.push(MetadataRecord::Topic(TopicRecord { name: t.name.clone(), topic_id: t.id }));
        out.extend(t.partitions.iter().enumerate().map(|(i, p)| MetadataRecord::Partition(partition_record(t, i, p))));
        out.extend(t.configs.iter().map(|(k, v)| {
            MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Topic { name: t.name.clone() },
                name: k.clone(),
                value: Some(v.clone()),
            })
        }));
    }
    for (broker_id, configs) in &snapshot.broker_configs {
        out.extend(configs.iter().map(|(k, v)| {
            MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Broker { broker_id: *broker_id },
                name: k.clone(),
                value: Some(v.clone()),
            })
        }));
    }
    out.extend(snapshot.broker_default_configs.iter().map(|(k, v)| {
        MetadataRecord::Config(ConfigRecord { resource: ConfigResource::BrokerDefault, name: k.clone(), value: Some(v.clone()) })
    }));
    if snapshot.next_producer_id_block > 0 {
        // The registering broker is not kept in the snapshot; -1 says "from a checkpoint".
        out.push(MetadataRecord::ProducerIds(ProducerIdsRecord {
            broker_id: -1,
            next_producer_id_block: snapshot.next_producer_id_block,
        }));
    }
    out
}

/// The record that describes partition `index` of `topic` as it is.
pub fn partition_record(topic: &TopicMeta, index: usize, p: &PartitionMeta) -> PartitionRecord {
    PartitionRecord {
        topic_id: topic.id,
        partition: index as i32,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        partition_epoch: p.partition_epoch,
        owner_shard: p.owner,
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
    }
}

