//! The network edge: each shard's SO_REUSEPORT listeners and their connections.
//!
//! A connection reads and writes a [`transport::Transport`] (plaintext now; the seam where TLS
//! goes) and carries a [`Session`] made when it is accepted.

pub mod connection;
pub mod splice;
pub mod transport;

use std::rc::Rc;
use std::sync::Arc;

use glommio::net::TcpListener;

use crate::config::Listener;
use crate::protocol::ProtocolError;
use crate::shard::Router;
use crate::session::Session;
use transport::Transport;

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

impl From<crate::sockets::FrameReadError> for ConnectionError {
    fn from(e: crate::sockets::FrameReadError) -> Self {
        match e {
            crate::sockets::FrameReadError::Truncated { size, got } => ConnectionError::Truncated { size, got },
            crate::sockets::FrameReadError::Io(e) => ConnectionError::Io(e),
        }
    }
}

/// Accepts connections on this shard's socket of `listener` until the executor stops. `splice`
/// is this core's splice ring for cold reads, when `cold_read_splice` is on and the kernel has one.
pub async fn serve_listener(socket: TcpListener, listener: Arc<Listener>, router: Rc<Router>, splice: Option<Rc<splice::SpliceRing>>) {
    loop {
        match socket.accept().await {
            Ok(stream) => {
                // ListenerConfig::resolve admits only PLAINTEXT listeners; TLS would branch here.
                let transport = Transport::plain(stream);
                // A socket without a peer address is already gone.
                let Ok(peer) = transport.peer_addr() else { continue };
                let session = Rc::new(Session::anonymous(Arc::clone(&listener), peer));
                let router = Rc::clone(&router);
                glommio::spawn_local(connection::serve(transport, session, router, splice.clone())).detach();
            }
            Err(e) => {
                tracing::warn!(shard = %router.me, listener = %listener.name, error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// A listener on `addr` that binds even while connections of an earlier owner of the port linger
/// in TIME_WAIT (SO_REUSEADDR): glommio's own `bind` sets only SO_REUSEPORT, and another
/// program's TIME_WAIT sockets (Kafka's, run on the same ports before) block that for a minute.
/// `shared`: SO_REUSEPORT too, for a listener every shard binds (the kernel spreads clients);
/// otherwise the port is this socket's alone.
pub fn bind_listener(addr: std::net::SocketAddr, shared: bool) -> std::io::Result<TcpListener> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    // socket2 opens it close-on-exec.
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(shared)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves here.
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
