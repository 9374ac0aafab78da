//! `adopt.lua` against a real Redis (`REDIS_URL`, default 127.0.0.1:6379):
//! an order the database fallback took joins its ordinary sale in Redis
//! with its units, once however often it is handed over, never over an
//! order its key placed in Redis (waiting while that one is unsettled),
//! never into a sale loaded since; each test on a namespace and SKU of its
//! own.

use order::fallback::{FallbackOrder, SaleKind};
use order::id::IdGenerator;
use order::shard::bucket_for_user;
use stock::{
    Adopted, Cancellation, ConfirmWindows, RedisConfig, Reservation, ReserveRequest, SaleStore, SaleTerms, Units,
};

const NOW: i64 = 1_790_000_000_000;
const PAY_BY: i64 = NOW + 900_000;
const PRICE: i64 = 500;
const CONFIRM_MS: u64 = 30_000;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn store() -> SaleStore {
    store_in(&format!("test_adoption_{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff)).await
}

async fn store_in(namespace: &str) -> SaleStore {
    let (url, namespace) = (redis_url(), namespace.to_owned());
    let store = SaleStore::connect(&RedisConfig { url: url.clone(), namespace, ..RedisConfig::default() }).unwrap();
    assert!(store.redis().wait_connected(std::time::Duration::from_secs(5)).await, "redis at {url}");
    store
}

/// An ordinary sale of 10 units, 4 of them the database's.
async fn ordinary_sale(store: &SaleStore) -> String {
    let sku = format!("adopt_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let terms = SaleTerms {
        stock: 10,
        per_user_limit: 5,
        price_cents: PRICE,
        kind: SaleKind::Ordinary,
        database_units: Some(4),
        ..Default::default()
    };
    store.load_sale(&sku, &terms).await.unwrap();
    sku
}

/// An order of `sku`'s sale as loaded now.
async fn fallback_order(store: &SaleStore, sku: &str, user: u64, qty: u32, key: &str, accepted: bool) -> FallbackOrder {
    let sale_generation = store.sale_status(sku).await.unwrap().map_or(1, |sale| sale.loaded_ms);
    FallbackOrder {
        order_id: IdGenerator::for_database().next(bucket_for_user(user), NOW),
        sku: sku.to_owned(),
        idempotency_key: key.to_owned(),
        user_id: user,
        qty,
        amount_cents: PRICE * i64::from(qty),
        sale_generation,
        created_ms: NOW,
        pay_by_ms: PAY_BY,
        accepted,
    }
}

async fn units(store: &SaleStore, sku: &str) -> Units {
    let units = store.sale_status(sku).await.unwrap().unwrap().units();
    assert!(units.add_up(), "{units:?}");
    units
}

#[tokio::test]
async fn an_adopted_order_brings_its_units_reserved_once_and_ends_like_any_other() {
    let store = store().await;
    let sku = ordinary_sale(&store).await;
    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.kind, status.database_units, status.total), (SaleKind::Ordinary, Some(4), 6));

    let order = fallback_order(&store, &sku, 7, 2, "k7", true).await;
    for _ in 0..3 {
        assert_eq!(store.adopt(&order, 60, CONFIRM_MS).await.unwrap(), Adopted::Adopted);
    }
    let after = units(&store, &sku).await;
    assert_eq!((after.stock, after.reserved, after.total), (6, 2, 8), "its units join the sale once, reserved");
    let reservation = store.reservation(&sku, order.order_id).await.unwrap().expect("held in Redis");
    assert_eq!((reservation.user_id, reservation.qty, reservation.amount_cents), (7, 2, 2 * PRICE));

    // The buyer cancels: the units go on sale in Redis.
    let cancelled = store.cancel(&sku, order.order_id, 7).await.unwrap();
    assert!(matches!(cancelled, Cancellation::Cancelled { .. }), "{cancelled:?}");
    let after = units(&store, &sku).await;
    assert_eq!((after.stock, after.reserved, after.total), (8, 0, 8));
    // Handed over again after it ended: nothing moves.
    assert_eq!(store.adopt(&order, 60, CONFIRM_MS).await.unwrap(), Adopted::Adopted);
    assert_eq!(units(&store, &sku).await, after);
}

#[tokio::test]
async fn an_unaccepted_order_is_adopted_awaiting_its_acknowledgement() {
    let store = store().await;
    let sku = ordinary_sale(&store).await;
    let order = fallback_order(&store, &sku, 8, 1, "k8", false).await;
    assert_eq!(store.adopt(&order, 60, CONFIRM_MS).await.unwrap(), Adopted::Adopted);
    // The placement still waiting for the broker acknowledges it in Redis.
    assert!(store.acknowledge(&sku, "k8", order.order_id, PAY_BY).await.unwrap());
}

#[tokio::test]
async fn an_order_whose_key_placed_another_in_redis_is_not_adopted() {
    let store = store().await;
    let sku = ordinary_sale(&store).await;
    let first = IdGenerator::new(0).unwrap().next(bucket_for_user(9), NOW);
    let request = ReserveRequest {
        sku: sku.as_str().into(),
        idempotency_key: "k9".into(),
        user_id: 9,
        qty: 1,
        order_id: first,
        now_ms: NOW,
        pay_by_ms: PAY_BY,
        idempotency_ttl_secs: 60,
        confirm_windows: ConfirmWindows { confirm_ms: CONFIRM_MS, in_flight_ms: 7_000 },
        warehouses: stock::ANY_WAREHOUSE.into(),
        channel_share: None,
    };
    assert!(matches!(store.reserve(&request).await.unwrap(), Reservation::Reserved { .. }));
    let before = units(&store, &sku).await;

    // Redis's order of the key is not acknowledged yet: it may yet be
    // cancelled as unconfirmed, freeing the key. Nothing is decided.
    let retry = fallback_order(&store, &sku, 9, 1, "k9", true).await;
    assert_eq!(store.adopt(&retry, 60, CONFIRM_MS).await.unwrap(), Adopted::Wait);
    assert!(store.acknowledge(&sku, "k9", first, PAY_BY).await.unwrap());
    // Acknowledged: the database's order is the duplicate, for good.
    for _ in 0..2 {
        assert_eq!(store.adopt(&retry, 60, CONFIRM_MS).await.unwrap(), Adopted::Duplicate { first: Some(first) });
    }
    assert_eq!(units(&store, &sku).await, before, "no unit moves");
    assert!(store.reservation(&sku, retry.order_id).await.unwrap().is_none());

    let lost = fallback_order(&store, "no_such_sale", 9, 1, "k9", true).await;
    assert_eq!(store.adopt(&lost, 60, CONFIRM_MS).await.unwrap(), Adopted::UnknownSku);
}

#[tokio::test]
async fn an_order_of_a_replaced_sale_is_not_adopted_into_the_new_one() {
    let store = store().await;
    let sku = ordinary_sale(&store).await;
    let old = fallback_order(&store, &sku, 3, 1, "k3", true).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let terms = SaleTerms { stock: 10, per_user_limit: 5, price_cents: PRICE, ..Default::default() };
    store.load_sale(&sku, &terms).await.unwrap();
    let before = units(&store, &sku).await;
    assert_eq!(store.adopt(&old, 60, CONFIRM_MS).await.unwrap(), Adopted::OtherSale);
    assert_eq!(units(&store, &sku).await, before);
}

#[tokio::test]
async fn an_order_whose_decision_was_lost_is_not_adopted_twice() {
    use fred::prelude::*;
    let namespace = format!("test_adoption_{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff);
    let store = store_in(&namespace).await;
    let sku = ordinary_sale(&store).await;
    let order = fallback_order(&store, &sku, 5, 2, "k5", true).await;
    assert_eq!(store.adopt(&order, 60, CONFIRM_MS).await.unwrap(), Adopted::Adopted);
    let after = units(&store, &sku).await;
    // The decision is lost (an evicted key): the idempotency record still
    // names the order, so it is not adopted a second time.
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let _: i64 = client.hdel(format!("{namespace}adopted:{{{sku}}}"), order.order_id.to_string()).await.unwrap();
    assert_eq!(store.adopt(&order, 60, CONFIRM_MS).await.unwrap(), Adopted::Adopted);
    assert_eq!(units(&store, &sku).await, after, "its units joined the sale once");
}
