//! Transport between cores: [`Router::call`], [`Router::broadcast`] and one split-by-owner-and-join
//! helper, [`Router::split_join`], that produce, fetch and the per-partition queries all use.
//!
//! The router knows nothing of what crosses. A core's [`ShardHandler`] (the `shard` module's
//! `Shard`) names the request and response types and runs the work; the router moves them over
//! glommio's `channel_mesh`, each request with a one-shot reply, or runs them inline when the
//! target is this core. A hop that fails (the peer's inbox is gone, or it drops the request
//! unanswered) becomes a response through `From<RouterError>`: the caller always gets an answer
//! that says what happened, never a silent success.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};

use crate::codes::ErrorCode;
use crate::metrics::ShardMetrics;
use crate::types::ShardId;

/// Capacity of each mesh channel (cross-core round trips must never block on it).
pub const MESH_CAPACITY: usize = 1024;

/// Which plane a request travels on. Data-plane work goes to a partition's owner shard;
/// control-plane work (metadata changes and what follows from them) to shard 0 or to every
/// owner of a topic. Fault injection refuses only the data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// Partition and group work on the owner shard.
    Data,
    /// Metadata mutations and their follow-ups.
    Control,
}

/// A request that says which plane it travels on.
pub trait Routed {
    /// The request's plane.
    fn plane(&self) -> Plane;
}

/// Why a cross-core call got no answer from its target. `crate::error` maps it to a Kafka code.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The target shard's inbox is closed.
    #[error("cannot send to shard {shard}: its inbox is closed")]
    SendFailed {
        /// The target.
        shard: ShardId,
    },
    /// The target shard dropped the request without answering it.
    #[error("shard {shard} dropped the request unanswered")]
    Unanswered {
        /// The target.
        shard: ShardId,
    },
}

/// What a core runs for requests addressed to it.
pub trait ShardHandler: Sized + 'static {
    /// Everything one core may ask another.
    type Request: Routed + Send + 'static;
    /// The answers; a failed hop becomes one through `From<RouterError>`.
    type Response: From<RouterError> + Send + 'static;

    /// Runs `request` on this core. `router` lets the work call other cores in turn.
    fn handle(&self, request: Self::Request, router: &Router<Self>) -> impl Future<Output = Self::Response>;
}

/// A request with its reply channel: the message type of the mesh.
pub struct Envelope<H: ShardHandler> {
    /// The work.
    pub request: H::Request,
    /// Where the answer goes.
    pub reply: oneshot::Sender<H::Response>,
}

/// One core's end of the mesh, and the core's own handler for calls addressed to itself.
pub struct Router<H: ShardHandler> {
    /// This shard.
    pub me: ShardId,
    /// Number of shards.
    pub nr_shards: usize,
    /// What this core owns; runs the calls addressed to it.
    pub shard: Rc<H>,
    /// This shard's counters.
    pub metrics: Arc<ShardMetrics>,
    senders: Senders<Envelope<H>>,
    /// Fault injection (`fault_injection_unanswered_shard`): this core drops every data-plane
    /// request unanswered, as a wedged or failed owner would.
    unanswering: bool,
}

impl<H: ShardHandler> Router<H> {
    /// Builds a shard's router over its end of the mesh.
    pub fn new(shard: Rc<H>, senders: Senders<Envelope<H>>, metrics: Arc<ShardMetrics>, unanswering: bool) -> Self {
        let me = ShardId(senders.peer_id());
        if unanswering {
            tracing::warn!(shard = %me, "fault injection: this shard leaves data-plane requests unanswered");
        }
        Router { me, nr_shards: senders.nr_consumers(), shard, metrics, senders, unanswering }
    }

    /// Runs `request` on `shard`, inline when it is this one.
    pub async fn call(&self, shard: ShardId, request: H::Request) -> H::Response {
        if shard == self.me {
            if self.refuses(&request) {
                return RouterError::Unanswered { shard }.into();
            }
            return self.shard.handle(request, self).await;
        }
        let started = std::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        if self.senders.send_to(shard.0, Envelope { request, reply }).await.is_err() {
            tracing::error!(shard = %shard, "mesh send failed");
            return RouterError::SendFailed { shard }.into();
        }
        let answer = match answer.await {
            Ok(answer) => answer,
            Err(_) => {
                tracing::warn!(shard = %shard, "a peer shard dropped a request unanswered");
                RouterError::Unanswered { shard }.into()
            }
        };
        ShardMetrics::add(&self.metrics.hops, 1);
        self.metrics.hop_latency.record(started.elapsed());
        answer
    }

    /// Runs `make()` on each of `shards`, concurrently; the answers come back in that order.
    pub async fn broadcast(&self, shards: impl IntoIterator<Item = ShardId>, make: impl Fn() -> H::Request) -> Vec<H::Response> {
        let calls: Vec<_> = shards.into_iter().map(|s| self.call(s, make())).collect();
        futures::future::join_all(calls).await
    }

    /// Runs `(owner, item)` pairs on their owners, one request per owner, concurrently, and
    /// returns one answer per item, in item order. `request` builds an owner's request from its
    /// items; `answers` takes its response apart, one answer per item in the order given, or
    /// the error code that stands for all of them; `failed` builds an item's answer from a code.
    pub async fn split_join<T, A>(
        &self,
        items: Vec<(ShardId, T)>,
        request: impl Fn(Vec<T>) -> H::Request,
        answers: impl Fn(H::Response) -> Result<Vec<A>, ErrorCode>,
        failed: impl Fn(ErrorCode) -> A,
    ) -> Vec<A> {
        let count = items.len();
        let mut by_owner: BTreeMap<ShardId, (Vec<usize>, Vec<T>)> = BTreeMap::new();
        for (slot, (owner, item)) in items.into_iter().enumerate() {
            let (slots, parts) = by_owner.entry(owner).or_default();
            slots.push(slot);
            parts.push(item);
        }
        let calls: Vec<_> = by_owner
            .into_iter()
            .map(|(owner, (slots, parts))| {
                let call = self.call(owner, request(parts));
                async move { (slots, call.await) }
            })
            .collect();
        let mut out: Vec<Option<A>> = (0..count).map(|_| None).collect();
        for (slots, response) in futures::future::join_all(calls).await {
            match answers(response) {
                Ok(got) => {
                    let mut got = got.into_iter();
                    for slot in slots {
                        out[slot] = got.next();
                    }
                }
                Err(code) => {
                    for slot in slots {
                        out[slot] = Some(failed(code));
                    }
                }
            }
        }
        // An owner that answered fewer items than it was given: the rest did not happen.
        out.into_iter().map(|a| a.unwrap_or_else(|| failed(ErrorCode::UNKNOWN_SERVER_ERROR))).collect()
    }

    /// Serves the mesh inbox from peer shards until the mesh closes. Each message runs in its
    /// own task; tasks start in arrival order, so appends keep their order.
    pub async fn serve_inbox(self: Rc<Self>, mut receivers: Receivers<Envelope<H>>) {
        let mut loops = Vec::new();
        for (_, receiver) in receivers.streams() {
            let router = Rc::clone(&self);
            loops.push(glommio::spawn_local(async move {
                while let Some(envelope) = receiver.recv().await {
                    if router.refuses(&envelope.request) {
                        continue; // Dropping the envelope drops its reply: the caller sees Unanswered.
                    }
                    let router = Rc::clone(&router);
                    glommio::spawn_local(async move {
                        let answer = router.shard.handle(envelope.request, &router).await;
                        let _ = envelope.reply.send(answer);
                    })
                    .detach();
                }
            }));
        }
        futures::future::join_all(loops).await;
    }

    fn refuses(&self, request: &H::Request) -> bool {
        self.unanswering && request.plane() == Plane::Data
    }
}
