//! The cluster settings, as KRaft names them: `process.roles`, `controller.quorum.voters`,
//! `controller.quorum.bootstrap.servers`, `controller.listener.names` and
//! `default.replication.factor`.
//!
//! Ringlog serves combined nodes (`process.roles=broker,controller`): one node that is its own
//! quorum (the default), or a cluster whose every node is a voter of `controller.quorum.voters`.
//! A configuration that asks for more (a broker with a remote quorum, a controller-only node, a
//! quorum known only by bootstrap servers) is refused at start-up with one line that says so,
//! instead of starting a node that would silently run alone and let clients believe their writes
//! are replicated.

/// `process.roles`: what this node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessRoles {
    /// Serves clients and holds partitions.
    pub broker: bool,
    /// Votes in the metadata quorum.
    pub controller: bool,
}

/// One entry of `controller.quorum.voters`: `id@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumVoter {
    /// The voter's node id.
    pub id: i32,
    /// Its controller listener's host.
    pub host: String,
    /// Its controller listener's port.
    pub port: u16,
}

/// The cluster settings of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `process.roles`; unset, a combined broker and controller.
    pub roles: ProcessRoles,
    /// `controller.quorum.voters`; empty: this node alone.
    pub voters: Vec<QuorumVoter>,
    /// `controller.quorum.bootstrap.servers` (KIP-853), as given.
    pub bootstrap_servers: Vec<String>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// `default.replication.factor`: the replicas of a topic created without one.
    pub default_replication_factor: i16,
    /// `broker.heartbeat.interval.ms`: how often a broker tells the active controller it lives.
    pub broker_heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `inter.broker.listener.name`: the listener followers fetch from; unset, the first.
    pub inter_broker_listener_name: Option<String>,
    /// `offsets.topic.replication.factor` (Kafka's default 3); a single node uses 1.
    pub offsets_topic_replication_factor: i16,
    /// `controller.quorum.fetch.timeout.ms`: a voter that hears nothing from the active
    /// controller this long starts an election (Kafka's default 2000).
    pub quorum_fetch_timeout_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            roles: ProcessRoles { broker: true, controller: true },
            voters: Vec::new(),
            bootstrap_servers: Vec::new(),
            controller_listener_names: Vec::new(),
            default_replication_factor: 1,
            broker_heartbeat_interval_ms: 2000,
            broker_session_timeout_ms: 9000,
            replica_lag_time_max_ms: 30_000,
            inter_broker_listener_name: None,
            offsets_topic_replication_factor: 3,
            quorum_fetch_timeout_ms: 2000,
        }
    }
}

/// A cluster setting this build cannot serve. Each names what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// `process.roles` without `broker`.
    #[error("process.roles={roles}: a controller-only node is not served yet; Ringlog runs its controller inside a broker (process.roles=broker,controller)")]
    ControllerOnly {
        /// The roles as configured.
        roles: String,
    },
    /// `process.roles=broker`: the controller would be elsewhere.
    #[error("process.roles=broker: a broker with a remote controller quorum is not served yet; use process.roles=broker,controller")]
    RemoteController,
    /// Bootstrap servers without voters (KIP-853's dynamic quorum).
    #[error("{key} names other nodes ({others}): a quorum known only by bootstrap servers is not served yet; name its voters in controller.quorum.voters")]
    OtherNodes {
        /// The config key.
        key: &'static str,
        /// The other nodes, as configured.
        others: String,
    },
    /// This node is a controller but not among the voters.
    #[error("node.id {node_id} is not among controller.quorum.voters ({voters})")]
    NotAVoter {
        /// This node.
        node_id: i32,
        /// The voters' ids.
        voters: String,
    },
}

impl ClusterConfig {
    /// Parses `process.roles`: a comma list of `broker` and `controller`.
    pub fn set_roles(&mut self, value: &str) -> Result<(), String> {
        let mut roles = ProcessRoles { broker: false, controller: false };
        for role in value.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                other => return Err(format!("unknown role {other:?} (broker, controller)")),
            }
        }
        if !roles.broker && !roles.controller {
            return Err("no role given (broker, controller)".into());
        }
        self.roles = roles;
        Ok(())
    }

    /// Parses `controller.quorum.voters`: a comma list of `id@host:port`.
    pub fn set_voters(&mut self, value: &str) -> Result<(), String> {
        let mut voters = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let bad = || format!("{entry:?} is not id@host:port");
            let (id, address) = entry.split_once('@').ok_or_else(bad)?;
            let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let voter = QuorumVoter { id: id.parse().map_err(|_| bad())?, host: host.to_string(), port: port.parse().map_err(|_| bad())? };
            if voters.iter().any(|v: &QuorumVoter| v.id == voter.id) {
                return Err(format!("voter {} is named twice", voter.id));
            }
            voters.push(voter);
        }
        self.voters = voters;
        Ok(())
    }

    /// Parses a comma list (`controller.quorum.bootstrap.servers`, `controller.listener.names`).
    pub fn list(value: &str) -> Vec<String> {
        value.split(',').map(str::trim).filter(|e| !e.is_empty()).map(str::to_string).collect()
    }

    /// Whether this node runs with other voters (a multi-node cluster).
    pub fn is_multi_node(&self, node_id: i32) -> bool {
        self.voters.iter().any(|v| v.id != node_id)
    }

    /// This node's entry in `controller.quorum.voters`.
    pub fn own_voter(&self, node_id: i32) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.id == node_id)
    }

    /// `offsets.topic.replication.factor` as applied: a single node holds the only copy.
    pub fn offsets_replication_factor(&self, node_id: i32) -> i16 {
        if self.is_multi_node(node_id) { self.offsets_topic_replication_factor.max(1) } else { 1 }
    }

    /// The start-up check: combined nodes only, each among the voters when voters are named.
    pub fn check(&self, node_id: i32) -> Result<(), ClusterConfigError> {
        if !self.roles.broker {
            return Err(ClusterConfigError::ControllerOnly { roles: "controller".into() });
        }
        if !self.roles.controller {
            return Err(ClusterConfigError::RemoteController);
        }
        let ids = |voters: &[QuorumVoter]| voters.iter().map(|v| v.id.to_string()).collect::<Vec<_>>().join(",");
        if !self.voters.is_empty() && !self.voters.iter().any(|v| v.id == node_id) {
            return Err(ClusterConfigError::NotAVoter { node_id, voters: ids(&self.voters) });
        }
        if !self.bootstrap_servers.is_empty() && self.voters.is_empty() {
            // A bootstrap list names the quorum by address only: with no voters of its own, this
            // node cannot tell itself apart, so any list is a quorum it would not join.
            return Err(ClusterConfigError::OtherNodes {
                key: "controller.quorum.bootstrap.servers",
                others: self.bootstrap_servers.join(","),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_combined_node_is_served_and_anything_more_is_refused() {
        let mut c = ClusterConfig::default();
        assert_eq!(c.check(1), Ok(()), "no quorum settings: a single node of itself");
        c.set_roles("broker,controller").unwrap();
        c.set_voters("1@localhost:9093").unwrap();
        assert_eq!(c.check(1), Ok(()), "a quorum of this node alone");
        assert_eq!(c.check(2), Err(ClusterConfigError::NotAVoter { node_id: 2, voters: "1".into() }));

        assert!(!c.is_multi_node(1));
        assert_eq!(c.offsets_replication_factor(1), 1, "one node holds the only copy");

        c.set_voters("1@a:9093,2@b:9093,3@[::1]:9093").unwrap();
        assert_eq!(c.voters[2], QuorumVoter { id: 3, host: "::1".into(), port: 9093 });
        assert_eq!(c.check(1), Ok(()), "a combined node among three voters");
        assert!(c.is_multi_node(1));
        assert_eq!(c.own_voter(2).map(|v| v.host.as_str()), Some("b"));
        assert_eq!(c.offsets_replication_factor(1), 3, "Kafka's default");
        assert_eq!(c.check(4), Err(ClusterConfigError::NotAVoter { node_id: 4, voters: "1,2,3".into() }));

        let mut c = ClusterConfig::default();
        c.set_roles("broker").unwrap();
        assert_eq!(c.check(1), Err(ClusterConfigError::RemoteController));
        c.set_roles("controller").unwrap();
        assert!(matches!(c.check(1), Err(ClusterConfigError::ControllerOnly { .. })));

        let mut c = ClusterConfig { bootstrap_servers: ClusterConfig::list("a:9093, b:9093"), ..Default::default() };
        assert!(matches!(c.check(1), Err(ClusterConfigError::OtherNodes { key: "controller.quorum.bootstrap.servers", .. })));
        c.set_voters("1@a:9093").unwrap();
        assert_eq!(c.check(1), Ok(()), "with voters named, bootstrap servers are only a hint");
        c.voters.clear();
        c.bootstrap_servers.clear();
        assert_eq!(c.check(1), Ok(()));
    }

    #[test]
    fn malformed_settings_are_refused_with_the_entry() {
        let mut c = ClusterConfig::default();
        assert!(c.set_roles("broker,router").unwrap_err().contains("router"));
        assert!(c.set_roles(" , ").is_err());
        assert!(c.set_voters("1@host").unwrap_err().contains("1@host"));
        assert!(c.set_voters("x@host:9093").is_err());
        assert!(c.set_voters("1@a:9093,1@b:9093").unwrap_err().contains("twice"));
        assert_eq!(c.roles, ProcessRoles { broker: true, controller: true }, "a refused value changes nothing");
    }
}
