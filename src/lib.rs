//! Ringlog: a Kafka-compatible, thread-per-core streaming broker on glommio.
//!
//! A reader's path: [`net`] (connections) → [`protocol`] (one handler per Kafka API) →
//! [`shard`] (what one core owns; [`shard::messages`] is everything that crosses cores) →
//! [`router`] (the transport between cores) → [`storage`] (Kafka's log format). Beside them:
//! [`group`] (consumer group coordinators), [`metadata`] (typed records and their state
//! machine), [`session`] (a connection's principal and listener), [`codes`] and [`error`]
//! (Kafka's error codes, and the one mapping from every subsystem's errors to them); [`cluster`]
//! (the Raft metadata quorum on openraft); [`sockets`] (frame reads shared by [`net`] and the
//! cluster's broker client);
//! [`server`] starts the shards.

#![deny(missing_docs)]

pub mod cluster;
pub mod codes;
pub mod config;
pub mod error;
pub mod group;
pub mod metadata;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod router;
pub mod server;
pub mod session;
pub mod shard;
pub mod sockets;
pub mod storage;
pub mod txn;
pub mod types;
