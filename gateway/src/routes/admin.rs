//! The admin API: load a sale, change a live one, look at its counters.
//! Behind named bearer tokens (`admin.tokens`, reloaded while running).
//! Every change writes one audit line (log target `audit`): which token,
//! what, the sale before → after.

use hyper::header::AUTHORIZATION;
use hyper::{HeaderMap, StatusCode};
use order::fallback::SaleKind;
use order::request::{check_sku, check_token};
use order::sale::Deduction;
use orderdb::inventory::{DatabaseShare, ShareStatus, Suspended};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{self, Read, Reply};
use ordercenter::refusal::down;
use ordercenter::refusal::Dependency;
use serde::Serialize;
use stock::{SaleChange, SaleLoad, SaleStatus, SaleTerms, SaleUpdate, WarehouseChange, WarehouseChanged};

/// Largest stock, limit or price a sale takes: the products of price and
/// quantity stay below 2^53, exact in Lua's numbers.
const MAX_FIGURE: i64 = 1_000_000_000_000;
/// Most warehouses one sale is split over.
const MAX_WAREHOUSES: usize = 64;

/// `PUT /admin/skus/{sku}` `{"stock", "per_user_limit", "price_cents",
/// "starts_at"?, "ends_at"?, "deduction"?, "open_orders_cap_pct"?}`: loads
/// the sale, or replaces one with no orders outstanding (else 409
/// `sale_busy`); answers its counters.
pub async fn put_sku(app: &App, sku: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let terms: SaleTerms = json_body(&req)?;
    if !in_range(terms.stock, 0) || !in_range(terms.per_user_limit, 1) || !in_range(terms.price_cents, 0) {
        return Err(ApiError::Invalid("stock and price_cents must be 0 to 10^12, per_user_limit 1 to 10^12".into()));
    }
    if !terms.window.is_valid() {
        return Err(ApiError::Invalid("ends_at must be after starts_at".into()));
    }
    check_warehouses(&terms)?;
    check_kind(&terms)?;
    match (terms.deduction, terms.open_orders_cap_pct) {
        (Deduction::OnOrder, Some(_)) => {
            return Err(ApiError::Invalid(
                "open_orders_cap_pct is for a sale with \"deduction\": \"on_payment\"".into(),
            ))
        }
        (Deduction::OnPayment, Some(cap)) if !Deduction::OPEN_ORDERS_CAP_PCT.contains(&cap) => {
            return Err(ApiError::Invalid("open_orders_cap_pct must be 100 to 1000".into()))
        }
        _ => {}
    }
    let before = sale_status(app, sku).await?;
    // The share of the sale being replaced goes off sale first, so no
    // fallback order is taken from it while Redis is loaded: an ordinary
    // sale's, or one whose sale Redis lost (then MySQL may not be needed
    // at all, for a flash sale).
    let lenient = before.is_none() && terms.kind == SaleKind::Flash;
    let previous = if terms.kind == SaleKind::Ordinary || before.as_ref().is_none_or(|s| s.kind == SaleKind::Ordinary) {
        suspend_share(app, sku, lenient).await?
    } else {
        None
    };
    let loaded = app.center.sales.load_sale(sku, &terms).await.map_err(down(Dependency::Redis, "loading a sale"))?;
    if let SaleLoad::Busy { reservations, outbox, unsettled_payments } = loaded {
        // Certainly not replaced: its share goes back on sale. (A load whose
        // answer did not come may have replaced it: its share stays off
        // sale until the sale is loaded again.)
        if let Err(err) = app.center.services.orders.set_database_share(sku, previous.as_ref()).await {
            tracing::error!(sku, error = %err, "database share not put back on sale; load the sale again");
        }
        return Err(ApiError::SaleBusy { reservations, outbox, unsettled_payments });
    }
    app.center.sold_out.clear(sku);
    app.center.sale_windows.remember(sku, terms.window);
    let after = sale_status(app, sku).await?.ok_or(ApiError::UnknownSku)?;
    if terms.kind == SaleKind::Ordinary {
        let share = DatabaseShare {
            units: terms.database_units(),
            per_user_limit: terms.per_user_limit,
            price_cents: terms.price_cents,
            window: terms.window,
            sale_generation: after.loaded_ms,
        };
        // Redis's share is on sale already; without this one the sale only
        // lacks its fallback, until it is loaded again.
        app.center
            .services
            .orders
            .set_database_share(sku, Some(&share))
            .await
            .map_err(down(Dependency::Mysql, "setting a sale's database share"))?;
    }
    audit(&admin, "load_sale", sku, &terms, before, &after);
    sale_reply(app, sku, &after).await
}

/// Takes `sku`'s database share off sale; the share it had. Refused while
/// orders taken from it wait for Redis (they belong to that sale).
/// `lenient`: a MySQL that cannot be reached is logged, not an error.
async fn suspend_share(app: &App, sku: &str, lenient: bool) -> Result<Option<DatabaseShare>, ApiError> {
    match app.center.services.orders.suspend_database_share(sku).await {
        Ok(Suspended::Off(previous)) => Ok(previous),
        Ok(Suspended::Pending(orders)) => Err(ApiError::FallbackPending { orders }),
        Err(err) if lenient => {
            tracing::warn!(sku, error = %err, "could not check for a database share left by an earlier sale");
            Ok(None)
        }
        Err(err) => Err(down(Dependency::Mysql, "taking a sale's database share off sale")(err).into()),
    }
}

/// An ordinary sale keeps part of its units in the database, for while
/// Redis is down: it deducts at order, from one pool.
fn check_kind(terms: &SaleTerms) -> Result<(), ApiError> {
    match (terms.kind, terms.database_units) {
        (SaleKind::Flash, None) => Ok(()),
        (SaleKind::Flash, Some(_)) => {
            Err(ApiError::Invalid("database_units is for a sale with \"kind\": \"ordinary\"".into()))
        }
        (SaleKind::Ordinary, Some(units)) if (1..=terms.stock).contains(&units) => {
            if terms.deduction != Deduction::OnOrder || !terms.warehouses.is_empty() {
                return Err(ApiError::Invalid(
                    "an ordinary sale deducts at order from one pool: no deduction on_payment, no warehouses".into(),
                ));
            }
            Ok(())
        }
        (SaleKind::Ordinary, _) => Err(ApiError::Invalid(
            "an ordinary sale names its database_units, 1 to its stock: the units sold while Redis is down".into(),
        )),
    }
}

/// `PATCH /admin/skus/{sku}` `{"add_units"?, "per_user_limit"?,
/// "price_cents"?, "window"?, "if_total"?}`: changes a live sale; its
/// reservations, payments and buyers' counts stay as they are. Answers its
/// counters; 409 `sale_changed` when `if_total` no longer matches.
pub async fn patch_sku(app: &App, sku: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let change: SaleChange = json_body(&req)?;
    let add_ok = change.add_units.is_none_or(|add| add.abs() <= MAX_FIGURE);
    if !add_ok
        || !change.per_user_limit.is_none_or(|v| in_range(v, 1))
        || !change.price_cents.is_none_or(|v| in_range(v, 0))
    {
        return Err(ApiError::Invalid(
            "add_units must be within ±10^12, price_cents 0 to 10^12, per_user_limit 1 to 10^12".into(),
        ));
    }
    if !change.window.is_none_or(|window| window.is_valid()) {
        return Err(ApiError::Invalid("ends_at must be after starts_at".into()));
    }
    let before = sale_status(app, sku).await?;
    // An ordinary sale's database share takes the change first (its units
    // stay as they are: `add_units` adds to Redis's share), and gets its
    // terms back if Redis refuses it: it never sells on terms Redis lacks.
    let share = before.as_ref().filter(|sale| sale.kind == SaleKind::Ordinary);
    let orders = &app.center.services.orders;
    if share.is_some() {
        orders
            .change_database_share(sku, change.per_user_limit, change.price_cents, change.window)
            .await
            .map_err(down(Dependency::Mysql, "changing a sale's database share"))?;
    }
    // A change whose answer did not come may have been made: the share
    // keeps it, and the 503 asks for the change again.
    let updated =
        app.center.sales.update_sale(sku, &change).await.map_err(down(Dependency::Redis, "changing a sale"))?;
    let refusal = match updated {
        SaleUpdate::Updated => None,
        SaleUpdate::UnknownSku => Some(ApiError::UnknownSku),
        SaleUpdate::TooFewUnits { stock } => Some(ApiError::TooFewUnits { stock }),
        SaleUpdate::TotalChanged { total } => Some(ApiError::SaleChanged { total }),
        SaleUpdate::WarehouseRequired => Some(ApiError::WarehouseRequired),
    };
    if let Some(refusal) = refusal {
        if let Some(sale) = share {
            let put_back =
                orders.change_database_share(sku, Some(sale.per_user_limit), Some(sale.price_cents), Some(sale.window));
            if let Err(err) = put_back.await {
                tracing::error!(sku, error = %err, "database share's terms not put back; change the sale again");
            }
        }
        return Err(refusal);
    }
    app.center.sold_out.clear(sku);
    if let Some(window) = change.window {
        app.center.sale_windows.remember(sku, window);
    }
    let after = sale_status(app, sku).await?.ok_or(ApiError::UnknownSku)?;
    audit(&admin, "change_sale", sku, &change, before, &after);
    sale_reply(app, sku, &after).await
}

/// `POST /admin/skus/{sku}/warehouses` `{"action": "close" | "open",
/// "warehouse"}`, `{"action": "move", "warehouse", "to", "units"}` or
/// `{"action": "add", "warehouse", "units"}`: changes one warehouse of a
/// sale split over warehouses; its reservations stay as they are, and a
/// move never changes the sale's total. Answers the sale's counters.
pub async fn change_warehouse(app: &App, sku: &str, req: Read) -> Result<Reply, ApiError> {
    let admin = authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let change: WarehouseChange = json_body(&req)?;
    for warehouse in change.warehouses() {
        check_token("warehouse", warehouse).map_err(|e| ApiError::Invalid(e.0))?;
    }
    let units_ok = match &change {
        WarehouseChange::Move { units, .. } => in_range(*units, 1),
        WarehouseChange::Add { units, .. } => units.abs() <= MAX_FIGURE,
        WarehouseChange::Close { .. } | WarehouseChange::Open { .. } => true,
    };
    if !units_ok {
        return Err(ApiError::Invalid("units must be 1 to 10^12 to move, within ±10^12 to add".into()));
    }
    let before = sale_status(app, sku).await?;
    let changed = app
        .center
        .sales
        .change_warehouse(sku, &change)
        .await
        .map_err(down(Dependency::Redis, "changing a warehouse"))?;
    match changed {
        WarehouseChanged::Done { .. } => {}
        WarehouseChanged::UnknownSku => return Err(ApiError::UnknownSku),
        WarehouseChanged::UnknownWarehouse(name) => return Err(ApiError::UnknownWarehouse(name)),
        WarehouseChanged::TooFewUnits { stock } => return Err(ApiError::TooFewUnits { stock }),
    }
    app.center.sold_out.clear(sku);
    let after = sale_status(app, sku).await?.ok_or(ApiError::UnknownSku)?;
    audit(&admin, "change_warehouse", sku, &change, before, &after);
    sale_reply(app, sku, &after).await
}

/// A regional sale's warehouses: named once each, their units adding up
/// to the stock.
fn check_warehouses(terms: &SaleTerms) -> Result<(), ApiError> {
    let mut names = std::collections::HashSet::new();
    for split in &terms.warehouses {
        check_token("warehouse", &split.warehouse).map_err(|e| ApiError::Invalid(e.0))?;
        if !names.insert(split.warehouse.as_str()) || !in_range(split.units, 0) {
            return Err(ApiError::Invalid("each warehouse once, with 0 to 10^12 units".into()));
        }
    }
    if names.len() > MAX_WAREHOUSES {
        return Err(ApiError::Invalid(format!("at most {MAX_WAREHOUSES} warehouses")));
    }
    let split: i64 = terms.warehouses.iter().map(|split| split.units).sum();
    if !terms.warehouses.is_empty() && split != terms.stock {
        return Err(ApiError::Invalid(format!("the warehouses hold {split} units; stock is {}", terms.stock)));
    }
    Ok(())
}

/// `GET /admin/skus/{sku}`: stock left, reserved, sold, limit and price.
pub async fn get_sku(app: &App, sku: &str, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    let status = sale_status(app, sku).await?.ok_or(ApiError::UnknownSku)?;
    sale_reply(app, sku, &status).await
}

/// `GET /admin/sales/{sku}/stats`: the SKU's live sale figures, counted by
/// the settler from the event stream (every sale of the SKU), with the
/// conversion (paid per order created). `settler sale-report` checks them
/// against MySQL.
pub async fn sale_stats(app: &App, sku: &str, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    check_sku(sku).map_err(|e| ApiError::Invalid(e.0))?;
    sale_status(app, sku).await?.ok_or(ApiError::UnknownSku)?;
    let stats =
        app.center.sale_figures.sale_stats(sku).await.map_err(down(Dependency::Redis, "reading sale figures"))?;
    let mut answer = serde_json::to_value(stats).expect("figures serialise");
    answer["sku"] = serde_json::json!(sku);
    answer["conversion"] = serde_json::json!(stats.conversion());
    Ok(http::json(StatusCode::OK, &answer))
}

/// `GET /admin/config`: the config in force, with the sections reloaded
/// while running as last reloaded (and when, for traffic), secrets masked.
pub fn get_config(app: &App, req: Read) -> Result<Reply, ApiError> {
    authorize(app, req.headers())?;
    let mut config = app.config.clone();
    config.traffic = app.traffic.load().config.clone();
    config.admin = app.admin.load().as_ref().clone();
    config.auth = app.auth.load().config.clone();
    config.scheduling = app.center.scheduling.load().as_ref().clone();
    let loaded = app.loaded.load_full();
    Ok(http::json(StatusCode::OK, &serde_json::json!({"loaded": *loaded, "config": config})))
}

async fn sale_status(app: &App, sku: &str) -> Result<Option<SaleStatus>, ApiError> {
    Ok(app.center.sales.sale_status(sku).await.map_err(down(Dependency::Redis, "reading a sale"))?)
}

/// The sale's counters in Redis and, for an ordinary sale, its database
/// share now (`null` while MySQL cannot say).
async fn sale_reply(app: &App, sku: &str, status: &SaleStatus) -> Result<Reply, ApiError> {
    let mut answer = serde_json::json!({"sku": sku, "sale": status});
    if status.kind == SaleKind::Ordinary {
        let share = database_share(app, sku).await.ok().flatten();
        answer["database_share"] = serde_json::json!(share.map(|share| serde_json::json!({
            "units": share.units,
            "pending_orders": share.pending_orders,
        })));
    }
    Ok(http::json(StatusCode::OK, &answer))
}

async fn database_share(app: &App, sku: &str) -> Result<Option<ShareStatus>, ApiError> {
    let share = app.center.services.orders.database_share(sku).await;
    Ok(share.map_err(down(Dependency::Mysql, "reading a sale's database share"))?)
}

/// The audit line of one admin change.
fn audit(
    admin: &str,
    action: &str,
    sku: &str,
    request: &impl Serialize,
    before: Option<SaleStatus>,
    after: &SaleStatus,
) {
    tracing::info!(
        target: "audit",
        admin,
        action,
        sku,
        request = %json_text(request),
        before = %json_text(&before),
        after = %json_text(after),
        "admin change"
    );
}

fn json_text(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Redis scripts count in doubles: keep every figure exact.
fn in_range(value: i64, min: i64) -> bool {
    (min..=MAX_FIGURE).contains(&value)
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(req: &Read) -> Result<T, ApiError> {
    http::require_json(req.headers())?;
    serde_json::from_slice(req.body()).map_err(|e| ApiError::Invalid(format!("body: {e}")))
}

/// The name of the admin token presented, if it is one of `admin.tokens`.
pub(crate) fn authorize(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    // Every token is compared, so the time taken says nothing about which matched.
    let admin = app.admin.load();
    let mut matched = None;
    for (name, token) in &admin.tokens {
        if constant_time_eq(presented.as_bytes(), token.expose().as_bytes()) {
            matched = Some(name.clone());
        }
    }
    matched.ok_or(ApiError::Unauthorized)
}

/// Compares without stopping at the first difference, so response time does
/// not reveal how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
