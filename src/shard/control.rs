//! The control plane: metadata mutations run on shard 0, the single writer, which then tells
//! every owner of the changed topic's partitions what follows (open, remove, reload configs).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;

use super::messages::{ShardRequest, ShardResponse};
use super::{Router, Shard};
use crate::cluster::controller::Controller;
use crate::metadata::{
    ClusterSnapshot, MetadataError, MetadataMutation, MetadataStore, MutationOutcome, MutationResult, PartitionChange,
    TopicMeta, partition_changes,
};
use crate::types::ShardId;

/// The shard that runs metadata mutations.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

/// Who writes the metadata, on shard 0.
pub enum MetadataWriter {
    /// A single node: its own record log ([`MetadataStore`]), boxed: it is large beside an `Rc`.
    Local(Box<MetadataStore>),
    /// A cluster: the controller quorum (openraft); the active controller plans, every node
    /// applies, and [`publish_metadata`] acts on what changed for this broker.
    Quorum(Rc<Controller>),
}

impl Shard {
    /// Applies a metadata mutation (shard 0), then runs its follow-up on the topic's owners.
    pub(super) async fn mutate(&self, m: MetadataMutation, router: &Router) -> MutationResult {
        let store = match &self.writer {
            Some(MetadataWriter::Local(store)) => store,
            // What a committed change means here comes from the applied log (publish_metadata).
            Some(MetadataWriter::Quorum(controller)) => return controller.mutate(m).await,
            None => return Err(MetadataError::NotController),
        };
        let follow_up: Option<fn(Arc<TopicMeta>) -> ShardRequest> = match &m {
            MetadataMutation::CreateTopic { validate_only: false, .. }
            | MetadataMutation::CreatePartitions { validate_only: false, .. } => Some(ShardRequest::OpenPartitions),
            MetadataMutation::DeleteTopic { .. } => Some(ShardRequest::RemoveTopic),
            MetadataMutation::AlterConfigs { validate_only: false, .. } => Some(ShardRequest::ReloadConfig),
            _ => None,
        };
        let broker_configs = matches!(m, MetadataMutation::AlterBrokerConfigs { .. });
        let result = store.apply(m, &self.topic_defaults()).await;
        if let (Some(make), Ok(MutationOutcome { topic: Some(topic), .. })) = (follow_up, &result) {
            router.broadcast_topic(topic, make).await;
        }
        if broker_configs && result.is_ok() {
            // A dynamic `log.*` default may change any topic's effective config.
            let topics: Vec<Arc<TopicMeta>> = self.metadata.load().topics.values().cloned().collect();
            for topic in &topics {
                router.broadcast_topic(topic, ShardRequest::ReloadConfig).await;
            }
        }
        result
    }
}

impl Router {
    /// Control plane: runs a metadata mutation on shard 0.
    pub async fn mutate(&self, m: MetadataMutation) -> MutationResult {
        self.call(CONTROLLER_SHARD, ShardRequest::Mutate(m)).await.into_mutated().unwrap_or_else(|code| {
            tracing::warn!(error = %code, "the controller shard did not answer a metadata change");
            Err(MetadataError::ControllerUnavailable)
        })
    }

    /// Control plane: sends `make(topic)` to every shard that owns one of `topic`'s partitions,
    /// and waits for them all.
    pub async fn broadcast_topic(&self, topic: &Arc<TopicMeta>, make: fn(Arc<TopicMeta>) -> ShardRequest) {
        let mut owners: Vec<ShardId> = topic.partitions.iter().map(|p| p.owner).collect();
        owners.sort();
        owners.dedup();
        for answer in self.broadcast(owners, || make(Arc::clone(topic))).await {
            if let ShardResponse::Failed(code) = answer {
                tracing::error!(topic = %topic.name, error = %code, "a shard did not apply a topic change");
            }
        }
    }
}

/// A metadata change as the controller applied it: the snapshot before and after.
pub type AppliedChange = (Arc<ClusterSnapshot>, Arc<ClusterSnapshot>);

/// Shard 0 of a cluster node: tells the owner shards what applied metadata changes mean for
/// this broker's replicas (open, lead, follow, remove, reconfigure), in order.
///
/// Changes applied meanwhile are taken together: the shards act on the newest state, diffed
/// against the last one they acted on. And nothing is acted on until the metadata shows this
/// process's own registration (`incarnation`) unfenced: a restarting broker replays the log
/// from its snapshot, and the states on the way name it leader at epochs long gone. Acting on
/// them would serve and accept writes as a stale leader. A KRaft broker likewise waits for its
/// initial catch-up before its replica manager starts. Once caught up, every change counts,
/// fenced or not (a fenced broker must step down from what it led).
pub async fn publish_metadata(router: Rc<Router>, mut applied: UnboundedReceiver<AppliedChange>, incarnation: uuid::Uuid) {
    let node_id = router.shard.config.node_id;
    let mut published: Arc<ClusterSnapshot> = Arc::new(ClusterSnapshot::default());
    let mut caught_up = false;
    while let Some((_, mut new)) = applied.next().await {
        while let Ok((_, newer)) = applied.try_recv() {
            new = newer;
        }
        if !caught_up {
            let registered = new.brokers.get(&node_id).is_some_and(|r| r.incarnation_id == incarnation);
            if !(registered && new.is_unfenced(node_id)) {
                continue;
            }
            caught_up = true;
            tracing::info!(broker_id = node_id, topics = new.topics.len(), "metadata caught up; acting on it");
        }
        // Removals everywhere first: a topic deleted and created again under its name may move
        // to another shard, which must not open the old directory before it is gone.
        let (removals, rest): (Vec<_>, Vec<_>) =
            partition_changes(&published, &new, node_id).into_iter().partition(|c| matches!(c, PartitionChange::Removed { .. }));
        for changes in [removals, rest] {
            let mut by_owner: BTreeMap<ShardId, Vec<PartitionChange>> = BTreeMap::new();
            for change in changes {
                for owner in owners_of(&change, &published, &new) {
                    by_owner.entry(owner).or_default().push(change.clone());
                }
            }
            for (owner, changes) in by_owner {
                if let ShardResponse::Failed(code) = router.call(owner, ShardRequest::PartitionChanges(changes)).await {
                    tracing::error!(shard = %owner, error = %code, "a shard did not apply a metadata change");
                }
            }
        }
        published = new;
    }
}

/// The shards a change concerns: the partition's owner (as the newer snapshot knows it), or
/// for a topic's config, every owner of one of its partitions.
fn owners_of(change: &PartitionChange, old: &ClusterSnapshot, new: &ClusterSnapshot) -> Vec<ShardId> {
    let owner = |tp: &crate::types::TopicPartition| new.owner(&tp.topic, tp.partition).or_else(|| old.owner(&tp.topic, tp.partition));
    match change {
        PartitionChange::Created { owner, .. } => vec![*owner],
        PartitionChange::BecameLeader { tp, .. }
        | PartitionChange::BecameFollower { tp, .. }
        | PartitionChange::IsrChanged { tp, .. }
        | PartitionChange::Removed { tp, .. } => owner(tp).into_iter().collect(),
        PartitionChange::ConfigChanged { topic, .. } => {
            let mut owners: Vec<ShardId> = new.topics.get(topic).map(|t| t.partitions.iter().map(|p| p.owner).collect()).unwrap_or_default();
            owners.sort();
            owners.dedup();
            owners
        }
    }
}
