//! The checkout request: `{"lines": [{"sku", "qty"}, ...], "coupon"?: "...",
//! "user_id"?: u64}` plus the `Idempotency-Key` header, validated before
//! any I/O: 1 to 50 lines, each SKU once, each quantity 1 to 100.

use serde::Deserialize;

use crate::request::{buyer_of, check_token, quantity, InvalidRequest, RequestError, StorefrontChannel, MAX_QTY};

/// Most lines one checkout may carry.
pub const MAX_LINES: usize = 50;

/// Most member points one checkout may ask to spend.
pub const MAX_POINTS: i64 = 1_000_000_000;

/// A validated checkout request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub user_id: u64,
    /// In the buyer's order; each SKU once.
    pub lines: Vec<CartLine>,
    pub coupon: Option<String>,
    /// The buyer's delivery region: a SKU split over warehouses ships from
    /// the first the scheduling rules name for it that has the units.
    pub region: Option<String>,
    /// Member points the buyer asks to spend (0: none); fewer are spent
    /// where the cap per order or the cart's amount is lower.
    pub points: u64,
    /// The storefront channel the request came through (its
    /// `X-Channel-Key`, not the body); the checkout and its items record it.
    pub channel: Option<StorefrontChannel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartLine {
    pub sku: String,
    pub qty: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheckout {
    user_id: Option<u64>,
    lines: Vec<RawLine>,
    coupon: Option<String>,
    region: Option<String>,
    #[serde(default)]
    points: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    sku: String,
    // Wider than the accepted range, for a range message on `-1` or `0`.
    qty: i64,
}

impl Checkout {
    /// Parses and validates a JSON body of `buyer`.
    pub fn from_json(body: &[u8], buyer: u64) -> Result<Self, RequestError> {
        let raw: RawCheckout = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
        let user_id = buyer_of(raw.user_id, buyer)?;
        if raw.lines.is_empty() || raw.lines.len() > MAX_LINES {
            return Err(InvalidRequest(format!("lines must hold between 1 and {MAX_LINES} lines")).into());
        }
        let mut lines: Vec<CartLine> = Vec::with_capacity(raw.lines.len());
        for (index, line) in raw.lines.into_iter().enumerate() {
            check_token("sku", &line.sku)?;
            if lines.iter().any(|seen| seen.sku == line.sku) {
                return Err(InvalidRequest(format!("lines[{index}]: {} is in the cart twice", line.sku)).into());
            }
            let qty = quantity(line.qty)
                .ok_or_else(|| InvalidRequest(format!("lines[{index}]: qty must be between 1 and {MAX_QTY}")))?;
            lines.push(CartLine { sku: line.sku, qty });
        }
        if let Some(coupon) = &raw.coupon {
            check_token("coupon", coupon)?;
        }
        if let Some(region) = &raw.region {
            check_token("region", region)?;
        }
        if !(0..=MAX_POINTS).contains(&raw.points) {
            return Err(InvalidRequest(format!("points must be between 0 and {MAX_POINTS}")).into());
        }
        let points = raw.points as u64;
        Ok(Self { user_id, lines, coupon: raw.coupon, region: raw.region, points, channel: None })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(body: serde_json::Value) -> Result<Checkout, RequestError> {
        Checkout::from_json(body.to_string().as_bytes(), 7)
    }

    #[test]
    fn a_cart_is_parsed_in_its_order() {
        let cart = parse(json!({"lines": [{"sku": "tv", "qty": 1}, {"sku": "lamp", "qty": 3}], "coupon": "c-100"}));
        let lines = vec![CartLine { sku: "tv".into(), qty: 1 }, CartLine { sku: "lamp".into(), qty: 3 }];
        assert_eq!(
            cart,
            Ok(Checkout { user_id: 7, lines, coupon: Some("c-100".into()), region: None, points: 0, channel: None })
        );
    }

    #[test]
    fn every_bad_cart_is_refused_with_its_reason() {
        let fifty_one: Vec<_> = (0..51).map(|n| json!({"sku": format!("s{n}"), "qty": 1})).collect();
        let cases = [
            (json!({"lines": []}), "between 1 and 50"),
            (json!({"lines": fifty_one}), "between 1 and 50"),
            (json!({"lines": [{"sku": "tv", "qty": 1}, {"sku": "tv", "qty": 2}]}), "twice"),
            (json!({"lines": [{"sku": "tv", "qty": 0}]}), "lines[0]: qty"),
            (json!({"lines": [{"sku": "tv", "qty": 101}]}), "lines[0]: qty"),
            (json!({"lines": [{"sku": "t v", "qty": 1}]}), "sku"),
            (json!({"lines": [{"sku": "tv", "qty": 1}], "coupon": ""}), "coupon"),
            (json!({"lines": [{"sku": "tv", "qty": 1}], "region": "far away"}), "region"),
            (json!({"lines": [{"sku": "tv", "qty": 1, "price": 1}]}), "unknown field"),
            (json!({"lines": [{"sku": "tv", "qty": 1}], "user_id": 0}), "positive"),
            (json!({"lines": [{"sku": "tv", "qty": 1}], "points": -5}), "points"),
        ];
        for (body, reason) in cases {
            match parse(body.clone()) {
                Err(RequestError::Invalid(InvalidRequest(detail))) => {
                    assert!(detail.contains(reason), "{body}: {detail}")
                }
                other => panic!("{body}: {other:?}"),
            }
        }
        assert_eq!(parse(json!({"lines": [{"sku": "tv", "qty": 1}], "user_id": 8})), Err(RequestError::OtherUser));
    }
}
