//! A cart's Try and Cancel per SKU (`tcc_try.lua`, `tcc_cancel.lua`)
//! against a real Redis (`REDIS_URL`), each test on SKUs of its own: the
//! three TCC anomalies, how the items meet the sweeper and payments, and a
//! regional sale's items held in the warehouse the checkout chose.

use order::id::{IdGenerator, OrderId};
use stock::{
    CancelledItem, ConfirmWindows, Confirmation, RedisConfig, SaleStore, SaleTerms, TccItem, Tried, TryRequest,
    WarehouseChange, WarehouseChoice, WarehouseUnits, ANY_WAREHOUSE,
};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

const PRICE: i64 = 1_999;
const WINDOWS: ConfirmWindows = ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 };
/// As if the in-flight window had passed since the Try.
const LATER: ConfirmWindows = ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 0 };

async fn store() -> SaleStore {
    let namespace = format!("{}:", unique("test_tcc"));
    let config = RedisConfig { url: redis_url(), namespace, ..RedisConfig::default() };
    let store = SaleStore::connect(&config).unwrap();
    assert!(store.redis().wait_connected(std::time::Duration::from_secs(5)).await, "redis at {}", redis_url());
    store
}

async fn sale(store: &SaleStore, stock: i64) -> String {
    let sku = unique("tcc");
    let terms = SaleTerms { stock, per_user_limit: 10, price_cents: PRICE, ..Default::default() };
    store.load_sale(&sku, &terms).await.unwrap();
    sku
}

fn item(qty: u32) -> TccItem {
    static IDS: std::sync::OnceLock<IdGenerator> = std::sync::OnceLock::new();
    let id = IDS.get_or_init(|| IdGenerator::new(1).unwrap()).next(order::shard::bucket_for_user(7), 1_790_000_000_000);
    TccItem { order_id: id, qty, amount_cents: PRICE * qty as i64, key: format!("cart.{id}.1") }
}

async fn try_items(store: &SaleStore, sku: &str, items: &[TccItem]) -> Tried {
    try_in(store, sku, None, items).await
}

/// The Try, the checkout having chosen `warehouse` (regional stock).
async fn try_in(store: &SaleStore, sku: &str, warehouse: Option<&str>, items: &[TccItem]) -> Tried {
    let now_ms = store.redis().now_ms().await.unwrap();
    let req = TryRequest {
        user_id: 7,
        unit_price_cents: PRICE,
        now_ms,
        pay_by_ms: now_ms + 900_000,
        confirm_ms: WINDOWS.confirm_ms,
        warehouse,
        items,
        channel_share: None,
    };
    store.tcc_try(sku, &req).await.unwrap()
}

/// (stock, reserved, sold), checked to add up to the units loaded.
async fn counters(store: &SaleStore, sku: &str) -> (i64, i64, i64) {
    let status = store.sale_status(sku).await.unwrap().unwrap();
    assert_eq!(status.stock + status.reserved + status.sold, status.total, "units add up");
    (status.stock, status.reserved, status.sold)
}

fn ids(items: &[TccItem]) -> Vec<OrderId> {
    items.iter().map(|item| item.order_id).collect()
}

#[tokio::test]
async fn a_repeated_try_holds_its_units_once() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    // One SKU split over two packages: two items, one Try.
    let items = [item(2), item(3)];
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }));
    assert_eq!(counters(&store, &sku).await, (5, 5, 0));
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }), "a retried Try");
    assert_eq!(counters(&store, &sku).await, (5, 5, 0), "nothing taken twice");
    let held = store.reservation(&sku, items[1].order_id).await.unwrap().unwrap();
    assert_eq!((held.user_id, held.qty, held.amount_cents), (7, 3, 3 * PRICE));
    assert_eq!(held.idempotency_key, items[1].key);
    assert!(store.active_sales().await.unwrap().contains(&sku), "the sweeper visits a sale holding items");
}

#[tokio::test]
async fn a_cancel_releases_once_and_a_try_after_it_is_refused() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    let items = [item(4)];
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }));
    assert_eq!(store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap(), [CancelledItem::Released]);
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
    assert_eq!(store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap(), [CancelledItem::Closed], "repeated");
    assert_eq!(try_items(&store, &sku, &items).await, Tried::Cancelled(items[0].order_id));
    assert_eq!(counters(&store, &sku).await, (10, 0, 0), "no units for a cancelled cart");
}

#[tokio::test]
async fn an_empty_cancel_leaves_the_record_that_refuses_its_hanging_try() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    let items = [item(1), item(2)];
    // The Try was delayed (or lost) and the Cancel came first.
    let cancelled = store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap();
    assert_eq!(cancelled, [CancelledItem::Empty, CancelledItem::Empty]);
    assert_eq!(try_items(&store, &sku, &items).await, Tried::Cancelled(items[0].order_id), "the hanging Try");
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
    // A payment that came anyway is refunded, not taken.
    let refund = store.confirm(&sku, items[0].order_id, "pay_1", PRICE).await.unwrap();
    assert!(matches!(refund, Confirmation::Refund { .. }), "{refund:?}");
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
}

#[tokio::test]
async fn a_cancel_past_the_in_flight_window_leaves_the_units_to_the_confirm_deadline() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    let items = [item(2)];
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }));
    // A retry on another gateway may be accepting the cart by now.
    assert_eq!(store.tcc_cancel(&sku, &ids(&items), &LATER).await.unwrap(), [CancelledItem::TooLate]);
    assert_eq!(counters(&store, &sku).await, (8, 2, 0));
    // Never accepted: the sweeper cancels it at its confirm deadline.
    let redis_now = store.redis().now_ms().await.unwrap();
    assert_eq!(store.sweep(&sku, redis_now, 10).await.unwrap().cancelled, 0, "not before");
    assert_eq!(store.sweep(&sku, redis_now + 31_000, 10).await.unwrap().cancelled, 1);
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
    let outbox = store.outbox(&sku, 10).await.unwrap();
    assert!(outbox[0].starts_with(&format!("{}:unconfirmed:", items[0].order_id)), "{outbox:?}");
    assert!(!store.acknowledge_items(&sku, &ids(&items), redis_now + 900_000).await.unwrap(), "too late to accept");
}

#[tokio::test]
async fn an_accepted_cart_holds_to_its_payment_deadline_and_each_item_is_sold_once() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    let items = [item(1), item(2)];
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }));
    let redis_now = store.redis().now_ms().await.unwrap();
    assert!(store.acknowledge_items(&sku, &ids(&items), redis_now + 900_000).await.unwrap());
    assert_eq!(store.sweep(&sku, redis_now + 31_000, 10).await.unwrap().cancelled, 0, "past the confirm deadline");
    // Accepted, so announced: a Cancel (a late retry's, a coupon's takeover)
    // must not end it silently, however fresh its Try.
    let cancelled = store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap();
    assert_eq!(cancelled, [CancelledItem::TooLate, CancelledItem::TooLate]);
    assert_eq!(counters(&store, &sku).await, (7, 3, 0));
    for item in &items {
        let paid = store.confirm(&sku, item.order_id, "pay_1", item.amount_cents).await.unwrap();
        assert!(matches!(paid, Confirmation::Paid(_)), "{paid:?}");
        let again = store.confirm(&sku, item.order_id, "pay_1", item.amount_cents).await.unwrap();
        assert!(matches!(again, Confirmation::Duplicate { refund: false, .. }), "{again:?}");
    }
    assert_eq!(counters(&store, &sku).await, (7, 0, 3));
    let cancelled = store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap();
    assert_eq!(cancelled, [CancelledItem::Paid, CancelledItem::Paid], "a paid item is not cancelled");
    assert!(matches!(try_items(&store, &sku, &items).await, Tried::Held { .. }), "nor taken again");
    assert_eq!(counters(&store, &sku).await, (7, 0, 3));
}

#[tokio::test]
async fn a_try_takes_nothing_it_cannot_take_whole() {
    let store = store().await;
    let sku = sale(&store, 4).await;
    let items = [item(3), item(2)];
    assert_eq!(try_items(&store, &sku, &items).await, Tried::OutOfStock { stock_left: 4 });
    assert_eq!(counters(&store, &sku).await, (4, 0, 0));
    let over_limit = [item(4), item(4), item(3)];
    let big = sale(&store, 100).await;
    assert_eq!(try_items(&store, &big, &over_limit).await, Tried::LimitExceeded);
    assert_eq!(try_items(&store, &unique("nothing"), &[item(1)]).await, Tried::UnknownSku);

    // An operator changed the price after the cart was priced.
    let change = stock::SaleChange { price_cents: Some(2_499), ..Default::default() };
    store.update_sale(&sku, &change).await.unwrap();
    assert_eq!(try_items(&store, &sku, &[item(1)]).await, Tried::PriceChanged { price_cents: 2_499 });
    assert_eq!(counters(&store, &sku).await, (4, 0, 0));
}

#[tokio::test]
async fn a_payment_for_an_item_not_held_yet_ends_it() {
    let store = store().await;
    let sku = sale(&store, 10).await;
    let items = [item(1)];
    // Paid before its Try: the payment is kept to refund...
    assert_eq!(store.confirm(&sku, items[0].order_id, "pay_1", PRICE).await.unwrap(), Confirmation::Orphan);
    // ...and the Try that follows takes nothing for it.
    assert_eq!(try_items(&store, &sku, &items).await, Tried::Cancelled(items[0].order_id));
    assert_eq!(store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap(), [CancelledItem::Empty]);
    assert_eq!(counters(&store, &sku).await, (10, 0, 0));
}

#[tokio::test]
async fn a_regional_sales_try_holds_the_items_in_the_warehouse_chosen_or_is_refused() {
    let store = store().await;
    let sku = unique("tcc_regional");
    let warehouses = vec![
        WarehouseUnits { warehouse: "east".into(), units: 3 },
        WarehouseUnits { warehouse: "west".into(), units: 1 },
    ];
    let terms = SaleTerms { stock: 4, per_user_limit: 10, price_cents: PRICE, warehouses, ..Default::default() };
    store.load_sale(&sku, &terms).await.unwrap();
    assert_eq!(store.warehouse_for(&sku, "west,east", 2).await.unwrap(), WarehouseChoice::Warehouse("east".into()));
    assert_eq!(store.warehouse_for(&sku, "west", 2).await.unwrap(), WarehouseChoice::NoneAble);
    assert_eq!(store.warehouse_for(&sku, ANY_WAREHOUSE, 1).await.unwrap(), WarehouseChoice::Warehouse("east".into()));

    // Priced before the sale was split: refused, nothing taken.
    assert_eq!(try_items(&store, &sku, &[item(1)]).await, Tried::Regional);
    // Short of units where chosen: refused, though another has them.
    assert_eq!(try_in(&store, &sku, Some("west"), &[item(2)]).await, Tried::NoWarehouse);
    let items = [item(1), item(1)];
    assert!(matches!(try_in(&store, &sku, Some("east"), &items).await, Tried::Held { .. }));
    let east = |status: &stock::SaleStatus| {
        let east = status.warehouses.iter().find(|w| w.warehouse == "east").unwrap();
        (east.stock, east.reserved)
    };
    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((east(&status), status.stock, status.reserved), ((1, 2), 2, 2));
    let reservation = store.reservation(&sku, items[0].order_id).await.unwrap().unwrap();
    assert_eq!(reservation.warehouse.as_deref(), Some("east"));

    // Cancelled: back where they came from.
    store.tcc_cancel(&sku, &ids(&items), &WINDOWS).await.unwrap();
    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((east(&status), status.stock, status.reserved), ((3, 0), 4, 0));
    // A closed warehouse takes no cart.
    store.change_warehouse(&sku, &WarehouseChange::Close { warehouse: "east".into() }).await.unwrap();
    assert_eq!(try_in(&store, &sku, Some("east"), &[item(1)]).await, Tried::NoWarehouse);
}
