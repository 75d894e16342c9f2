//! KIP-951 leader hints: a partition answered NOT_LEADER_OR_FOLLOWER (Produce v10+, Fetch v16+,
//! and FENCED_LEADER_EPOCH in Fetch) carries the current leader's id and epoch, and the
//! response's NodeEndpoints lists that leader's endpoint on the listener the request came in on,
//! so the client re-routes without a Metadata round trip.

use std::collections::BTreeMap;

use crate::codes::ErrorCode;
use crate::metadata::ClusterSnapshot;
use crate::protocol::handlers::broker_endpoints;

/// A leader's endpoint as NodeEndpoints lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderEndpoint {
    /// Broker id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, when set.
    pub rack: Option<String>,
}

/// Collects the hints of one response: [`LeaderHints::hint`] per refused partition, then
/// [`LeaderHints::endpoints`] once for the response.
pub struct LeaderHints<'a> {
    snapshot: &'a ClusterSnapshot,
    listener: &'a str,
    /// The leaders hinted so far, with their endpoint (`None`: none on this listener).
    leaders: BTreeMap<i32, Option<LeaderEndpoint>>,
}

impl<'a> LeaderHints<'a> {
    /// Hints from `snapshot`, with endpoints on `listener`.
    pub fn new(snapshot: &'a ClusterSnapshot, listener: &'a str) -> Self {
        LeaderHints { snapshot, listener, leaders: BTreeMap::new() }
    }

    /// `(leader id, leader epoch)` to send with `error` for `topic`/`partition`, when the error
    /// is one that carries a hint and the metadata names a leader (Kafka sends -1/-1, the field's
    /// default, otherwise).
    pub fn hint(&mut self, error: ErrorCode, topic: &str, partition: i32, fenced_epoch_too: bool) -> Option<(i32, i32)> {
        let hinted = error == ErrorCode::NOT_LEADER_OR_FOLLOWER || (fenced_epoch_too && error == ErrorCode::FENCED_LEADER_EPOCH);
        if !hinted {
            return None;
        }
        let p = self.snapshot.partition(topic, partition)?;
        if p.leader < 0 {
            return None;
        }
        let (snapshot, listener) = (self.snapshot, self.listener);
        self.leaders.entry(p.leader).or_insert_with(|| {
            broker_endpoints(snapshot, listener).find(|(id, _, _)| *id == p.leader).map(|(id, e, rack)| LeaderEndpoint {
                node_id: id,
                host: e.host.clone(),
                port: i32::from(e.port),
                rack: rack.cloned(),
            })
        });
        Some((p.leader, p.leader_epoch))
    }

    /// The endpoints of the leaders hinted, by id.
    pub fn endpoints(self) -> Vec<LeaderEndpoint> {
        self.leaders.into_values().flatten().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;
    use crate::metadata::{BrokerEndpoint, BrokerRegistration, PartitionMeta, TopicMeta};
    use crate::types::ShardId;

    fn snapshot() -> ClusterSnapshot {
        let mut s = ClusterSnapshot::empty("c");
        for id in [1, 2] {
            let endpoint = |listener: &str, port| BrokerEndpoint { listener: listener.into(), host: format!("h{id}"), port, security_protocol: "PLAINTEXT".into() };
            let endpoints = vec![endpoint("INTERNAL", 9000 + id as u16), endpoint("PLAINTEXT", 9100 + id as u16)];
            s.brokers.insert(id, BrokerRegistration { broker_id: id, incarnation_id: uuid::Uuid::nil(), endpoints, rack: None });
        }
        let p = |leader| PartitionMeta {
            owner: ShardId(0),
            leader_epoch: 7,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            partition_epoch: 0,
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        };
        let t = TopicMeta { name: "t".into(), id: uuid::Uuid::nil(), partitions: vec![p(2), p(-1)], configs: BTreeMap::new() };
        s.topics.insert("t".into(), Arc::new(t));
        s
    }

    #[test]
    fn not_leader_carries_the_leader_and_its_endpoint_on_the_request_listener() {
        let s = snapshot();
        let mut hints = LeaderHints::new(&s, "PLAINTEXT");
        assert_eq!(hints.hint(ErrorCode::NOT_LEADER_OR_FOLLOWER, "t", 0, false), Some((2, 7)));
        assert_eq!(hints.hint(ErrorCode::NOT_LEADER_OR_FOLLOWER, "t", 1, false), None, "no leader: no hint");
        assert_eq!(hints.hint(ErrorCode::FENCED_LEADER_EPOCH, "t", 0, false), None, "produce hints NOT_LEADER_OR_FOLLOWER only");
        assert_eq!(hints.hint(ErrorCode::FENCED_LEADER_EPOCH, "t", 0, true), Some((2, 7)));
        assert_eq!(hints.hint(ErrorCode::NONE, "t", 0, true), None);
        assert_eq!(hints.hint(ErrorCode::NOT_LEADER_OR_FOLLOWER, "x", 0, true), None);
        let endpoints = hints.endpoints();
        assert_eq!(endpoints, vec![LeaderEndpoint { node_id: 2, host: "h2".into(), port: 9102, rack: None }]);
    }
}
