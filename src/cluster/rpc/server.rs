//! The controller listener's server side: one task per connection, one request at a time.
//!
//! Raft requests go to a [`RaftEndpoint`] (an `openraft::Raft` of any state machine whose
//! snapshots are bytes), broker requests to an [`AppHandler`]. A request that Raft refuses (it has
//! stopped, or failed) is answered with an error reply; a frame that cannot be read or decoded
//! closes the connection with one warn line. Nothing a peer sends can panic the shard.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures::future::LocalBoxFuture;
use glommio::net::{TcpListener, TcpStream};
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::storage::RaftStateMachine;
use openraft::type_config::alias::{SnapshotMetaOf, SnapshotOf, VoteOf};

use super::frame::{Frame, FrameError, FrameKind, read_frame, write_frame};
use crate::cluster::types::{AppRequest, AppResponse, ControllerRaft, RaftRequest, RaftResponse};

/// How long the accept loop waits after a failed accept (out of file descriptors, say) so that
/// it does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(10);

/// The Raft protocol calls the server makes, as a trait object so the server does not depend on
/// the state machine type. Implemented for every `openraft::Raft<ControllerRaft, SM>` whose
/// snapshots are bytes.
pub trait RaftEndpoint {
    /// `Raft::append_entries`.
    fn append_entries(
        &self,
        request: AppendEntriesRequest<ControllerRaft>,
    ) -> LocalBoxFuture<'_, Result<AppendEntriesResponse<ControllerRaft>, RaftError<ControllerRaft>>>;

    /// `Raft::vote`.
    fn vote(&self, request: VoteRequest<ControllerRaft>) -> LocalBoxFuture<'_, Result<VoteResponse<ControllerRaft>, RaftError<ControllerRaft>>>;

    /// `Raft::pre_vote`: would this node vote for the candidate (no term is changed).
    fn pre_vote(&self, request: VoteRequest<ControllerRaft>) -> LocalBoxFuture<'_, Result<VoteResponse<ControllerRaft>, RaftError<ControllerRaft>>>;

    /// `Raft::install_full_snapshot` with the snapshot's bytes.
    fn install_full_snapshot(
        &self,
        vote: VoteOf<ControllerRaft>,
        meta: SnapshotMetaOf<ControllerRaft>,
        data: Vec<u8>,
    ) -> LocalBoxFuture<'_, Result<SnapshotResponse<ControllerRaft>, RaftError<ControllerRaft>>>;
}

impl<SM> RaftEndpoint for openraft::Raft<ControllerRaft, SM>
where
    SM: RaftStateMachine<ControllerRaft, SnapshotData = Vec<u8>>,
{
    fn append_entries(
        &self,
        request: AppendEntriesRequest<ControllerRaft>,
    ) -> LocalBoxFuture<'_, Result<AppendEntriesResponse<ControllerRaft>, RaftError<ControllerRaft>>> {
        Box::pin(openraft::Raft::append_entries(self, request))
    }

    fn vote(&self, request: VoteRequest<ControllerRaft>) -> LocalBoxFuture<'_, Result<VoteResponse<ControllerRaft>, RaftError<ControllerRaft>>> {
        Box::pin(openraft::Raft::vote(self, request))
    }

    fn pre_vote(&self, request: VoteRequest<ControllerRaft>) -> LocalBoxFuture<'_, Result<VoteResponse<ControllerRaft>, RaftError<ControllerRaft>>> {
        Box::pin(openraft::Raft::pre_vote(self, request))
    }

    fn install_full_snapshot(
        &self,
        vote: VoteOf<ControllerRaft>,
        meta: SnapshotMetaOf<ControllerRaft>,
        data: Vec<u8>,
    ) -> LocalBoxFuture<'_, Result<SnapshotResponse<ControllerRaft>, RaftError<ControllerRaft>>> {
        let snapshot = SnapshotOf::<ControllerRaft, Vec<u8>> { meta, snapshot: data };
        Box::pin(async move { openraft::Raft::install_full_snapshot(self, vote, snapshot).await.map_err(RaftError::Fatal) })
    }
}

/// What serves broker requests: the controller implements it (on the active controller it runs
/// the mutation; elsewhere it answers `NotController`). `!Send`, like all shard state.
pub trait AppHandler {
    /// The answer to one request. Every outcome, refusals included, is an [`AppResponse`].
    fn handle(&self, request: AppRequest) -> Pin<Box<dyn Future<Output = AppResponse>>>;

    /// A connection that carried the Raft leader `leader`'s replication closed: that leader may
    /// have died (its process's sockets close at once) or merely reconnected.
    fn leader_hung_up(&self, _leader: u64) {}
}

/// Accepts controller connections on `listener` until the executor stops (or the task running
/// this is dropped), serving each on a detached task of its own: dropping the accept loop stops
/// new connections, while open ones are served until their peer hangs up or the executor stops.
///
/// After `raft.shutdown()` requests may still arrive (openraft#1357): the Raft answers them with
/// an error, which goes back to the caller as an error reply.
pub async fn serve(listener: TcpListener, raft: Rc<dyn RaftEndpoint>, app: Rc<dyn AppHandler>) {
    let local = listener.local_addr().map(|addr| addr.to_string()).unwrap_or_default();
    tracing::info!(listener = %local, "controller rpc listening");
    loop {
        match listener.accept().await {
            Ok(stream) => {
                // A socket without a peer address is already gone.
                let Ok(peer) = stream.peer_addr() else { continue };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "controller rpc: cannot turn Nagle off");
                }
                tracing::debug!(%peer, listener = %local, "controller rpc connection accepted");
                glommio::spawn_local(serve_connection(stream, peer, Rc::clone(&raft), Rc::clone(&app))).detach();
            }
            Err(e) => {
                tracing::warn!(listener = %local, error = %e, "controller rpc accept failed");
                glommio::timer::sleep(ACCEPT_RETRY).await;
            }
        }
    }
}

/// Serves one connection until the peer closes it or sends something unreadable.
async fn serve_connection(stream: TcpStream, peer: SocketAddr, raft: Rc<dyn RaftEndpoint>, app: Rc<dyn AppHandler>) {
    let mut replicating_leader = None;
    serve_requests(stream, peer, raft.as_ref(), app.as_ref(), &mut replicating_leader).await;
    if let Some(leader) = replicating_leader {
        app.leader_hung_up(leader);
    }
}

/// Serves requests until the connection ends, noting in `leader` who replicated on it.
async fn serve_requests(
    mut stream: TcpStream,
    peer: SocketAddr,
    raft: &dyn RaftEndpoint,
    app: &dyn AppHandler,
    leader: &mut Option<u64>,
) {
    loop {
        let request = match read_frame(&mut stream).await {
            Ok(Some(request)) => request,
            Ok(None) => {
                tracing::debug!(%peer, "controller rpc connection closed by peer");
                return;
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "controller rpc connection closed: unreadable frame");
                return;
            }
        };
        let request_id = request.request_id;
        let reply = match answer(request, raft, app, leader).await {
            Ok(reply) => reply,
            Err(e) => {
                tracing::warn!(%peer, request_id, error = %e, "controller rpc connection closed: bad request");
                return;
            }
        };
        if let Err(e) = write_frame(&mut stream, &reply).await {
            tracing::warn!(%peer, request_id, error = %e, "controller rpc connection closed: reply not sent");
            return;
        }
    }
}

/// The reply frame to one request frame; an error means the request was not understood.
async fn answer(request: Frame, raft: &dyn RaftEndpoint, app: &dyn AppHandler, leader: &mut Option<u64>) -> Result<Frame, FrameError> {
    let id = request.request_id;
    match request.kind {
        FrameKind::RaftRequest => {
            let outcome = match request.decode::<RaftRequest>()? {
                RaftRequest::AppendEntries(rpc) => {
                    *leader = Some(rpc.vote.leader_id().node_id);
                    raft.append_entries(rpc).await.map(RaftResponse::AppendEntries)
                }
                RaftRequest::Vote(rpc) => raft.vote(rpc).await.map(RaftResponse::Vote),
                RaftRequest::PreVote(rpc) => raft.pre_vote(rpc).await.map(RaftResponse::Vote),
                RaftRequest::Snapshot { vote, meta, data } => raft.install_full_snapshot(vote, meta, data).await.map(RaftResponse::Snapshot),
            };
            match outcome {
                Ok(response) => Frame::encode(id, FrameKind::RaftResponse, &response),
                Err(refused) => {
                    tracing::debug!(request_id = id, error = %refused, "controller rpc: raft refused the request");
                    Frame::encode(id, FrameKind::ErrorReply, &refused.to_string())
                }
            }
        }
        FrameKind::AppRequest => {
            let response = app.handle(request.decode::<AppRequest>()?).await;
            Frame::encode(id, FrameKind::AppResponse, &response)
        }
        kind @ (FrameKind::RaftResponse | FrameKind::AppResponse | FrameKind::ErrorReply) => Err(FrameError::UnexpectedKind { kind }),
    }
}
