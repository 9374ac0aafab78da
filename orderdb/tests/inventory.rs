//! An ordinary sale's database share against a real MariaDB: orders taken
//! at once by many buyers (two gateways' fallbacks minting ids alike)
//! never take more units than the share holds; a key answers its order as
//! it stands; the per-user limit and the window hold; and the request that
//! took an order and an adopter never both decide it.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use order::id::IdGenerator;
use order::sale::SaleWindow;
use order::shard::bucket_for_user;
use orderdb::fallback_orders::{Earlier, Take, TakeRequest};
use orderdb::inventory::{DatabaseShare, ShareStatus, Suspended};
use orderdb::{shards, ShardPools};

/// The in-flight window the tests take orders with.
const IN_FLIGHT_MS: u64 = 1_500;

async fn inventory() -> (ShardPools, Vec<String>) {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
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
    take_of(pools, "lamp", ids, user, qty, key).await
}

async fn take_of(pools: &ShardPools, sku: &str, ids: &IdGenerator, user: u64, qty: u32, key: &str) -> Take {
    let now_ms = Utc::now().timestamp_millis();
    let request = TakeRequest {
        sku,
        idempotency_key: key,
        user_id: user,
        qty,
        order_id: ids.next(bucket_for_user(user), now_ms),
        now_ms,
        pay_by_ms: now_ms + 900_000,
        in_flight_ms: IN_FLIGHT_MS,
        idempotency_ttl_secs: 60,
    };
    pools.take_from_database(&request).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_racing_for_the_share_take_each_unit_once() {
    let (pools, dsns) = inventory().await;
    let pools = Arc::new(pools);
    pools.set_database_share("lamp", Some(&share(25, SaleWindow::default()))).await.unwrap();
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
async fn a_key_answers_its_order_as_it_stands_and_the_limit_and_window_hold() {
    let (pools, dsns) = inventory().await;
    let ids = IdGenerator::for_database();
    pools.set_database_share("lamp", Some(&share(10, SaleWindow::default()))).await.unwrap();

    let Take::Taken(first) = take(&pools, &ids, 1, 2, "a").await else { panic!("taken") };
    assert_eq!(take(&pools, &ids, 1, 2, "a").await, Take::Existing(first.clone(), Earlier::InFlight));
    assert_eq!(take(&pools, &ids, 1, 1, "b").await, Take::LimitExceeded);
    assert!(pools.fallback_accepted(first.order_id).await.unwrap());
    let accepted = take(&pools, &ids, 1, 2, "a").await;
    assert!(matches!(accepted, Take::Existing(ref order, Earlier::Accepted) if order.accepted), "{accepted:?}");

    // Past its in-flight window, unacknowledged: sent again by the retry.
    let Take::Taken(unsent) = take(&pools, &ids, 2, 1, "c").await else { panic!("taken") };
    tokio::time::sleep(Duration::from_millis(IN_FLIGHT_MS + 200)).await;
    assert_eq!(take(&pools, &ids, 2, 1, "c").await, Take::Existing(unsent.clone(), Earlier::Unacknowledged));
    // Too late to give its units back: a retry may be sending it.
    assert!(!pools.fallback_dropped(unsent.order_id, IN_FLIGHT_MS).await.unwrap());

    // Within the window, an order whose event never reached the broker
    // gives its units back and frees its key.
    let Take::Taken(lost) = take(&pools, &ids, 3, 2, "e").await else { panic!("taken") };
    assert!(pools.fallback_dropped(lost.order_id, IN_FLIGHT_MS).await.unwrap());
    assert!(matches!(take(&pools, &ids, 3, 2, "e").await, Take::Taken(_)), "its key is free again");
    assert_eq!(pools.database_share("lamp").await.unwrap(), Some(ShareStatus { units: 5, pending_orders: 3 }));
    assert_eq!(pools.suspend_database_share("lamp").await.unwrap(), Suspended::Pending(3), "not while orders wait");
    assert!(matches!(take(&pools, &ids, 4, 2, "f").await, Take::Taken(_)));
    assert!(matches!(take(&pools, &ids, 6, 2, "h").await, Take::Taken(_)));
    assert_eq!(take(&pools, &ids, 7, 2, "i").await, Take::SoldOut { units: 1 });

    // Outside its window, and a SKU with no share.
    let ended = SaleWindow { starts_at: None, ends_at: Some(Utc::now() - chrono::Duration::minutes(1)) };
    pools.set_database_share("ended", Some(&share(5, ended))).await.unwrap();
    assert!(matches!(take_of(&pools, "ended", &ids, 5, 1, "g").await, Take::OutsideWindow(_)));
    assert_eq!(take_of(&pools, "flash", &ids, 5, 1, "g").await, Take::NoShare);
    assert!(!pools.has_database_share("flash").await.unwrap() && pools.has_database_share("ended").await.unwrap());
    // Keys are case-sensitive, as in Redis.
    assert!(matches!(take_of(&pools, "ended", &ids, 5, 1, "G").await, Take::OutsideWindow(_)));
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}

#[tokio::test]
async fn once_an_adopter_claims_an_order_its_request_can_neither_accept_nor_drop_it() {
    let (pools, dsns) = inventory().await;
    let ids = IdGenerator::for_database();
    pools.set_database_share("lamp", Some(&share(10, SaleWindow::default()))).await.unwrap();

    // A reserved order within its in-flight window is its request's.
    let Take::Taken(young) = take(&pools, &ids, 1, 1, "a").await else { panic!("taken") };
    assert_eq!(pools.claim_for_adoption(young.order_id, IN_FLIGHT_MS).await.unwrap(), None);
    // Past it, an adopter claims it as unaccepted; the request is too late.
    tokio::time::sleep(Duration::from_millis(IN_FLIGHT_MS + 200)).await;
    let claimed = pools.claim_for_adoption(young.order_id, IN_FLIGHT_MS).await.unwrap().expect("claimed");
    assert!(!claimed.accepted);
    assert!(!pools.fallback_accepted(young.order_id).await.unwrap(), "Redis holds its acknowledgement now");
    assert!(!pools.fallback_dropped(young.order_id, 3_600_000).await.unwrap());
    assert!(pools.is_pending_fallback_order(young.order_id, Some(1)).await.unwrap());
    assert!(!pools.is_pending_fallback_order(young.order_id, Some(2)).await.unwrap(), "another buyer's");
    // A claim that died is claimed again; adopted, it is settled.
    assert!(pools.claim_for_adoption(young.order_id, IN_FLIGHT_MS).await.unwrap().is_some());
    pools.fallback_adopted(young.order_id).await.unwrap();
    assert_eq!(pools.claim_for_adoption(young.order_id, IN_FLIGHT_MS).await.unwrap(), None);
    assert_eq!(take(&pools, &ids, 1, 1, "a").await, Take::Existing(claimed.clone(), Earlier::InRedis));

    // An accepted one is claimed as accepted; a duplicate gives its units back once.
    let Take::Taken(paid_for) = take(&pools, &ids, 2, 2, "b").await else { panic!("taken") };
    assert!(pools.fallback_accepted(paid_for.order_id).await.unwrap());
    let claimed = pools.claim_for_adoption(paid_for.order_id, IN_FLIGHT_MS).await.unwrap().expect("claimed");
    assert!(claimed.accepted);
    for _ in 0..2 {
        pools.fallback_duplicate(paid_for.order_id).await.unwrap();
    }
    assert_eq!(pools.database_share("lamp").await.unwrap(), Some(ShareStatus { units: 9, pending_orders: 0 }));
    assert!(matches!(take(&pools, &ids, 2, 2, "b").await, Take::Existing(_, Earlier::InRedis)));
    assert_eq!(pools.pending_fallback_orders(0, 10).await.unwrap(), []);

    // With nothing pending the share goes off sale, and comes back.
    let Suspended::Off(Some(previous)) = pools.suspend_database_share("lamp").await.unwrap() else { panic!("off") };
    assert_eq!(previous.units, 9);
    assert!(!pools.has_database_share("lamp").await.unwrap());
    pools.set_database_share("lamp", Some(&previous)).await.unwrap();
    assert_eq!(pools.database_share("lamp").await.unwrap().unwrap().units, 9);
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}

/// A key whose TTL passed names no order any more (as in Redis): it takes a
/// fresh one. An operator's live change of price and window reaches the
/// share's next take.
#[tokio::test]
async fn an_expired_key_takes_a_fresh_order_and_a_live_change_reaches_the_next_take() {
    let (pools, dsns) = inventory().await;
    let ids = IdGenerator::for_database();
    pools.set_database_share("lamp", Some(&share(10, SaleWindow::default()))).await.unwrap();
    let take_with_ttl = |user: u64, key: &'static str, ttl: u64| {
        let (pools, ids) = (&pools, &ids);
        async move {
            let now_ms = Utc::now().timestamp_millis();
            let request = TakeRequest {
                sku: "lamp",
                idempotency_key: key,
                user_id: user,
                qty: 1,
                order_id: ids.next(bucket_for_user(user), now_ms),
                now_ms,
                pay_by_ms: now_ms + 900_000,
                in_flight_ms: IN_FLIGHT_MS,
                idempotency_ttl_secs: ttl,
            };
            pools.take_from_database(&request).await.unwrap()
        }
    };
    let Take::Taken(first) = take_with_ttl(1, "k", 1).await else { panic!("taken") };
    assert!(pools.fallback_accepted(first.order_id).await.unwrap());
    assert!(matches!(take_with_ttl(1, "k", 1).await, Take::Existing(_, Earlier::Accepted)));
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let Take::Taken(second) = take_with_ttl(1, "k", 1).await else { panic!("a fresh order past the key's TTL") };
    assert_ne!(second.order_id, first.order_id);

    // The operator raises the price, then ends the sale.
    pools.change_database_share("lamp", None, Some(450), None).await.unwrap();
    let Take::Taken(dearer) = take(&pools, &ids, 2, 1, "p").await else { panic!("taken") };
    assert_eq!(dearer.amount_cents, 450);
    let ended = SaleWindow { starts_at: None, ends_at: Some(Utc::now() - chrono::Duration::seconds(1)) };
    pools.change_database_share("lamp", None, None, Some(ended)).await.unwrap();
    assert!(matches!(take(&pools, &ids, 3, 1, "q").await, Take::OutsideWindow(_)));
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
