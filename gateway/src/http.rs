//! Small HTTP helpers: JSON answers and bounded body reading.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{HeaderMap, Response, StatusCode};
use serde::Serialize;

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

/// Reads the whole body, refusing more than [`MAX_BODY_BYTES`]: at once when
/// `Content-Length` says so, otherwise as soon as the limit is crossed.
pub async fn read_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let too_large = ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES };
    let declared =
        headers.get(CONTENT_LENGTH).and_then(|value| value.to_str().ok()).and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(too_large);
    }
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(err) => Err(ApiError::Invalid(format!("could not read body: {err}"))),
    }
}
