//! The unit ledger's `units_back` channel (`lua/lib/units.lua`): which
//! SKUs had units come back on sale. A gateway that answers a sold-out
//! SKU's requests from a snapshot of its used idempotency keys watches it,
//! and drops the snapshot when the SKU's units come back (a key that
//! reserves after the snapshot needs units on sale first).

use std::time::Duration;

use fred::prelude::*;
use tokio::sync::broadcast::error::RecvError;

use crate::keys::sku_of_sale_key;
use crate::redis::Redis;

/// The channel the unit ledger publishes on.
pub const CHANNEL: &str = "units_back";

/// What the watch saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitsBack {
    /// Units of this SKU came back on sale.
    Sku(String),
    /// The watch is down: messages from now until the next [`UnitsBack::Up`] may be lost.
    Down,
    /// The watch is up again; anything before may have been missed.
    Up,
}

/// How long the watch waits before subscribing again after a failure.
const RETRY: Duration = Duration::from_millis(250);

/// How often the watch pings its connection, and how long the answer may
/// take: a connection cut without a word (a half-open socket after a
/// failover) says nothing by itself, and its messages would be lost unseen.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// Watches the channel on a connection of its own, for good, handing each
/// event to `on`; nothing is watched before its first [`UnitsBack::Up`].
pub async fn watch(redis: &Redis, on: impl Fn(UnitsBack)) {
    let client = redis.pool.next().clone_new();
    let _connection = client.connect();
    loop {
        if client.wait_for_connect().await.is_err() {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Listening before subscribing: a reconnect from here on is seen
        // (the subscription would be gone with the old connection), one
        // before lands the subscription on the new connection.
        let (mut messages, mut reconnects, mut errors) =
            (client.message_rx(), client.reconnect_rx(), client.error_rx());
        if client.subscribe(CHANNEL).await.is_err() {
            tokio::time::sleep(RETRY).await;
            continue;
        }
        on(UnitsBack::Up);
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                _ = heartbeat.tick() => {
                    if !matches!(tokio::time::timeout(HEARTBEAT, client.ping::<Value>(None)).await, Ok(Ok(_))) {
                        break;
                    }
                }
                message = messages.recv() => match message {
                    Ok(message) => {
                        let key = message.value.as_string().unwrap_or_default();
                        if let Some(sku) = sku_of_sale_key(&redis.namespace, &key) {
                            on(UnitsBack::Sku(sku.to_owned()));
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        on(UnitsBack::Down);
                        on(UnitsBack::Up);
                    }
                    Err(RecvError::Closed) => return on(UnitsBack::Down),
                },
                _ = reconnects.recv() => break,
                _ = errors.recv() => break,
            }
        }
        on(UnitsBack::Down);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ledger_publishes_on_this_channel() {
        let ledger = include_str!("../lua/lib/units.lua");
        assert!(ledger.contains(&format!("local UNITS_BACK = '{}'", super::CHANNEL)));
    }
}
