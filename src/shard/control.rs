//! The control plane: metadata mutations run on shard 0, the single writer, which then tells
//! every owner of the changed topic's partitions what follows (open, remove, reload configs).

use std::sync::Arc;

use super::messages::{ShardRequest, ShardResponse};
use super::{Router, Shard};
use crate::metadata::{MetadataError, MetadataMutation, MutationOutcome, MutationResult, TopicMeta};
use crate::types::ShardId;

/// The shard that runs metadata mutations.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

impl Shard {
    /// Applies a metadata mutation (shard 0), then runs its follow-up on the topic's owners.
    pub(super) async fn mutate(&self, m: MetadataMutation, router: &Router) -> MutationResult {
        let Some(store) = &self.store else {
            return Err(MetadataError::NotController);
        };
        let follow_up: Option<fn(Arc<TopicMeta>) -> ShardRequest> = match &m {
            MetadataMutation::CreateTopic { validate_only: false, .. }
            | MetadataMutation::CreatePartitions { validate_only: false, .. } => Some(ShardRequest::OpenPartitions),
            MetadataMutation::DeleteTopic { .. } => Some(ShardRequest::RemoveTopic),
            MetadataMutation::AlterConfigs { validate_only: false, .. } => Some(ShardRequest::ReloadConfig),
            _ => None,
        };
        let result = store.apply(m, &self.config.topic_defaults).await;
        if let (Some(make), Ok(MutationOutcome { topic: Some(topic), .. })) = (follow_up, &result) {
            router.broadcast_topic(topic, make).await;
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
