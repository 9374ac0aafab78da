//! An ordinary sale's database share against a real MariaDB: orders taken
//! at once by many buyers (two gateways' fallbacks minting ids alike)
//! never take more units than the share holds; a key answers its order,
//! the per-user limit and the window hold, and an order dropped or adopted
//! leaves the share as it should.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use order::id::IdGenerator;
use order::sale::SaleWindow;
use order::shard::bucket_for_user;
use orderdb::inventory::{DatabaseShare, ShareStatus, Take, TakeRequest};
use orderdb::{shards, ShardPools};

async fn inventory() -> (ShardPools, Vec<String>) {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}", std::process::id(), Utc::now().timestamp_micros());
    let dsns = vec![format!("{server}/test_inventory_{run}")];
    shards::create_databases(&dsns).await.unwrap();
    let pools = ShardPools::connect_lazy(&dsns, 8, Duration::from_secs(10)).unwrap();
    pools.migrate().await.unwrap();
    (pools, dsns)
}

fn share(units: i64, window: SaleWindow) -> DatabaseShare {
    DatabaseShare { units, per_user_limit: 2, price_cents: 300, window, sale_generation: 7 }
}

async fn take(pools: &ShardPools, ids: &IdGenerator, user: u64, qty: u32, key: &str) -> Take {
    let now_ms = Utc::now().timestamp_millis();
    let request = TakeRequest {
        sku: "lamp",
        idempotency_key: key,
        user_id: user,
        qty,
        order_id: ids.next(bucket_for_user(user), now_ms),
        now_ms,
        pay_by_ms: now_ms + 900_000,
    };
    pools.take_from_database(&request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_racing_for_the_share_take_each_unit_once() {
    let (pools, dsns) = inventory().await;
    let pools = Arc::new(pools);
    assert_eq!(pools.set_database_share("lamp", Some(&share(25, SaleWindow::default()))).await.unwrap(), None);
    // Two generators minting the same ids, as two gateways' fallbacks may.
    let generators = Arc::new([IdGenerator::for_database(), IdGenerator::for_database()]);
    let racers = (0..80u64).map(|user| {
        let (pools, generators) = (pools.clone(), generators.clone());
        tokio::spawn(async move {
            loop {
                match take(&pools, &generators[(user % 2) as usize], user, 1, &format!("k{user}")).await {
                    Take::IdTaken => continue,
                    taken => return taken,
                }
            }
        })
    });
    let mut taken = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Take::Taken(order) => {
                assert!(order.order_id.from_database() && order.amount_cents == 300);
                taken += 1;
            }
            Take::SoldOut { units: 0 } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(taken, 25);
    let status = pools.database_share("lamp").await.unwrap();
    assert_eq!(status, Some(ShareStatus { units: 0, pending_orders: 25 }));
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}

#[tokio::test]
async fn a_key_answers_its_order_and_the_limit_window_and_ends_hold() {
    let (pools, dsns) = inventory().await;
    let ids = IdGenerator::for_database();
    pools.set_database_share("lamp", Some(&share(10, SaleWindow::default()))).await.unwrap();

    let Take::Taken(first) = take(&pools, &ids, 1, 2, "a").await else { panic!("taken") };
    assert_eq!(take(&pools, &ids, 1, 2, "a").await, Take::Existing(first.clone()), "the key's order again");
    assert_eq!(take(&pools, &ids, 1, 1, "b").await, Take::LimitExceeded);
    assert!(matches!(take(&pools, &ids, 2, 2, "c").await, Take::Taken(_)));
    assert_eq!(pools.database_share("lamp").await.unwrap(), Some(ShareStatus { units: 6, pending_orders: 2 }));
    assert_eq!(pools.set_database_share("lamp", None).await.unwrap(), Some(2), "not replaced while orders wait");

    // Accepted, then adopted: Redis answers its key from then on.
    assert!(pools.fallback_accepted(first.order_id).await.unwrap());
    assert!(pools.pending_fallback_order(first.order_id).await.unwrap().unwrap().accepted);
    pools.fallback_adopted(first.order_id).await.unwrap();
    assert!(pools.pending_fallback_order(first.order_id).await.unwrap().is_none());
    assert!(!pools.fallback_accepted(first.order_id).await.unwrap(), "adopted: Redis acknowledges it");
    assert!(!pools.fallback_dropped(first.order_id, true).await.unwrap(), "Redis's now");
    // Still counted against the buyer's limit in this sale.
    assert_eq!(take(&pools, &ids, 1, 1, "d").await, Take::LimitExceeded);

    // A reserved order whose event never reached the broker gives its units back.
    let Take::Taken(unsent) = take(&pools, &ids, 3, 2, "e").await else { panic!("taken") };
    assert!(pools.fallback_dropped(unsent.order_id, false).await.unwrap());
    assert_eq!(pools.database_share("lamp").await.unwrap(), Some(ShareStatus { units: 6, pending_orders: 1 }));
    assert!(matches!(take(&pools, &ids, 3, 2, "e").await, Take::Taken(_)), "its key is free again");

    assert!(matches!(take(&pools, &ids, 4, 2, "f").await, Take::Taken(_)));
    assert!(matches!(take(&pools, &ids, 6, 2, "h").await, Take::Taken(_)));
    assert_eq!(take(&pools, &ids, 7, 1, "i").await, Take::SoldOut { units: 0 });
    assert_eq!(pools.pending_fallback_orders(10).await.unwrap().len(), 4);

    // Outside its window, and a SKU with no share.
    let ended = SaleWindow { starts_at: None, ends_at: Some(Utc::now() - chrono::Duration::minutes(1)) };
    pools.set_database_share("ended", Some(&share(5, ended))).await.unwrap();
    let now_ms = Utc::now().timestamp_millis();
    let request = TakeRequest {
        sku: "ended",
        idempotency_key: "g",
        user_id: 5,
        qty: 1,
        order_id: ids.next(bucket_for_user(5), now_ms),
        now_ms,
        pay_by_ms: now_ms,
    };
    assert!(matches!(pools.take_from_database(&request).await.unwrap(), Take::OutsideWindow(_)));
    let flash = TakeRequest { sku: "flash", ..request };
    assert_eq!(pools.take_from_database(&flash).await.unwrap(), Take::NoShare);
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
