use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// A path of each target; a new target fails to compile here until it has one.
fn sample(target: &Target<'_>) -> &'static str {
    match target {
        Target::PlaceOrder | Target::ListOrders => "/v1/orders",
        Target::Checkout => "/v1/checkout",
        Target::MyPoints => "/v1/points",
        Target::AdminPoints(_) => "/admin/points/42",
        Target::AdminChannelStats(_) => "/admin/channels/web/stats",
        Target::GetCheckout(_) => "/v1/checkouts/1",
        Target::PayCheckout(_) => "/v1/checkouts/1/pay",
        Target::CancelCheckout(_) => "/v1/checkouts/1/cancel",
        Target::AdminCatalogue(..) => "/admin/catalogue/coupons/c1",
        Target::AdminSearch => "/admin/orders",
        Target::GetOrder(_) => "/v1/orders/1",
        Target::PayOrder(_) => "/v1/orders/1/pay",
        Target::CancelOrder(_) => "/v1/orders/1/cancel",
        Target::ChangeAddress(_) => "/v1/orders/1/address",
        Target::ReceiveOrder(_) => "/v1/orders/1/receive",
        Target::OpenAfterSale(_) => "/v1/orders/1/after-sales",
        Target::AdminAfterSale(..) => "/admin/after-sales/1/approve",
        Target::AdminOrder(..) => "/admin/orders/1/ship",
        Target::AdminOrderView(_) => "/admin/orders/1",
        Target::PaymentNotify(_) => "/v1/payments/notify/card",
        Target::RefundNotify(_) => "/v1/refunds/notify/card",
        Target::AdminRefunds => "/admin/refunds",
        Target::AdminRefundRetry(_) => "/admin/refunds/rf1-ab/retry",
        Target::AdminSku(_) => "/admin/skus/tv",
        Target::AdminWarehouses(_) => "/admin/skus/tv/warehouses",
        Target::AdminSaleStats(_) => "/admin/sales/tv/stats",
        Target::AdminConfig => "/admin/config",
        Target::Healthz => "/healthz",
        Target::Readyz => "/readyz",
        Target::Metrics => "/metrics",
        Target::OpenApi => "/openapi.json",
        Target::Unknown => "/nowhere",
    }
}

/// The routes and methods served, as (route label, METHOD).
fn served() -> BTreeSet<(&'static str, String)> {
    let all = [
        Target::PlaceOrder,
        Target::Checkout,
        Target::MyPoints,
        Target::AdminPoints(""),
        Target::AdminChannelStats(""),
        Target::GetCheckout(""),
        Target::PayCheckout(""),
        Target::CancelCheckout(""),
        Target::AdminCatalogue("", ""),
        Target::ListOrders,
        Target::GetOrder(""),
        Target::PayOrder(""),
        Target::CancelOrder(""),
        Target::ChangeAddress(""),
        Target::ReceiveOrder(""),
        Target::OpenAfterSale(""),
        Target::AdminAfterSale("", ""),
        Target::PaymentNotify(""),
        Target::RefundNotify(""),
        Target::AdminRefunds,
        Target::AdminSearch,
        Target::AdminRefundRetry(""),
        Target::AdminSku(""),
        Target::AdminWarehouses(""),
        Target::AdminSaleStats(""),
        Target::AdminOrder("", ""),
        Target::AdminOrderView(""),
        Target::AdminConfig,
        Target::Healthz,
        Target::Readyz,
        Target::Metrics,
        Target::OpenApi,
    ];
    let mut served = BTreeSet::new();
    for target in all {
        for method in target.allow().split(", ") {
            let method: Method = method.parse().unwrap();
            served.insert((Target::of(&method, sample(&target)).label(), method.to_string()));
        }
        assert!(served.iter().any(|(label, _)| *label == target.label()), "{} routes elsewhere", sample(&target));
    }
    served
}

#[test]
fn the_openapi_description_lists_exactly_the_routes_served() {
    let spec: Value = serde_json::from_str(ops::OPENAPI).expect("docs/openapi.json is JSON");
    let mut described = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{order_id}", "1")
            .replace("{sku}", "tv")
            .replace("{refund_id}", "rf1-ab")
            .replace("{after_sale_id}", "1")
            .replace("{action}", "approve")
            .replace("{kind}", "coupons")
            .replace("{id}", "c1")
            .replace("{channel}", "card")
            .replace("{user_id}", "42")
            .replace("{channel_id}", "web");
        for method in item.as_object().expect("operations").keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let target = Target::of(&method, &concrete);
            assert!(!matches!(target, Target::Unknown), "{path} is described but not routed");
            described.insert((target.label(), method.to_string()));
        }
    }
    assert_eq!(described, served());
}

#[test]
fn every_error_code_the_gateway_answers_is_described() {
    // The codes each error's `code` gives (`=> "…"` arms), and the
    // bodies the server writes by hand.
    let answers = [include_str!("../answers.rs"), include_str!("../error.rs")];
    let server = include_str!("../server.rs");
    let codes: BTreeSet<&str> = answers
        .iter()
        .flat_map(|source| source.split("=> \"").skip(1))
        .chain(server.split("\\\"error\\\":\\\"").skip(1))
        .filter_map(|rest| rest.split(['"', '\\']).next())
        .collect();
    assert!(codes.len() > 20, "{codes:?}");
    // Answers to a path or method that is not served at all.
    let off_the_map = ["not_found", "method_not_allowed", "too_many_connections"];
    for code in codes.iter().filter(|code| !off_the_map.contains(code)) {
        assert!(ops::OPENAPI.contains(&format!("\"{code}\"")), "error code {code} is not in docs/openapi.json");
    }
}
