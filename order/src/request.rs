//! The place-order request: `{"sku": "...", "qty": 1..=100, "user_id"?: u64,
//! "region"?: "..."}`
//! plus the `Idempotency-Key` header, validated before any I/O. The buyer
//! is the authenticated one; a `user_id` in the body, if any, must be theirs.

use serde::Deserialize;

/// Most units one order line may ask for.
pub const MAX_QTY: u32 = 100;
/// Longest SKU or idempotency key accepted.
pub const MAX_TOKEN_LEN: usize = 64;

/// A validated order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaceOrder {
    pub user_id: u64,
    pub sku: String,
    pub qty: u32,
    /// Where the buyer wants it delivered: which warehouses of a regional
    /// sale may serve the order (the scheduling rules). None: any.
    pub region: Option<String>,
    /// The storefront channel the request came through (its
    /// `X-Channel-Key`, not the body); the order records it.
    pub channel: Option<StorefrontChannel>,
}

/// A storefront channel as an order sees it: its id, and the most units of
/// any one sale it may hold or have bought (a partner's share), if capped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorefrontChannel {
    pub id: String,
    pub max_units_per_sale: Option<u64>,
}

/// Why a request was refused; the text is shown to the client as `detail`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// Why a buyer's request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Malformed or out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The body names a user other than the authenticated buyer.
    #[error("user_id is not the authenticated buyer")]
    OtherUser,
}

/// The buyer: the authenticated one, which a `user_id` in the body must match.
pub(crate) fn buyer_of(claimed: Option<u64>, buyer: u64) -> Result<u64, RequestError> {
    match claimed {
        Some(0) => Err(InvalidRequest("user_id must be a positive integer".into()).into()),
        Some(claimed) if claimed != buyer => Err(RequestError::OtherUser),
        _ => Ok(buyer),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaceOrder {
    user_id: Option<u64>,
    sku: String,
    // Wider than the accepted range so that `-1` or `0` gets a range message
    // rather than a type error.
    qty: i64,
    region: Option<String>,
}

impl PlaceOrder {
    /// Parses and validates a JSON body of `buyer`.
    pub fn from_json(body: &[u8], buyer: u64) -> Result<Self, RequestError> {
        let raw: RawPlaceOrder = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
        let user_id = buyer_of(raw.user_id, buyer)?;
        check_token("sku", &raw.sku)?;
        let qty = quantity(raw.qty).ok_or_else(|| InvalidRequest(format!("qty must be between 1 and {MAX_QTY}")))?;
        if let Some(region) = &raw.region {
            check_token("region", region)?;
        }
        Ok(Self { user_id, sku: raw.sku, qty, region: raw.region, channel: None })
    }
}

/// A line's quantity, if it is within 1..=[`MAX_QTY`] (read wider, so that
/// `-1` or `0` gets a range message rather than a type error).
pub(crate) fn quantity(raw: i64) -> Option<u32> {
    u32::try_from(raw).ok().filter(|qty| (1..=MAX_QTY).contains(qty))
}

/// Who asks to pay or cancel an order, and the order's SKU:
/// `{"sku": "...", "user_id"?: u64}`. The SKU names where the order's
/// reservation lives; the buyer must be the order's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderOwner {
    pub user_id: u64,
    pub sku: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrderOwner {
    user_id: Option<u64>,
    sku: String,
}

/// A buyer starting to pay an order:
/// `{"sku": "...", "user_id"?: u64, "channel"?: "..."}`: the order's owner,
/// and the payment channel they chose (none: the gateway's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayRequest {
    pub owner: OrderOwner,
    pub channel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayRequest {
    user_id: Option<u64>,
    sku: String,
    channel: Option<String>,
}

impl PayRequest {
    /// Parses a JSON body of `buyer`.
    pub fn from_json(body: &[u8], buyer: u64) -> Result<Self, RequestError> {
        let raw: RawPayRequest = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
        let user_id = buyer_of(raw.user_id, buyer)?;
        check_token("sku", &raw.sku)?;
        if let Some(channel) = &raw.channel {
            check_token("channel", channel)?;
        }
        Ok(Self { owner: OrderOwner { user_id, sku: raw.sku }, channel: raw.channel })
    }
}

/// The payment channel a buyer chose for a checkout: an empty body (the
/// gateway's default) or `{"channel"?: "..."}`.
pub fn checkout_payment_channel(body: &[u8]) -> Result<Option<String>, RequestError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        channel: Option<String>,
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
    if let Some(channel) = &raw.channel {
        check_token("channel", channel)?;
    }
    Ok(raw.channel)
}

/// A change of an order's delivery region:
/// `{"sku": "...", "region": "...", "user_id"?: u64}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAddress {
    pub owner: OrderOwner,
    pub region: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNewAddress {
    user_id: Option<u64>,
    sku: String,
    region: String,
}

impl NewAddress {
    /// Parses a JSON body of `buyer`.
    pub fn from_json(body: &[u8], buyer: u64) -> Result<Self, RequestError> {
        let raw: RawNewAddress = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
        let user_id = buyer_of(raw.user_id, buyer)?;
        check_token("sku", &raw.sku)?;
        check_token("region", &raw.region)?;
        Ok(Self { owner: OrderOwner { user_id, sku: raw.sku }, region: raw.region })
    }
}

impl OrderOwner {
    /// Parses a JSON body of `buyer`.
    pub fn from_json(body: &[u8], buyer: u64) -> Result<Self, RequestError> {
        let raw: RawOrderOwner = serde_json::from_slice(body).map_err(|e| InvalidRequest(format!("body: {e}")))?;
        let user_id = buyer_of(raw.user_id, buyer)?;
        check_token("sku", &raw.sku)?;
        Ok(Self { user_id, sku: raw.sku })
    }
}

/// Checks an `Idempotency-Key` header value.
pub fn check_idempotency_key(key: &str) -> Result<(), InvalidRequest> {
    check_token("Idempotency-Key", key)
}

/// Checks a SKU taken from a path, e.g. the admin API's.
pub fn check_sku(sku: &str) -> Result<(), InvalidRequest> {
    check_token("sku", sku)
}

/// SKUs, keys and payment ids are 1–64 characters of `[A-Za-z0-9_-]`: safe
/// inside Redis key names and values, log lines and URLs without escaping.
pub fn check_token(name: &str, value: &str) -> Result<(), InvalidRequest> {
    let valid = (1..=MAX_TOKEN_LEN).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(InvalidRequest(format!("{name} must be 1-{MAX_TOKEN_LEN} characters of A-Z a-z 0-9 _ -")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_payment_names_its_channel_or_none() {
        let asked = super::PayRequest::from_json(br#"{"sku":"tv","channel":"wallet"}"#, 7).unwrap();
        assert_eq!((asked.owner.user_id, asked.channel.as_deref()), (7, Some("wallet")));
        assert_eq!(super::PayRequest::from_json(br#"{"sku":"tv"}"#, 7).unwrap().channel, None);
        assert!(super::PayRequest::from_json(br#"{"sku":"tv","channel":"a b"}"#, 7).is_err());
        assert!(super::PayRequest::from_json(br#"{"sku":"tv","chanel":"x"}"#, 7).is_err());
        assert_eq!(super::checkout_payment_channel(b"").unwrap(), None);
        assert_eq!(super::checkout_payment_channel(br#"{"channel":"card"}"#).unwrap().as_deref(), Some("card"));
        assert!(super::checkout_payment_channel(b"{").is_err());
    }

    use super::*;

    fn parse(body: &str) -> Result<PlaceOrder, RequestError> {
        PlaceOrder::from_json(body.as_bytes(), 7)
    }

    #[test]
    fn accepts_a_good_request() {
        let order = parse(r#"{"user_id": 7, "sku": "iphone-17_pro", "qty": 2}"#).unwrap();
        assert_eq!(order, PlaceOrder { user_id: 7, sku: "iphone-17_pro".into(), qty: 2, region: None, channel: None });
        let order = parse(r#"{"sku": "tv", "qty": 1}"#).unwrap();
        assert_eq!(order.user_id, 7, "no user_id in the body: the buyer's");
    }

    #[test]
    fn another_users_id_is_refused() {
        assert_eq!(parse(r#"{"user_id": 8, "sku": "tv", "qty": 1}"#), Err(RequestError::OtherUser));
        assert_eq!(OrderOwner::from_json(br#"{"user_id": 8, "sku": "tv"}"#, 7), Err(RequestError::OtherUser));
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            ("{", "EOF"),
            ("[]", "expected struct"),
            (r#"{"user_id": 7, "qty": 1}"#, "missing field `sku`"),
            (r#"{"user_id": "7", "sku": "a", "qty": 1}"#, "invalid type"),
            (r#"{"user_id": -7, "sku": "a", "qty": 1}"#, "invalid value"),
            (r#"{"user_id": 0, "sku": "a", "qty": 1}"#, "user_id must be"),
            (r#"{"user_id": 7, "sku": "", "qty": 1}"#, "sku must be"),
            (r#"{"user_id": 7, "sku": "a b", "qty": 1}"#, "sku must be"),
            (r#"{"user_id": 7, "sku": "a", "qty": 0}"#, "qty must be between 1 and 100"),
            (r#"{"user_id": 7, "sku": "a", "qty": -3}"#, "qty must be between"),
            (r#"{"user_id": 7, "sku": "a", "qty": 101}"#, "qty must be between"),
            (r#"{"user_id": 7, "sku": "a", "qty": 1.5}"#, "invalid type"),
            (r#"{"user_id": 7, "sku": "a", "qty": 1, "coupon": "x"}"#, "unknown field `coupon`"),
        ];
        for (body, expected) in cases {
            let err = parse(body).unwrap_err().to_string();
            assert!(err.contains(expected), "{body}: {err}");
        }
        assert!(parse(&format!(r#"{{"user_id": 1, "sku": "{}", "qty": 1}}"#, "x".repeat(65))).is_err());
    }

    #[test]
    fn order_owners_name_user_and_sku() {
        let owner = OrderOwner::from_json(br#"{"user_id": 3, "sku": "tv"}"#, 3).unwrap();
        assert_eq!((owner.user_id, owner.sku.as_str()), (3, "tv"));
        assert_eq!(OrderOwner::from_json(br#"{"sku": "tv"}"#, 3).unwrap().user_id, 3);
        assert!(OrderOwner::from_json(br#"{"user_id": 3}"#, 3).is_err());
        assert!(OrderOwner::from_json(br#"{"user_id": 3, "sku": "a/b"}"#, 3).is_err());
    }

    #[test]
    fn idempotency_keys_are_tokens() {
        assert!(check_idempotency_key("0b7e3c1a-9f4e-4c5e-b0a1-3f2a1e9d8c7b").is_ok());
        for bad in ["", "has space", "semi;colon", "ключ", &"k".repeat(65)] {
            assert!(check_idempotency_key(bad).is_err(), "{bad}");
        }
    }
}
