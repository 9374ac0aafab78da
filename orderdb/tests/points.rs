//! Member points against a real MariaDB: a spend is taken once however
//! often a checkout is driven, never past the balance; what goes back is
//! made to a target, so a redone give-back gives nothing more; an item no
//! order row names is found once its spend is old enough.

use std::time::Duration;

use chrono::Utc;
use order::id::OrderId;
use orderdb::points::Spent;
use orderdb::{shards, ShardPools};

async fn pools() -> (ShardPools, Vec<String>) {
    let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
    let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
    let dsns = vec![format!("{server}/test_points_{run}")];
    shards::create_databases(&dsns).await.unwrap();
    let pools = ShardPools::connect_lazy(&dsns, 4, Duration::from_secs(10)).unwrap();
    pools.migrate().await.unwrap();
    (pools, dsns)
}

#[tokio::test]
async fn a_spend_is_taken_once_and_given_back_once() {
    let (pools, dsns) = pools().await;
    let (user, parent) = (5, OrderId::from_raw(1_000));
    let items = [(OrderId::from_raw(1_001), 60), (OrderId::from_raw(1_002), 40)];
    assert_eq!(pools.spend_points(user, parent, &items).await.unwrap(), Spent::Short { balance: 0 });
    assert_eq!(pools.grant_points(user, "g1", 150).await.unwrap(), (150, true));
    assert_eq!(pools.grant_points(user, "g1", 150).await.unwrap(), (150, false), "a grant id grants once");
    assert_eq!(pools.spend_points(user, parent, &items).await.unwrap(), Spent::Done);
    assert_eq!(pools.spend_points(user, parent, &items).await.unwrap(), Spent::Done, "a redrive");
    assert_eq!(pools.points_balance(user).await.unwrap(), 50, "taken once");
    let other = [(OrderId::from_raw(2_001), 60)];
    assert_eq!(pools.spend_points(user, OrderId::from_raw(2_000), &other).await.unwrap(), Spent::Short { balance: 50 });

    // No order row names either item: once old enough, both are found.
    let hour = chrono::Duration::hours(1);
    let window = Utc::now() - hour..Utc::now() + chrono::Duration::seconds(1);
    assert!(pools.points_of_lost_items(0, Utc::now() - hour * 2..Utc::now() - hour, 10).await.unwrap().is_empty());
    let mut lost = pools.points_of_lost_items(0, window.clone(), 10).await.unwrap();
    lost.sort();
    assert_eq!(lost, [(user, items[0].0), (user, items[1].0)]);
    assert_eq!(pools.give_back_points(user, &[items[0].0, items[1].0]).await.unwrap(), 100);
    assert_eq!(pools.give_back_points(user, &[items[0].0, items[1].0]).await.unwrap(), 0, "given back once");
    assert_eq!(pools.points_balance(user).await.unwrap(), 150);
    assert!(pools.points_of_lost_items(0, window, 10).await.unwrap().is_empty(), "all back: nothing left to find");
    pools.close().await;
    shards::drop_databases(&dsns).await.unwrap();
}
