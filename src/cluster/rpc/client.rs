//! The controller listener's client side: [`RpcClient`] (one connection, one call at a time) and
//! openraft's network on top of it ([`RaftNetwork`], [`RaftPeer`]).

use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::time::Duration;

use futures::future::{Either, select};
use glommio::net::TcpStream;
use openraft::error::{NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::type_config::alias::{SnapshotOf, VoteOf};
use openraft::{AsyncRuntime, BasicNode, OptionalSend};
use serde::Serialize;

use super::RpcError;
use super::frame::{Frame, FrameError, FrameKind, read_frame, write_frame};
use crate::cluster::liveness::PeerRefusals;
use crate::cluster::runtime::GlommioRuntime;
use crate::cluster::types::{AppRequest, AppResponse, ControllerRaft, RaftRequest, RaftResponse};

/// How long a connection attempt may take before the peer counts as unreachable, unless the
/// call's own deadline is sooner. A live peer on a LAN answers a SYN in well under this.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// A client of one controller listener (`host:port`).
///
/// It keeps one connection and reconnects on the next call after any failure: a call that failed
/// half-way leaves the stream at an unknown position, so the connection is dropped, never reused.
/// Calls are meant to be made one at a time (openraft makes one client per target); two
/// concurrent calls are still correct, the second opens a connection of its own.
pub struct RpcClient {
    addr: String,
    connect_timeout: Duration,
    /// The open connection, taken out for the length of a call (so no borrow is held across an
    /// await) and put back when the call succeeded.
    connection: RefCell<Option<TcpStream>>,
    next_request_id: Cell<u64>,
}

impl RpcClient {
    /// A client of the listener at `addr`; it connects on the first call.
    pub fn new(addr: impl Into<String>, connect_timeout: Duration) -> RpcClient {
        RpcClient { addr: addr.into(), connect_timeout, connection: RefCell::new(None), next_request_id: Cell::new(1) }
    }

    /// The address it calls.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends a broker request to the controller and waits at most `timeout` for its answer.
    pub async fn call_app(&self, request: AppRequest, timeout: Duration) -> Result<AppResponse, RpcError> {
        let reply = self.call(FrameKind::AppRequest, &request, FrameKind::AppResponse, timeout).await?;
        reply.decode().map_err(|source| self.bad_reply(source))
    }

    /// Sends a Raft request to another voter and waits at most `timeout` for its answer.
    pub async fn call_raft(&self, request: RaftRequest, timeout: Duration) -> Result<RaftResponse, RpcError> {
        let reply = self.call(FrameKind::RaftRequest, &request, FrameKind::RaftResponse, timeout).await?;
        reply.decode().map_err(|source| self.bad_reply(source))
    }

    /// One request and its reply, within `timeout` all told (connecting included).
    async fn call<T: Serialize>(&self, kind: FrameKind, body: &T, answer: FrameKind, timeout: Duration) -> Result<Frame, RpcError> {
        let request_id = self.next_request_id.get();
        self.next_request_id.set(request_id.wrapping_add(1));
        let request = Frame::encode(request_id, kind, body).map_err(|source| RpcError::Request { addr: self.addr.clone(), source })?;
        let taken = self.connection.borrow_mut().take();
        let exchange = async {
            let mut stream = match taken {
                Some(stream) => stream,
                None => self.connect(timeout).await?,
            };
            self.exchange(&mut stream, &request).await.map(|reply| (stream, reply))
        };
        let outcome = match GlommioRuntime::timeout(timeout, exchange).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(RpcError::Timeout { addr: self.addr.clone(), after: timeout }),
        };
        let reply = match outcome {
            Ok((stream, reply)) => {
                *self.connection.borrow_mut() = Some(stream);
                reply
            }
            Err(e) => {
                // The stream, if any, was dropped with the failed exchange: the next call reconnects.
                tracing::debug!(addr = %self.addr, request_id, error = %e, "controller rpc call failed");
                return Err(e);
            }
        };
        match reply.kind {
            kind if kind == answer => Ok(reply),
            FrameKind::ErrorReply => {
                let message = reply.decode::<String>().map_err(|source| self.bad_reply(source))?;
                Err(RpcError::Remote { addr: self.addr.clone(), message })
            }
            kind => {
                // The connection is in step (the id matched) but speaks nonsense: do not reuse it.
                self.connection.borrow_mut().take();
                Err(self.bad_reply(FrameError::UnexpectedKind { kind }))
            }
        }
    }

    /// Writes the request and reads its reply on `stream`.
    async fn exchange(&self, stream: &mut TcpStream, request: &Frame) -> Result<Frame, RpcError> {
        let io_error = |source: FrameError| match source {
            FrameError::Io(source) => RpcError::Io { addr: self.addr.clone(), source },
            other => self.bad_reply(other),
        };
        write_frame(stream, request).await.map_err(io_error)?;
        let reply = match read_frame(stream).await.map_err(io_error)? {
            Some(reply) => reply,
            None => {
                let source = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before the reply");
                return Err(RpcError::Io { addr: self.addr.clone(), source });
            }
        };
        if reply.request_id != request.request_id {
            return Err(self.bad_reply(FrameError::WrongRequestId { expected: request.request_id, got: reply.request_id }));
        }
        Ok(reply)
    }

    /// Opens a connection, within the connect timeout or `deadline`, whichever is sooner.
    async fn connect(&self, deadline: Duration) -> Result<TcpStream, RpcError> {
        let target = self.resolve()?;
        let limit = self.connect_timeout.min(deadline).max(Duration::from_millis(1));
        let stream = TcpStream::connect_timeout(target, limit).await.map_err(|e| {
            let source = std::io::Error::from(e);
            tracing::debug!(addr = %self.addr, error = %source, "controller rpc connect failed");
            RpcError::Connect { addr: self.addr.clone(), source }
        })?;
        // Requests are small and answered one at a time: Nagle would only add latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(addr = %self.addr, error = %e, "controller rpc: cannot turn Nagle off");
        }
        tracing::debug!(addr = %self.addr, peer = %target, "controller rpc connected");
        Ok(stream)
    }

    /// The first socket address `addr` names. glommio's own connect panics on a name that
    /// resolves to nothing, so resolution happens here.
    fn resolve(&self) -> Result<SocketAddr, RpcError> {
        let mut addrs = self.addr.to_socket_addrs().map_err(|source| RpcError::Resolve { addr: self.addr.clone(), source })?;
        addrs.next().ok_or_else(|| RpcError::Resolve {
            addr: self.addr.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolves to no address"),
        })
    }

    fn bad_reply(&self, source: FrameError) -> RpcError {
        RpcError::BadReply { addr: self.addr.clone(), source }
    }
}

/// openraft's network factory for the controller quorum: a target's address is its
/// `BasicNode::addr`, a controller listener's `host:port`.
pub struct RaftNetwork {
    me: u64,
    connect_timeout: Duration,
    refusals: Rc<PeerRefusals>,
}

impl RaftNetwork {
    /// The network of voter `me`.
    pub fn new(me: u64, connect_timeout: Duration) -> RaftNetwork {
        RaftNetwork { me, connect_timeout, refusals: Rc::default() }
    }

    /// The nodes whose connections were refused, as this network's calls found them.
    pub fn refusals(&self) -> Rc<PeerRefusals> {
        Rc::clone(&self.refusals)
    }
}

impl RaftNetworkFactory<ControllerRaft> for RaftNetwork {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> RaftPeer {
        let client = RpcClient::new(node.addr.clone(), self.connect_timeout);
        RaftPeer { me: self.me, target, client, refusals: Rc::clone(&self.refusals) }
    }
}

/// One voter's connection to another, as openraft uses it.
pub struct RaftPeer {
    me: u64,
    target: u64,
    client: RpcClient,
    refusals: Rc<PeerRefusals>,
}

impl RaftPeer {
    /// One Raft call, its failure mapped the way openraft's backoff expects.
    async fn call(&self, request: RaftRequest, action: RPCTypes, timeout: Duration) -> Result<RaftResponse, RPCError<ControllerRaft>> {
        let answer = self.client.call_raft(request, timeout).await;
        match &answer {
            Ok(_) => self.refusals.answered(self.target),
            Err(RpcError::Connect { source, .. }) if source.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.refusals.refused(self.target)
            }
            Err(_) => {}
        }
        answer.map_err(|e| self.rpc_error(e, action))
    }

    /// Maps a failed call to openraft's error: a peer that cannot be reached (or that answers but
    /// has stopped its Raft) is `Unreachable`, which makes openraft back off; a deadline is
    /// `Timeout`; a broken connection is `Network`, retried at once on a fresh connection.
    fn rpc_error(&self, error: RpcError, action: RPCTypes) -> RPCError<ControllerRaft> {
        match error {
            RpcError::Resolve { .. } | RpcError::Connect { .. } | RpcError::Remote { .. } => RPCError::Unreachable(Unreachable::new(&error)),
            RpcError::Timeout { after, .. } => RPCError::Timeout(Timeout { action, id: self.me, target: self.target, timeout: after }),
            RpcError::Io { .. } | RpcError::BadReply { .. } | RpcError::Request { .. } => RPCError::Network(NetworkError::new(&error)),
        }
    }

    fn wrong_answer(&self, expected: &'static str, got: &RaftResponse) -> RPCError<ControllerRaft> {
        let got = match got {
            RaftResponse::AppendEntries(_) => "AppendEntries",
            RaftResponse::Vote(_) => "Vote",
            RaftResponse::Snapshot(_) => "Snapshot",
        };
        let error = RpcError::BadReply { addr: self.client.addr().to_owned(), source: FrameError::WrongAnswer { expected, got } };
        RPCError::Network(NetworkError::new(&error))
    }
}

impl RaftNetworkV2<ControllerRaft> for RaftPeer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<ControllerRaft>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<ControllerRaft>, RPCError<ControllerRaft>> {
        match self.call(RaftRequest::AppendEntries(rpc), RPCTypes::AppendEntries, option.hard_ttl()).await? {
            RaftResponse::AppendEntries(response) => Ok(response),
            other => Err(self.wrong_answer("AppendEntries", &other)),
        }
    }

    async fn vote(&mut self, rpc: VoteRequest<ControllerRaft>, option: RPCOption) -> Result<VoteResponse<ControllerRaft>, RPCError<ControllerRaft>> {
        match self.call(RaftRequest::Vote(rpc), RPCTypes::Vote, option.hard_ttl()).await? {
            RaftResponse::Vote(response) => Ok(response),
            other => Err(self.wrong_answer("Vote", &other)),
        }
    }

    async fn pre_vote(&mut self, rpc: VoteRequest<ControllerRaft>, option: RPCOption) -> Result<VoteResponse<ControllerRaft>, RPCError<ControllerRaft>> {
        match self.call(RaftRequest::PreVote(rpc), RPCTypes::Vote, option.hard_ttl()).await? {
            RaftResponse::Vote(response) => Ok(response),
            other => Err(self.wrong_answer("PreVote", &other)),
        }
    }

    /// Sends the whole snapshot in one frame: a metadata checkpoint is small next to the 64 MiB
    /// frame limit. `cancel` (replication to this target closed) ends the wait early.
    async fn full_snapshot(
        &mut self,
        vote: VoteOf<ControllerRaft>,
        snapshot: SnapshotOf<ControllerRaft, Vec<u8>>,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<ControllerRaft>, StreamingError<ControllerRaft>> {
        let request = RaftRequest::Snapshot { vote, meta: snapshot.meta, data: snapshot.snapshot };
        let call = std::pin::pin!(self.call(request, RPCTypes::InstallSnapshot, option.hard_ttl()));
        let cancel = std::pin::pin!(cancel);
        match select(call, cancel).await {
            Either::Left((Ok(RaftResponse::Snapshot(response)), _)) => Ok(response),
            Either::Left((Ok(other), _)) => Err(self.wrong_answer("Snapshot", &other).into()),
            Either::Left((Err(e), _)) => Err(e.into()),
            Either::Right((closed, _)) => Err(StreamingError::Closed(closed)),
        }
    }
}
