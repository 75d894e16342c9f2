//! The controller RPC transport: Raft between voters and broker-to-controller calls, on TCP.
//!
//! Every node that runs a controller listens on its controller listener; [`serve`] answers
//! [`RaftRequest`]s through openraft and [`AppRequest`]s through the controller's
//! [`AppHandler`]. [`RaftNetwork`] is openraft's network over [`RpcClient`]; brokers use
//! [`RpcClient::call_app`] to reach the active controller.
//!
//! ```text
//!  voter A (shard 0)                                  voter B (shard 0)
//!  openraft ─► RaftNetwork ─► RaftPeer ─► RpcClient ══TCP══► serve ─► RaftEndpoint (openraft)
//!  broker   ───────────────────────────► RpcClient ══TCP══► serve ─► AppHandler (controller)
//! ```
//!
//! Frames are `[u32 length][u64 request id][u8 kind][JSON body]` ([`frame`]); one request is in
//! flight per connection. Failures are [`RpcError`]s; for openraft they become `Unreachable`
//! (the peer is down or refuses: back off), `Timeout`, or `Network` (retry on a new connection).

pub mod client;
pub mod frame;
pub mod server;

use std::time::Duration;

pub use client::{DEFAULT_CONNECT_TIMEOUT, RaftNetwork, RaftPeer, RpcClient};
pub use frame::FrameError;
pub use server::{AppHandler, RaftEndpoint, serve};

pub use crate::cluster::types::{AppRequest, AppResponse, RaftRequest, RaftResponse};

/// Why a controller RPC failed, seen from the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The address is not `host:port` or names no host.
    #[error("cannot resolve controller address {addr}: {source}")]
    Resolve {
        /// The address called.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// No connection could be opened (refused, no route, or no answer within the connect
    /// timeout): the peer is down or cut off.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address called.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// No answer within the call's deadline.
    #[error("no answer from {addr} within {after:?}")]
    Timeout {
        /// The address called.
        addr: String,
        /// The deadline.
        after: Duration,
    },
    /// The connection broke during the call.
    #[error("connection to {addr} failed: {source}")]
    Io {
        /// The address called.
        addr: String,
        /// The socket error.
        source: std::io::Error,
    },
    /// The request could not be encoded (or is over the frame limit).
    #[error("request to {addr} not sent: {source}")]
    Request {
        /// The address called.
        addr: String,
        /// Why.
        source: FrameError,
    },
    /// The peer answered something that is not a reply to the request.
    #[error("bad reply from {addr}: {source}")]
    BadReply {
        /// The address called.
        addr: String,
        /// What was wrong with it.
        source: FrameError,
    },
    /// The peer understood the request but could not serve it (its Raft has stopped, say).
    #[error("{addr} refused the request: {message}")]
    Remote {
        /// The address called.
        addr: String,
        /// The peer's reason.
        message: String,
    },
}
