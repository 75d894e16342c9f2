//! One client connection: read frames, run up to [`MAX_IN_FLIGHT`] requests (and
//! [`MAX_IN_FLIGHT_BYTES`] of them) concurrently, and write their responses strictly in request
//! order (Kafka clients pipeline and rely on it).
//!
//! ```text
//!  transport ─► reader: size-checked frame ─► spawn dispatch task ─► in-order queue ─► writer ─► transport
//! ```
//! Each request's task gets the connection's [`Session`] (who, from where, on which listener).
//! A frame larger than `socket.request.max.bytes`, a truncated frame or an undecodable request
//! closes the connection with one log line. Nothing else is affected.

use std::rc::Rc;

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use glommio::sync::{Semaphore, StaticPermit};

use crate::metrics::ShardMetrics;
use crate::net::splice::SpliceRing;
use crate::net::ConnectionError;
use crate::net::transport::Transport;
use crate::protocol::{self, ProtocolError, ResponseFrame};
use crate::shard::Router;
use crate::session::Session;

/// Requests a connection may have in flight; reading pauses beyond it (back-pressure).
///
/// A producer's throughput is its bytes in flight over the broker's answer time, and at
/// `acks=all` that time includes an fdatasync: 16 in flight held this VM's acks=all at 193–199
/// MB/s; 256, with [`MAX_IN_FLIGHT_BYTES`], gives 286–312 MB/s (perf/RESULTS.md, session 5).
/// Kafka's own broker runs one request per connection at a time; it does not fdatasync per
/// acknowledgement, so its answers do not wait for the disk.
pub const MAX_IN_FLIGHT: usize = 256;

/// Request bytes a connection may have in flight. Produced data sits in the shard's batch
/// cache from its append, so this keeps one producer's unwritten backlog well inside that cache:
/// otherwise, once the disk falls behind, batches leave the cache before consumers can read them
/// and tailing consumers fall back to the disk the producer is saturating.
pub const MAX_IN_FLIGHT_BYTES: usize = 16 << 20;

type Pending = glommio::Task<Result<Option<ResponseFrame>, ProtocolError>>;

/// Serves a connection until the peer closes it or it must be dropped.
pub async fn serve(transport: Transport, session: Rc<Session>, router: Rc<Router>, splice: Option<Rc<SpliceRing>>) {
    let (mut reader, mut writer) = transport.split();
    let (queue_tx, mut queue_rx) = mpsc::channel::<(Pending, StaticPermit)>(MAX_IN_FLIGHT);
    let max = router.shard.config.socket_request_max_bytes;
    let in_flight_bytes = Rc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES as u64));

    let reading = {
        let router = Rc::clone(&router);
        let session = Rc::clone(&session);
        let mut queue_tx = queue_tx;
        async move {
            loop {
                let mut size_buf = [0u8; 4];
                if reader.read(&mut size_buf[..1]).await? == 0 {
                    return Ok::<(), ConnectionError>(());
                }
                reader.read_full(&mut size_buf[1..], 4).await?;
                let size = i32::from_be_bytes(size_buf);
                if size < 0 || size as usize > max {
                    return Err(ConnectionError::FrameTooLarge { size: i64::from(size), max });
                }
                // A frame over the budget waits for the whole budget, so it still goes alone.
                let units = (size as u64).min(MAX_IN_FLIGHT_BYTES as u64);
                let Ok(permit) = in_flight_bytes.acquire_static_permit(units).await else { return Ok(()) };
                let frame = reader.read_frame(size as usize).await?;
                ShardMetrics::add(&router.metrics.bytes_in, 4 + size as u64);
                let router = Rc::clone(&router);
                let session = Rc::clone(&session);
                let frame = frame.freeze();
                let task = glommio::spawn_local(async move { protocol::dispatch(&router, &session, frame).await });
                if queue_tx.send((task, permit)).await.is_err() {
                    return Ok(());
                }
            }
        }
    };
    let metrics = std::sync::Arc::clone(&router.metrics);
    let writing = async move {
        while let Some((task, _permit)) = queue_rx.next().await {
            if let Some(response) = task.await? {
                let spliced = writer.write_frame(&response, splice.as_ref()).await?;
                ShardMetrics::add(&metrics.bytes_out, response.len() as u64);
                ShardMetrics::add(&metrics.spliced_bytes, spliced as u64);
            }
        }
        Ok::<(), ConnectionError>(())
    };

    futures::pin_mut!(reading, writing);
    let outcome = match futures::future::select(reading, writing).await {
        // The peer is done sending: finish answering what it asked.
        futures::future::Either::Left((Ok(()), writing)) => writing.await,
        futures::future::Either::Left((Err(e), _)) => Err(e),
        futures::future::Either::Right((result, _)) => result,
    };
    let (peer, listener) = (session.peer, session.listener_name());
    match outcome {
        Ok(()) => tracing::debug!(peer = %peer, listener, shard = %router.me, "connection closed by peer"),
        Err(ConnectionError::Io(e)) => tracing::debug!(peer = %peer, listener, error = %e, "connection i/o error"),
        Err(e) => tracing::warn!(peer = %peer, listener, shard = %router.me, reason = %e, "closing connection"),
    }
}
