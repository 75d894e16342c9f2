//! The cluster: the Raft metadata quorum (openraft), the controller on it, and replication
//! between brokers (the follower's fetcher, the leader's ISR tracker).
//!
//! openraft is runtime-agnostic through its `AsyncRuntime` trait; [`runtime::GlommioRuntime`]
//! runs it on the shard's own glommio executor. openraft is built with its `single-threaded`
//! feature, so a `Raft` handle and everything it spawns are `!Send` and live on one shard, like
//! the rest of the per-shard state.

pub mod client;
pub mod controller;
pub mod fetcher;
pub mod isr;
pub mod liveness;
pub mod raft_log;
pub mod rpc;
pub mod runtime;
pub mod state_machine;
pub mod types;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod raft_tests;

#[cfg(test)]
mod raft_log_tests;

#[cfg(test)]
mod quorum_tests;

#[cfg(test)]
mod rpc_tests;
