//! The warehouse simulator (a WMS): it takes paid orders, picks, ships,
//! and intercepts an order only until picking starts. Each order's fate is
//! decided here once: shipped or intercepted, never both. An interception
//! of an order it never received leaves a tombstone, so a push arriving
//! after it is refused.
//!
//! - `POST /v1/warehouse/orders` `WarehouseOrder` → 200 `{"state"}`, 409 if intercepted.
//! - `POST /v1/warehouse/orders/{id}/pick` → picking starts (a real WMS
//!   does this on its own; the demo and tests say when).
//! - `POST /v1/warehouse/orders/{id}/ship` `Parcel` → 200, or 409 / 404 `{"state"}`.
//! - `POST /v1/warehouse/orders/{id}/intercept` → 200, or 409 `{"state"}` once picking started.
//! - `GET /v1/warehouse/orders/{id}` → 200 `{"state"}` or 404.

use dashmap::DashMap;
use hyper::StatusCode;
use paychannel::warehouse::{Parcel, WarehouseOrder};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Received,
    Picking,
    Shipped,
    Intercepted,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Picking => "picking",
            Self::Shipped => "shipped",
            Self::Intercepted => "intercepted",
        }
    }
}

#[derive(Default)]
pub struct Warehouse {
    orders: DashMap<String, State>,
}

/// An answer: its status and body.
type Answer = (StatusCode, Value);

fn state(code: StatusCode, state: &str) -> Answer {
    (code, json!({ "state": state }))
}

impl Warehouse {
    /// Serves one request under `/v1/warehouse/`; `None` for a route it does not have.
    pub fn handle(&self, post: bool, segments: &[&str], body: &[u8]) -> Option<Answer> {
        Some(match (post, segments) {
            (true, ["orders"]) => match serde_json::from_slice::<WarehouseOrder>(body) {
                Ok(order) => self.receive(&order.order_id),
                Err(err) => (StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (true, ["orders", id, "pick"]) => self.step(id, |now| match now {
                State::Received | State::Picking => Ok(State::Picking),
                other => Err(other),
            }),
            (true, ["orders", id, "ship"]) => match serde_json::from_slice::<Parcel>(body) {
                Ok(_) => self.step(id, |now| match now {
                    State::Intercepted => Err(now),
                    _ => Ok(State::Shipped),
                }),
                Err(err) => (StatusCode::BAD_REQUEST, json!({"error": err.to_string()})),
            },
            (true, ["orders", id, "intercept"]) => {
                let mut entry = self.orders.entry((*id).to_owned()).or_insert(State::Intercepted);
                match *entry {
                    State::Received | State::Intercepted => {
                        *entry = State::Intercepted;
                        state(StatusCode::OK, State::Intercepted.as_str())
                    }
                    other => state(StatusCode::CONFLICT, other.as_str()),
                }
            }
            (false, ["orders", id]) => match self.orders.get(*id) {
                Some(now) => state(StatusCode::OK, now.as_str()),
                None => state(StatusCode::NOT_FOUND, "unknown"),
            },
            _ => return None,
        })
    }

    fn receive(&self, order_id: &str) -> Answer {
        let entry = self.orders.entry(order_id.to_owned()).or_insert(State::Received);
        match *entry {
            State::Intercepted => state(StatusCode::CONFLICT, State::Intercepted.as_str()),
            now => state(StatusCode::OK, now.as_str()),
        }
    }

    /// Moves a known order as `to` says, or answers with the state that refuses it.
    fn step(&self, order_id: &str, to: impl FnOnce(State) -> Result<State, State>) -> Answer {
        let Some(mut entry) = self.orders.get_mut(order_id) else { return state(StatusCode::NOT_FOUND, "unknown") };
        match to(*entry) {
            Ok(next) => {
                *entry = next;
                state(StatusCode::OK, next.as_str())
            }
            Err(now) => state(StatusCode::CONFLICT, now.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(warehouse: &Warehouse, path: &[&str], body: Value) -> Answer {
        warehouse.handle(true, path, body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn shipping_and_interception_exclude_each_other() {
        let warehouse = Warehouse::default();
        let order = json!({"order_id": "1", "sku": "tv", "qty": 1});
        let parcel = json!({"carrier": "sf", "tracking_no": "T1"});
        assert_eq!(post(&warehouse, &["orders"], order.clone()).0, StatusCode::OK);
        assert_eq!(post(&warehouse, &["orders", "1", "intercept"], json!(null)).0, StatusCode::OK);
        assert_eq!(
            post(&warehouse, &["orders", "1", "ship"], parcel.clone()),
            state(StatusCode::CONFLICT, "intercepted")
        );

        let order = json!({"order_id": "2", "sku": "tv", "qty": 1});
        assert_eq!(post(&warehouse, &["orders"], order).0, StatusCode::OK);
        assert_eq!(post(&warehouse, &["orders", "2", "pick"], json!(null)).0, StatusCode::OK);
        assert_eq!(
            post(&warehouse, &["orders", "2", "intercept"], json!(null)),
            state(StatusCode::CONFLICT, "picking")
        );
        assert_eq!(post(&warehouse, &["orders", "2", "ship"], parcel.clone()).0, StatusCode::OK);
        assert_eq!(post(&warehouse, &["orders", "2", "ship"], parcel).0, StatusCode::OK, "a repeat");
    }

    #[test]
    fn an_interception_before_the_push_refuses_the_push() {
        let warehouse = Warehouse::default();
        assert_eq!(post(&warehouse, &["orders", "3", "intercept"], json!(null)).0, StatusCode::OK);
        let order = json!({"order_id": "3", "sku": "tv", "qty": 1});
        assert_eq!(post(&warehouse, &["orders"], order), state(StatusCode::CONFLICT, "intercepted"));
    }
}
