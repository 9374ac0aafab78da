//! The Lua scripts against a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379), through the store that calls them, each test on SKUs of
//! its own.

use fred::prelude::*;
use order::event::{CancelReason, OrderCreated};
use order::id::{IdGenerator, OrderId};
use order::shard::bucket_for_user;
use stock::units_back;
use stock::{
    Acknowledgement, Cancellation, ConfirmWindows, Confirmation, IdempotencyRecord, PaymentQuery, RedisConfig, Release,
    Repair, Reservation, ReserveRequest, SaleStore, SaleTerms, Units, UnitsBack, UnitsReturned, RESERVE_LUA,
};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

const NOW: i64 = 1_790_000_000_000;
const PAY_BY: i64 = NOW + 900_000;

/// Each test's keys live under a namespace of its own (`test_…:`), out of
/// the way of running sweepers and of the other tests; `scripts/test.sh`
/// drops what earlier runs left.
async fn store() -> SaleStore {
    store_in(&fresh_namespace()).await
}

fn fresh_namespace() -> String {
    format!("{}:", unique("test_stock"))
}

async fn store_in(namespace: &str) -> SaleStore {
    let config = RedisConfig { url: redis_url(), namespace: namespace.into(), ..RedisConfig::default() };
    let store = SaleStore::connect(&config).unwrap();
    assert!(store.redis().wait_connected(std::time::Duration::from_secs(5)).await, "redis at {}", redis_url());
    store
}

fn order_id(user: u64) -> OrderId {
    static IDS: std::sync::OnceLock<IdGenerator> = std::sync::OnceLock::new();
    IDS.get_or_init(|| IdGenerator::new(0).unwrap()).next(bucket_for_user(user), NOW)
}

fn request<'a>(sku: &'a str, key: &'a str, user_id: u64, qty: u32, order_id: OrderId) -> ReserveRequest<'a> {
    ReserveRequest {
        sku: sku.into(),
        idempotency_key: key.into(),
        user_id,
        qty,
        order_id,
        now_ms: NOW,
        pay_by_ms: PAY_BY,
        idempotency_ttl_secs: 60,
        confirm_windows: WINDOWS,
        warehouses: stock::ANY_WAREHOUSE.into(),
        channel_share: None,
    }
}

const WINDOWS: ConfirmWindows = ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 };
/// As if the in-flight window had passed since the reservation.
const LATER: ConfirmWindows = ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 0 };

async fn sale(store: &SaleStore, stock: i64, per_user_limit: i64) -> String {
    let sku = unique("lua");
    store
        .load_sale(&sku, &SaleTerms { stock, per_user_limit, price_cents: 1_999, ..Default::default() })
        .await
        .unwrap();
    sku
}

#[tokio::test]
async fn reserve_takes_stock_and_records_the_order() {
    let namespace = fresh_namespace();
    let store = store_in(&namespace).await;
    let sku = sale(&store, 10, 5).await;
    let id = order_id(7);
    let outcome = store.reserve(&request(&sku, "k1", 7, 3, id)).await.unwrap();
    let generation = store.sale_status(&sku).await.unwrap().unwrap().loaded_ms;
    assert!(generation > 0, "a loaded sale has a generation");
    assert_eq!(
        outcome,
        Reservation::Reserved { amount_cents: 5_997, stock_left: 7, sale_generation: generation, warehouse: None }
    );

    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.stock, status.reserved, status.sold, status.total), (7, 3, 0, 10));
    let reservation = store.reservation(&sku, id).await.unwrap().unwrap();
    assert_eq!((reservation.user_id, reservation.qty, reservation.amount_cents), (7, 3, 5_997));
    assert_eq!((reservation.pay_by_ms, reservation.idempotency_key.as_str()), (PAY_BY, "k1"));

    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    // Until the broker acknowledges it, the order holds its units only
    // until its confirm deadline, on Redis's clock.
    let deadline = || async {
        let score: Option<f64> =
            client.zscore(format!("{namespace}deadlines:{{{sku}}}"), id.to_string()).await.unwrap();
        score.unwrap() as i64
    };
    let redis_now = store.redis().now_ms().await.unwrap();
    assert!((redis_now + 25_000..=redis_now + 30_000).contains(&deadline().await), "confirm deadline");
    assert!(store.acknowledge(&sku, "k1", id, PAY_BY).await.unwrap());
    assert_eq!(deadline().await, PAY_BY, "acknowledged: held until the payment deadline");
    let held: Option<i64> = client.hget(format!("{namespace}buyers:{{{sku}}}"), "7").await.unwrap();
    assert_eq!(held, Some(3));
    let ttl: i64 = client.ttl(format!("{namespace}idem:{{{sku}}}:k1")).await.unwrap();
    assert!((1..=60).contains(&ttl), "idempotency record expires: ttl {ttl}");
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_order() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let first = order_id(7);
    store.reserve(&request(&sku, "k1", 7, 2, first)).await.unwrap();
    // Within the in-flight window the first request may still be waiting
    // for the broker; past it, a repeat is told to send the order again.
    let soon = store.reserve(&request(&sku, "k1", 7, 2, order_id(7))).await.unwrap();
    assert!(matches!(soon, Reservation::InProgress(IdempotencyRecord { order_id, .. }) if order_id == first));
    let again = store
        .reserve(&ReserveRequest { confirm_windows: LATER, ..request(&sku, "k1", 7, 2, order_id(7)) })
        .await
        .unwrap();
    let Reservation::Duplicate(record) = again else { panic!("expected a duplicate, got {again:?}") };
    assert_eq!(
        record,
        IdempotencyRecord {
            acknowledged: false,
            user_id: 7,
            qty: 2,
            order_id: first,
            amount_cents: 3_998,
            pay_by_ms: PAY_BY,
            created_ms: NOW,
            sale_generation: store.sale_status(&sku).await.unwrap().unwrap().loaded_ms,
            warehouse: None,
        }
    );
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().stock, 8, "stock taken once");

    store.acknowledge(&sku, "k1", record.order_id, record.pay_by_ms).await.unwrap();
    let Reservation::Duplicate(acked) = store.reserve(&request(&sku, "k1", 7, 2, order_id(7))).await.unwrap() else {
        panic!("expected a duplicate");
    };
    assert!(acked.acknowledged);
}

#[tokio::test]
async fn the_per_user_limit_counts_every_order_of_the_user() {
    let store = store().await;
    let sku = sale(&store, 100, 3).await;
    assert!(matches!(
        store.reserve(&request(&sku, "a", 9, 2, order_id(9))).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert_eq!(store.reserve(&request(&sku, "b", 9, 2, order_id(9))).await.unwrap(), Reservation::LimitExceeded);
    assert!(matches!(
        store.reserve(&request(&sku, "c", 9, 1, order_id(9))).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert!(matches!(
        store.reserve(&request(&sku, "d", 10, 3, order_id(10))).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().stock, 94);
}

#[tokio::test]
async fn sold_out_and_unknown_skus_take_nothing() {
    let store = store().await;
    let sku = sale(&store, 2, 5).await;
    assert_eq!(
        store.reserve(&request(&sku, "a", 1, 3, order_id(1))).await.unwrap(),
        Reservation::OutOfStock { stock_left: 2 }
    );
    assert!(matches!(
        store.reserve(&request(&sku, "b", 1, 2, order_id(1))).await.unwrap(),
        Reservation::Reserved { .. }
    ));
    assert_eq!(
        store.reserve(&request(&sku, "c", 2, 1, order_id(2))).await.unwrap(),
        Reservation::OutOfStock { stock_left: 0 }
    );
    let missing = unique("missing");
    assert_eq!(store.reserve(&request(&missing, "a", 1, 1, order_id(1))).await.unwrap(), Reservation::UnknownSku);
    assert_eq!(store.sale_status(&missing).await.unwrap(), None);
}

#[tokio::test]
async fn release_gives_units_back_once_and_frees_the_key() {
    let store = store().await;
    let sku = sale(&store, 5, 5).await;
    let id = order_id(3);
    store.reserve(&request(&sku, "k", 3, 4, id)).await.unwrap();
    assert_eq!(store.release(&sku, "k", id, &WINDOWS).await.unwrap(), Release::Released { stock: 5 });
    assert_eq!(store.release(&sku, "k", id, &WINDOWS).await.unwrap(), Release::NotHeld, "a second release is a no-op");

    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.stock, status.reserved), (5, 0));
    // The key is free again and the user's count is back to zero.
    let retry = store.reserve(&request(&sku, "k", 3, 5, order_id(3))).await.unwrap();
    assert!(matches!(retry, Reservation::Reserved { amount_cents: 9_995, stock_left: 0, .. }), "{retry:?}");

    // Past the in-flight window a retry on another gateway may be re-sending
    // the order: too late to release, the units stay until the confirm deadline.
    let late = order_id(4);
    let sku = sale(&store, 5, 5).await;
    store.reserve(&request(&sku, "late", 4, 1, late)).await.unwrap();
    assert_eq!(store.release(&sku, "late", late, &LATER).await.unwrap(), Release::TooLate);
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().reserved, 1);
    let repeat =
        store.reserve(&ReserveRequest { confirm_windows: LATER, ..request(&sku, "late", 4, 1, order_id(4)) }).await;
    assert!(matches!(repeat.unwrap(), Reservation::Duplicate(IdempotencyRecord { order_id, .. }) if order_id == late));

    // A request that stalled after its send failed, while a retry re-sent
    // the order and the broker took it: the order is accepted, and the
    // stalled request's release, however soon by its window, is too late.
    let stalled = order_id(5);
    let now_ms = store.redis().now_ms().await.unwrap();
    let pay_by_ms = now_ms + 900_000;
    let req = ReserveRequest { now_ms, pay_by_ms, ..request(&sku, "stalled", 5, 1, stalled) };
    assert!(matches!(store.reserve(&req).await.unwrap(), Reservation::Reserved { .. }));
    assert!(store.acknowledge(&sku, "stalled", stalled, pay_by_ms).await.unwrap());
    assert_eq!(store.release(&sku, "stalled", stalled, &WINDOWS).await.unwrap(), Release::TooLate);
    assert!(store.reservation(&sku, stalled).await.unwrap().is_some(), "the accepted order keeps its units");
}

#[tokio::test]
async fn one_call_reserves_several_requests_in_their_order() {
    let store = store().await;
    let sku = sale(&store, 3, 2).await;
    let batch = [
        request(&sku, "a", 1, 1, order_id(1)),
        request(&sku, "b", 1, 2, order_id(1)),
        request(&sku, "c", 2, 2, order_id(2)),
        request(&sku, "d", 3, 1, order_id(3)),
        request(&sku, "a", 1, 1, order_id(1)),
    ];
    let replies = store.reserve_many(&sku, &batch).await.unwrap();
    assert!(matches!(replies[0], Reservation::Reserved { stock_left: 2, .. }), "{replies:?}");
    assert_eq!(replies[1], Reservation::LimitExceeded, "the first request's unit counts for the second");
    assert!(matches!(replies[2], Reservation::Reserved { stock_left: 0, .. }), "{replies:?}");
    assert_eq!(replies[3], Reservation::OutOfStock { stock_left: 0 });
    assert!(
        matches!(&replies[4], Reservation::InProgress(record) if record.order_id == batch[0].order_id),
        "a key repeated in the batch finds the first's order: {replies:?}"
    );
    assert_eq!(counters(&store, &sku).await, (0, 3, 0));
}

#[tokio::test]
async fn scripts_refuse_wrong_argument_counts() {
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let refusal = "reserve.lua takes 6 keys, then one key and 12 arguments per order";
    let err = client.eval::<Value, _, _, _>(RESERVE_LUA, vec!["a"], vec!["1"]).await.unwrap_err();
    assert!(err.details().contains(refusal), "{err}");
    // Two orders' keys (in one slot, as on a cluster) with one order's arguments.
    let keys = vec!["{t}a", "{t}b", "{t}c", "{t}d", "{t}e", "{t}f", "{t}g", "{t}h"];
    let err = client.eval::<Value, _, _, _>(RESERVE_LUA, keys, vec!["1"; 12]).await.unwrap_err();
    assert!(err.details().contains(refusal), "{err}");
}

/// A reserved order whose creation the broker acknowledged.
async fn reserved(store: &SaleStore, sku: &str, user: u64, qty: u32) -> OrderId {
    let id = order_id(user);
    let key = format!("key-{id}");
    let outcome = store.reserve(&request(sku, &key, user, qty, id)).await.unwrap();
    assert!(matches!(outcome, Reservation::Reserved { .. }), "not reserved: {outcome:?}");
    assert!(store.acknowledge(sku, &key, id, PAY_BY).await.unwrap());
    id
}

async fn counters(store: &SaleStore, sku: &str) -> (i64, i64, i64) {
    let status = store.sale_status(sku).await.unwrap().unwrap();
    assert_eq!(status.stock + status.reserved + status.sold, status.total, "units add up");
    (status.stock, status.reserved, status.sold)
}

#[tokio::test]
async fn the_buyer_cancels_only_their_pending_order() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let id = reserved(&store, &sku, 7, 2).await;
    assert_eq!(store.cancel(&sku, id, 8).await.unwrap(), Cancellation::NotFound, "another user's order");
    let Cancellation::Cancelled { outbox_entry, reservation } = store.cancel(&sku, id, 7).await.unwrap() else {
        panic!("expected a cancellation");
    };
    assert_eq!(reservation.qty, 2);
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
    assert_eq!(store.outbox(&sku, 10).await.unwrap(), vec![outbox_entry.clone()]);
    assert_eq!(store.cancel(&sku, id, 7).await.unwrap(), Cancellation::NotPending { paid: false });
    store.remove_from_outbox(&sku, &outbox_entry).await.unwrap();
    assert!(store.outbox(&sku, 10).await.unwrap().is_empty());
    assert_eq!(store.cancel(&sku, order_id(7), 7).await.unwrap(), Cancellation::NotFound);
}

#[tokio::test]
async fn confirm_sells_once_and_refunds_what_came_too_late() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let id = reserved(&store, &sku, 7, 2).await;
    assert_eq!(store.confirm(&sku, id, "pay_1", 1).await.unwrap(), Confirmation::AmountMismatch { expected: 3_998 });
    assert!(matches!(store.confirm(&sku, id, "pay_1", 3_998).await.unwrap(), Confirmation::Paid(r) if r.qty == 2));
    assert_eq!(counters(&store, &sku).await, (8, 0, 2));
    let again = store.confirm(&sku, id, "pay_1", 3_998).await.unwrap();
    assert!(matches!(again, Confirmation::Duplicate { refund: false, acknowledged: false, .. }), "{again:?}");
    store.mark_payment_event(&sku, id, "pay_1").await.unwrap();
    let again = store.confirm(&sku, id, "pay_1", 3_998).await.unwrap();
    assert!(matches!(again, Confirmation::Duplicate { acknowledged: true, .. }), "{again:?}");

    // A second payment of the paid order is to be refunded, once.
    let second = store.confirm(&sku, id, "pay_1b", 3_998).await.unwrap();
    assert!(matches!(second, Confirmation::SecondPayment(ref r) if r.qty == 2), "{second:?}");
    let again = store.confirm(&sku, id, "pay_1b", 3_998).await.unwrap();
    assert!(matches!(again, Confirmation::Duplicate { refund: true, acknowledged: false, .. }), "{again:?}");
    store.mark_payment_event(&sku, id, "pay_1b").await.unwrap();
    let again = store.confirm(&sku, id, "pay_1b", 3_998).await.unwrap();
    assert!(matches!(again, Confirmation::Duplicate { refund: true, acknowledged: true, .. }), "{again:?}");
    let first = store.confirm(&sku, id, "pay_1", 3_998).await.unwrap();
    assert!(matches!(first, Confirmation::Duplicate { refund: false, acknowledged: true, .. }), "{first:?}");
    assert_eq!(store.cancel(&sku, id, 7).await.unwrap(), Cancellation::NotPending { paid: true });
    assert_eq!(counters(&store, &sku).await, (8, 0, 2), "nothing moved twice");

    let late = reserved(&store, &sku, 9, 1).await;
    assert!(matches!(store.cancel(&sku, late, 9).await.unwrap(), Cancellation::Cancelled { .. }));
    let refund = store.confirm(&sku, late, "pay_2", 1_999).await.unwrap();
    assert!(matches!(refund, Confirmation::Refund { reason: CancelReason::User, .. }), "{refund:?}");
    assert_eq!(counters(&store, &sku).await, (8, 0, 2), "a refunded order takes no units");

    // A payment for an order the sale does not know is kept, as a refund.
    let stranger = order_id(1);
    assert_eq!(store.confirm(&sku, stranger, "pay_3", 5).await.unwrap(), Confirmation::Orphan);
    let again = store.confirm(&sku, stranger, "pay_3", 5).await.unwrap();
    assert!(
        matches!(again, Confirmation::Duplicate { refund: true, ref reservation, .. } if reservation.amount_cents == 5)
    );
    assert_eq!(counters(&store, &sku).await, (8, 0, 2));
}

#[tokio::test]
async fn sweepers_racing_release_each_expired_unit_once() {
    let store = std::sync::Arc::new(store().await);
    let sku = sale(&store, 200, 5).await;
    for user in 1..=100u64 {
        reserved(&store, &sku, user, 1).await;
    }
    assert_eq!(counters(&store, &sku).await, (100, 100, 0));
    // Not yet expired: nothing happens.
    let early = store.sweep(&sku, PAY_BY - 1, 1_000).await.unwrap();
    assert_eq!((early.cancelled, early.reservations_left), (0, 100));
    let sweepers: Vec<_> = (0..4)
        .map(|_| {
            let (store, sku) = (store.clone(), sku.clone());
            tokio::spawn(async move {
                let mut cancelled = 0;
                for _ in 0..10 {
                    cancelled += store.sweep(&sku, PAY_BY + 1, 7).await.unwrap().cancelled;
                }
                cancelled
            })
        })
        .collect();
    let mut cancelled = 0;
    for sweeper in sweepers {
        cancelled += sweeper.await.unwrap();
    }
    assert_eq!(cancelled, 100, "each order cancelled by exactly one sweeper");
    assert_eq!(counters(&store, &sku).await, (200, 0, 0));
    assert_eq!(store.outbox(&sku, 1_000).await.unwrap().len(), 100);
    assert_eq!(store.sweep(&sku, PAY_BY + 1, 7).await.unwrap().reservations_left, 0);
}

#[tokio::test]
async fn a_reservation_makes_its_sale_active_and_a_rescan_finds_lost_ones() {
    let store = store().await;
    let (busy, idle) = (sale(&store, 10, 5).await, sale(&store, 10, 5).await);
    let active = || async {
        let active = store.active_sales().await.unwrap();
        (active.contains(&busy), active.contains(&idle))
    };
    assert_eq!(active().await, (false, false), "loading a sale gives the sweeper nothing to do");
    reserved(&store, &busy, 1, 1).await;
    assert_eq!(active().await, (true, false));

    // The add was lost (a failover): the rescan puts the sale back, and
    // only the sale with work.
    store.set_active(&busy, false).await.unwrap();
    assert!(store.activate_pending_sales().await.unwrap() >= 1);
    assert_eq!(active().await, (true, false));
}

#[tokio::test]
async fn idempotency_keys_are_looked_up_together() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let id = reserved(&store, &sku, 1, 1).await;
    let used = format!("key-{id}");
    let keys = [used.clone(), "never-sent".to_owned(), used];
    assert_eq!(store.idempotency_keys_used(&sku, &keys).await.unwrap(), [true, false, true]);
}

/// The settler's sweeper visit, reduced to reservations: drop the sale,
/// sweep it, add it back unless it holds none.
/// The used keys are read only while the SKU is sold out, and units coming
/// back are said on the ledger's channel, in the store's namespace.
#[tokio::test]
async fn a_sold_out_skus_used_keys_are_read_with_its_stock_and_units_back_is_said() {
    let namespace = fresh_namespace();
    let store = store_in(&namespace).await;
    let sku = sale(&store, 2, 5).await;
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let redis = store.redis().clone();
    let watch = tokio::spawn(async move { units_back::watch(&redis, move |event| drop(tx.send(event))).await });
    assert_eq!(events.recv().await, Some(UnitsBack::Up));

    let first = reserved(&store, &sku, 1, 1).await;
    assert_eq!(store.used_keys(&sku, 100).await.unwrap(), None, "a unit left");
    let second = reserved(&store, &sku, 2, 1).await;
    let used = store.used_keys(&sku, 100).await.unwrap().expect("sold out");
    assert_eq!(used, [format!("key-{first}"), format!("key-{second}")].into_iter().collect());
    assert_eq!(store.used_keys(&sku, 1).await.unwrap(), None, "more keys than asked for");
    assert_eq!(store.used_keys(&unique("none"), 100).await.unwrap(), None, "no such sale");
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let sale_key = format!("{namespace}sale:{{{sku}}}");
    let _: i64 = client.hdel(&sale_key, "keys_tracked").await.unwrap();
    assert_eq!(store.used_keys(&sku, 100).await.unwrap(), None, "a sale loaded before its keys were kept");
    let _: i64 = client.hset(&sale_key, ("keys_tracked", 1)).await.unwrap();

    assert!(matches!(store.cancel(&sku, first, 1).await.unwrap(), Cancellation::Cancelled { .. }));
    assert_eq!(events.recv().await, Some(UnitsBack::Sku(sku.clone())));
    assert_eq!(store.used_keys(&sku, 100).await.unwrap(), None, "the unit is back");
    watch.abort();
}

async fn visit(store: &SaleStore, sku: &str, now_ms: i64) {
    store.set_active(sku, false).await.unwrap();
    if store.sweep(sku, now_ms, 100).await.unwrap().reservations_left > 0 {
        store.set_active(sku, true).await.unwrap();
    }
}

#[tokio::test]
async fn a_sale_holding_reservations_stays_active_between_sweeps_and_the_next_first_one_adds_it_again() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let active = || async { store.active_sales().await.unwrap().contains(&sku) };
    reserved(&store, &sku, 1, 1).await;
    assert!(active().await, "the first reservation adds its sale");

    // Later reservations leave the set alone: a sweep between them re-adds
    // the sale, because it still holds the first.
    visit(&store, &sku, NOW).await;
    reserved(&store, &sku, 2, 1).await;
    assert!(active().await);

    // Every reservation timed out: the sweep drops the idle sale, and the
    // next reservation is a first again.
    visit(&store, &sku, PAY_BY + 1).await;
    assert!(!active().await, "an idle sale is dropped");
    reserved(&store, &sku, 3, 1).await;
    assert!(active().await, "the first reservation after the drop adds the sale back");
}

#[tokio::test]
async fn an_add_to_the_active_sales_that_was_lost_is_made_good_by_a_later_reservation() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let active = || async { store.active_sales().await.unwrap().contains(&sku) };
    reserved(&store, &sku, 1, 1).await;
    // The add is lost (a timeout, a failover) while the sale holds a reservation.
    store.set_active(&sku, false).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    reserved(&store, &sku, 2, 1).await;
    assert!(active().await, "a reservation a second later adds the sale again");
}

#[tokio::test]
async fn payment_lookups_are_claimed_once_per_round() {
    let store = stock::PaymentLookups::new(store().await.redis().clone());
    let query = PaymentQuery { sku: unique("q"), order_id: order_id(5), started_ms: NOW, channel: "wallet".into() };
    store.queue_payment_query(&query, NOW + 1_000).await.unwrap();
    let claimed = store.claim_payment_lookups(NOW + 1_000, NOW + 61_000, 1_000).await.unwrap();
    assert!(claimed.contains(&query));
    let again = store.claim_payment_lookups(NOW + 1_000, NOW + 61_000, 1_000).await.unwrap();
    assert!(!again.contains(&query), "pushed to its next due time");
    store.drop_payment_query(&query).await.unwrap();
    assert!(!store.claim_payment_lookups(NOW + 100_000, NOW + 160_000, 1_000).await.unwrap().contains(&query));
}

#[tokio::test]
async fn reserve_refuses_outside_the_sale_window() {
    use chrono::DateTime;
    use order::sale::SaleWindow;
    let store = store().await;
    let at = |ms| Some(DateTime::from_timestamp_millis(ms).unwrap());
    let sku = unique("window");
    let window = SaleWindow { starts_at: at(NOW + 1_000), ends_at: at(NOW + 2_000) };
    store
        .load_sale(&sku, &SaleTerms { stock: 5, per_user_limit: 5, price_cents: 1, window, ..Default::default() })
        .await
        .unwrap();
    let before = store.reserve(&request(&sku, "a", 1, 1, order_id(1))).await.unwrap();
    assert_eq!(before, Reservation::OutsideWindow(window));
    let during = ReserveRequest { now_ms: NOW + 1_500, ..request(&sku, "b", 1, 1, order_id(1)) };
    assert!(matches!(store.reserve(&during).await.unwrap(), Reservation::Reserved { .. }));
    let after = ReserveRequest { now_ms: NOW + 2_000, ..request(&sku, "c", 1, 1, order_id(1)) };
    assert_eq!(store.reserve(&after).await.unwrap(), Reservation::OutsideWindow(window));
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().window, window);
    assert_eq!(counters(&store, &sku).await, (4, 1, 0), "only the reservation inside the window took stock");
}

#[tokio::test]
async fn an_unacknowledged_order_is_cancelled_at_its_confirm_deadline_and_frees_its_key() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    // Deadlines on Redis's clock, as the gateway's are.
    let redis_now = store.redis().now_ms().await.unwrap();
    let pay_by_ms = redis_now + 900_000;
    let acknowledgement =
        |key: &str, order_id| Acknowledgement { idempotency_key: key.to_owned(), order_id, pay_by_ms };
    let place = |key: &'static str, user, id| {
        let req = ReserveRequest { pay_by_ms, now_ms: redis_now, ..request(&sku, key, user, 2, id) };
        let store = &store;
        async move { store.reserve(&req).await.unwrap() }
    };
    let (unconfirmed, confirmed) = (order_id(1), order_id(2));
    assert!(matches!(place("click", 1, unconfirmed).await, Reservation::Reserved { .. }));
    assert!(matches!(place("other", 2, confirmed).await, Reservation::Reserved { .. }));
    assert!(store.acknowledge(&sku, "other", confirmed, pay_by_ms).await.unwrap());

    // Before the confirm deadline nothing moves; past it (but long before
    // the payment deadline) only the unacknowledged order is cancelled.
    assert_eq!(store.sweep(&sku, redis_now, 10).await.unwrap().cancelled, 0);
    let swept = store.sweep(&sku, redis_now + 31_000, 10).await.unwrap();
    assert_eq!((swept.cancelled, swept.reservations_left), (1, 1));
    assert_eq!(counters(&store, &sku).await, (8, 2, 0), "the unconfirmed order's units are back");
    let outbox = store.outbox(&sku, 10).await.unwrap();
    assert_eq!(outbox.len(), 1);
    assert!(outbox[0].starts_with(&format!("{unconfirmed}:unconfirmed:")), "{outbox:?}");
    assert!(store.reservation(&sku, confirmed).await.unwrap().is_some());

    // A late acknowledgement does not bring it back, also in one call with
    // an order that stands (the gateway acknowledges a SKU's orders together)...
    let late = [acknowledgement("click", unconfirmed), acknowledgement("other", confirmed)];
    assert_eq!(store.acknowledge_many(&sku, &late).await.unwrap(), [false, true]);
    // ...and the buyer's retry of the same key places a fresh order.
    let fresh = order_id(1);
    assert!(matches!(place("click", 1, fresh).await, Reservation::Reserved { stock_left: 6, .. }));
    let again = place("click", 1, order_id(1)).await;
    assert!(matches!(again, Reservation::InProgress(IdempotencyRecord { order_id, .. }) if order_id == fresh));
}

/// The paid order, as the relay hands it to `return_units.lua`.
async fn paid(store: &SaleStore, sku: &str, user: u64, qty: u32) -> OrderCreated {
    let id = reserved(store, sku, user, qty).await;
    let Confirmation::Paid(reservation) = store.confirm(sku, id, "pay", qty as i64 * 1_999).await.unwrap() else {
        panic!("not paid");
    };
    reservation.order(id, sku)
}

#[tokio::test]
async fn a_cancelled_paid_orders_units_leave_sold_once_back_on_sale_or_out_of_it() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let order = paid(&store, &sku, 7, 2).await;
    assert_eq!(counters(&store, &sku).await, (8, 0, 2));
    assert_eq!(store.return_units(&order, true).await.unwrap(), UnitsReturned::Restocked { stock: 10 });
    assert_eq!(store.return_units(&order, true).await.unwrap(), UnitsReturned::Already, "once per order");
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));

    // Kept off the sale: the units leave it, the total with them.
    let other = paid(&store, &sku, 8, 1).await;
    assert_eq!(store.return_units(&other, false).await.unwrap(), UnitsReturned::Withdrawn);
    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.stock, status.sold, status.total), (9, 0, 9));

    // An order of an earlier sale of the SKU is left alone.
    let mut earlier = paid(&store, &sku, 9, 1).await;
    earlier.sale_generation -= 1;
    assert_eq!(store.return_units(&earlier, true).await.unwrap(), UnitsReturned::OtherSale);
    assert_eq!(counters(&store, &sku).await, (8, 0, 1));
}

/// A repair that ran before the relay returned a cancelled paid order's
/// units took them out of `sold` already (MySQL counts the order out): the
/// relay's return afterwards must not take them out again.
#[tokio::test]
async fn a_repair_before_the_relay_returns_a_cancelled_paid_orders_units_once() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let kept = paid(&store, &sku, 7, 1).await;
    let cancelled = paid(&store, &sku, 8, 2).await;
    assert_eq!(counters(&store, &sku).await, (7, 0, 3));
    // MySQL: one order sold, one cancelled after payment.
    let repaired = store.repair_counters(&sku, 1, &[], &[(cancelled.order_id, 2)]).await.unwrap();
    assert_eq!(repaired, Repair::Repaired(Units { stock: 9, reserved: 0, sold: 1, total: 10, open: 0 }));
    assert_eq!(store.return_units(&cancelled, true).await.unwrap(), UnitsReturned::Already);
    assert_eq!(counters(&store, &sku).await, (9, 0, 1), "the units came back once");
    assert_eq!(store.return_units(&kept, true).await.unwrap(), UnitsReturned::Restocked { stock: 10 });
}

/// A partner's share: its orders hold at most `max_units` of the sale at
/// once; a cancelled order's units come back to it, a paid one's stay, and
/// other buyers are not held by it.
#[tokio::test]
async fn a_channel_holds_at_most_its_share_and_a_cancelled_orders_units_come_back_to_it() {
    let store = store().await;
    let sku = sale(&store, 10, 10).await;
    let share = || Some(stock::ChannelShare { channel: "partner".into(), max_units: 3 });
    let partner = |key: &'static str, user, qty| ReserveRequest {
        channel_share: share(),
        ..request(&sku, key, user, qty, order_id(user))
    };
    let first = partner("p1", 1, 2);
    assert!(matches!(store.reserve(&first).await.unwrap(), Reservation::Reserved { .. }));
    assert_eq!(store.reserve(&partner("p2", 2, 2)).await.unwrap(), Reservation::ChannelShareTaken { held: 2 });
    let second = partner("p3", 3, 1);
    assert!(matches!(store.reserve(&second).await.unwrap(), Reservation::Reserved { .. }));
    assert!(matches!(
        store.reserve(&request(&sku, "web", 4, 4, order_id(4))).await.unwrap(),
        Reservation::Reserved { .. }
    ));

    // The first is cancelled: its two units come back to the share.
    assert!(matches!(store.cancel(&sku, first.order_id, 1).await.unwrap(), Cancellation::Cancelled { .. }));
    assert!(matches!(store.reserve(&partner("p4", 5, 2)).await.unwrap(), Reservation::Reserved { .. }));
    assert_eq!(store.reserve(&partner("p5", 6, 1)).await.unwrap(), Reservation::ChannelShareTaken { held: 3 });
    // Paid: the second's unit stays counted.
    assert!(matches!(store.confirm(&sku, second.order_id, "pay-3", 1_999).await.unwrap(), Confirmation::Paid(_)));
    assert_eq!(store.reserve(&partner("p6", 7, 1)).await.unwrap(), Reservation::ChannelShareTaken { held: 3 });
}
