//! Replica placement over brokers: which brokers hold the replicas of new partitions, and which
//! of them leads. (Which shard owns a partition's log on its broker is [`super::place`].)
//!
//! Rack-unaware, as Kafka's `AdminUtils.assignReplicasToBrokers` and the idea behind KRaft's
//! `StripedReplicaPlacer`: partition `p`'s first replica (its preferred leader) is broker
//! `(p + start) % n`, so leaders stripe over the brokers; the followers follow it at a shift that
//! grows by one every `n` partitions, so followers spread too. Kafka draws `start` at random;
//! here it is the number of partitions the cluster already has, which rotates the start from
//! topic to topic and keeps planning a pure function of the snapshot.

use super::mutation::PlanContext;
use super::{ClusterSnapshot, MetadataError, TopicMeta};

/// The brokers that may take a new replica, by id: the registered, unfenced ones. A single node
/// is always its own only broker, registered yet or not (the offsets topic is created before the
/// registration at first start).
pub fn eligible_brokers(current: &ClusterSnapshot, ctx: &PlanContext<'_>) -> Vec<i32> {
    if ctx.single_node(current) {
        return vec![ctx.node_id];
    }
    current.unfenced_brokers()
}

/// Whether `broker_id` may be a new partition's leader and in its first ISR.
pub fn is_active(current: &ClusterSnapshot, ctx: &PlanContext<'_>, broker_id: i32) -> bool {
    (ctx.single_node(current) && broker_id == ctx.node_id) || current.is_unfenced(broker_id)
}

/// Replicas for the new partitions of a new topic: `count` partitions of `factor` replicas
/// (-1: `default.replication.factor` as `ctx` has it).
pub fn place_new_topic(
    current: &ClusterSnapshot,
    ctx: &PlanContext<'_>,
    count: usize,
    factor: i16,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let factor = if factor == -1 { ctx.default_replication_factor } else { factor };
    let brokers = eligible_brokers(current, ctx);
    let factor = check_factor(factor, brokers.len())?;
    let start = current.partition_count() % brokers.len();
    Ok(stripe(&brokers, 0, count, factor, start))
}

/// Replicas for partitions `have..have + count` of `topic` (`factor` -1: as many replicas as
/// its first partition has, which is Kafka's rule for CreatePartitions). The striping goes on
/// from where the topic's first partition put its leader.
pub fn place_more_partitions(
    current: &ClusterSnapshot,
    ctx: &PlanContext<'_>,
    topic: &TopicMeta,
    count: usize,
    factor: i16,
) -> Result<Vec<Vec<i32>>, MetadataError> {
    let first = topic.partitions.first();
    let factor = match factor {
        -1 => first.map_or(1, |p| p.replicas.len().clamp(1, i16::MAX as usize) as i16),
        f => f,
    };
    let brokers = eligible_brokers(current, ctx);
    let factor = check_factor(factor, brokers.len())?;
    let leader = first.and_then(|p| p.replicas.first());
    let start = match leader.and_then(|l| brokers.iter().position(|b| b == l)) {
        Some(i) => i,
        None => current.partition_count() % brokers.len(),
    };
    Ok(stripe(&brokers, topic.partitions.len(), count, factor, start))
}

/// Kafka's check: at least one replica, and no more than the brokers that can take one.
fn check_factor(factor: i16, brokers: usize) -> Result<usize, MetadataError> {
    match usize::try_from(factor) {
        Ok(f) if f >= 1 && f <= brokers => Ok(f),
        _ => Err(MetadataError::InvalidReplicationFactor { factor, brokers }),
    }
}

/// The striped assignment of partitions `first..first + count` over `brokers` (non-empty,
/// `factor <= brokers.len()`), starting at broker index `start`.
pub fn stripe(brokers: &[i32], first: usize, count: usize, factor: usize, start: usize) -> Vec<Vec<i32>> {
    let n = brokers.len();
    let mut shift = start;
    (first..first + count)
        .map(|partition| {
            if partition > 0 && partition % n == 0 {
                shift += 1;
            }
            let leader = (partition + start) % n;
            let mut replicas = Vec::with_capacity(factor);
            replicas.push(brokers[leader]);
            // Follower j sits 1..n-1 places after the leader, never on it: distinct brokers.
            for j in 0..factor.saturating_sub(1) {
                let offset = 1 + (shift + j) % (n - 1);
                replicas.push(brokers[(leader + offset) % n]);
            }
            replicas
        })
        .collect()
}
