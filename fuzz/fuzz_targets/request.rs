//! What a client or the broker can send: an order or owner body, an order
//! id in a path, an event on the topic. Each parser answers, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use order::event::OrderEvent;
use order::id::OrderId;
use order::request::{check_idempotency_key, OrderOwner, PlaceOrder};

fuzz_target!(|data: &[u8]| {
    if let Ok(order) = PlaceOrder::from_json(data, 7) {
        assert_eq!(order.user_id, 7);
        assert!((1..=order::request::MAX_QTY).contains(&order.qty));
    }
    let _ = OrderOwner::from_json(data, 7);
    if let Ok(event) = OrderEvent::decode(data) {
        // What decodes encodes and decodes to the same.
        assert_eq!(OrderEvent::decode(&event.encode()).ok(), Some(event));
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_idempotency_key(text);
        if let Ok(id) = text.parse::<OrderId>() {
            assert_eq!(id.to_string().parse::<OrderId>().ok(), Some(id));
        }
    }
});
