//! The network edge: each shard's SO_REUSEPORT listener and its connections.

pub mod connection;
pub mod splice;

use std::rc::Rc;

use glommio::net::TcpListener;

use crate::router::Router;

/// Accepts connections on this shard's listener until the executor stops.
pub async fn serve_listener(listener: TcpListener, router: Rc<Router>) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let router = Rc::clone(&router);
                glommio::spawn_local(connection::serve(stream, router)).detach();
            }
            Err(e) => {
                tracing::warn!(shard = %router.me, error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
