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
