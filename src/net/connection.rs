//! One client connection: read frames, run up to [`MAX_IN_FLIGHT`] requests (and
//! [`MAX_IN_FLIGHT_BYTES`] of them) concurrently, and write their responses strictly in request
//! order (Kafka clients pipeline and rely on it).
//!
//! ```text
//!  socket ─► reader: size-checked frame ─► spawn dispatch task ─► in-order queue ─► writer ─► socket
//! ```
//! A frame larger than `socket.request.max.bytes`, a truncated frame or an undecodable request
//! closes the connection with one log line. Nothing else is affected.

use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;
use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, SinkExt, StreamExt};
use glommio::net::TcpStream;
use glommio::sync::{Semaphore, StaticPermit};

use crate::metrics::ShardMetrics;
use crate::net::splice::SpliceRing;
use crate::protocol::frame::Chunk;
use crate::protocol::{self, ProtocolError, ResponseFrame};
use crate::shard::Router;

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

/// Why a connection ends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// Socket error.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The client sent a frame over the limit.
    #[error("frame of {size} bytes exceeds socket.request.max.bytes {max}")]
    FrameTooLarge {
        /// Declared size.
        size: i64,
        /// Limit.
        max: usize,
    },
    /// The client closed the socket in the middle of a frame.
    #[error("truncated frame: {got} of {size} bytes before end of stream")]
    Truncated {
        /// Declared size.
        size: usize,
        /// Bytes received.
        got: usize,
    },
    /// The request could not be served.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
}

type Pending = glommio::Task<Result<Option<ResponseFrame>, ProtocolError>>;

/// Serves a connection until the peer closes it or it must be dropped.
pub async fn serve(stream: TcpStream, router: Rc<Router>, splice: Option<Rc<SpliceRing>>) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    // Kafka describes a member's host as "/<ip>".
    let client_host: Rc<str> = stream.peer_addr().map(|a| format!("/{}", a.ip())).unwrap_or_default().into();
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (mut reader, mut writer) = stream.split();
    let (queue_tx, mut queue_rx) = mpsc::channel::<(Pending, StaticPermit)>(MAX_IN_FLIGHT);
    let max = router.shard.config.socket_request_max_bytes;
    let in_flight_bytes = Rc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES as u64));

    let reading = {
        let router = Rc::clone(&router);
        let mut queue_tx = queue_tx;
        async move {
            loop {
                let mut size_buf = [0u8; 4];
                if reader.read(&mut size_buf[..1]).await? == 0 {
                    return Ok::<(), ConnectionError>(());
                }
                read_full(&mut reader, &mut size_buf[1..], 4).await?;
                let size = i32::from_be_bytes(size_buf);
                if size < 0 || size as usize > max {
                    return Err(ConnectionError::FrameTooLarge { size: i64::from(size), max });
                }
                // A frame over the budget waits for the whole budget, so it still goes alone.
                let units = (size as u64).min(MAX_IN_FLIGHT_BYTES as u64);
                let Ok(permit) = in_flight_bytes.acquire_static_permit(units).await else { return Ok(()) };
                let frame = read_frame(&mut reader, fd, size as usize).await?;
                ShardMetrics::add(&router.metrics.bytes_in, 4 + size as u64);
                let router = Rc::clone(&router);
                let host = Rc::clone(&client_host);
                let frame = frame.freeze();
                let task = glommio::spawn_local(async move { protocol::dispatch(&router, &host, frame).await });
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
                let spliced = write_frame(&mut writer, fd, &response, splice.as_ref()).await?;
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
    match outcome {
        Ok(()) => tracing::debug!(peer = %peer, shard = %router.me, "connection closed by peer"),
        Err(ConnectionError::Io(e)) => tracing::debug!(peer = %peer, error = %e, "connection i/o error"),
        Err(e) => tracing::warn!(peer = %peer, shard = %router.me, reason = %e, "closing connection"),
    }
}

/// Reads a frame of `size` bytes. What the socket holds already is received straight into the
/// frame's unfilled capacity: zero-filling the whole frame first, to read it through an
/// initialised slice, was 5% of the broker's samples at the acks=1 max rate (`perf record
/// --call-graph dwarf`, session 11). Once the socket runs dry, the rest is read through glommio,
/// which waits for it.
async fn read_frame<R: futures::AsyncRead + Unpin>(reader: &mut R, fd: RawFd, size: usize) -> Result<BytesMut, ConnectionError> {
    let mut frame = BytesMut::with_capacity(size);
    while frame.len() < size {
        let want = size - frame.len();
        let spare = frame.spare_capacity_mut();
        // SAFETY: the kernel writes at most `want` bytes into `spare`, which has room for them;
        // MSG_DONTWAIT keeps the executor thread from blocking.
        let got = unsafe { libc::recv(fd, spare.as_mut_ptr().cast(), want, libc::MSG_DONTWAIT) };
        if got > 0 {
            // SAFETY: the kernel initialised the first `got` bytes of the spare capacity.
            unsafe { frame.set_len(frame.len() + got as usize) };
            continue;
        }
        if got == 0 {
            return Err(ConnectionError::Truncated { size, got: frame.len() });
        }
        let error = std::io::Error::last_os_error();
        match error.kind() {
            std::io::ErrorKind::Interrupted => continue,
            std::io::ErrorKind::WouldBlock => break,
            _ => return Err(error.into()),
        }
    }
    let at = frame.len();
    if at < size {
        frame.resize(size, 0);
        read_full(reader, &mut frame[at..], size).await?;
    }
    Ok(frame)
}

async fn read_full<R: futures::AsyncRead + Unpin>(reader: &mut R, buf: &mut [u8], size: usize) -> Result<(), ConnectionError> {
    let mut got = size - buf.len();
    let mut at = 0;
    while at < buf.len() {
        let n = reader.read(&mut buf[at..]).await?;
        if n == 0 {
            return Err(ConnectionError::Truncated { size, got });
        }
        at += n;
        got += n;
    }
    Ok(())
}

/// Writes a frame's chunks: as many as the socket takes at once in one vectored `sendmsg`, and
/// through glommio's writer (which waits for the socket to drain) when it is full. File chunks go
/// by splice, in their place in the frame. Returns the bytes spliced.
async fn write_frame<W: futures::AsyncWrite + Unpin>(
    writer: &mut W,
    fd: RawFd,
    frame: &ResponseFrame,
    splice: Option<&Rc<SpliceRing>>,
) -> std::io::Result<usize> {
    let chunks = frame.chunks();
    let (mut i, mut at, mut spliced) = (0, 0, 0);
    while i < chunks.len() {
        let Some(bytes) = chunks[i].in_memory() else {
            let (Chunk::File(slice), Some(ring)) = (&chunks[i], splice) else {
                return Err(std::io::Error::other("a file chunk without a splice ring"));
            };
            ring.send(fd, slice).await?;
            spliced += slice.len;
            (i, at) = (i + 1, 0);
            continue;
        };
        match send_vectored(fd, &chunks[i..], at) {
            Ok(mut sent) => {
                while i < chunks.len() && chunks[i].in_memory().is_some() && sent >= chunks[i].len() - at {
                    sent -= chunks[i].len() - at;
                    (i, at) = (i + 1, 0);
                }
                at += sent;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                writer.write_all(&bytes[at..]).await?;
                (i, at) = (i + 1, 0);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(spliced)
}

/// Chunks per `sendmsg`: well under the kernel's IOV_MAX of 1024.
const MAX_IOV: usize = 64;

/// One non-blocking `sendmsg` of `chunks`, the first from byte `at`. Returns the bytes sent.
fn send_vectored(fd: RawFd, chunks: &[Chunk], at: usize) -> std::io::Result<usize> {
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(chunks.len().min(MAX_IOV));
    // A file chunk ends the run: it goes to the socket by splice.
    let in_memory = chunks.iter().map_while(Chunk::in_memory);
    for (n, chunk) in in_memory.take(MAX_IOV).enumerate() {
        let part = if n == 0 { &chunk[at..] } else { chunk };
        iov.push(libc::iovec { iov_base: part.as_ptr() as *mut libc::c_void, iov_len: part.len() });
    }
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: every iovec points into a chunk that `chunks` borrows for the whole call, and the
    // kernel only reads them. MSG_DONTWAIT keeps the executor thread from blocking.
    let sent = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(sent as usize)
}
