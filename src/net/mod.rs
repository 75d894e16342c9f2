//! The network edge: each shard's SO_REUSEPORT listener and its connections.

pub mod connection;
pub mod splice;

use std::rc::Rc;

use glommio::net::TcpListener;

use crate::shard::Router;

/// Accepts connections on this shard's listener until the executor stops. `splice` is this
/// core's splice ring for cold reads, when `cold_read_splice` is on and the kernel has one.
pub async fn serve_listener(listener: TcpListener, router: Rc<Router>, splice: Option<Rc<splice::SpliceRing>>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let router = Rc::clone(&router);
                glommio::spawn_local(connection::serve(stream, router, splice.clone())).detach();
            }
            Err(e) => {
                tracing::warn!(shard = %router.me, error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
