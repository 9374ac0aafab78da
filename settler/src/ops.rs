//! The settler's small HTTP endpoint for supervisors and Prometheus:
//! `GET /healthz` (200 while the process serves; it exits when its
//! consumer stops) and `GET /metrics` (dead letters, write retries,
//! batches, sweeps, producer rebuilds, the consumer's lag, and the
//! process's figures: `process_resident_memory_bytes`, CPU seconds).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Installs the metrics recorder and binds `listen`; serve with [`serve`].
pub async fn bind(listen: SocketAddr) -> std::io::Result<(TcpListener, PrometheusHandle)> {
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|err| std::io::Error::other(format!("metrics recorder: {err}")))?;
    metrics_process::Collector::default().describe();
    Ok((TcpListener::bind(listen).await?, metrics))
}

/// Answers until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: PrometheusHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        let service = service_fn(move |req: Request<hyper::body::Incoming>| {
            let metrics = metrics.clone();
            async move { Ok::<_, Infallible>(answer(req.uri().path(), &metrics)) }
        });
        tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
    }
}

fn answer(path: &str, metrics: &PrometheusHandle) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match path {
        "/healthz" => (StatusCode::OK, "application/json", r#"{"status":"ok"}"#.to_owned()),
        "/metrics" => {
            metrics_process::Collector::default().collect();
            (StatusCode::OK, "text/plain; version=0.0.4", metrics.render())
        }
        _ => (StatusCode::NOT_FOUND, "application/json", r#"{"error":"not_found"}"#.to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
