//! Moves that start in MySQL against a real MariaDB: the table decides,
//! one transaction holds the move, its history, refund and outbox rows,
//! and a cancellation of a pushed order is never made without the
//! warehouse's interception.

use std::time::Duration;

use chrono::Utc;
use order::event::{OrderCreated, OrderEvent, OrderPaid};
use order::id::{IdGenerator, OrderId};
use order::lifecycle::{Action, Actor};
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::moves::{Move, Moved};
use orderdb::{shards, transitions, ShardPools};

fn request(order_id: OrderId, action: Action, actor: Actor, intercepted: bool) -> Move {
    Move { order_id, action, actor, owner: None, shipment: None, intercepted, at: Utc::now() }
}

#[tokio::test]
async fn a_pushed_order_is_cancelled_only_once_the_warehouse_intercepted_it() {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
    let dsns = vec![format!("{server}/test_moves_{run}")];
    shards::create_databases(&dsns).await.unwrap();
    let pools = ShardPools::connect_lazy(&dsns, 2, Duration::from_secs(5)).unwrap();
    pools.migrate().await.unwrap();

    let now = Utc::now();
    let order = OrderCreated {
        order_id: IdGenerator::new(1).unwrap().next(bucket_for_user(7), now.timestamp_millis()),
        user_id: 7,
        sku: "moves".into(),
        qty: 1,
        amount_cents: 500,
        idempotency_key: "k".into(),
        created_at: now,
        pay_by: now,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    };
    let id = order.order_id;
    pools.insert_new(&[&order]).await.unwrap();
    let paid = OrderEvent::OrderPaid(OrderPaid {
        order,
        payment_channel: "card".into(),
        payment_id: "pay_1".into(),
        paid_at: now,
    });
    transitions::apply(pools.for_order(id), &paid).await.unwrap();

    // Pushed after the canceller read PAID: the move refuses to skip the interception.
    assert!(matches!(
        pools.transition(&request(id, Action::Push, Actor::Merchant, false)).await.unwrap(),
        Moved::Done(_)
    ));
    let blind = pools.transition(&request(id, Action::Cancel, Actor::Buyer, false)).await.unwrap();
    assert!(matches!(blind, Moved::NeedsInterception), "{blind:?}");
    assert_eq!(pools.status_of(id, None).await.unwrap(), Some(OrderStatus::InWarehouse));
    assert!(pools.refunds_of(id).await.unwrap().is_empty(), "nothing refunded");

    let Moved::Done(cancelled) = pools.transition(&request(id, Action::Cancel, Actor::Buyer, true)).await.unwrap()
    else {
        panic!("an intercepted order is cancelled");
    };
    assert_eq!(cancelled.refund.as_ref().map(|r| r.amount_cents), Some(500));
    let refunds = pools.refunds_of(id).await.unwrap();
    assert_eq!((refunds.len(), refunds[0].state.as_str()), (1, "PENDING"));
    // Once cancelled, a second cancellation is refused by the table.
    assert!(matches!(
        pools.transition(&request(id, Action::Cancel, Actor::Buyer, true)).await.unwrap(),
        Moved::Refused(_)
    ));
    let history: Vec<String> = pools.history(id).await.unwrap().into_iter().map(|h| h.to.to_string()).collect();
    assert_eq!(history, ["PAID", "IN_WAREHOUSE", "CANCELLED"]);
    assert_eq!(pools.outbox(0, 10).await.unwrap().len(), 2, "the push's and the cancellation's events");

    // Refund drivers on two settlers see the same due refund: one takes the attempt.
    let due = pools.due_refunds(0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    let later = Utc::now() + chrono::Duration::seconds(60);
    let (a, b) = tokio::join!(pools.claim_refund(&due[0], later, 5), pools.claim_refund(&due[0], later, 5));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|claimed| **claimed).count(), 1, "one claim of one attempt");
    assert!(pools.due_refunds(0, 10).await.unwrap().is_empty(), "not due again before its next attempt");
    // Out of attempts: stuck once, whoever notices.
    let mut spent = due[0].clone();
    spent.attempts = 1;
    let (a, b) = tokio::join!(pools.claim_refund(&spent, later, 1), pools.claim_refund(&spent, later, 1));
    assert!(!a.unwrap() && !b.unwrap());
    let stuck = pools.refunds_in_state("STUCK", 10).await.unwrap();
    assert_eq!(stuck.len(), 1);
    let (stuck_rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM refund_attempts WHERE outcome = 'STUCK'")
        .fetch_one(&pools.pools[0])
        .await
        .unwrap();
    assert_eq!(stuck_rows, 1, "the attempts say stuck once");

    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
