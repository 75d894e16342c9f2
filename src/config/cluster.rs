//! The cluster settings, as KRaft names them: `process.roles`, `controller.quorum.voters`,
//! `controller.quorum.bootstrap.servers`, `controller.listener.names` and
//! `default.replication.factor`.
//!
//! Ringlog serves KRaft's three kinds of node: combined (`process.roles=broker,controller`, the
//! default: one node that is its own quorum, or a voter of `controller.quorum.voters`),
//! controller-only (a voter that serves no Kafka listener and hosts no partition) and broker-only
//! (not a voter: it follows the quorum's log as an openraft learner). [`ClusterConfig::check`]
//! applies Kafka's rules for them at start-up, each refusal one line; a quorum known only by
//! bootstrap servers (KIP-853's dynamic voters) is served to brokers, refused to controllers.

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
    /// `replica.fetch.max.bytes`: the most a follower's fetch asks of one partition (Kafka's
    /// default 1 MiB).
    pub replica_fetch_max_bytes: i32,
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
            replica_fetch_max_bytes: 1 << 20,
        }
    }
}

/// A cluster setting this build cannot serve, or that Kafka refuses. Each names what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterConfigError {
    /// A broker-only or controller-only node with neither voters nor bootstrap servers.
    #[error("process.roles={roles}: name the quorum in controller.quorum.voters (or controller.quorum.bootstrap.servers)")]
    NoQuorum {
        /// The roles as configured.
        roles: &'static str,
    },
    /// A broker-only node named among the voters (Kafka's rule: it would be counted but never vote).
    #[error("process.roles=broker: node.id {node_id} must not be among controller.quorum.voters ({voters})")]
    BrokerIsAVoter {
        /// This node.
        node_id: i32,
        /// The voters' ids.
        voters: String,
    },
    /// A controller-only node with a listener that is not a controller listener.
    #[error("process.roles=controller: listeners may name only controller listeners (controller.listener.names={controller_listeners}); found {listener}")]
    ControllerWithKafkaListener {
        /// The first listener that is not a controller listener.
        listener: String,
        /// `controller.listener.names`, as configured.
        controller_listeners: String,
    },
    /// Bootstrap servers without voters on a controller (KIP-853's dynamic quorum).
    #[error("{key} names other nodes ({others}): a controller of a quorum known only by bootstrap servers is not served yet; name its voters in controller.quorum.voters")]
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

    /// Whether this node runs with other nodes (a multi-node cluster): other voters, or a role
    /// that needs other nodes (a controller-only node serves brokers elsewhere; a broker-only
    /// node follows a quorum elsewhere).
    pub fn is_multi_node(&self, node_id: i32) -> bool {
        self.voters.iter().any(|v| v.id != node_id) || !self.is_combined()
    }

    /// Whether this node is both broker and controller.
    pub fn is_combined(&self) -> bool {
        self.roles.broker && self.roles.controller
    }

    /// Whether this node is a broker only: an openraft learner of the quorum, never a voter.
    pub fn is_broker_only(&self) -> bool {
        self.roles.broker && !self.roles.controller
    }

    /// Whether this node is a controller only: a voter with no Kafka listener and no partitions.
    pub fn is_controller_only(&self) -> bool {
        self.roles.controller && !self.roles.broker
    }

    /// The controller addresses (`host:port`) a broker-only node asks to be added as a learner:
    /// the voters', then the bootstrap servers' (either may be given; Kafka 4 accepts both).
    pub fn controller_addresses(&self) -> Vec<String> {
        let mut addresses: Vec<String> = self.voters.iter().map(|v| format!("{}:{}", v.host, v.port)).collect();
        for server in &self.bootstrap_servers {
            if !addresses.contains(server) {
                addresses.push(server.clone());
            }
        }
        addresses
    }

    /// This node's entry in `controller.quorum.voters`.
    pub fn own_voter(&self, node_id: i32) -> Option<&QuorumVoter> {
        self.voters.iter().find(|v| v.id == node_id)
    }

    /// `offsets.topic.replication.factor` as applied: a single node holds the only copy.
    pub fn offsets_replication_factor(&self, node_id: i32) -> i16 {
        if self.is_multi_node(node_id) { self.offsets_topic_replication_factor.max(1) } else { 1 }
    }

    /// The cluster id every node of a quorum derives alike from its voters (`id`, `host:port`),
    /// in id order, whatever order a node's config lists them in (Kafka's comes from `kafka-storage format`; Ringlog
    /// needs no format step).
    pub fn cluster_id_of(voters: impl IntoIterator<Item = (i32, String)>) -> String {
        let mut voters: Vec<(i32, String)> = voters.into_iter().collect();
        voters.sort();
        let voters: Vec<String> = voters.into_iter().map(|(id, addr)| format!("{id}@{addr}")).collect();
        let digest = crc32c::crc32c(voters.join(",").as_bytes());
        let id = uuid::Uuid::from_u64_pair(u64::from(digest) << 32 | u64::from(crc32c::crc32c(b"ringlog")), u64::from(digest));
        id.simple().to_string()[..22].to_string()
    }

    /// The start-up check, Kafka's rules for `process.roles`: a controller is among the voters;
    /// a broker-only node is not, and knows the quorum by voters or bootstrap servers; only a
    /// broker may know the quorum by bootstrap servers alone.
    pub fn check(&self, node_id: i32) -> Result<(), ClusterConfigError> {
        let ids = |voters: &[QuorumVoter]| voters.iter().map(|v| v.id.to_string()).collect::<Vec<_>>().join(",");
        let roles = match (self.roles.broker, self.roles.controller) {
            (true, false) => "broker",
            (false, true) => "controller",
            _ => "broker,controller",
        };
        if !self.is_combined() && self.voters.is_empty() && self.bootstrap_servers.is_empty() {
            return Err(ClusterConfigError::NoQuorum { roles });
        }
        if self.is_broker_only() {
            if self.voters.iter().any(|v| v.id == node_id) {
                return Err(ClusterConfigError::BrokerIsAVoter { node_id, voters: ids(&self.voters) });
            }
            return Ok(());
        }
        if !self.voters.is_empty() && !self.voters.iter().any(|v| v.id == node_id) {
            return Err(ClusterConfigError::NotAVoter { node_id, voters: ids(&self.voters) });
        }
        if !self.bootstrap_servers.is_empty() && self.voters.is_empty() {
            // A bootstrap list names the quorum by address only: with no voters of its own, a
            // controller cannot tell itself apart, so any list is a quorum it would not join.
            return Err(ClusterConfigError::OtherNodes {
                key: "controller.quorum.bootstrap.servers",
                others: self.bootstrap_servers.join(","),
            });
        }
        Ok(())
    }

    /// The listener check of a controller-only node (Kafka's rule): every listener of
    /// `listeners` is a controller listener, since the node serves no Kafka clients.
    pub fn check_listeners<'a>(&self, listener_names: impl IntoIterator<Item = &'a str>) -> Result<(), ClusterConfigError> {
        if !self.is_controller_only() {
            return Ok(());
        }
        match listener_names.into_iter().find(|name| !self.controller_listener_names.iter().any(|c| c == name)) {
            Some(listener) => Err(ClusterConfigError::ControllerWithKafkaListener {
                listener: listener.to_string(),
                controller_listeners: self.controller_listener_names.join(","),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combined_node_is_a_voter_or_a_cluster_of_itself() {
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

        let mut c = ClusterConfig { bootstrap_servers: ClusterConfig::list("a:9093, b:9093"), ..Default::default() };
        assert!(matches!(c.check(1), Err(ClusterConfigError::OtherNodes { key: "controller.quorum.bootstrap.servers", .. })), "a controller needs its voters");
        c.set_voters("1@a:9093").unwrap();
        assert_eq!(c.check(1), Ok(()), "with voters named, bootstrap servers are only a hint");
        c.voters.clear();
        c.bootstrap_servers.clear();
        assert_eq!(c.check(1), Ok(()));
    }

    #[test]
    fn a_broker_only_node_follows_a_quorum_it_is_not_a_voter_of() {
        let mut c = ClusterConfig::default();
        c.set_roles("broker").unwrap();
        assert!(c.is_broker_only() && !c.is_combined() && !c.is_controller_only());
        assert_eq!(c.check(4), Err(ClusterConfigError::NoQuorum { roles: "broker" }), "a broker alone has no controller");
        assert!(c.is_multi_node(4), "a broker-only node is never a cluster of itself");

        c.set_voters("1@a:9093,2@b:9093,3@c:9093").unwrap();
        assert_eq!(c.check(4), Ok(()));
        assert_eq!(c.check(2), Err(ClusterConfigError::BrokerIsAVoter { node_id: 2, voters: "1,2,3".into() }));
        assert_eq!(c.check_listeners(["PLAINTEXT", "CONTROLLER"]), Ok(()), "the listener rule is a controller's");

        c.voters.clear();
        c.bootstrap_servers = ClusterConfig::list("a:9093,b:9093");
        assert_eq!(c.check(4), Ok(()), "a broker may know the quorum by bootstrap servers alone (Kafka 4)");
        let id = ClusterConfig::cluster_id_of([(2, "b:9093".to_string()), (1, "a:9093".to_string())]);
        assert_eq!(id, ClusterConfig::cluster_id_of([(1, "a:9093".to_string()), (2, "b:9093".to_string())]), "any order");
        assert_ne!(id, ClusterConfig::cluster_id_of([(1, "a:9093".to_string())]));
        assert_eq!(id.len(), 22);
        c.set_voters("1@a:9093").unwrap();
        assert_eq!(c.controller_addresses(), vec!["a:9093".to_string(), "b:9093".to_string()], "voters first, no address twice");
    }

    #[test]
    fn a_controller_only_node_is_a_voter_with_controller_listeners_only() {
        let mut c = ClusterConfig::default();
        c.set_roles("controller").unwrap();
        assert!(c.is_controller_only());
        assert_eq!(c.check(1), Err(ClusterConfigError::NoQuorum { roles: "controller" }));
        c.set_voters("1@a:9093").unwrap();
        assert_eq!(c.check(1), Ok(()), "a quorum of one controller-only voter (its brokers are elsewhere)");
        assert!(c.is_multi_node(1), "a lone controller-only voter still runs the quorum, not the single-node store");
        assert_eq!(c.check(2), Err(ClusterConfigError::NotAVoter { node_id: 2, voters: "1".into() }));

        c.controller_listener_names = ClusterConfig::list("CONTROLLER");
        assert_eq!(c.check_listeners(["CONTROLLER"]), Ok(()));
        assert_eq!(
            c.check_listeners(["CONTROLLER", "PLAINTEXT"]),
            Err(ClusterConfigError::ControllerWithKafkaListener { listener: "PLAINTEXT".into(), controller_listeners: "CONTROLLER".into() })
        );
        let refusal = c.check_listeners(["PLAINTEXT"]).unwrap_err().to_string();
        assert!(refusal.contains("process.roles=controller") && refusal.contains("PLAINTEXT"), "{refusal}");

        c.voters.clear();
        c.bootstrap_servers = ClusterConfig::list("a:9093");
        assert!(matches!(c.check(1), Err(ClusterConfigError::OtherNodes { .. })), "a dynamic quorum is not served to controllers");
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
