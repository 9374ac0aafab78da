//! The Lua scripts against a real Redis, through the store that calls them.

mod support;

use fred::prelude::*;
use gateway::config;
use gateway::sale_store::{IdempotencyRecord, Reservation, ReserveRequest, SaleStore, SaleTerms, RESERVE_LUA};
use order::id::{IdGenerator, OrderId};
use order::shard::bucket_for_user;
use support::{redis_url, unique};

const NOW: i64 = 1_790_000_000_000;
const PAY_BY: i64 = NOW + 900_000;

async fn store() -> SaleStore {
    let store = SaleStore::connect(&config::Redis { url: redis_url(), ..config::Redis::default() }).unwrap();
    assert!(store.wait_connected(std::time::Duration::from_secs(5)).await, "redis at {}", redis_url());
    store
}

fn order_id(user: u64) -> OrderId {
    IdGenerator::new(0).unwrap().next(bucket_for_user(user), NOW)
}

fn request<'a>(sku: &'a str, key: &'a str, user_id: u64, qty: u32, order_id: OrderId) -> ReserveRequest<'a> {
    ReserveRequest {
        sku,
        idempotency_key: key,
        user_id,
        qty,
        order_id,
        now_ms: NOW,
        pay_by_ms: PAY_BY,
        idempotency_ttl_secs: 60,
    }
}

async fn sale(store: &SaleStore, stock: i64, per_user_limit: i64) -> String {
    let sku = unique("lua");
    store.load_sale(&sku, &SaleTerms { stock, per_user_limit, price_cents: 1_999 }).await.unwrap();
    sku
}

#[tokio::test]
async fn reserve_takes_stock_and_records_the_order() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let id = order_id(7);
    let outcome = store.reserve(&request(&sku, "k1", 7, 3, id)).await.unwrap();
    assert_eq!(outcome, Reservation::Reserved { amount_cents: 5_997, stock_left: 7 });

    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.stock, status.reserved, status.sold), (7, 3, 0));

    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let deadline: Option<f64> = client.zscore(format!("deadlines:{{{sku}}}"), id.to_string()).await.unwrap();
    assert_eq!(deadline, Some(PAY_BY as f64));
    let held: Option<i64> = client.hget(format!("buyers:{{{sku}}}"), "7").await.unwrap();
    assert_eq!(held, Some(3));
    let ttl: i64 = client.ttl(format!("idem:{{{sku}}}:k1")).await.unwrap();
    assert!((1..=60).contains(&ttl), "idempotency record expires: ttl {ttl}");
}

#[tokio::test]
async fn a_repeated_key_returns_the_first_order() {
    let store = store().await;
    let sku = sale(&store, 10, 5).await;
    let first = order_id(7);
    store.reserve(&request(&sku, "k1", 7, 2, first)).await.unwrap();
    let again = store.reserve(&request(&sku, "k1", 7, 2, order_id(7))).await.unwrap();
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
            created_ms: NOW
        }
    );
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().stock, 8, "stock taken once");

    store.acknowledge(&sku, "k1", &record).await.unwrap();
    let Reservation::Duplicate(acked) = store.reserve(&request(&sku, "k1", 7, 2, order_id(7))).await.unwrap() else {
        panic!("expected a duplicate");
    };
    assert!(acked.acknowledged);
}

#[tokio::test]
async fn the_per_user_limit_counts_every_order_of_the_user() {
    let store = store().await;
    let sku = sale(&store, 100, 3).await;
    assert!(matches!(store.reserve(&request(&sku, "a", 9, 2, order_id(9))).await.unwrap(), Reservation::Reserved { .. }));
    assert_eq!(store.reserve(&request(&sku, "b", 9, 2, order_id(9))).await.unwrap(), Reservation::LimitExceeded);
    assert!(matches!(store.reserve(&request(&sku, "c", 9, 1, order_id(9))).await.unwrap(), Reservation::Reserved { .. }));
    assert!(matches!(store.reserve(&request(&sku, "d", 10, 3, order_id(10))).await.unwrap(), Reservation::Reserved { .. }));
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
    assert!(matches!(store.reserve(&request(&sku, "b", 1, 2, order_id(1))).await.unwrap(), Reservation::Reserved { .. }));
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
    assert_eq!(store.release(&sku, "k", id).await.unwrap(), Some(5));
    assert_eq!(store.release(&sku, "k", id).await.unwrap(), None, "a second release is a no-op");

    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.stock, status.reserved), (5, 0));
    // The key is free again and the user's count is back to zero.
    let retry = store.reserve(&request(&sku, "k", 3, 5, order_id(3))).await.unwrap();
    assert_eq!(retry, Reservation::Reserved { amount_cents: 9_995, stock_left: 0 });
}

#[tokio::test]
async fn scripts_refuse_wrong_argument_counts() {
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let err = client.eval::<Value, _, _, _>(RESERVE_LUA, vec!["a"], vec!["1"]).await.unwrap_err();
    assert!(err.details().contains("reserve.lua takes 5 keys and 7 arguments"), "{err}");
}
