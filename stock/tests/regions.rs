//! Regional stock against a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379): a sale split over warehouses, each order placed in the
//! first warehouse serving the buyer that has the units, every warehouse's
//! counts adding up as the sale's do; each test on a namespace of its own.

use std::sync::Arc;

use order::id::{IdGenerator, OrderId};
use order::sale::Deduction;
use order::shard::bucket_for_user;
use stock::{
    Cancellation, ConfirmWindows, Confirmation, Readdressed, RedisConfig, Repair, Reservation, ReserveRequest,
    SaleStatus, SaleStore, SaleTerms, SaleUpdate, WarehouseChange, WarehouseChanged, WarehouseUnits,
};

const NOW: i64 = 1_790_000_000_000;
const PAY_BY: i64 = NOW + 900_000;
const PRICE: i64 = 100;

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn store() -> SaleStore {
    store_in(&format!("test_regions_{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff)).await
}

async fn store_in(namespace: &str) -> SaleStore {
    let url = redis_url();
    let config = RedisConfig { url: url.clone(), namespace: namespace.into(), ..RedisConfig::default() };
    let store = SaleStore::connect(&config).unwrap();
    assert!(store.redis().wait_connected(std::time::Duration::from_secs(5)).await, "redis at {url}");
    store
}

/// A sale split over `split` (warehouse, units), one unit per buyer (at
/// payment, with two open orders per unit).
async fn sale(store: &SaleStore, split: &[(&str, i64)], deduction: Deduction) -> String {
    let sku = format!("reg_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let warehouses: Vec<WarehouseUnits> = split
        .iter()
        .map(|(warehouse, units)| WarehouseUnits { warehouse: (*warehouse).into(), units: *units })
        .collect();
    let terms = SaleTerms {
        stock: split.iter().map(|(_, units)| units).sum(),
        per_user_limit: 1,
        price_cents: PRICE,
        deduction,
        open_orders_cap_pct: (deduction == Deduction::OnPayment).then_some(200),
        warehouses,
        ..Default::default()
    };
    store.load_sale(&sku, &terms).await.unwrap();
    sku
}

fn order_id(user: u64) -> OrderId {
    static IDS: std::sync::OnceLock<IdGenerator> = std::sync::OnceLock::new();
    IDS.get_or_init(|| IdGenerator::new(0).unwrap()).next(bucket_for_user(user), NOW)
}

/// An order of one unit for `user` under `key`, served by `warehouses`
/// (best first, comma-separated).
fn request<'a>(sku: &'a str, key: &'a str, user: u64, warehouses: &'a str) -> ReserveRequest<'a> {
    ReserveRequest {
        sku: sku.into(),
        idempotency_key: key.into(),
        user_id: user,
        qty: 1,
        order_id: order_id(user),
        now_ms: NOW,
        pay_by_ms: PAY_BY,
        idempotency_ttl_secs: 60,
        confirm_windows: ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 },
        warehouses: warehouses.into(),
        channel_share: None,
    }
}

/// One order of one unit for `user`, served by `warehouses`, acknowledged:
/// its id and warehouse, or the refusal.
async fn place(store: &SaleStore, sku: &str, user: u64, warehouses: &str) -> Result<(OrderId, String), Reservation> {
    let id = order_id(user);
    let key = format!("key-{id}");
    let request = ReserveRequest { order_id: id, ..request(sku, &key, user, warehouses) };
    let outcome = store.reserve(&request).await.unwrap();
    let Reservation::Reserved { warehouse: Some(warehouse), .. } = outcome else {
        return Err(outcome);
    };
    assert!(store.acknowledge(sku, &key, id, PAY_BY).await.unwrap());
    Ok((id, warehouse))
}

/// The sale's counts, checked: each warehouse's add up, and they sum to the sale's.
async fn status(store: &SaleStore, sku: &str) -> SaleStatus {
    let status = store.sale_status(sku).await.unwrap().unwrap();
    assert!(status.units().add_up(), "{status:?}");
    let mut sum = stock::Units { stock: 0, reserved: 0, sold: 0, total: 0, open: 0 };
    for warehouse in &status.warehouses {
        let units = warehouse.units();
        assert!(units.add_up(), "{warehouse:?}");
        sum = stock::Units {
            stock: sum.stock + units.stock,
            reserved: sum.reserved + units.reserved,
            sold: sum.sold + units.sold,
            total: sum.total + units.total,
            open: sum.open + units.open,
        };
    }
    assert_eq!(sum, status.units(), "the warehouses' counts are the sale's");
    status
}

/// (stock, reserved, sold) of one warehouse.
fn counts(status: &SaleStatus, warehouse: &str) -> (i64, i64, i64) {
    let found = status.warehouses.iter().find(|w| w.warehouse == warehouse).unwrap();
    (found.stock, found.reserved, found.sold)
}

/// East buyers are served by the east warehouse, then the west one; west
/// buyers by the west one only. Racing, on the multi-threaded runtime: no
/// warehouse oversold, east buyers take the west's units once theirs are
/// gone, and west buyers are refused once the west warehouse is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_racing_over_two_warehouses_are_served_by_rule_and_never_oversold() {
    let store = Arc::new(store().await);
    let sku = Arc::new(sale(&store, &[("east", 5), ("west", 5)], Deduction::OnOrder).await);
    let buyers: Vec<_> = (1..=60u64)
        .map(|user| {
            let (store, sku) = (store.clone(), sku.clone());
            let serving = if user % 2 == 0 { "east,west" } else { "west" };
            tokio::spawn(async move { (serving, place(&store, &sku, user, serving).await) })
        })
        .collect();
    let mut placed = Vec::new();
    for buyer in buyers {
        let (serving, outcome) = buyer.await.unwrap();
        match outcome {
            Ok((_, warehouse)) => {
                assert!(serving.contains(warehouse.as_str()), "{warehouse} does not serve {serving}");
                placed.push(warehouse);
            }
            Err(Reservation::OutOfStock { stock_left: 0 } | Reservation::RegionSoldOut { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(placed.len(), 10, "every unit sold, none twice");
    let after = status(&store, &sku).await;
    assert_eq!((counts(&after, "east"), counts(&after, "west")), ((0, 5, 0), (0, 5, 0)));
}

#[tokio::test]
async fn a_region_whose_warehouses_are_empty_is_refused_while_others_sell() {
    let store = store().await;
    let sku = sale(&store, &[("east", 1), ("west", 2)], Deduction::OnOrder).await;
    assert_eq!(place(&store, &sku, 1, "east").await.unwrap().1, "east");
    assert_eq!(place(&store, &sku, 2, "east").await, Err(Reservation::RegionSoldOut { stock_left: 2 }));
    assert_eq!(place(&store, &sku, 3, "north").await, Err(Reservation::NoWarehouse), "no warehouse of the sale");
    assert_eq!(place(&store, &sku, 4, "").await, Err(Reservation::NoWarehouse), "a region nobody serves");
    assert_eq!(place(&store, &sku, 5, "*").await.unwrap().1, "west", "no region: any warehouse");
}

/// Closing a warehouse mid-sale: new orders go to the next one serving the
/// buyer; its reservations are paid and released there as before.
#[tokio::test]
async fn a_closed_warehouse_takes_no_new_order_and_keeps_its_reservations() {
    let store = store().await;
    let sku = sale(&store, &[("east", 3), ("west", 3)], Deduction::OnOrder).await;
    let (paid, _) = place(&store, &sku, 1, "east,west").await.unwrap();
    let (cancelled, _) = place(&store, &sku, 2, "east,west").await.unwrap();
    let close = WarehouseChange::Close { warehouse: "east".into() };
    assert_eq!(store.change_warehouse(&sku, &close).await.unwrap(), WarehouseChanged::Done { stock: 1 });
    assert_eq!(place(&store, &sku, 3, "east,west").await.unwrap().1, "west");
    assert_eq!(place(&store, &sku, 4, "east").await, Err(Reservation::NoWarehouse));
    assert!(status(&store, &sku).await.warehouses[0].closed);

    assert!(matches!(store.confirm(&sku, paid, "pay", PRICE).await.unwrap(), Confirmation::Paid(_)));
    assert!(matches!(store.cancel(&sku, cancelled, 2).await.unwrap(), Cancellation::Cancelled { .. }));
    let after = status(&store, &sku).await;
    assert_eq!((counts(&after, "east"), counts(&after, "west")), ((2, 0, 1), (2, 1, 0)));

    let open = WarehouseChange::Open { warehouse: "east".into() };
    store.change_warehouse(&sku, &open).await.unwrap();
    assert_eq!(place(&store, &sku, 5, "east").await.unwrap().1, "east");
}

/// Units moved between warehouses never change the sale's counts; only
/// units for sale move, and a warehouse takes added units, the sale not.
#[tokio::test]
async fn moving_units_between_warehouses_keeps_the_sales_total() {
    let store = store().await;
    let sku = sale(&store, &[("east", 2), ("west", 0)], Deduction::OnOrder).await;
    place(&store, &sku, 1, "east").await.unwrap();
    let before = status(&store, &sku).await.units();
    let too_many = WarehouseChange::Move { warehouse: "east".into(), to: "west".into(), units: 2 };
    assert_eq!(store.change_warehouse(&sku, &too_many).await.unwrap(), WarehouseChanged::TooFewUnits { stock: 1 });
    let one = WarehouseChange::Move { warehouse: "east".into(), to: "west".into(), units: 1 };
    assert_eq!(store.change_warehouse(&sku, &one).await.unwrap(), WarehouseChanged::Done { stock: 0 });
    let moved = status(&store, &sku).await;
    assert_eq!(moved.units(), before, "the sale's counts do not move");
    assert_eq!((counts(&moved, "east"), counts(&moved, "west")), ((0, 1, 0), (1, 0, 0)));
    assert_eq!(place(&store, &sku, 2, "east,west").await.unwrap().1, "west");

    let unknown = WarehouseChange::Move { warehouse: "east".into(), to: "north".into(), units: 1 };
    assert_eq!(
        store.change_warehouse(&sku, &unknown).await.unwrap(),
        WarehouseChanged::UnknownWarehouse("north".into())
    );
    let add = WarehouseChange::Add { warehouse: "east".into(), units: 4 };
    assert_eq!(store.change_warehouse(&sku, &add).await.unwrap(), WarehouseChanged::Done { stock: 4 });
    assert_eq!(status(&store, &sku).await.total, 6);
    let change = stock::SaleChange { add_units: Some(1), ..Default::default() };
    assert_eq!(store.update_sale(&sku, &change).await.unwrap(), SaleUpdate::WarehouseRequired);
}

/// Deducting at payment, a payment takes its units from the order's
/// warehouse; one that finds that warehouse empty is refunded, though
/// another has units.
#[tokio::test]
async fn a_payment_at_payment_takes_units_from_its_orders_warehouse() {
    let store = store().await;
    let sku = sale(&store, &[("east", 1), ("west", 1)], Deduction::OnPayment).await;
    let (first, _) = place(&store, &sku, 1, "east").await.unwrap();
    let (second, _) = place(&store, &sku, 2, "east").await.unwrap();
    assert!(matches!(store.confirm(&sku, first, "pay_1", PRICE).await.unwrap(), Confirmation::Paid(_)));
    let late = store.confirm(&sku, second, "pay_2", PRICE).await.unwrap();
    assert!(matches!(late, Confirmation::SoldOut { .. }), "{late:?}");
    let after = status(&store, &sku).await;
    assert_eq!((counts(&after, "east"), counts(&after, "west")), ((0, 0, 1), (1, 0, 0)));
    assert_eq!(after.open, 0);
}

/// A paid order cancelled before it ships gives its units back to the
/// warehouse they came from (the order carries it, from its reservation).
#[tokio::test]
async fn a_returned_orders_units_go_back_to_its_warehouse() {
    let store = store().await;
    let sku = sale(&store, &[("east", 1), ("west", 1)], Deduction::OnOrder).await;
    let (id, _) = place(&store, &sku, 1, "west").await.unwrap();
    let Confirmation::Paid(reservation) = store.confirm(&sku, id, "pay", PRICE).await.unwrap() else {
        panic!("not paid");
    };
    let order = reservation.order(id, &sku);
    assert_eq!(order.warehouse.as_deref(), Some("west"));
    store.return_units(&order, true).await.unwrap();
    let after = status(&store, &sku).await;
    assert_eq!((counts(&after, "east"), counts(&after, "west")), ((1, 0, 0), (1, 0, 0)));
}

/// A buyer's new region runs the scheduling again: the order stays where
/// it is when that still serves first, moves with its units to the first
/// able warehouse otherwise, and is refused (staying put) when none can.
#[tokio::test]
async fn an_address_change_moves_the_order_with_its_units_or_is_refused() {
    let store = store().await;
    let sku = sale(&store, &[("east", 2), ("west", 1)], Deduction::OnOrder).await;
    let (id, _) = place(&store, &sku, 1, "east").await.unwrap();
    assert_eq!(store.readdress(&sku, id, 1, "east,west").await.unwrap(), Readdressed::Kept(Some("east".into())));
    assert_eq!(store.readdress(&sku, id, 2, "west").await.unwrap(), Readdressed::NotFound, "another buyer's");
    assert_eq!(store.readdress(&sku, id, 1, "north").await.unwrap(), Readdressed::NoWarehouse);
    assert_eq!(store.readdress(&sku, id, 1, "west,east").await.unwrap(), Readdressed::Moved("west".into()));
    let moved = status(&store, &sku).await;
    assert_eq!((counts(&moved, "east"), counts(&moved, "west")), ((2, 0, 0), (0, 1, 0)));
    let reservation = store.reservation(&sku, id).await.unwrap().unwrap();
    assert_eq!(reservation.warehouse.as_deref(), Some("west"));
    // A stalled request's late acknowledgement keeps the record as it is now.
    let key = format!("key-{id}");
    assert!(store.acknowledge(&sku, &key, id, PAY_BY).await.unwrap());
    let repeat = request(&sku, &key, 1, "east");
    let Reservation::Duplicate(record) = store.reserve(&repeat).await.unwrap() else { panic!("not a repeat") };
    assert_eq!(
        (record.acknowledged, record.warehouse.as_deref()),
        (true, Some("west")),
        "a repeat answers where it is"
    );

    // West is full now: another order there cannot follow its buyer.
    let (other, _) = place(&store, &sku, 2, "east").await.unwrap();
    assert_eq!(store.readdress(&sku, other, 2, "west").await.unwrap(), Readdressed::NoWarehouse);
    assert!(matches!(store.cancel(&sku, id, 1).await.unwrap(), Cancellation::Cancelled { .. }));
    let after = status(&store, &sku).await;
    assert_eq!((counts(&after, "east"), counts(&after, "west")), ((1, 1, 0), (1, 0, 0)), "released where it was");
    assert_eq!(store.readdress(&sku, id, 1, "east").await.unwrap(), Readdressed::NotPending { paid: false });
    assert_eq!(store.readdress(&sku, id, 2, "east").await.unwrap(), Readdressed::NotFound);
}

/// Payments and address changes racing, on the multi-threaded runtime:
/// each order is paid from the warehouse it is in when the payment lands,
/// once, and every warehouse's counts still add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_address_change_racing_a_payment_moves_or_sells_each_unit_once() {
    let store = Arc::new(store().await);
    let sku = Arc::new(sale(&store, &[("east", 20), ("west", 20)], Deduction::OnOrder).await);
    let mut orders = Vec::new();
    for user in 1..=20 {
        orders.push((user, place(&store, &sku, user, "east").await.unwrap().0));
    }
    let races: Vec<_> = orders
        .into_iter()
        .map(|(user, id)| {
            let (store, sku) = (store.clone(), sku.clone());
            tokio::spawn(async move {
                let payment_id = format!("pay_{id}");
                let (paid, moved) =
                    tokio::join!(store.confirm(&sku, id, &payment_id, PRICE), store.readdress(&sku, id, user, "west"));
                let Confirmation::Paid(reservation) = paid.unwrap() else { panic!("not paid") };
                (reservation.warehouse.unwrap(), moved.unwrap())
            })
        })
        .collect();
    let (mut sold_east, mut sold_west) = (0, 0);
    for race in races {
        match race.await.unwrap() {
            (warehouse, Readdressed::NotPending { paid: true }) if warehouse == "east" => sold_east += 1,
            (warehouse, Readdressed::Moved(to)) if warehouse == "west" && to == "west" => sold_west += 1,
            other => panic!("paid and moved disagree: {other:?}"),
        }
    }
    let after = status(&store, &sku).await;
    assert_eq!(
        (counts(&after, "east"), counts(&after, "west")),
        ((20 - sold_east, 0, sold_east), (20 - sold_west, 0, sold_west))
    );
}

/// After a failover lost writes, a regional sale is repaired warehouse by
/// warehouse: sold units as MySQL counts them per warehouse, reserved as
/// the reservations held now name their warehouses.
#[tokio::test]
async fn a_regional_sale_is_repaired_warehouse_by_warehouse() {
    use fred::prelude::*;
    let namespace = format!("test_regions_{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff);
    let store = store_in(&namespace).await;
    let sku = sale(&store, &[("east", 5), ("west", 5)], Deduction::OnOrder).await;
    let (paid, _) = place(&store, &sku, 1, "east").await.unwrap();
    assert!(matches!(store.confirm(&sku, paid, "pay", PRICE).await.unwrap(), Confirmation::Paid(_)));
    place(&store, &sku, 2, "west").await.unwrap();
    place(&store, &sku, 3, "west").await.unwrap();
    let before = status(&store, &sku).await;

    // A failover lost the reservation of one of west's units, in the
    // sale's counts and in west's.
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    client.init().await.unwrap();
    let lost = [("stock", 8), ("reserved", 1), ("wh:west:stock", 4), ("wh:west:reserved", 1)];
    let () = client.hset(format!("{namespace}sale:{{{sku}}}"), lost.to_vec()).await.unwrap();

    let repaired = store.repair_counters(&sku, 1, &[("east".into(), 1)], &[]).await.unwrap();
    assert_eq!(repaired, Repair::Repaired(before.units()));
    let after = status(&store, &sku).await;
    assert_eq!(after, before, "every warehouse's counts as they were");
}
