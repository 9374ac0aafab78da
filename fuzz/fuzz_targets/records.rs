//! What the Lua scripts store and the services read back: idempotency
//! records, reservations, closed orders, outbox entries. Each parser
//! answers, never panics; a record that parses encodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stock::records::{parse_closed, parse_outbox_entry};
use stock::{IdempotencyRecord, ReservationRecord};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(record) = IdempotencyRecord::parse(text) {
        assert_eq!(IdempotencyRecord::parse(&record.encode()), Some(record));
    }
    let _ = ReservationRecord::parse(text);
    let _ = parse_closed(text);
    let _ = parse_outbox_entry(text, "sku", 0);
});
