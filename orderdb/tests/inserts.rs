//! New orders against a real MariaDB: a batch delivered again, overlapping
//! orders already stored and moved on, stores each order once and leaves
//! the stored ones as they are.

use std::time::Duration;

use chrono::Utc;
use order::event::{OrderCreated, OrderEvent, OrderPaid};
use order::id::IdGenerator;
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::{shards, transitions, ShardPools};

fn order(ids: &IdGenerator, user_id: u64) -> OrderCreated {
    let now = Utc::now();
    OrderCreated {
        order_id: ids.next(bucket_for_user(user_id), now.timestamp_millis()),
        user_id,
        sku: "redelivered".into(),
        qty: 1,
        amount_cents: 100,
        idempotency_key: format!("key-{user_id}"),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
    }
}

#[tokio::test]
async fn a_redelivered_batch_stores_each_order_once_and_leaves_stored_ones_alone() {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}", std::process::id(), Utc::now().timestamp_micros());
    let dsns: Vec<String> = (0..2).map(|n| format!("{server}/test_inserts_{run}_{n}")).collect();
    shards::create_databases(&dsns).await.unwrap();
    let pools = ShardPools::connect_lazy(&dsns, 2, Duration::from_secs(5)).unwrap();
    pools.migrate().await.unwrap();

    let ids = IdGenerator::new(3).unwrap();
    let first: Vec<OrderCreated> = (1..=20).map(|user| order(&ids, user)).collect();
    let sorted = |mut ids: Vec<order::id::OrderId>| {
        ids.sort_unstable();
        ids
    };
    let stored = pools.insert_new(&first.iter().collect::<Vec<_>>()).await.unwrap();
    assert_eq!(sorted(stored), sorted(first.iter().map(|o| o.order_id).collect()), "all new");
    let paid =
        OrderEvent::OrderPaid(OrderPaid { order: first[0].clone(), payment_id: "p1".into(), paid_at: Utc::now() });
    transitions::apply(pools.for_order(first[0].order_id), &paid).await.unwrap();

    // The same batch again, with two new orders among the old ones.
    let mut again: Vec<OrderCreated> = first.clone();
    again.extend([order(&ids, 21), order(&ids, 22)]);
    let stored = pools.insert_new(&again.iter().collect::<Vec<_>>()).await.unwrap();
    assert_eq!(sorted(stored), sorted(vec![again[20].order_id, again[21].order_id]), "only the orders stored now");

    assert_eq!(pools.count_all().await.unwrap(), 22, "each order once");
    let stored = pools.get(first[0].order_id).await.unwrap().unwrap();
    assert_eq!(stored.status, OrderStatus::Paid, "a stored order is left as it is");
    assert!(pools.get(again[21].order_id).await.unwrap().is_some());

    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
