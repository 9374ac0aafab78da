//! Regional stock end to end: a sale split over warehouses, orders naming
//! the buyer's region placed by the scheduling rules, the warehouse
//! recorded on the order in MySQL, the operator's warehouse changes. Real
//! Redis, broker and MariaDB.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fred::prelude::*;
use hyper::{Method, StatusCode};
use order::scheduling::SchedulingRules;
use serde_json::{json, Value};
use support::*;

/// Shanghai serves the east in 12 h and the north in 36 h; Beijing the
/// north in 12 h; Guangzhou the south in 12 h, the east in 60 h (past the
/// 48 h promised).
fn rules() -> SchedulingRules {
    let hours = |pairs: &[(&str, u32)]| pairs.iter().map(|(region, h)| (region.to_string(), *h)).collect();
    SchedulingRules {
        promised_hours: 48,
        delivery_hours: BTreeMap::from([
            ("shanghai".to_string(), hours(&[("east", 12), ("north", 36)])),
            ("beijing".to_string(), hours(&[("north", 12)])),
            ("guangzhou".to_string(), hours(&[("south", 12), ("east", 60)])),
        ]),
    }
}

async fn order(gateway: &TestGateway, user: u64, sku: &str, region: &str) -> Answer {
    let body = json!({"user_id": user, "sku": sku, "qty": 1, "region": region}).to_string();
    let key = format!("buy-{user}");
    let headers = [("content-type", "application/json"), ("idempotency-key", key.as_str())];
    gateway.request(Method::POST, "/v1/orders", &headers, body).await
}

/// A gateway with [`rules`] (and the test payment secret), its settler,
/// on a topic and shards of their own.
struct Stack {
    topic: String,
    shards: Vec<String>,
    gateway: TestGateway,
    settler: TestSettler,
}

impl Stack {
    async fn start() -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let mut config = gateway_config(&topic, &shards);
        config.scheduling = rules();
        payment_channel(&mut config, "http://127.0.0.1:9700");
        let gateway = TestGateway::start(config).await;
        let settler = TestSettler::start(settler_config(&topic, &shards));
        Self { topic, shards, gateway, settler }
    }

    /// A sale of `sku` split over `split` (warehouse, units), one unit per buyer.
    async fn load(&self, sku: &str, split: &[(&str, i64)]) {
        let warehouses: Vec<Value> =
            split.iter().map(|(warehouse, units)| json!({"warehouse": warehouse, "units": units})).collect();
        let stock: i64 = split.iter().map(|(_, units)| units).sum();
        let terms = json!({"stock": stock, "per_user_limit": 1, "price_cents": 500, "warehouses": warehouses});
        let loaded = self.gateway.admin(Method::PUT, &format!("/admin/skus/{sku}"), terms.to_string()).await;
        assert_eq!(loaded.status, StatusCode::OK, "{}", loaded.json);
    }

    /// The order's status and warehouse in MySQL once `done` says so.
    async fn stored(&self, order_id: &str, user: u64, done: &str) -> Option<String> {
        let shards = pools(&self.shards);
        let id: i64 = order_id.parse().unwrap();
        let (_, warehouse) = eventually(Duration::from_secs(30), &format!("order {order_id} {done}"), || async {
            let pool = &shards.pools[shards.router.shard_for_user(user)];
            sqlx::query_as::<_, (String, Option<String>)>("SELECT status, warehouse FROM orders WHERE order_id = ?")
                .bind(id)
                .fetch_optional(pool)
                .await
                .unwrap()
                .filter(|(status, _)| status == done)
        })
        .await;
        shards.close().await;
        warehouse
    }

    async fn stop(self) {
        self.settler.stop().await;
        drop_shards(&self.shards).await;
    }
}

fn warehouse<'a>(sale: &'a Value, name: &str) -> &'a Value {
    sale["warehouses"].as_array().unwrap().iter().find(|w| w["warehouse"] == name).unwrap()
}

#[tokio::test]
async fn orders_are_placed_in_the_nearest_warehouse_with_units_and_stored_with_it() {
    let stack = Stack::start().await;
    let gateway = &stack.gateway;
    let sku = unique("regional");
    stack.load(&sku, &[("shanghai", 1), ("beijing", 2)]).await;
    let unbalanced =
        json!({"stock": 4, "per_user_limit": 1, "price_cents": 5, "warehouses": [{"warehouse": "a", "units": 1}]});
    let refused = gateway.admin(Method::PUT, &format!("/admin/skus/{sku}_x"), unbalanced.to_string()).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.json);

    // North: Beijing first. East: Shanghai, then nobody within the promise.
    let north = order(gateway, 1, &sku, "north").await;
    assert_eq!(north.status, StatusCode::ACCEPTED, "{}", north.json);
    assert_eq!(north.json["warehouse"], "beijing");
    let east = order(gateway, 2, &sku, "east").await;
    assert_eq!(east.json["warehouse"], "shanghai", "{}", east.json);
    let east_again = order(gateway, 3, &sku, "east").await;
    assert_eq!((east_again.status, &east_again.json["error"]), (StatusCode::CONFLICT, &json!("no_warehouse")));
    let south = order(gateway, 4, &sku, "south").await;
    assert_eq!(south.json["error"], "no_warehouse", "Guangzhou holds none of this sale");
    let bad = order(gateway, 5, &sku, "no where").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The operator closes Beijing: the north is served by Shanghai, which
    // has none left; moving a unit there serves the next northern buyer.
    let change = |body: Value| {
        let path = format!("/admin/skus/{sku}/warehouses");
        async move { gateway.admin(Method::POST, &path, body.to_string()).await }
    };
    let closed = change(json!({"action": "close", "warehouse": "beijing"})).await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.json);
    assert_eq!(warehouse(&closed.json["sale"], "beijing")["closed"], true);
    assert_eq!(order(gateway, 6, &sku, "north").await.json["error"], "no_warehouse");
    let moved = change(json!({"action": "move", "warehouse": "beijing", "to": "shanghai", "units": 1})).await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.json);
    assert_eq!((moved.json["sale"]["total"].as_i64(), moved.json["sale"]["stock"].as_i64()), (Some(3), Some(1)));
    assert_eq!(order(gateway, 7, &sku, "north").await.json["warehouse"], "shanghai");
    let unknown = change(json!({"action": "close", "warehouse": "lhasa"})).await;
    assert_eq!((unknown.status, &unknown.json["error"]), (StatusCode::NOT_FOUND, &json!("unknown_warehouse")));
    let add = gateway.admin(Method::PATCH, &format!("/admin/skus/{sku}"), json!({"add_units": 1}).to_string()).await;
    assert_eq!((add.status, &add.json["error"]), (StatusCode::CONFLICT, &json!("warehouse_required")));

    for (answer, user, want) in [(&north, 1, "beijing"), (&east, 2, "shanghai")] {
        let order_id = answer.json["order_id"].as_str().unwrap();
        assert_eq!(stack.stored(order_id, user, "PENDING_PAYMENT").await.as_deref(), Some(want));
    }
    stack.stop().await;
}

/// The buyer moves a pending order to another region: its units follow it
/// to the warehouse serving that region, its payment sells them there, and
/// MySQL records where it ended.
#[tokio::test]
async fn an_address_change_moves_a_pending_order_and_its_payment_sells_it_there() {
    let stack = Stack::start().await;
    let gateway = &stack.gateway;
    let sku = unique("readdress");
    stack.load(&sku, &[("shanghai", 2), ("beijing", 2)]).await;
    let placed = order(gateway, 1, &sku, "east").await;
    assert_eq!(placed.json["warehouse"], "shanghai", "{}", placed.json);
    let order_id = placed.json["order_id"].as_str().unwrap().to_owned();
    let readdress = |region: &str| {
        let body = json!({"user_id": 1, "sku": sku, "region": region}).to_string();
        let path = format!("/v1/orders/{order_id}/address");
        async move { gateway.request(Method::POST, &path, &[("content-type", "application/json")], body).await }
    };

    let moved = readdress("north").await;
    assert_eq!((moved.status, &moved.json["warehouse"]), (StatusCode::OK, &json!("beijing")), "{}", moved.json);
    let wrong_sku = json!({"user_id": 1, "sku": format!("{sku}_other"), "region": "north"}).to_string();
    let path = format!("/v1/orders/{order_id}/address");
    let other = gateway.request(Method::POST, &path, &[("content-type", "application/json")], wrong_sku).await;
    assert_eq!((other.status, &other.json["error"]), (StatusCode::NOT_FOUND, &json!("unknown_order")));
    // Another buyer (their own token) cannot move it: unknown to them.
    let someone_else = json!({"user_id": 2, "sku": sku, "region": "east"}).to_string();
    let stolen = gateway.request(Method::POST, &path, &[("content-type", "application/json")], someone_else).await;
    assert_eq!((stolen.status, &stolen.json["error"]), (StatusCode::NOT_FOUND, &json!("unknown_order")));
    let nowhere = readdress("south").await;
    assert_eq!((nowhere.status, &nowhere.json["error"]), (StatusCode::CONFLICT, &json!("no_warehouse")));
    let sale = gateway.sale(&sku).await;
    assert_eq!(warehouse(&sale, "beijing")["reserved"], 1, "{sale}");
    assert_eq!(warehouse(&sale, "shanghai")["reserved"], 0, "{sale}");

    let paid = json!({
        "payment_id": "pay_readdress", "merchant_order_id": order_id, "attach": sku,
        "amount_cents": 500, "status": "SUCCESS", "paid_at": "2026-12-07T12:00:00Z"
    });
    let bytes = serde_json::to_vec(&paid).unwrap();
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), &bytes);
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    assert_eq!(gateway.request(Method::POST, "/v1/payments/notify", &headers, bytes).await.status, StatusCode::OK);
    let late = readdress("east").await;
    assert_eq!((late.status, &late.json["error"]), (StatusCode::CONFLICT, &json!("order_not_pending")));
    let sale = gateway.sale(&sku).await;
    assert_eq!(
        (warehouse(&sale, "beijing")["sold"].as_i64(), warehouse(&sale, "shanghai")["stock"].as_i64()),
        (Some(1), Some(2))
    );

    assert_eq!(stack.stored(&order_id, 1, "PAID").await.as_deref(), Some("beijing"));

    // A Redis failover lost the payment's counts, in the sale and in
    // Beijing: reconcile repairs them from MySQL, warehouse by warehouse.
    let before = gateway.sale(&sku).await;
    let redis = Builder::from_config(Config::from_url(&redis_url()).unwrap()).build().unwrap();
    redis.init().await.unwrap();
    let lost = [("stock", 4), ("sold", 0), ("wh:beijing:stock", 2), ("wh:beijing:sold", 0)];
    let () = redis.hset(format!("{}sale:{{{sku}}}", namespace(&stack.topic)), lost.to_vec()).await.unwrap();
    let store = stock::SaleStore::connect(&settler_config(&stack.topic, &stack.shards).redis).unwrap();
    assert!(store.redis().wait_connected(Duration::from_secs(5)).await);
    let shards = pools(&stack.shards);
    let repaired = settler::reconcile::reconcile(&shards, &store, &sku, true).await.unwrap();
    assert!(repaired.repaired, "{repaired:?}");
    assert_eq!(gateway.sale(&sku).await, before, "every warehouse's counts as MySQL and the reservations say");
    shards.close().await;
    stack.stop().await;
}

#[tokio::test]
async fn a_carts_regional_line_ships_from_the_warehouse_its_region_is_served_from() {
    let stack = Stack::start().await;
    let gateway = &stack.gateway;
    let (tv, lamp) = (unique("cart_regional"), unique("cart_pool"));
    stack.load(&tv, &[("shanghai", 1), ("beijing", 2)]).await;
    gateway.load_sale(&lamp, 10, 5, 300).await;
    let checkout = |user: u64, region: &str, key: &str| {
        let body = json!({"lines": [{"sku": tv, "qty": 1}, {"sku": lamp, "qty": 1}], "region": region});
        let auth = format!("Bearer {}", buyer_token(user));
        let key = key.to_owned();
        async move {
            let headers = [
                ("content-type", "application/json"),
                ("idempotency-key", key.as_str()),
                ("authorization", auth.as_str()),
            ];
            gateway.request(Method::POST, "/v1/checkout", &headers, body.to_string()).await
        }
    };

    // North: Beijing. The lamp's sale is in one pool: its package records none.
    let north = checkout(1, "north", "cart-1").await;
    assert_eq!(north.status, StatusCode::CREATED, "{}", north.json);
    let items: Vec<(String, String, Value)> = north.json["sub_orders"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|sub| {
            sub["items"].as_array().unwrap().iter().map(move |item| {
                (item["sku"].as_str().unwrap().to_owned(), sub["warehouse"].as_str().unwrap().to_owned(), item.clone())
            })
        })
        .collect();
    let (_, tv_package, tv_item) = items.iter().find(|(sku, _, _)| *sku == tv).unwrap();
    assert_eq!((tv_package.as_str(), &tv_item["warehouse"]), ("beijing", &json!("beijing")));
    assert!(items.iter().any(|(sku, _, item)| *sku == lamp && item.get("warehouse").is_none()));
    let sale = gateway.sale(&tv).await;
    assert_eq!(warehouse(&sale, "beijing")["reserved"], 1, "{sale}");
    let tv_order = tv_item["order_id"].as_str().unwrap();
    assert_eq!(stack.stored(tv_order, 1, "PENDING_PAYMENT").await.as_deref(), Some("beijing"));

    // An item does not move on its own.
    let body = json!({"sku": tv, "region": "east"}).to_string();
    let auth = format!("Bearer {}", buyer_token(1));
    let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
    let moved = gateway.request(Method::POST, &format!("/v1/orders/{tv_order}/address"), &headers, body).await;
    assert_eq!((moved.status, &moved.json["error"]), (StatusCode::CONFLICT, &json!("cart_item")), "{}", moved.json);

    // East: Shanghai's one unit; then none serving the east has it, while
    // the north is still served.
    let east = checkout(2, "east", "cart-2").await;
    assert_eq!(east.status, StatusCode::CREATED, "{}", east.json);
    let refused = checkout(3, "east", "cart-3").await;
    assert_eq!(
        (refused.status, &refused.json["error"], &refused.json["sku"]),
        (StatusCode::CONFLICT, &json!("no_warehouse"), &json!(tv))
    );
    assert_eq!(checkout(4, "north", "cart-4").await.status, StatusCode::CREATED);
    let sale = gateway.sale(&tv).await;
    let counts = |name: &str| (warehouse(&sale, name)["stock"].as_i64(), warehouse(&sale, name)["reserved"].as_i64());
    assert_eq!((counts("shanghai"), counts("beijing")), ((Some(0), Some(1)), (Some(0), Some(2))));
    assert_eq!(gateway.sale(&lamp).await["reserved"], 3, "the refused cart holds nothing");
    stack.stop().await;
}
