//! The control plane: metadata mutations run on shard 0, the single writer, which then tells
//! every owner of the changed topic's partitions what follows (open, remove, reload configs).

use std::sync::Arc;

use super::messages::{ShardRequest, ShardResponse};
use super::{Router, Shard};
use crate::codes::ErrorCode;
use crate::metadata::{MetadataMutation, MutationResult, TopicMeta};
use crate::types::ShardId;

/// The shard that runs metadata mutations.
pub const CONTROLLER_SHARD: ShardId = ShardId(0);

impl Shard {
    /// Applies a metadata mutation (shard 0), then runs its follow-up on the topic's owners.
    pub(super) async fn mutate(&self, m: MetadataMutation, router: &Router) -> MutationResult {
        let Some(store) = &self.store else {
            return MutationResult {
                error_code: ErrorCode::NOT_CONTROLLER.code(),
                message: Some(format!("metadata mutations run on shard {CONTROLLER_SHARD}")),
                topic: None,
                producer_id: -1,
            };
        };
        let follow_up: Option<fn(Arc<TopicMeta>) -> ShardRequest> = match &m {
            MetadataMutation::CreateTopic { validate_only: false, .. }
            | MetadataMutation::CreatePartitions { validate_only: false, .. } => Some(ShardRequest::OpenPartitions),
            MetadataMutation::DeleteTopic { .. } => Some(ShardRequest::RemoveTopic),
            MetadataMutation::AlterConfigs { validate_only: false, .. } => Some(ShardRequest::ReloadConfig),
            _ => None,
        };
        let result = store.apply(m, &self.config.topic_defaults);
        if let (Some(make), Some(topic), 0) = (follow_up, &result.topic, result.error_code) {
            router.broadcast_topic(topic, make).await;
        }
        result
    }
}

impl Router {
    /// Control plane: runs a metadata mutation on shard 0.
    pub async fn mutate(&self, m: MetadataMutation) -> MutationResult {
        match self.call(CONTROLLER_SHARD, ShardRequest::Mutate(m)).await.into_mutated() {
            Ok(r) => r,
            Err(code) => MutationResult {
                error_code: code.code(),
                message: Some("the controller shard did not answer".into()),
                topic: None,
                producer_id: -1,
            },
        }
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
