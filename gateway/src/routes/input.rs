//! What the routes read from a request besides its body's own fields: the
//! order id in the path, the `{"user_id", "sku"}` body of the buyer's
//! actions on an order, the `Idempotency-Key` header.

use hyper::HeaderMap;
use order::id::OrderId;
use order::request::{check_idempotency_key, OrderOwner};

use crate::error::ApiError;
use crate::http::{self, Read};

pub fn order_id(text: &str) -> Result<OrderId, ApiError> {
    text.parse().map_err(|e: order::id::BadOrderId| ApiError::Invalid(e.to_string()))
}

/// Reads `{"sku", "user_id"?}` from a JSON body of `buyer`.
pub fn owner(req: &Read, buyer: u64) -> Result<OrderOwner, ApiError> {
    http::require_json(req.headers())?;
    Ok(OrderOwner::from_json(req.body(), buyer)?)
}

pub fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    let key = headers
        .get("idempotency-key")
        .ok_or_else(|| ApiError::Invalid("the Idempotency-Key header is required".into()))?
        .to_str()
        .map_err(|_| ApiError::Invalid("Idempotency-Key must be ASCII".into()))?;
    check_idempotency_key(key).map_err(|e| ApiError::Invalid(e.0))?;
    Ok(key.to_owned())
}
