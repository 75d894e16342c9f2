//! Fast detection of a dead broker: the connections the active controller's Raft opens to every
//! other node double as a liveness probe.
//!
//! A broker's session (`broker.session.timeout.ms`, Kafka's default 9 s) is the only signal
//! Kafka's controller uses, so a SIGKILLed leader's partitions wait that long for a new leader.
//! Yet when a process dies its ports close at once, and the Raft leader, which dials every
//! node every heartbeat, gets ECONNREFUSED on its next attempt: nobody listens there any more.
//! The controller fences such a broker without waiting for its session to run out. A cut-off
//! broker (no answer at all) still waits for its session, as in Kafka. Fencing a live broker by
//! mistake costs only availability: its next heartbeat, once caught up, unfences it.
//!
//! The same signal speeds up the election of a new active controller: a follower whose
//! replication connection from the leader closes probes the leader's port
//! ([`refuses_connections`]); refused, the follower gives up its leader lease at once, as
//! openraft's leadership transfer does, instead of refusing votes until the lease runs out.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

/// When each node last refused a connection with nothing heard from it since. `!Send`: it lives
/// on the controller's shard, shared by the Raft network and the session checks.
#[derive(Debug, Default)]
pub struct PeerRefusals {
    refused: RefCell<HashMap<u64, Instant>>,
}

impl PeerRefusals {
    /// `node` refused a connection now (ECONNREFUSED): no process listens at its address.
    pub fn refused(&self, node: u64) {
        let first = self.refused.borrow_mut().insert(node, Instant::now()).is_none();
        if first {
            tracing::info!(node_id = node, "node refuses connections: its process is gone");
        }
    }

    /// `node` answered a call: whatever refused before has come back.
    pub fn answered(&self, node: u64) {
        self.refused.borrow_mut().remove(&node);
    }

    /// When `node` last refused a connection, if nothing answered since.
    pub fn refused_since(&self, node: u64) -> Option<Instant> {
        self.refused.borrow().get(&node).copied()
    }

    /// Whether a broker last heard from at `last_heartbeat` (`None`: not since this controller
    /// took over) has died since: its node refused a connection after that heartbeat.
    pub fn died_after(&self, node: u64, last_heartbeat: Option<Instant>) -> bool {
        match (self.refused_since(node), last_heartbeat) {
            (Some(refused), Some(heard)) => refused > heard,
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Whether nothing listens at `addr` any more: a connection attempt is refused (ECONNREFUSED)
/// within `timeout`. No answer, or any other error, is not proof and says `false`.
pub async fn refuses_connections(addr: &str, timeout: Duration) -> bool {
    let Some(target) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else { return false };
    match glommio::net::TcpStream::connect_timeout(target, timeout).await {
        Ok(_) => false,
        Err(e) => std::io::Error::from(e).kind() == std::io::ErrorKind::ConnectionRefused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_after_the_last_heartbeat_means_the_broker_died() {
        let refusals = PeerRefusals::default();
        let heard = Instant::now();
        assert!(!refusals.died_after(2, Some(heard)), "nothing refused yet");
        std::thread::sleep(Duration::from_millis(2));
        refusals.refused(2);
        assert!(refusals.died_after(2, Some(heard)));
        assert!(refusals.died_after(2, None), "a new controller that never heard from it");
        assert!(!refusals.died_after(3, None), "another node");
        // A heartbeat after the refusal (a restarted broker) outweighs it.
        std::thread::sleep(Duration::from_millis(2));
        assert!(!refusals.died_after(2, Some(Instant::now())));
    }

    #[test]
    fn a_closed_port_refuses_and_an_open_one_does_not() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let open = listener.local_addr().unwrap().to_string();
                assert!(!refuses_connections(&open, Duration::from_millis(500)).await, "a listener accepts");
                drop(listener);
                assert!(refuses_connections(&open, Duration::from_millis(500)).await, "its port closed with it");
                assert!(!refuses_connections("not an address", Duration::from_millis(500)).await);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn an_answer_clears_the_refusal_and_the_latest_refusal_counts() {
        let refusals = PeerRefusals::default();
        refusals.refused(1);
        let first = refusals.refused_since(1);
        std::thread::sleep(Duration::from_millis(2));
        refusals.refused(1);
        assert!(refusals.refused_since(1) > first, "the latest refusal is compared with the heartbeats");
        refusals.answered(1);
        assert_eq!(refusals.refused_since(1), None);
        assert!(!refusals.died_after(1, None));
    }
}
