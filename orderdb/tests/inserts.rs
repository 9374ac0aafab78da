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
        warehouse: None,
        channel: None,
    }
}

#[tokio::test]
async fn a_redelivered_batch_stores_each_order_once_and_leaves_stored_ones_alone() {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
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
    let paid = OrderEvent::OrderPaid(OrderPaid {
        order: first[0].clone(),
        payment_channel: "card".into(),
        payment_id: "p1".into(),
        paid_at: Utc::now(),
    });
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

/// A checkout is stored whole once: a redelivered `CheckoutCreated`
/// changes nothing, and an item an earlier event recorded (cancelled at
/// its confirm deadline before the checkout arrived) stays as it is.
#[tokio::test]
async fn a_checkout_is_stored_once_and_leaves_an_item_recorded_first_alone() {
    use order::checkout::{plan, CheckoutOrder, PricedLine, ShippingFacts};
    use order::event::{CancelReason, OrderCancelled};
    use order::splitting::Limits;

    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
    let dsns: Vec<String> = (0..2).map(|n| format!("{server}/test_checkouts_{run}_{n}")).collect();
    shards::create_databases(&dsns).await.unwrap();
    let pools = ShardPools::connect_lazy(&dsns, 2, Duration::from_secs(5)).unwrap();
    pools.migrate().await.unwrap();

    let ids = IdGenerator::new(4).unwrap();
    let lines: Vec<PricedLine> = ["a", "b", "c"]
        .iter()
        .map(|sku| PricedLine {
            sku: (*sku).into(),
            qty: 2,
            unit_price_cents: 1_000,
            facts: ShippingFacts::unlisted(),
            regional: false,
        })
        .collect();
    let limits = Limits { max_weight_grams: 1, max_volume_cm3: 1 };
    let now = Utc::now();
    let no_points = order::checkout::PointsOffer { asked: 0, cents_per_point: 1, max_per_order: 0 };
    let next = || ids.next(bucket_for_user(9), now.timestamp_millis());
    let plan = plan(&lines, &[], None, no_points, &Default::default(), limits, next).unwrap();
    let checkout = CheckoutOrder::new(plan, next(), 9, "key".into(), (None, 0), now, now);
    let items: Vec<OrderCreated> =
        checkout.items().map(|(sub, item)| OrderCreated::of_checkout_item(&checkout, sub, item)).collect();
    let early = OrderEvent::OrderCancelled(OrderCancelled {
        order: items[2].clone(),
        reason: CancelReason::Unconfirmed,
        cancelled_at: now,
    });
    transitions::apply(pools.for_order(items[2].order_id), &early).await.unwrap();

    let stored = pools.insert_checkout(&checkout).await.unwrap();
    assert_eq!(stored, vec![items[0].order_id, items[1].order_id], "the items stored now");
    assert_eq!(pools.insert_checkout(&checkout).await.unwrap(), vec![], "redelivered: nothing");
    let stored = pools.checkout_items(checkout.order_id).await.unwrap();
    let statuses: Vec<OrderStatus> = stored.iter().map(|item| item.order.status).collect();
    assert_eq!(statuses, [OrderStatus::PendingPayment, OrderStatus::PendingPayment, OrderStatus::Cancelled]);
    assert_eq!(stored.iter().map(|item| item.goods_cents).sum::<i64>(), checkout.goods_cents);
    assert_eq!(pools.count_all().await.unwrap(), 3, "each item once");

    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
