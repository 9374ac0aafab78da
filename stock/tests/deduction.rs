//! A sale deducting at payment against a real Redis (`REDIS_URL`, default
//! 127.0.0.1:6379): its orders hold no unit, are capped at a share of the
//! stock, and a payment that finds the units gone is refunded; each test on
//! a namespace and SKU of its own.

use std::sync::Arc;

use order::event::CancelReason;
use order::id::{IdGenerator, OrderId};
use order::sale::Deduction;
use order::shard::bucket_for_user;
use stock::{
    Cancellation, ConfirmWindows, Confirmation, RedisConfig, Repair, Reservation, ReserveRequest, SaleStore, SaleTerms,
    Units,
};

const NOW: i64 = 1_790_000_000_000;
const PAY_BY: i64 = NOW + 900_000;
const PRICE: i64 = 500;

async fn store() -> SaleStore {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let namespace = format!("test_deduction_{:012x}:", rand::random::<u64>() & 0xffff_ffff_ffff);
    let store = SaleStore::connect(&RedisConfig { url: url.clone(), namespace, ..RedisConfig::default() }).unwrap();
    assert!(store.redis().wait_connected(std::time::Duration::from_secs(5)).await, "redis at {url}");
    store
}

/// A sale of `stock` units, one per buyer, deducting as `deduction` says.
async fn sale(store: &SaleStore, stock: i64, deduction: Deduction, open_orders_cap_pct: Option<u32>) -> String {
    let sku = format!("ded_{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
    let terms = SaleTerms {
        stock,
        per_user_limit: 1,
        price_cents: PRICE,
        deduction,
        open_orders_cap_pct,
        ..Default::default()
    };
    store.load_sale(&sku, &terms).await.unwrap();
    sku
}

/// Places one order of one unit for `user`, acknowledged as the gateway
/// does once the broker has it.
async fn place(store: &SaleStore, sku: &str, user: u64) -> Result<OrderId, Reservation> {
    place_saying_stock(store, sku, user).await.map(|(id, _)| id)
}

/// [`place`], with the stock the placement says is left.
async fn place_saying_stock(store: &SaleStore, sku: &str, user: u64) -> Result<(OrderId, i64), Reservation> {
    static IDS: std::sync::OnceLock<IdGenerator> = std::sync::OnceLock::new();
    let id = IDS.get_or_init(|| IdGenerator::new(0).unwrap()).next(bucket_for_user(user), NOW);
    let key = format!("key-{id}");
    let request = ReserveRequest {
        sku: sku.into(),
        idempotency_key: key.as_str().into(),
        user_id: user,
        qty: 1,
        order_id: id,
        now_ms: NOW,
        pay_by_ms: PAY_BY,
        idempotency_ttl_secs: 60,
        confirm_windows: ConfirmWindows { confirm_ms: 30_000, in_flight_ms: 7_000 },
        warehouses: stock::ANY_WAREHOUSE.into(),
        channel_share: None,
    };
    let outcome = store.reserve(&request).await.unwrap();
    let Reservation::Reserved { stock_left, .. } = outcome else {
        return Err(outcome);
    };
    assert!(store.acknowledge(sku, &key, id, PAY_BY).await.unwrap());
    Ok((id, stock_left))
}

async fn units(store: &SaleStore, sku: &str) -> Units {
    let units = store.sale_status(sku).await.unwrap().unwrap().units();
    assert!(units.add_up(), "{units:?}");
    units
}

fn counts(stock: i64, reserved: i64, sold: i64, open: i64) -> Units {
    Units { stock, reserved, sold, total: stock + reserved + sold, open }
}

#[tokio::test]
async fn an_order_at_payment_holds_no_unit_and_its_payment_takes_one_while_any_are_left() {
    let store = store().await;
    let sku = sale(&store, 2, Deduction::OnPayment, Some(150)).await;
    let status = store.sale_status(&sku).await.unwrap().unwrap();
    assert_eq!((status.deduction, status.open_orders_cap_pct), (Deduction::OnPayment, Some(150)));

    // Three open units on two in stock is the cap; the fourth order waits.
    let mut orders = Vec::new();
    for user in 1..=3 {
        let (order, stock_left) = place_saying_stock(&store, &sku, user).await.expect("under the cap");
        assert_eq!(stock_left, 2, "a gateway's sold-out mark reads what the placement says is left");
        orders.push(order);
    }
    assert_eq!(units(&store, &sku).await, counts(2, 0, 0, 3), "placing takes no unit");
    assert_eq!(place(&store, &sku, 4).await, Err(Reservation::Capped { stock_left: 2, open: 3 }));

    let paid = store.confirm(&sku, orders[0], "pay_1", PRICE).await.unwrap();
    assert!(matches!(paid, Confirmation::Paid(_)), "{paid:?}");
    assert_eq!(units(&store, &sku).await, counts(1, 0, 1, 2));
    let paid = store.confirm(&sku, orders[1], "pay_2", PRICE).await.unwrap();
    assert!(matches!(paid, Confirmation::Paid(_)), "{paid:?}");
    assert_eq!(units(&store, &sku).await, counts(0, 0, 2, 1));

    // The last payer finds the units gone: the order ends as sold out, its
    // cancellation joins the outbox, and the payment is to be refunded.
    let late = store.confirm(&sku, orders[2], "pay_3", PRICE).await.unwrap();
    let Confirmation::SoldOut { outbox_entry, reservation } = late else { panic!("not sold out: {late:?}") };
    assert_eq!((reservation.user_id, reservation.qty), (3, 1));
    assert_eq!(units(&store, &sku).await, counts(0, 0, 2, 0), "no stock below zero");
    assert_eq!(store.outbox(&sku, 10).await.unwrap(), vec![outbox_entry.clone()]);
    let cancelled = stock::records::parse_outbox_entry(&outbox_entry, &sku, NOW).unwrap();
    assert_eq!((cancelled.reason, cancelled.order.order_id), (CancelReason::SoldOut, orders[2]));
    let again = store.confirm(&sku, orders[2], "pay_3", PRICE).await.unwrap();
    assert!(matches!(again, Confirmation::Duplicate { refund: true, .. }), "{again:?}");
    assert_eq!(store.cancel(&sku, orders[2], 3).await.unwrap(), Cancellation::NotPending { paid: false });
    assert_eq!(place(&store, &sku, 5).await, Err(Reservation::OutOfStock { stock_left: 0 }));
}

#[tokio::test]
async fn orders_at_payment_that_end_unpaid_free_their_share_of_the_cap_and_no_unit() {
    let store = store().await;
    let sku = sale(&store, 2, Deduction::OnPayment, Some(100)).await;
    let first = place(&store, &sku, 1).await.unwrap();
    place(&store, &sku, 2).await.unwrap();
    assert_eq!(place(&store, &sku, 3).await, Err(Reservation::Capped { stock_left: 2, open: 2 }));

    assert!(matches!(store.cancel(&sku, first, 1).await.unwrap(), Cancellation::Cancelled { .. }));
    assert_eq!(units(&store, &sku).await, counts(2, 0, 0, 1));
    place(&store, &sku, 3).await.expect("the cancelled order's share is free");

    let swept = store.sweep(&sku, PAY_BY + 1, 100).await.unwrap();
    assert_eq!((swept.cancelled, swept.reservations_left), (2, 0));
    assert_eq!(units(&store, &sku).await, counts(2, 0, 0, 0), "expired orders give back no unit: they held none");
}

#[tokio::test]
async fn a_repair_counts_the_reservations_of_a_sale_at_payment_as_open() {
    let store = store().await;
    let sku = sale(&store, 10, Deduction::OnPayment, None).await;
    assert_eq!(store.sale_status(&sku).await.unwrap().unwrap().open_orders_cap_pct, Some(150), "the default cap");
    for user in 1..=3 {
        place(&store, &sku, user).await.unwrap();
    }
    let repaired = store.repair_counters(&sku, 4, &[], &[]).await.unwrap();
    assert_eq!(repaired, Repair::Repaired(counts(6, 0, 4, 3)));
}

/// Many buyers race to order, then all pay at once, on the multi-threaded
/// runtime: at payment no more units are sold than loaded, and every payer
/// is either sold a unit or refunded; at order no more orders are taken
/// than units, and every payer is sold one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_buyers_racing_a_sale_of_either_strategy_never_oversell_it() {
    const BUYERS: u64 = 200;
    const STOCK: i64 = 20;
    let store = Arc::new(store().await);
    for (deduction, cap, placed) in [(Deduction::OnOrder, None, 20), (Deduction::OnPayment, Some(150), 30)] {
        let sku = Arc::new(sale(&store, STOCK, deduction, cap).await);
        let buyers: Vec<_> = (1..=BUYERS)
            .map(|user| {
                let (store, sku) = (store.clone(), sku.clone());
                tokio::spawn(async move { place(&store, &sku, user).await.ok() })
            })
            .collect();
        let mut orders = Vec::new();
        for buyer in buyers {
            orders.extend(buyer.await.unwrap());
        }
        assert_eq!(orders.len(), placed, "{deduction:?}: orders taken");

        let payers: Vec<_> = orders
            .into_iter()
            .map(|order| {
                let (store, sku) = (store.clone(), sku.clone());
                tokio::spawn(async move { store.confirm(&sku, order, &format!("pay_{order}"), PRICE).await.unwrap() })
            })
            .collect();
        let (mut sold, mut refunded) = (0, 0);
        for payer in payers {
            match payer.await.unwrap() {
                Confirmation::Paid(_) => sold += 1,
                Confirmation::SoldOut { .. } => refunded += 1,
                other => panic!("{deduction:?}: unexpected {other:?}"),
            }
        }
        assert_eq!((sold, refunded), (STOCK, placed as i64 - STOCK), "{deduction:?}: sold and refunded");
        assert_eq!(units(&store, &sku).await, counts(0, 0, STOCK, 0), "{deduction:?}");
        assert_eq!(store.outbox(&sku, 100).await.unwrap().len() as i64, refunded, "each refund's order is cancelled");
    }
}
