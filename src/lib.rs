//! Ringlog: a Kafka-compatible, thread-per-core streaming broker on glommio.
//!
//! A reader's path: [`net`] (connections) → [`protocol`] (one handler per Kafka API) →
//! [`router`] (cross-core messages, owner shards) → [`storage`] (Kafka's log format).
//! [`metadata`] holds topics and placement; [`server`] starts the shards. A connection's
//! [`session`] (principal, listener, peer) goes with each of its requests.

#![deny(missing_docs)]

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
pub mod storage;
pub mod types;
