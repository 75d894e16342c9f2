//! What a connection reads from and writes to: a [`Transport`], split into a
//! [`TransportReader`] and a [`TransportWriter`] so requests are read while responses are written.
//!
//! ```text
//!  Transport::Plain(TcpStream) ──split──► TransportReader::Plain ─ recv(MSG_DONTWAIT) into the frame
//!                                         TransportWriter::Plain ─ sendmsg of the chunks, splice of file ranges
//!  (later) Transport::Tls(..)     ──split──► decrypting reader / encrypting writer: copies, no splice
//! ```
//! The zero-copy paths need the socket's descriptor, so they are methods of the plaintext halves.
//! A TLS variant adds one arm to each `match`: it reads frames through its decrypting stream and
//! writes every chunk through its encrypting one (file chunks read into memory first), because
//! the kernel cannot encrypt for it. The `match` runs once per frame, not per byte, and the enums
//! hold their streams inline: no allocation and no dynamic call per request.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use bytes::BytesMut;
use futures::io::{ReadHalf, WriteHalf};
use futures::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::net::ConnectionError;
use crate::net::splice::SpliceRing;
use crate::protocol::ResponseFrame;
use crate::protocol::frame::Chunk;

/// A connection's byte stream.
pub enum Transport {
    /// A TCP socket, no encryption.
    Plain(TcpStream),
}

/// The reading half of a [`Transport`].
pub enum TransportReader {
    /// Reads a TCP socket.
    Plain(PlainReader),
}

/// The writing half of a [`Transport`].
pub enum TransportWriter {
    /// Writes a TCP socket.
    Plain(PlainWriter),
}

/// The reading half of a plaintext socket, with its descriptor for non-blocking `recv`.
pub struct PlainReader {
    half: ReadHalf<TcpStream>,
    /// The socket's descriptor: open while either half lives, because the halves share the stream.
    fd: RawFd,
}

/// The writing half of a plaintext socket, with its descriptor for `sendmsg` and splice.
pub struct PlainWriter {
    half: WriteHalf<TcpStream>,
    /// As [`PlainReader::fd`].
    fd: RawFd,
}

impl Transport {
    /// A plaintext transport over an accepted socket, with Nagle off: Kafka's answers are small
    /// frames that must not wait for an ACK.
    pub fn plain(stream: TcpStream) -> Transport {
        let _ = stream.set_nodelay(true);
        Transport::Plain(stream)
    }

    /// The client's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Transport::Plain(stream) => stream.peer_addr().map_err(io::Error::from),
        }
    }

    /// Splits the transport so one task reads requests while another writes responses.
    pub fn split(self) -> (TransportReader, TransportWriter) {
        match self {
            Transport::Plain(stream) => {
                let fd = stream.as_raw_fd();
                let (read, write) = stream.split();
                (TransportReader::Plain(PlainReader { half: read, fd }), TransportWriter::Plain(PlainWriter { half: write, fd }))
            }
        }
    }
}

impl TransportReader {
    /// Reads what is there, at least one byte; 0 means the peer closed the stream.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TransportReader::Plain(plain) => plain.half.read(buf).await,
        }
    }

    /// Fills `buf`, the last `buf.len()` bytes of an item of `size` bytes (for the error).
    pub async fn read_full(&mut self, buf: &mut [u8], size: usize) -> Result<(), ConnectionError> {
        match self {
            TransportReader::Plain(plain) => read_full(&mut plain.half, buf, size).await,
        }
    }

    /// Reads a request frame of `size` bytes (after its size prefix).
    pub async fn read_frame(&mut self, size: usize) -> Result<BytesMut, ConnectionError> {
        match self {
            TransportReader::Plain(plain) => plain.read_frame(size).await,
        }
    }
}

impl TransportWriter {
    /// Writes a response frame, all of it. Returns the bytes that went by splice.
    pub async fn write_frame(&mut self, frame: &ResponseFrame, splice: Option<&Rc<SpliceRing>>) -> io::Result<usize> {
        match self {
            TransportWriter::Plain(plain) => plain.write_frame(frame, splice).await,
        }
    }
}

impl PlainReader {
    async fn read_frame(&mut self, size: usize) -> Result<BytesMut, ConnectionError> {
        Ok(crate::sockets::recv_frame(self.fd, &mut self.half, size).await?)
    }
}

impl PlainWriter {
    /// Writes a frame's chunks: as many as the socket takes at once in one vectored `sendmsg`, and
    /// through glommio's writer (which waits for the socket to drain) when it is full. File chunks
    /// go by splice, in their place in the frame. Returns the bytes spliced.
    async fn write_frame(&mut self, frame: &ResponseFrame, splice: Option<&Rc<SpliceRing>>) -> io::Result<usize> {
        let chunks = frame.chunks();
        let (mut i, mut at, mut spliced) = (0, 0, 0);
        while i < chunks.len() {
            let Some(bytes) = chunks[i].in_memory() else {
                let (Chunk::File(slice), Some(ring)) = (&chunks[i], splice) else {
                    return Err(io::Error::other("a file chunk without a splice ring"));
                };
                ring.send(self.fd, slice).await?;
                spliced += slice.len;
                (i, at) = (i + 1, 0);
                continue;
            };
            match send_vectored(self.fd, &chunks[i..], at) {
                Ok(mut sent) => {
                    while i < chunks.len() && chunks[i].in_memory().is_some() && sent >= chunks[i].len() - at {
                        sent -= chunks[i].len() - at;
                        (i, at) = (i + 1, 0);
                    }
                    at += sent;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.half.write_all(&bytes[at..]).await?;
                    (i, at) = (i + 1, 0);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(spliced)
    }
}

/// Fills `buf` from any reader: the copying path, which a TLS reader would share.
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

/// Chunks per `sendmsg`: well under the kernel's IOV_MAX of 1024.
const MAX_IOV: usize = 64;

/// One non-blocking `sendmsg` of `chunks`, the first from byte `at`. Returns the bytes sent.
fn send_vectored(fd: RawFd, chunks: &[Chunk], at: usize) -> io::Result<usize> {
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
        return Err(io::Error::last_os_error());
    }
    Ok(sent as usize)
}
