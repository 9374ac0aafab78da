//! Small HTTP helpers: JSON answers and bounded, timed body reading.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde::Serialize;

use crate::answers::Answer;
use crate::error::ApiError;

pub type Reply = Response<Full<Bytes>>;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> Reply {
    let bytes = serde_json::to_vec(body).expect("response bodies always serialise");
    let mut reply = Response::new(Full::new(Bytes::from(bytes)));
    *reply.status_mut() = status;
    reply.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

pub fn error(err: &ApiError) -> Reply {
    let mut reply = json(err.status(), &err.body());
    if let Some(secs) = err.retry_after_secs() {
        reply.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let ApiError::MethodNotAllowed { allow } = err {
        reply.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    }
    if let ApiError::Unauthenticated(_) = err {
        reply.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    // The body was not (all) read: the connection cannot carry another request.
    if matches!(err, ApiError::PayloadTooLarge { .. } | ApiError::RequestTimeout) {
        reply.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    reply
}

/// Refuses anything but `application/json` (parameters such as a charset allowed).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Most bytes of an oversized body read and thrown away so that its 413 is
/// read by the client: a connection closed with unread input is reset, and
/// the answer lost with it. A larger body gets its 413 without the wait.
pub const DRAIN_BYTES: u64 = 2 * 1024 * 1024;

/// A request whose body has been read.
pub type Read = Request<Bytes>;

/// Reads the whole body within `timeout` (else 408), refusing more than
/// [`MAX_BODY_BYTES`] (413): at once when `Content-Length` says so,
/// otherwise as soon as the limit is crossed; either way up to
/// [`DRAIN_BYTES`] are read and discarded first.
pub async fn read_body(req: Request<Incoming>, timeout: Duration) -> Result<Read, ApiError> {
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    let read = async {
        if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            if declared.is_some_and(|len| len <= DRAIN_BYTES) {
                drain(body, 0).await;
            }
            return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
        }
        collect_limited(body).await
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(body) => Ok(Request::from_parts(parts, body?)),
        Err(_) => {
            metrics::counter!("gateway_slow_clients_total", "stage" => "body").increment(1);
            Err(ApiError::RequestTimeout)
        }
    }
}

/// Reads and discards a body that will not be used, within `timeout`, up
/// to [`DRAIN_BYTES`].
pub async fn discard_body(req: Request<Incoming>, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, drain(req.into_body(), 0)).await;
}

async fn collect_limited(mut body: Incoming) -> Result<Bytes, ApiError> {
    let mut collected = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| ApiError::Invalid(format!("could not read body: {err}")))?;
        let Ok(data) = frame.into_data() else { continue };
        if collected.len() + data.len() > MAX_BODY_BYTES {
            drain(body, (collected.len() + data.len()) as u64).await;
            return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
        }
        collected.extend_from_slice(&data);
    }
    Ok(collected.freeze())
}

/// Reads and discards the rest of a body, `seen` bytes of it read already,
/// until it ends or [`DRAIN_BYTES`] have gone by.
async fn drain(mut body: Incoming, mut seen: u64) {
    while seen <= DRAIN_BYTES {
        match body.frame().await {
            Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |data| data.len() as u64),
            _ => return,
        }
    }
}
