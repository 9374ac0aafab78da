//! The order after payment, end to end: push, ship, receive, auto-complete;
//! cancellation after payment with and without the warehouse's
//! interception; every move of the API checked against the state machine's
//! table; races decided once. Real Redis, broker and MariaDB; the
//! simulator as the payment channel and the warehouse; the settler's
//! consumer and its lifecycle loop (outbox relay, auto-completion).

mod support;

use std::time::Duration;

use futures::future::join;
use hyper::{Method, StatusCode};
use order::lifecycle::{self, Action, Actor};
use order::status::OrderStatus;
use serde_json::{json, Value};
use support::*;
use tokio::sync::oneshot;

struct Stack {
    shards: Vec<String>,
    gateway: TestGateway,
    settler: TestSettler,
    lifecycle: (oneshot::Sender<()>, tokio::task::JoinHandle<()>),
    paysim: String,
    sku: String,
}

impl Stack {
    /// A stack whose shipped orders complete on their own after `auto_complete_after`.
    async fn start(auto_complete_after: Duration) -> Self {
        Self::start_configured(auto_complete_after, 10, Duration::from_secs(3_600), |_| {}).await
    }

    /// Refunds are asked about every 300 ms, `max_attempts` times before
    /// they are stuck; after-sale requests not reviewed within `review_within` are approved.
    async fn start_configured(
        auto_complete_after: Duration,
        max_attempts: u32,
        review_within: Duration,
        tweak: impl FnOnce(&mut gateway::config::Config),
    ) -> Self {
        let topic = fresh_topic(2).await;
        let shards = fresh_shards(2).await;
        let paysim = start_paysim().await;
        let mut config = gateway_config(&topic, &shards);
        payment_channel(&mut config, &paysim);
        config.warehouse.url = paysim.clone();
        tweak(&mut config);
        let gateway = TestGateway::start(config).await;
        let settler_config = settler_config(&topic, &shards);
        let looping = settler::timers::Timers {
            shards: pools(&shards),
            store: stock::SaleStore::connect(&settler_config.redis).unwrap(),
            events: events::producer::EventProducer::new(&settler_config.producer()).unwrap(),
            every: Duration::from_millis(100),
            auto_complete_after,
            restock: true,
            warehouse: paychannel::warehouse::HttpWarehouse::new(&paysim, Duration::from_secs(3)),
            review_within,
            escalate_unreviewed: false,
            lost_points: settler::timers::LostPoints::after(Duration::from_secs(2 * 86_400)),
            refunds: settler::refunds::RefundDriver {
                channels: paychannel::channels::Channels::over_http(
                    &gateway.app.config.payments.channels,
                    "card",
                    Duration::from_secs(3),
                ),
                notify_url: format!("http://{}/v1/refunds/notify", gateway.addr),
                retry_every: Duration::from_millis(300),
                max_attempts,
            },
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let lifecycle = tokio::spawn(looping.run(async {
            let _ = stopped.await;
        }));
        let settler = TestSettler::start(settler_config);
        let sku = unique("life");
        gateway.load_sale(&sku, 100, 100, 2_500).await;
        Self { shards, gateway, settler, lifecycle: (stop, lifecycle), paysim, sku }
    }

    async fn stop(self) {
        let (stop, task) = self.lifecycle;
        let _ = stop.send(());
        task.await.unwrap();
        self.settler.stop().await;
        drop_shards(&self.shards).await;
    }

    async fn buyer(&self, method: Method, path: &str, user: u64, body: Value) -> Answer {
        let auth = format!("Bearer {}", buyer_token(user));
        let headers = [("content-type", "application/json"), ("authorization", auth.as_str())];
        self.gateway.request(method, path, &headers, body.to_string()).await
    }

    async fn merchant(&self, order_id: &str, action: &str, body: Value) -> Answer {
        let path = format!("/admin/orders/{order_id}/{action}");
        self.gateway.admin(Method::POST, &path, body.to_string()).await
    }

    /// The API call that asks for `action` on the order (`None`: the API has
    /// none, the move is the settler's or the channel's).
    async fn act(&self, order_id: &str, user: u64, action: Action) -> Option<Answer> {
        let owner = json!({"sku": self.sku});
        Some(match action {
            Action::Push => self.merchant(order_id, "push", json!({})).await,
            Action::Ship => self.merchant(order_id, "ship", json!({"carrier": "sf", "tracking_no": "SF123"})).await,
            Action::Receive => {
                self.buyer(Method::POST, &format!("/v1/orders/{order_id}/receive"), user, json!({})).await
            }
            Action::Cancel => self.buyer(Method::POST, &format!("/v1/orders/{order_id}/cancel"), user, owner).await,
            Action::Pay | Action::Expire | Action::AutoComplete | Action::Close => return None,
        })
    }

    /// A new order of `user`, stored in its shard.
    async fn placed(&self, user: u64) -> String {
        self.placed_units(user, 1).await
    }

    async fn placed_units(&self, user: u64, qty: u32) -> String {
        let answer = self.gateway.place(user, &self.sku, qty, &unique("k")).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
        let order_id = answer.json["order_id"].as_str().unwrap().to_owned();
        self.stored_status(&order_id, OrderStatus::PendingPayment).await;
        order_id
    }

    async fn paid(&self, user: u64) -> String {
        self.paid_units(user, 1).await
    }

    async fn paid_units(&self, user: u64, qty: u32) -> String {
        let order_id = self.placed_units(user, qty).await;
        let path = format!("/v1/orders/{order_id}/pay");
        let started = self.buyer(Method::POST, &path, user, json!({"sku": self.sku})).await;
        assert_eq!(started.status, StatusCode::OK, "{}", started.json);
        let payment_id = started.json["payment_id"].as_str().unwrap();
        let (status, body) =
            paysim(&self.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        self.stored_status(&order_id, OrderStatus::Paid).await;
        order_id
    }

    /// A new order of `user` brought to `status` through the API.
    async fn order_in(&self, status: OrderStatus, user: u64) -> String {
        let order_id = match status {
            OrderStatus::PendingPayment => return self.placed(user).await,
            OrderStatus::Paid => return self.paid(user).await,
            OrderStatus::Cancelled => self.placed(user).await,
            OrderStatus::InWarehouse => self.paid(user).await,
            OrderStatus::Shipped => Box::pin(self.order_in(OrderStatus::InWarehouse, user)).await,
            OrderStatus::Completed => Box::pin(self.order_in(OrderStatus::Shipped, user)).await,
            OrderStatus::Closed => {
                let order_id = Box::pin(self.order_in(OrderStatus::Shipped, user)).await;
                let request = self.after_sale(&order_id, user, "RETURN_REFUND", 1).await;
                self.review(&request, "approve", json!({"return_address": "Dock 4"})).await;
                self.review(&request, "receive", json!({})).await;
                self.stored_status(&order_id, OrderStatus::Closed).await;
                return order_id;
            }
        };
        let action = match status {
            OrderStatus::Cancelled => Action::Cancel,
            OrderStatus::InWarehouse => Action::Push,
            OrderStatus::Shipped => Action::Ship,
            _ => Action::Receive,
        };
        let answer = self.act(&order_id, user, action).await.unwrap();
        assert_eq!(answer.status, StatusCode::OK, "{action:?} towards {status}: {}", answer.json);
        self.stored_status(&order_id, status).await;
        order_id
    }

    /// The buyer's after-sale request on the order; its id.
    async fn after_sale(&self, order_id: &str, user: u64, kind: &str, qty: u32) -> String {
        let body = json!({"kind": kind, "qty": qty, "reason": "not as described"});
        let answer = self.buyer(Method::POST, &format!("/v1/orders/{order_id}/after-sales"), user, body).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.json);
        answer.json["after_sale_id"].as_str().unwrap().to_owned()
    }

    /// The merchant's move of a request; the answer.
    async fn review_answer(&self, after_sale_id: &str, action: &str, body: Value) -> Answer {
        self.gateway
            .admin(Method::POST, &format!("/admin/after-sales/{after_sale_id}/{action}"), body.to_string())
            .await
    }

    /// As [`Stack::review_answer`], which must succeed; the request's status after.
    async fn review(&self, after_sale_id: &str, action: &str, body: Value) -> String {
        let answer = self.review_answer(after_sale_id, action, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{action}: {}", answer.json);
        answer.json["status"].as_str().unwrap().to_owned()
    }

    async fn stored_status(&self, order_id: &str, want: OrderStatus) {
        let shards = pools(&self.shards);
        let id: order::id::OrderId = order_id.parse().unwrap();
        eventually(Duration::from_secs(30), &format!("order {order_id} {want}"), || async {
            (shards.get(id).await.unwrap()?.status == want).then_some(())
        })
        .await;
        shards.close().await;
    }

    async fn get(&self, order_id: &str, user: u64) -> Value {
        let answer = self.buyer(Method::GET, &format!("/v1/orders/{order_id}"), user, json!({})).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        answer.json
    }

    /// `SELECT` over every shard.
    async fn query<T>(&self, sql: &str, order_id: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow> + Send + Unpin,
    {
        let shards = pools(&self.shards);
        let mut rows = Vec::new();
        for pool in &shards.pools {
            rows.extend(sqlx::query_as(sql).bind(order_id.parse::<i64>().unwrap()).fetch_all(pool).await.unwrap());
        }
        shards.close().await;
        rows
    }

    async fn counters(&self) -> (i64, i64, i64) {
        let sale = self.gateway.sale(&self.sku).await;
        (sale["stock"].as_i64().unwrap(), sale["reserved"].as_i64().unwrap(), sale["sold"].as_i64().unwrap())
    }

    /// The order's refund once its job reaches `state` (`DONE`, `STUCK`).
    async fn refund_in(&self, order_id: &str, user: u64, state: &str) -> Value {
        eventually(Duration::from_secs(30), &format!("a refund of {order_id} {state}"), || async {
            let order = self.get(order_id, user).await;
            order["refunds"].as_array().unwrap().iter().find(|refund| refund["state"] == state).cloned()
        })
        .await
    }

    async fn attempts(&self, refund_id: &str) -> Vec<String> {
        let shards = pools(&self.shards);
        let mut outcomes = Vec::new();
        for pool in &shards.pools {
            let rows: Vec<(String,)> =
                sqlx::query_as("SELECT outcome FROM refund_attempts WHERE refund_id = ? ORDER BY id")
                    .bind(refund_id)
                    .fetch_all(pool)
                    .await
                    .unwrap();
            outcomes.extend(rows.into_iter().map(|(outcome,)| outcome));
        }
        shards.close().await;
        outcomes
    }

    async fn refund_faults(&self, faults: Value) {
        let (status, body) = paysim(&self.paysim, Method::POST, "/v1/faults/refunds", faults).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    async fn outbox_empty(&self) {
        let shards = pools(&self.shards);
        eventually(Duration::from_secs(30), "the outbox relayed", || async {
            let mut left = 0;
            for shard in 0..shards.pools.len() {
                left += shards.outbox(shard, 10).await.unwrap().len();
            }
            (left == 0).then_some(())
        })
        .await;
        shards.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_paid_pushed_shipped_and_received_with_its_history_and_events() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.order_in(OrderStatus::Completed, 7).await;

    let order = stack.get(&order_id, 7).await;
    assert_eq!(order["status"], "COMPLETED");
    assert_eq!(order["shipment"], json!({"carrier": "sf", "tracking_no": "SF123"}));
    let moves: Vec<(Value, Value, Value, Value)> = order["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["from"].clone(), entry["to"].clone(), entry["action"].clone(), entry["actor"].clone()))
        .collect();
    assert_eq!(
        moves,
        [
            (json!("PENDING_PAYMENT"), json!("PAID"), json!("pay"), json!("channel")),
            (json!("PAID"), json!("IN_WAREHOUSE"), json!("push"), json!("merchant")),
            (json!("IN_WAREHOUSE"), json!("SHIPPED"), json!("ship"), json!("merchant")),
            (json!("SHIPPED"), json!("COMPLETED"), json!("receive"), json!("buyer")),
        ]
    );
    // Another buyer learns nothing; the merchant sees what the buyer sees.
    let stranger = stack.buyer(Method::GET, &format!("/v1/orders/{order_id}"), 8, json!({})).await;
    assert_eq!(stranger.status, StatusCode::NOT_FOUND);
    let merchant = stack.gateway.admin(Method::GET, &format!("/admin/orders/{order_id}"), "").await;
    assert_eq!((merchant.status, &merchant.json), (StatusCode::OK, &order));
    let anonymous = stack.gateway.request(Method::GET, &format!("/admin/orders/{order_id}"), &[], "").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // The relay sent every move's event and emptied the outbox; the units stay sold.
    stack.outbox_empty().await;
    assert_eq!(stack.counters().await, (99, 0, 1));
    stack.stop().await;
}

/// Every (status, action) the API can ask for, against the table: allowed
/// moves answer the table's next status, refused ones 409
/// `invalid_transition` naming the status and action, and leave the order as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_move_the_api_asks_for_is_allowed_or_refused_as_the_table_says() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let actors = [
        (Action::Push, Actor::Merchant),
        (Action::Ship, Actor::Merchant),
        (Action::Receive, Actor::Buyer),
        (Action::Cancel, Actor::Buyer),
    ];
    let mut user = 100;
    for status in OrderStatus::ALL {
        // One order for the refusals (they change nothing), a fresh one per allowed move.
        let (refusable, owner) = (stack.order_in(status, user).await, user);
        for (action, actor) in actors {
            match lifecycle::next(status, action, actor) {
                Err(_) => {
                    let answer = stack.act(&refusable, owner, action).await.unwrap();
                    assert_eq!(answer.status, StatusCode::CONFLICT, "{status} {action:?}: {}", answer.json);
                    assert_eq!(answer.json["error"], "invalid_transition", "{status} {action:?}");
                    assert_eq!(answer.json["status"], status.as_str());
                    assert_eq!(answer.json["action"], action.as_str());
                    stack.stored_status(&refusable, status).await;
                }
                Ok(transition) => {
                    user += 1;
                    let order_id = stack.order_in(status, user).await;
                    let answer = stack.act(&order_id, user, action).await.unwrap();
                    assert_eq!(answer.status, StatusCode::OK, "{status} {action:?}: {}", answer.json);
                    assert_eq!(answer.json["status"], transition.to.as_str());
                    stack.stored_status(&order_id, transition.to).await;
                }
            }
        }
        user += 1;
    }
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_order_cancelled_before_the_push_is_refunded_and_its_unit_goes_back_on_sale() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.paid(11).await;
    assert_eq!(stack.counters().await, (99, 0, 1));

    let cancel = stack.act(&order_id, 11, Action::Cancel).await.unwrap();
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    assert_eq!(cancel.json["refund"]["amount_cents"], 2_500);
    let payment_id = cancel.json["refund"]["payment_id"].as_str().unwrap().to_owned();
    stack.stored_status(&order_id, OrderStatus::Cancelled).await;
    // The payment row is as it was; the refund is a row of its own.
    let refunds: Vec<(String, i64)> =
        stack.query("SELECT payment_id, amount_cents FROM refunds WHERE order_id = ?", &order_id).await;
    assert_eq!(refunds, [(payment_id.clone(), 2_500)]);
    let paid: Vec<(Option<String>, i64)> =
        stack.query("SELECT payment_id, amount_cents FROM orders WHERE order_id = ?", &order_id).await;
    assert_eq!(paid, [(Some(payment_id), 2_500)]);
    // The refund goes through the channel and is confirmed once.
    let refund = stack.refund_in(&order_id, 11, "DONE").await;
    assert_eq!(refund["amount_cents"], 2_500);
    let refund_id = refund["refund_id"].as_str().unwrap();
    assert_eq!(stack.attempts(refund_id).await, ["REQUESTED", "SUCCEEDED"]);
    let (_, at_channel) = paysim(&stack.paysim, Method::GET, &format!("/v1/refunds/{refund_id}"), json!(null)).await;
    assert_eq!(at_channel["status"], "SUCCESS");
    // The relay gives the unit back to the running sale, once.
    eventually(Duration::from_secs(30), "the unit back on sale", || async {
        (stack.counters().await == (100, 0, 0)).then_some(())
    })
    .await;
    stack.outbox_empty().await;
    assert_eq!(stack.counters().await, (100, 0, 0));
    // The push that comes too late is refused by the table.
    let late = stack.act(&order_id, 11, Action::Push).await.unwrap();
    assert_eq!((late.status, late.json["error"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_order_is_cancelled_only_if_the_warehouse_intercepts_it() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    // Not picked yet: intercepted, cancelled, and the warehouse will not ship it.
    let intercepted = stack.order_in(OrderStatus::InWarehouse, 12).await;
    let cancel = stack.act(&intercepted, 12, Action::Cancel).await.unwrap();
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    stack.stored_status(&intercepted, OrderStatus::Cancelled).await;
    let (_, state) =
        paysim(&stack.paysim, Method::GET, &format!("/v1/warehouse/orders/{intercepted}"), json!(null)).await;
    assert_eq!(state["state"], "intercepted");

    // Picking started: the interception fails, so does the cancellation; the order ships.
    let picked = stack.order_in(OrderStatus::InWarehouse, 13).await;
    let (status, _) =
        paysim(&stack.paysim, Method::POST, &format!("/v1/warehouse/orders/{picked}/pick"), json!(null)).await;
    assert_eq!(status, StatusCode::OK);
    let refused = stack.act(&picked, 13, Action::Cancel).await.unwrap();
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.json);
    assert_eq!(
        (refused.json["error"].as_str(), refused.json["state"].as_str()),
        (Some("warehouse_refused"), Some("picking"))
    );
    stack.stored_status(&picked, OrderStatus::InWarehouse).await;
    let shipped = stack.act(&picked, 13, Action::Ship).await.unwrap();
    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.json);

    eventually(Duration::from_secs(30), "one unit back, one sold", || async {
        (stack.counters().await == (99, 0, 1)).then_some(())
    })
    .await;
    stack.stop().await;
}

/// The gateway's call to the warehouse fails (it points at a closed
/// port): the push stands, and the relay hands the order over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_the_warehouse_did_not_hear_is_handed_over_by_the_relay() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let stack = Stack::start_configured(Duration::from_secs(3_600), 10, Duration::from_secs(3_600), |config| {
        config.warehouse.url = format!("http://{closed}");
        config.warehouse.timeout_ms = 500;
    })
    .await;
    let order_id = stack.order_in(OrderStatus::InWarehouse, 15).await;
    eventually(Duration::from_secs(30), "the warehouse has the order", || async {
        let (status, state) =
            paysim(&stack.paysim, Method::GET, &format!("/v1/warehouse/orders/{order_id}"), json!(null)).await;
        (status == StatusCode::OK && state["state"] == "received").then_some(())
    })
    .await;
    stack.outbox_empty().await;
    stack.stop().await;
}

/// Ship and cancel-after-paying race on one pushed order many times: the
/// warehouse grants one of them, the order moves once, and the loser is
/// refused; a cancelled one's unit comes back, a shipped one's stays sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_and_cancel_race_and_exactly_one_wins() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let mut outcomes = (0, 0);
    for user in 200..206 {
        let order_id = stack.order_in(OrderStatus::InWarehouse, user).await;
        let (ship, cancel) =
            join(stack.act(&order_id, user, Action::Ship), stack.act(&order_id, user, Action::Cancel)).await;
        let (ship, cancel) = (ship.unwrap(), cancel.unwrap());
        let winner = match (ship.status, cancel.status) {
            (StatusCode::OK, StatusCode::CONFLICT) => OrderStatus::Shipped,
            (StatusCode::CONFLICT, StatusCode::OK) => OrderStatus::Cancelled,
            other => panic!("both or neither won: {other:?} {} {}", ship.json, cancel.json),
        };
        stack.stored_status(&order_id, winner).await;
        let history: Vec<(String,)> =
            stack.query("SELECT to_status FROM order_status_history WHERE order_id = ? ORDER BY id", &order_id).await;
        assert_eq!(history.len(), 3, "paid, pushed, then one move: {history:?}");
        if winner == OrderStatus::Shipped {
            outcomes.0 += 1;
        } else {
            outcomes.1 += 1;
        }
    }
    let (shipped, cancelled) = outcomes;
    eventually(Duration::from_secs(30), "units of the cancelled back", || async {
        (stack.counters().await == (100 - shipped, 0, shipped)).then_some(())
    })
    .await;
    assert_eq!(shipped + cancelled, 6);
    stack.stop().await;
}

/// A shipped order the buyer never confirms completes on its own; one the
/// buyer confirms at the same moment completes once, by whoever came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconfirmed_shipped_order_completes_on_its_own() {
    let stack = Stack::start(Duration::from_secs(2)).await;
    let order_id = stack.order_in(OrderStatus::Shipped, 14).await;
    stack.stored_status(&order_id, OrderStatus::Completed).await;
    let history: Vec<(String, Option<String>, Option<String>)> = stack
        .query("SELECT to_status, action, actor FROM order_status_history WHERE order_id = ? ORDER BY id", &order_id)
        .await;
    assert_eq!(history.last().unwrap(), &("COMPLETED".to_owned(), Some("auto_complete".into()), Some("system".into())));
    // Confirming now is refused: completion is final.
    let late = stack.act(&order_id, 14, Action::Receive).await.unwrap();
    assert_eq!((late.status, late.json["status"].as_str()), (StatusCode::CONFLICT, Some("COMPLETED")));
    stack.stop().await;
}

/// The channel refuses a refund twice (busy), then takes it: every attempt
/// is a row of its own, the refund is confirmed once, and its money row
/// and the order's payment are as they were written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_that_fails_twice_then_succeeds_is_confirmed_once() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.paid(21).await;
    stack.refund_faults(json!({"fail_first": 2})).await;
    assert_eq!(stack.act(&order_id, 21, Action::Cancel).await.unwrap().status, StatusCode::OK);
    let refund = stack.refund_in(&order_id, 21, "DONE").await;
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.attempts(&refund_id).await, ["FAILED", "FAILED", "REQUESTED", "SUCCEEDED"]);

    // A second notification of the same outcome changes nothing.
    let (_, state) = paysim(&stack.paysim, Method::GET, &format!("/v1/refunds/{refund_id}"), json!(null)).await;
    let bytes = serde_json::to_vec(&state).unwrap();
    let signature = paychannel::signature::sign(PAYMENT_SECRET.as_bytes(), &bytes);
    let headers = [("content-type", "application/json"), ("x-pay-signature", signature.as_str())];
    let again = stack.gateway.request(Method::POST, "/v1/refunds/notify", &headers, bytes.clone()).await;
    assert_eq!(again.status, StatusCode::OK);
    let forged = [("content-type", "application/json"), ("x-pay-signature", "00")];
    assert_eq!(
        stack.gateway.request(Method::POST, "/v1/refunds/notify", &forged, bytes).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stack.attempts(&refund_id).await, ["FAILED", "FAILED", "REQUESTED", "SUCCEEDED"]);

    // Money rows are written once: the refund as decided, the payment as paid.
    let refunds: Vec<(String, String, i64)> =
        stack.query("SELECT refund_id, payment_id, amount_cents FROM refunds WHERE order_id = ?", &order_id).await;
    let payment_id = refund["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(refunds, [(refund_id, payment_id.clone(), 2_500)]);
    let paid: Vec<(Option<String>, i64)> =
        stack.query("SELECT payment_id, amount_cents FROM orders WHERE order_id = ?", &order_id).await;
    assert_eq!(paid, [(Some(payment_id), 2_500)]);
    stack.stop().await;
}

/// Its notification lost, a refund is found done by the settler's lookup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_whose_notification_is_lost_is_settled_by_a_lookup() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.paid(22).await;
    stack.refund_faults(json!({"drop_notifications": 1})).await;
    assert_eq!(stack.act(&order_id, 22, Action::Cancel).await.unwrap().status, StatusCode::OK);
    let refund = stack.refund_in(&order_id, 22, "DONE").await;
    let attempts = stack.attempts(refund["refund_id"].as_str().unwrap()).await;
    assert_eq!(attempts, ["REQUESTED", "SUCCEEDED"], "requested once, then looked up");
    stack.stop().await;
}

/// The channel keeps refusing: out of attempts the refund is stuck, listed
/// for the operator, and the operator's retry sends it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_out_of_attempts_waits_in_the_compensation_queue_for_an_operator() {
    let stack = Stack::start_configured(Duration::from_secs(3_600), 2, Duration::from_secs(3_600), |_| {}).await;
    let order_id = stack.paid(23).await;
    stack.refund_faults(json!({"fail_first": 1000})).await;
    assert_eq!(stack.act(&order_id, 23, Action::Cancel).await.unwrap().status, StatusCode::OK);
    let refund = stack.refund_in(&order_id, 23, "STUCK").await;
    let refund_id = refund["refund_id"].as_str().unwrap().to_owned();

    let stuck = stack.gateway.admin(Method::GET, "/admin/refunds?status=stuck", "").await;
    assert_eq!(stuck.status, StatusCode::OK, "{}", stuck.json);
    let listed: Vec<&str> =
        stuck.json["refunds"].as_array().unwrap().iter().filter_map(|r| r["refund_id"].as_str()).collect();
    assert_eq!(listed, [refund_id.as_str()]);
    let retry_path = format!("/admin/refunds/{refund_id}/retry");
    assert_eq!(stack.gateway.request(Method::POST, &retry_path, &[], "").await.status, StatusCode::UNAUTHORIZED);

    stack.refund_faults(json!({})).await;
    let retried = stack.gateway.admin(Method::POST, &retry_path, "").await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.json);
    stack.refund_in(&order_id, 23, "DONE").await;
    let again = stack.gateway.admin(Method::POST, &retry_path, "").await;
    assert_eq!((again.status, again.json["error"].as_str()), (StatusCode::CONFLICT, Some("refund_not_stuck")));
    let attempts = stack.attempts(&refund_id).await;
    assert_eq!(attempts, ["FAILED", "FAILED", "STUCK", "RETRIED", "REQUESTED", "SUCCEEDED"]);
    stack.stop().await;
}

/// A payment that arrives after its order was cancelled is refunded
/// through the same path as every other refund.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_for_a_cancelled_order_is_refunded_through_the_channel() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.placed(24).await;
    let path = format!("/v1/orders/{order_id}/pay");
    let started = stack.buyer(Method::POST, &path, 24, json!({"sku": stack.sku})).await;
    let payment_id = started.json["payment_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.act(&order_id, 24, Action::Cancel).await.unwrap().status, StatusCode::OK);
    let (status, _) =
        paysim(&stack.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let refund = stack.refund_in(&order_id, 24, "DONE").await;
    assert_eq!(
        (refund["payment_id"].as_str(), refund["amount_cents"].as_i64()),
        (Some(payment_id.as_str()), Some(2_500))
    );
    stack.stored_status(&order_id, OrderStatus::Cancelled).await;
    stack.stop().await;
}

/// Three units, returned one then two: each return refunds its share, the
/// last what is left, and only the full return closes the order. Money
/// rows are only ever added: refunds sum to the payment, the payment is as paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_return_refunds_its_share_and_the_full_return_closes_the_order() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.paid_units(31, 3).await;
    for action in [Action::Push, Action::Ship] {
        assert_eq!(stack.act(&order_id, 31, action).await.unwrap().status, StatusCode::OK);
    }
    let first = stack.after_sale(&order_id, 31, "RETURN_REFUND", 1).await;
    assert_eq!(stack.review(&first, "approve", json!({"return_address": "Dock 4"})).await, "AWAITING_RETURN");
    assert_eq!(stack.review(&first, "receive", json!({})).await, "REFUNDED");
    stack.stored_status(&order_id, OrderStatus::Shipped).await;

    let too_many = stack
        .buyer(
            Method::POST,
            &format!("/v1/orders/{order_id}/after-sales"),
            31,
            json!({"kind": "RETURN_REFUND", "qty": 3, "reason": "all"}),
        )
        .await;
    assert_eq!(
        (too_many.status, too_many.json["error"].as_str(), too_many.json["left"].as_u64()),
        (StatusCode::CONFLICT, Some("not_returnable"), Some(2))
    );
    let rest = stack.after_sale(&order_id, 31, "RETURN_REFUND", 2).await;
    stack.review(&rest, "approve", json!({})).await;
    assert_eq!(stack.review(&rest, "receive", json!({})).await, "REFUNDED");
    stack.stored_status(&order_id, OrderStatus::Closed).await;

    eventually(Duration::from_secs(30), "both refunds confirmed", || async {
        let order = stack.get(&order_id, 31).await;
        let refunds = order["refunds"].as_array().unwrap().clone();
        (refunds.len() == 2 && refunds.iter().all(|r| r["state"] == "DONE")).then_some(())
    })
    .await;
    let mut amounts: Vec<(i64,)> = stack.query("SELECT amount_cents FROM refunds WHERE order_id = ?", &order_id).await;
    amounts.sort();
    assert_eq!(amounts, [(2_500,), (5_000,)]);
    let paid: Vec<(i64, String)> =
        stack.query("SELECT amount_cents, status FROM orders WHERE order_id = ?", &order_id).await;
    assert_eq!(paid, [(7_500, "CLOSED".to_owned())]);
    let after: Vec<(String,)> =
        stack.query("SELECT status FROM after_sales WHERE order_id = ? ORDER BY after_sale_id", &order_id).await;
    assert_eq!(after, [("REFUNDED".to_owned(),), ("REFUNDED".to_owned(),)]);
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_ships_a_replacement_and_refunds_nothing() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.order_in(OrderStatus::Completed, 32).await;
    let request = stack.after_sale(&order_id, 32, "EXCHANGE", 1).await;
    assert_eq!(
        stack.review(&request, "approve", json!({"return_address": "Dock 4"})).await,
        "AWAITING_EXCHANGE_RETURN"
    );
    assert_eq!(stack.review(&request, "receive", json!({})).await, "EXCHANGE_OUTBOUND");
    let (status, state) =
        paysim(&stack.paysim, Method::GET, &format!("/v1/warehouse/orders/x{request}"), json!(null)).await;
    assert_eq!(
        (status, state["state"].as_str()),
        (StatusCode::OK, Some("received")),
        "the outbound order is at the warehouse"
    );
    let parcel = json!({"carrier": "sf", "tracking_no": "SF999"});
    assert_eq!(stack.review(&request, "ship", parcel).await, "AFTER_SALE_SUCCESS");
    let order = stack.get(&order_id, 32).await;
    assert_eq!(order["status"], "COMPLETED", "an exchange leaves the order as it was");
    assert_eq!(order["refunds"], json!([]));
    assert_eq!(order["after_sales"][0]["status"], "AFTER_SALE_SUCCESS");
    stack.stop().await;
}

/// A rejected request carries its reason; the order carries on and its
/// units can be asked for again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_request_leaves_the_order_as_it_was() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let order_id = stack.order_in(OrderStatus::Shipped, 33).await;
    let request = stack.after_sale(&order_id, 33, "RETURN_REFUND", 1).await;
    let no_reason = stack.review_answer(&request, "reject", json!({})).await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert_eq!(stack.review(&request, "reject", json!({"reason": "worn"})).await, "REJECTED");
    let order = stack.get(&order_id, 33).await;
    assert_eq!(
        (order["status"].as_str(), order["after_sales"][0]["reject_reason"].as_str()),
        (Some("SHIPPED"), Some("worn"))
    );
    assert_eq!(order["refunds"], json!([]));
    stack.after_sale(&order_id, 33, "RETURN_REFUND", 1).await;
    stack.stop().await;
}

/// Refund only, before shipment: not pushed, approved at once and the order
/// cancelled with its refund; pushed and being picked, the approval is
/// refused by the warehouse and the order ships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_before_shipment_is_approved_at_once_unless_the_warehouse_has_the_order() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let unpushed = stack.paid(34).await;
    let request = stack
        .buyer(
            Method::POST,
            &format!("/v1/orders/{unpushed}/after-sales"),
            34,
            json!({"kind": "REFUND_ONLY", "qty": 1, "reason": "changed my mind"}),
        )
        .await;
    assert_eq!(
        (request.status, request.json["status"].as_str()),
        (StatusCode::CREATED, Some("REFUNDED")),
        "{}",
        request.json
    );
    stack.stored_status(&unpushed, OrderStatus::Cancelled).await;
    stack.refund_in(&unpushed, 34, "DONE").await;

    let picked = stack.order_in(OrderStatus::InWarehouse, 35).await;
    paysim(&stack.paysim, Method::POST, &format!("/v1/warehouse/orders/{picked}/pick"), json!(null)).await;
    let pending = stack.after_sale(&picked, 35, "REFUND_ONLY", 1).await;
    let refused = stack.review_answer(&pending, "approve", json!({})).await;
    assert_eq!((refused.status, refused.json["error"].as_str()), (StatusCode::CONFLICT, Some("warehouse_refused")));
    assert_eq!(stack.review(&pending, "reject", json!({"reason": "already picked"})).await, "REJECTED");
    assert_eq!(stack.act(&picked, 35, Action::Ship).await.unwrap().status, StatusCode::OK);
    eventually(Duration::from_secs(30), "one unit back, one sold", || async {
        (stack.counters().await == (99, 0, 1)).then_some(())
    })
    .await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_nobody_reviews_in_time_is_approved_by_the_system() {
    let stack = Stack::start_configured(Duration::from_secs(3_600), 10, Duration::from_secs(1), |_| {}).await;
    let order_id = stack.order_in(OrderStatus::Shipped, 36).await;
    stack.after_sale(&order_id, 36, "RETURN_REFUND", 1).await;
    let approved = eventually(Duration::from_secs(30), "the request approved", || async {
        let order = stack.get(&order_id, 36).await;
        (order["after_sales"][0]["status"] == "AWAITING_RETURN").then_some(order)
    })
    .await;
    let id = approved["after_sales"][0]["after_sale_id"].as_str().unwrap();
    let history: Vec<(Option<String>, Option<String>)> =
        stack.query("SELECT action, actor FROM after_sale_history WHERE after_sale_id = ? ORDER BY id", id).await;
    assert_eq!(
        history,
        [(Some("request".into()), Some("buyer".into())), (Some("approve".into()), Some("system".into()))]
    );
    stack.stop().await;
}

/// Walks a request of each kind through its table with the merchant's
/// actions: at every status each action the table refuses is 409
/// `invalid_transition` naming the status and action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_merchant_move_on_a_request_is_allowed_or_refused_as_its_table_says() {
    use order::after_sale::{self, Kind, Status};
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let actions = [
        (after_sale::Action::Approve, "approve", json!({"return_address": "Dock 4"})),
        (after_sale::Action::ReceiveReturn, "receive", json!({})),
        (after_sale::Action::ShipReplacement, "ship", json!({"carrier": "sf", "tracking_no": "X1"})),
        (after_sale::Action::Reject, "reject", json!({"reason": "no"})),
    ];
    for (user, kind) in [(40, Kind::ReturnRefund), (41, Kind::Exchange)] {
        let order_id = stack.order_in(OrderStatus::Shipped, user).await;
        let request = stack.after_sale(&order_id, user, kind.as_str(), 1).await;
        let mut status = Status::PendingReview;
        while !status.is_final() {
            for (action, path, body) in &actions {
                if after_sale::next(kind, status, *action, Actor::Merchant).is_err() {
                    let refused = stack.review_answer(&request, path, body.clone()).await;
                    assert_eq!(refused.status, StatusCode::CONFLICT, "{kind:?} {status:?} {path}: {}", refused.json);
                    assert_eq!(
                        (refused.json["error"].as_str(), refused.json["status"].as_str()),
                        (Some("invalid_transition"), Some(status.as_str()))
                    );
                    assert_eq!(refused.json["action"], action.as_str());
                }
            }
            // Onwards by the first allowed move that is not a rejection.
            let (_, path, body) = actions
                .iter()
                .find(|(action, ..)| {
                    *action != after_sale::Action::Reject
                        && after_sale::next(kind, status, *action, Actor::Merchant).is_ok()
                })
                .expect("a way on");
            status = Status::parse(&stack.review(&request, path, body.clone()).await).unwrap();
        }
        assert_eq!(status, if kind == Kind::Exchange { Status::AfterSaleSuccess } else { Status::Refunded });
    }
    stack.stop().await;
}

/// The buyer asks for a return just as the settler completes the shipped
/// order on its own: both are made, each once, whichever came first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_completion_and_a_return_request_are_decided_once() {
    let stack = Stack::start(Duration::from_secs(1)).await;
    for user in 50..54 {
        let order_id = stack.order_in(OrderStatus::Shipped, user).await;
        tokio::time::sleep(Duration::from_millis(900 + (user - 50) * 50)).await;
        stack.after_sale(&order_id, user, "RETURN_REFUND", 1).await;
        stack.stored_status(&order_id, OrderStatus::Completed).await;
        let completions: Vec<(String,)> = stack
            .query(
                "SELECT to_status FROM order_status_history WHERE order_id = ? AND to_status = 'COMPLETED'",
                &order_id,
            )
            .await;
        assert_eq!(completions.len(), 1);
        let requests: Vec<(String,)> =
            stack.query("SELECT status FROM after_sales WHERE order_id = ?", &order_id).await;
        assert_eq!(requests, [("PENDING_REVIEW".to_owned(),)]);
    }
    stack.stop().await;
}

/// A refund-only request on a pushed order that ships before anyone
/// reviews it: the settler cannot approve it (the order's table refuses the
/// cancellation) and escalates it instead of trying for ever; an approval of
/// a request already rejected never reaches the warehouse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_only_request_on_an_order_that_shipped_is_escalated_not_retried() {
    let stack = Stack::start_configured(Duration::from_secs(3_600), 10, Duration::from_secs(1), |_| {}).await;
    let order_id = stack.order_in(OrderStatus::InWarehouse, 37).await;
    let request = stack.after_sale(&order_id, 37, "REFUND_ONLY", 1).await;
    assert_eq!(stack.act(&order_id, 37, Action::Ship).await.unwrap().status, StatusCode::OK);
    eventually(Duration::from_secs(30), "the request escalated", || async {
        let order = stack.get(&order_id, 37).await;
        (order["after_sales"][0]["status"] == "ESCALATED").then_some(())
    })
    .await;
    assert_eq!(stack.review(&request, "reject", json!({"reason": "shipped already"})).await, "REJECTED");

    let other = stack.order_in(OrderStatus::InWarehouse, 38).await;
    let rejected = stack.after_sale(&other, 38, "REFUND_ONLY", 1).await;
    assert_eq!(stack.review(&rejected, "reject", json!({"reason": "no"})).await, "REJECTED");
    let late = stack.review_answer(&rejected, "approve", json!({})).await;
    assert_eq!((late.status, late.json["error"].as_str()), (StatusCode::CONFLICT, Some("invalid_transition")));
    let (_, state) = paysim(&stack.paysim, Method::GET, &format!("/v1/warehouse/orders/{other}"), json!(null)).await;
    assert_eq!(state["state"], "received", "not intercepted");
    assert_eq!(stack.act(&other, 38, Action::Ship).await.unwrap().status, StatusCode::OK);
    stack.stop().await;
}

/// A read agrees with the order's primary shard after every move: at once
/// for the moves the API makes in MySQL; for a payment, which reaches MySQL
/// through Kafka, the read shows PAID first and agrees once the settler
/// applied it; and after a move the settler makes on its own (here the
/// auto-completion), which only the settler's deletes bring to a cached view.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_agree_with_the_primary_after_every_move() {
    let stack = Stack::start(Duration::from_secs(4)).await;
    let agrees = |order_id: String, user: u64| {
        let stack = &stack;
        async move {
            let primary = stack.gateway.app.center.view_from_shard(order_id.parse().unwrap()).await.unwrap().unwrap();
            (stack.get(&order_id, user).await == primary).then_some(primary)
        }
    };
    let placed = stack.gateway.place(31, &stack.sku, 1, &unique("k")).await;
    let received = placed.json["order_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.get(&received, 31).await["status"], "PENDING_PAYMENT", "readable from the 202 on");
    let left_shipped = stack.placed(32).await;
    for (order_id, user) in [(&received, 31), (&left_shipped, 32)] {
        // Cached before the payment: the payment's own update must reach it.
        stack.get(order_id, user).await;
        let path = format!("/v1/orders/{order_id}/pay");
        let started = stack.buyer(Method::POST, &path, user, json!({"sku": stack.sku})).await;
        let payment_id = started.json["payment_id"].as_str().unwrap();
        let (status, _) =
            paysim(&stack.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
        assert_eq!(status, StatusCode::OK);
        eventually(Duration::from_secs(10), "the read to show the payment", || async {
            (stack.get(order_id, user).await["status"] == "PAID").then_some(())
        })
        .await;
        let primary = eventually(Duration::from_secs(20), "the read to agree after the payment", || {
            agrees(order_id.clone(), user)
        })
        .await;
        assert_eq!(primary["status"], "PAID");
        for action in [Action::Push, Action::Ship] {
            let answer = stack.act(order_id, user, action).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
            let primary = agrees(order_id.clone(), user).await;
            assert!(primary.is_some(), "{action:?}: the read shows the move at once");
        }
    }
    let answer = stack.act(&received, 31, Action::Receive).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(agrees(received.clone(), 31).await.unwrap()["status"], "COMPLETED");
    // The other one is cached as shipped; the settler completes it.
    assert_eq!(stack.get(&left_shipped, 32).await["status"], "SHIPPED");
    let primary = eventually(Duration::from_secs(30), "the auto-completion read", || async {
        agrees(left_shipped.clone(), 32).await.filter(|view| view["status"] == "COMPLETED")
    })
    .await;
    assert_eq!(primary["history"].as_array().unwrap().len(), 4);
    stack.stop().await;
}

/// A change the cache never heard of (as when a delete was lost) is read
/// late by at most `cache.ttl_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_the_cache_missed_is_read_within_its_ttl() {
    let ttl = Duration::from_secs(2);
    let stack = Stack::start_configured(Duration::from_secs(3_600), 10, Duration::from_secs(3_600), |config| {
        config.cache.ttl_secs = ttl.as_secs();
    })
    .await;
    let order_id = stack.paid(33).await;
    let id: order::id::OrderId = order_id.parse().unwrap();
    // Read until the view stays cached (the settler drops it once, after
    // applying the payment, off its pipeline's path).
    eventually(Duration::from_secs(10), "the view cached", || async {
        assert_eq!(stack.get(&order_id, 33).await["status"], "PAID");
        tokio::time::sleep(Duration::from_millis(200)).await;
        stack.gateway.app.center.order_cache.cached_order(id).await.unwrap().0.map(|_| ())
    })
    .await;
    // Behind the gateway's and the settler's backs: nothing drops the view.
    let shards = pools(&stack.shards);
    sqlx::query("UPDATE orders SET qty = 2 WHERE order_id = ?")
        .bind(id.raw() as i64)
        .execute(shards.for_order(id))
        .await
        .unwrap();
    let changed_at = std::time::Instant::now();
    assert_eq!(stack.get(&order_id, 33).await["qty"], 1, "the cached view, until it expires");
    tokio::time::sleep(ttl.saturating_sub(changed_at.elapsed()) + Duration::from_millis(50)).await;
    assert_eq!(stack.get(&order_id, 33).await["qty"], 2, "read from the shard once the TTL passed");
    shards.close().await;
    stack.stop().await;
}

/// The live figures of a sale follow its events (orders, payments,
/// cancellations by reason, refunds); the report recomputes them from
/// MySQL, agrees, and shows a count made twice as drift.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_sale_figures_follow_the_events_and_the_report_shows_drift() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    stack.paid(41).await;
    let refunded = stack.paid(42).await;
    stack.order_in(OrderStatus::Cancelled, 43).await;
    let cancel = stack.act(&refunded, 42, Action::Cancel).await.unwrap();
    assert_eq!(cancel.status, StatusCode::OK, "{}", cancel.json);
    stack.refund_in(&refunded, 42, "DONE").await;
    let expected = order::sale_stats::SaleStats {
        accepted: 3,
        accepted_cents: 7_500,
        paid: 2,
        paid_cents: 5_000,
        cancelled_user: 1,
        cancelled_after_payment: 1,
        refunded: 1,
        refunded_cents: 2_500,
        ..Default::default()
    };
    let path = format!("/admin/sales/{}/stats", stack.sku);
    let figures = eventually(Duration::from_secs(30), "the live figures", || async {
        let answer = stack.gateway.admin(Method::GET, &path, "").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let mut want = serde_json::to_value(expected).unwrap();
        want["sku"] = json!(stack.sku);
        want["conversion"] = json!(2.0 / 3.0);
        (answer.json == want).then_some(answer.json)
    })
    .await;
    assert_eq!(figures["paid_cents"], 5_000, "the GMV");

    let shards = pools(&stack.shards);
    let store = &stack.gateway.app.center.sales;
    let report = settler::sale_report::report(&shards, store, Some(stack.sku.clone())).await.unwrap();
    assert_eq!((report[0].recomputed, report[0].drift.len()), (expected, 0));
    // A batch counted twice, as after a settler restart before its commit.
    let twice = order::sale_stats::SaleStats { paid: 1, paid_cents: 2_500, ..Default::default() };
    stack.gateway.app.center.sale_figures.add_sale_stats(&[(stack.sku.clone(), twice)].into()).await.unwrap();
    let report = settler::sale_report::report(&shards, store, Some(stack.sku.clone())).await.unwrap();
    let drift: Vec<_> = report[0].drift.iter().map(|d| (d.figure, d.live, d.recomputed)).collect();
    assert_eq!(drift, [("paid", 3, 2), ("paid_cents", 7_500, 5_000)]);
    let unknown = stack.gateway.admin(Method::GET, "/admin/sales/nothing_here/stats", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    shards.close().await;
    stack.stop().await;
}

/// A checkout over two stores, paid with one payment: every item is paid.
/// One sub-order comes back (each of its items shipped, then returned
/// whole): each item's refund is exactly its allocated amount, goods less
/// its discounts plus its freight, and the other sub-order stays sold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paid_checkout_with_one_sub_order_returned_refunds_exactly_its_allocated_amounts() {
    let stack = Stack::start(Duration::from_secs(3_600)).await;
    let (s1, s2) = (unique("store"), unique("store"));
    let mut skus = Vec::new();
    for (price, store) in [(3_000, &s1), (2_000, &s1), (5_000, &s2)] {
        let sku = unique("cart");
        stack.gateway.load_sale(&sku, 10, 10, price).await;
        let facts = json!({"store": store, "warehouse": "wh", "weight_grams": 100, "volume_cm3": 100});
        let answer = stack.gateway.admin(Method::PUT, &format!("/admin/catalogue/skus/{sku}"), facts.to_string()).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        skus.push(sku);
    }
    let promotion = json!({"threshold_cents": 10_000, "discount_cents": 1_000, "skus": skus});
    let answer = stack
        .gateway
        .admin(Method::PUT, &format!("/admin/catalogue/promotions/{}", unique("p")), promotion.to_string())
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let freight = json!({"free_over_cents": 100_000, "fee_cents": 500});
    let answer = stack.gateway.admin(Method::PUT, &format!("/admin/catalogue/freight/{s1}"), freight.to_string()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);

    let lines = json!({"lines": [{"sku": skus[0], "qty": 2}, {"sku": skus[1], "qty": 1}, {"sku": skus[2], "qty": 1}]});
    let auth = format!("Bearer {}", buyer_token(7));
    let headers =
        [("content-type", "application/json"), ("idempotency-key", "returned"), ("authorization", auth.as_str())];
    let placed = stack.gateway.request(Method::POST, "/v1/checkout", &headers, lines.to_string()).await;
    assert_eq!(placed.status, StatusCode::CREATED, "{}", placed.json);
    let placed = placed.json;
    assert_eq!(placed["payable_cents"], 13_000 - 1_000 + 500);
    let parent = placed["order_id"].as_str().unwrap();

    let started = stack.buyer(Method::POST, &format!("/v1/checkouts/{parent}/pay"), 7, json!({})).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.json);
    assert_eq!(started.json["amount_cents"], placed["payable_cents"]);
    let payment_id = started.json["payment_id"].as_str().unwrap();
    let (status, body) =
        paysim(&stack.paysim, Method::POST, &format!("/v1/payments/{payment_id}/complete"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let items = |sub: usize| placed["sub_orders"][sub]["items"].as_array().unwrap().clone();
    for item in items(0).iter().chain(&items(1)) {
        stack.stored_status(item["order_id"].as_str().unwrap(), OrderStatus::Paid).await;
    }

    // Sub-order 1 (store 1: two items) is shipped and comes back whole.
    let returned = items(0);
    assert_eq!(returned.len(), 2);
    for item in &returned {
        let order_id = item["order_id"].as_str().unwrap();
        for action in [Action::Push, Action::Ship] {
            let answer = stack.act(order_id, 7, action).await.unwrap();
            assert_eq!(answer.status, StatusCode::OK, "{action:?}: {}", answer.json);
        }
        stack.stored_status(order_id, OrderStatus::Shipped).await;
        let qty = item["qty"].as_u64().unwrap() as u32;
        let request = stack.after_sale(order_id, 7, "RETURN_REFUND", qty).await;
        stack.review(&request, "approve", json!({"return_address": "Dock 4"})).await;
        stack.review(&request, "receive", json!({})).await;
    }
    let mut refunded = 0;
    for item in &returned {
        let order_id = item["order_id"].as_str().unwrap();
        let refund = stack.refund_in(order_id, 7, "DONE").await;
        assert_eq!(refund["amount_cents"], item["amount_cents"], "item {order_id}: its allocated amount back");
        let allocated = item["goods_cents"].as_i64().unwrap() - item["discount_cents"].as_i64().unwrap()
            + item["freight_cents"].as_i64().unwrap();
        assert_eq!(item["amount_cents"].as_i64().unwrap(), allocated);
        refunded += refund["amount_cents"].as_i64().unwrap();
        stack.stored_status(order_id, OrderStatus::Closed).await;
    }
    let sub_total: i64 = returned.iter().map(|item| item["amount_cents"].as_i64().unwrap()).sum();
    assert_eq!(refunded, sub_total, "the sub-order's allocated amount, to the cent");
    let kept = items(1)[0]["order_id"].as_str().unwrap().to_owned();
    assert_eq!(stack.get(&kept, 7).await["status"], "PAID", "the other sub-order is untouched");
    stack.stop().await;
}
