//! Order lists against a real MariaDB: a buyer's pages cover each of their
//! orders exactly once while orders keep arriving, and the merchant's search
//! merged over shards equals a brute-force scan of what was stored.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use order::event::{OrderCreated, OrderEvent, OrderPaid};
use order::id::{IdGenerator, OrderId};
use order::shard::bucket_for_user;
use order::status::OrderStatus;
use orderdb::queries::{self, OrderFilter};
use orderdb::{shards, transitions, ShardPools};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Shards {
    dsns: Vec<String>,
    pools: ShardPools,
}

impl Shards {
    async fn new(name: &str, count: usize) -> Self {
        let server = std::env::var("MYSQL_URL").unwrap_or_else(|_| "mysql://flashsale:flashsale@127.0.0.1:3306".into());
        let run = format!("{}_{}_{:08x}", std::process::id(), Utc::now().timestamp_micros(), rand::random::<u32>());
        let dsns: Vec<String> = (0..count).map(|n| format!("{server}/test_{name}_{run}_{n}")).collect();
        shards::create_databases(&dsns).await.unwrap();
        let pools = ShardPools::connect_lazy(&dsns, 4, Duration::from_secs(5)).unwrap();
        pools.migrate().await.unwrap();
        Self { dsns, pools }
    }

    async fn drop(self) {
        self.pools.close().await;
        shards::drop_databases(&self.dsns).await.unwrap();
    }
}

fn order(ids: &IdGenerator, user_id: u64, sku: &str, amount_cents: i64, created_at: DateTime<Utc>) -> OrderCreated {
    OrderCreated {
        order_id: ids.next(bucket_for_user(user_id), Utc::now().timestamp_millis()),
        user_id,
        sku: sku.into(),
        qty: 1,
        amount_cents,
        idempotency_key: format!("key-{amount_cents}"),
        created_at,
        pay_by: created_at,
        sale_generation: 0,
        warehouse: None,
        channel: None,
    }
}

async fn pay(pools: &ShardPools, order: &OrderCreated) {
    let paid = OrderEvent::OrderPaid(OrderPaid {
        order: order.clone(),
        payment_channel: "card".into(),
        payment_id: "p".into(),
        paid_at: Utc::now(),
    });
    transitions::apply(pools.for_order(order.order_id), &paid).await.unwrap();
}

/// Every page of `filter` on one pool, walked by cursor, as ids.
async fn walk(pools: &ShardPools, user_id: u64, status: Option<OrderStatus>, limit: u32) -> Vec<Vec<OrderId>> {
    let filter = OrderFilter { user_id: Some(user_id), status, ..OrderFilter::default() };
    let pool = pools.for_user(user_id);
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = queries::page(pool, &filter, cursor, limit).await.unwrap();
        assert!(page.len() <= limit as usize);
        assert!(page.iter().all(|o| o.user_id == user_id && status.is_none_or(|s| o.status == s)));
        let (page, next) = queries::merge(vec![page], limit);
        pages.push(page.iter().map(|o| o.order_id).collect());
        match next {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

#[tokio::test]
async fn a_buyers_pages_cover_each_order_once_while_new_orders_arrive() {
    let shards = Shards::new("my_orders", 2).await;
    let pools = &shards.pools;
    let ids = IdGenerator::new(1).unwrap();
    let buyer = 7;
    let now = Utc::now();
    let before: Vec<OrderCreated> = (0..150).map(|n| order(&ids, buyer, "tv", n, now)).collect();
    // Another buyer on the same shard, whose orders must not show.
    let neighbour =
        (8..).find(|user| pools.router.shard_for_user(*user) == pools.router.shard_for_user(buyer)).unwrap();
    let theirs: Vec<OrderCreated> = (0..30).map(|n| order(&ids, neighbour, "tv", n, now)).collect();
    pools.insert_new(&before.iter().chain(&theirs).collect::<Vec<_>>()).await.unwrap();
    for paid in before.iter().step_by(3) {
        pay(pools, paid).await;
    }

    // Orders keep arriving, for the buyer and others, while the pages are walked.
    let arriving = async {
        for round in 0..20 {
            let batch: Vec<OrderCreated> = (0..5).map(|n| order(&ids, buyer + n, "tv", 1_000 + round, now)).collect();
            pools.insert_new(&batch.iter().collect::<Vec<_>>()).await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let (pages, ()) = tokio::join!(walk(pools, buyer, None, 17), arriving);

    let listed: Vec<OrderId> = pages.iter().flatten().copied().collect();
    let distinct: BTreeSet<OrderId> = listed.iter().copied().collect();
    assert_eq!(distinct.len(), listed.len(), "no order twice");
    assert!(listed.windows(2).all(|pair| pair[0] > pair[1]), "newest first");
    for order in &before {
        assert!(distinct.contains(&order.order_id), "{:?} was stored before the walk and is missing", order.order_id);
    }
    assert!(theirs.iter().all(|order| !distinct.contains(&order.order_id)), "only the buyer's own orders");

    let paid_pages = walk(pools, buyer, Some(OrderStatus::Paid), 17).await;
    let paid: BTreeSet<OrderId> = paid_pages.iter().flatten().copied().collect();
    let expected: BTreeSet<OrderId> = before.iter().step_by(3).map(|o| o.order_id).collect();
    assert_eq!(paid, expected, "the status filter keeps exactly the paid orders");
    shards.drop().await;
}

#[tokio::test]
async fn the_merged_search_over_shards_equals_a_brute_force_scan() {
    let shards = Shards::new("search", 3).await;
    let pools = &shards.pools;
    let ids = IdGenerator::new(2).unwrap();
    let mut rng = StdRng::seed_from_u64(15);
    // Whole seconds: stored times keep milliseconds, so a bound finer than
    // that would fall between an order and its stored time.
    let start = DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap() - TimeDelta::hours(10);
    let skus = ["tv", "phone", "lamp"];
    let all: Vec<OrderCreated> = (0..400)
        .map(|_| {
            let created = start + TimeDelta::minutes(rng.gen_range(0..600));
            order(&ids, rng.gen_range(1..60), skus[rng.gen_range(0..3)], rng.gen_range(100..10_000), created)
        })
        .collect();
    pools.insert_new(&all.iter().collect::<Vec<_>>()).await.unwrap();
    let mut paid = BTreeSet::new();
    for order in all.iter().filter(|_| rng.gen_bool(0.4)) {
        pay(pools, order).await;
        paid.insert(order.order_id);
    }

    let filters = [
        OrderFilter::default(),
        OrderFilter { sku: Some("tv".into()), ..OrderFilter::default() },
        OrderFilter { sku: Some("phone".into()), status: Some(OrderStatus::Paid), ..OrderFilter::default() },
        OrderFilter {
            created_from: Some(start + TimeDelta::hours(2)),
            created_before: Some(start + TimeDelta::hours(7)),
            min_amount_cents: Some(2_000),
            max_amount_cents: Some(8_000),
            ..OrderFilter::default()
        },
        OrderFilter {
            status: Some(OrderStatus::PendingPayment),
            max_amount_cents: Some(3_000),
            ..OrderFilter::default()
        },
    ];
    for filter in filters {
        let brute: Vec<OrderId> = {
            let mut kept: Vec<OrderId> = all
                .iter()
                .filter(|o| {
                    let status =
                        if paid.contains(&o.order_id) { OrderStatus::Paid } else { OrderStatus::PendingPayment };
                    filter.sku.as_deref().is_none_or(|sku| o.sku == sku)
                        && filter.status.is_none_or(|s| s == status)
                        && filter.created_from.is_none_or(|from| o.created_at >= from)
                        && filter.created_before.is_none_or(|to| o.created_at < to)
                        && filter.min_amount_cents.is_none_or(|min| o.amount_cents >= min)
                        && filter.max_amount_cents.is_none_or(|max| o.amount_cents <= max)
                })
                .map(|o| o.order_id)
                .collect();
            kept.sort_unstable_by(|a, b| b.cmp(a));
            kept
        };
        let mut merged = Vec::new();
        let mut cursor = None;
        loop {
            let mut parts = Vec::new();
            for pool in &pools.pools {
                parts.push(queries::page(pool, &filter, cursor, 23).await.unwrap());
            }
            let (page, next) = queries::merge(parts, 23);
            merged.extend(page.iter().map(|o| o.order_id));
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(merged, brute, "{filter:?}");
    }
    shards.drop().await;
}

/// The plans of a buyer's list and of the search by SKU and status: one
/// index range scan in order id order, never a sort.
#[tokio::test]
async fn lists_are_one_index_range_scan_without_a_sort() {
    let shards = Shards::new("plans", 1).await;
    let pool = &shards.pools.pools[0];
    let ids = IdGenerator::new(3).unwrap();
    let now = Utc::now();
    let all: Vec<OrderCreated> =
        (0..3_000).map(|n| order(&ids, 1 + n % 60, ["tv", "phone", "lamp"][n as usize % 3], 100, now)).collect();
    shards.pools.insert_new(&all.iter().collect::<Vec<_>>()).await.unwrap();
    sqlx::query("ANALYZE TABLE orders").execute(pool).await.unwrap();
    let cursor = all[1_500].order_id.raw() as i64;
    let plans = [
        ("user_id = 7", "idx_user_order"),
        ("user_id = 7 AND status = 'PAID'", "idx_user_status_order"),
        ("sku = 'tv' AND status = 'PAID'", "idx_sku_status"),
    ];
    for (condition, index) in plans {
        let sql = format!("EXPLAIN SELECT order_id FROM orders WHERE {condition} AND order_id < {cursor} ORDER BY order_id DESC LIMIT 20");
        let rows = sqlx::query(&sql).fetch_all(pool).await.unwrap();
        assert_eq!(rows.len(), 1, "{condition}");
        let key: Option<String> = sqlx::Row::try_get(&rows[0], "key").unwrap();
        let extra: Option<String> = sqlx::Row::try_get(&rows[0], "Extra").unwrap();
        assert!(!extra.clone().unwrap_or_default().contains("filesort"), "{condition}: {key:?} {extra:?}");
        if !index.is_empty() {
            assert_eq!(key.as_deref(), Some(index), "{condition}: {extra:?}");
        }
    }
    shards.drop().await;
}
