//! The warehouse (WMS), as the gateway sees it: take a paid order, ship
//! it, or intercept it before it ships. The warehouse decides between
//! shipping and interception once per order; the order's status follows
//! its answer. A simulator of one is in the `paysim` crate.

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::Http;

/// The warehouse's name of the outbound order that ships an exchange's
/// replacement (its after-sale request's id, marked).
pub fn outbound_order_id(after_sale_id: impl std::fmt::Display) -> String {
    format!("x{after_sale_id}")
}

/// An order handed to the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseOrder {
    pub order_id: String,
    pub sku: String,
    pub qty: u32,
}

/// The parcel the warehouse sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parcel {
    pub carrier: String,
    pub tracking_no: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("warehouse unreachable: {0}")]
    Unreachable(String),
    /// The warehouse will not do it: the order is `state` there
    /// (`picking`, `shipped`, `intercepted`, `unknown`).
    #[error("the warehouse refused: the order is {state}")]
    Refused { state: String },
    #[error("warehouse answered {status}: {body}")]
    Failed { status: StatusCode, body: String },
}

/// A warehouse spoken to over HTTP (the simulator's API).
pub struct HttpWarehouse {
    http: Http,
}

impl HttpWarehouse {
    pub fn new(base_url: &str, timeout: Duration) -> Self {
        Self { http: Http::new(base_url, timeout) }
    }

    /// Hands the order over; a repeat is answered like the first.
    pub async fn push(&self, order: &WarehouseOrder) -> Result<(), WarehouseError> {
        let body = serde_json::to_vec(order).expect("serialisable");
        self.exchange(Method::POST, "/v1/warehouse/orders".into(), Some(body)).await
    }

    /// Ships the order; refused once it was intercepted.
    pub async fn ship(&self, order_id: &str, parcel: &Parcel) -> Result<(), WarehouseError> {
        let body = serde_json::to_vec(parcel).expect("serialisable");
        self.exchange(Method::POST, format!("/v1/warehouse/orders/{order_id}/ship"), Some(body)).await
    }

    /// Stops the order before it ships; refused once picking started.
    pub async fn intercept(&self, order_id: &str) -> Result<(), WarehouseError> {
        self.exchange(Method::POST, format!("/v1/warehouse/orders/{order_id}/intercept"), None).await
    }

    async fn exchange(&self, method: Method, path: String, body: Option<Vec<u8>>) -> Result<(), WarehouseError> {
        let (status, _, body) = self.http.call(method, &path, body).await.map_err(WarehouseError::Unreachable)?;
        if status.is_success() {
            return Ok(());
        }
        #[derive(Deserialize)]
        struct Refusal {
            state: String,
        }
        match (status, serde_json::from_slice::<Refusal>(&body)) {
            (StatusCode::CONFLICT | StatusCode::NOT_FOUND, Ok(refusal)) => {
                Err(WarehouseError::Refused { state: refusal.state })
            }
            _ => Err(WarehouseError::Failed { status, body: String::from_utf8_lossy(&body).into_owned() }),
        }
    }
}
