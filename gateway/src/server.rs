//! The HTTP/1 server: accept loop, per-connection tasks, graceful drain.
//! A connection must send each request's header within
//! `server.header_read_timeout_ms` (from its start or the previous answer),
//! so slow and idle sockets are closed; a client that stops reading its
//! answers is dropped after `server.write_timeout_ms`; open connections are
//! capped.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::app::App;
use crate::connections::{Caps, Connections};
use crate::routes;
use crate::write_timeout::WriteTimeout;

/// The answer to a connection over a cap, written once and closed.
const TOO_MANY_CONNECTIONS: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
    Content-Length: 33\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"too_many_connections\"}\n";

/// Serves until `shutdown` resolves, then stops accepting and lets open
/// requests finish for up to `grace`.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>, grace: Duration) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Connections::default());
    let server = &app.config.server;
    let caps = Caps { total: server.max_connections, per_ip: server.max_connections_per_ip };
    let write_timeout = server.write_timeout();
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(server.header_read_timeout());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let exempt = app.traffic.load().config.trusted_proxies.iter().any(|net| net.contains(&peer.ip()));
                let Some(admitted) = connections.admit(peer.ip(), caps, exempt) else {
                    // Told why, if its buffer takes it at once; closed either way.
                    let _ = stream.try_write(TOO_MANY_CONNECTIONS);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, Infallible>(routes::handle(app, req, peer).await) }
                });
                let io = TokioIo::new(WriteTimeout::new(stream, write_timeout));
                let conn = graceful.watch(http.serve_connection(io, service));
                tokio::spawn(async move {
                    if let Err(err) = conn.await {
                        if err.is_timeout() {
                            metrics::counter!("gateway_slow_clients_total", "stage" => "header").increment(1);
                        }
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                    drop(admitted);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, draining open ones");
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "grace period over with connections still open"),
    }
}
