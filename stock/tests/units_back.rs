//! The watch of the unit ledger's channel against a Redis of the test's own
//! (`redis-server` on a spare loopback port), killed and started again: a
//! gateway must know when it may have missed that units came back.

use std::process::Stdio;
use std::time::Duration;

use stock::{units_back, RedisConfig, SaleStore, SaleTerms, UnitsBack};
use tokio::process::{Child, Command};
use tokio::sync::mpsc::UnboundedReceiver;

fn spare_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn redis_server(port: u16) -> Child {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server (scripts/setup.sh installs it)")
}

async fn next(events: &mut UnboundedReceiver<UnitsBack>) -> UnitsBack {
    tokio::time::timeout(Duration::from_secs(10), events.recv()).await.expect("an event within 10 s").unwrap()
}

#[tokio::test]
async fn the_watch_says_when_it_was_down_and_is_back() {
    let port = spare_port();
    let mut server = redis_server(port);
    let config = RedisConfig { url: format!("redis://127.0.0.1:{port}"), ..RedisConfig::default() };
    let store = SaleStore::connect(&config).unwrap();
    assert!(store.redis().wait_connected(Duration::from_secs(10)).await, "own redis on {port}");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let redis = store.redis().clone();
    let watch = tokio::spawn(async move { units_back::watch(&redis, move |event| drop(tx.send(event))).await });
    assert_eq!(next(&mut events).await, UnitsBack::Up);

    let terms = SaleTerms { stock: 3, per_user_limit: 1, price_cents: 100, ..Default::default() };
    store.load_sale("tv", &terms).await.unwrap();
    assert_eq!(next(&mut events).await, UnitsBack::Sku("tv".into()), "a loaded sale's units are on sale");

    // Quiet for a while: the heartbeat keeps it up.
    assert!(tokio::time::timeout(Duration::from_millis(2_500), events.recv()).await.is_err(), "no event while quiet");
    // A Redis that answers nothing (SIGSTOP: its sockets stay open) is down
    // to the watch within its heartbeat, and up again once it answers.
    let pid = server.id().unwrap().to_string();
    Command::new("kill").args(["-STOP", &pid]).status().await.unwrap();
    assert_eq!(next(&mut events).await, UnitsBack::Down);
    Command::new("kill").args(["-CONT", &pid]).status().await.unwrap();
    assert_eq!(next(&mut events).await, UnitsBack::Up);

    server.kill().await.unwrap();
    assert_eq!(next(&mut events).await, UnitsBack::Down);
    let _server = redis_server(port);
    // Up again, maybe after more downs while it reconnects: a sale loaded
    // once it is up is seen (one loaded while it is down may not be).
    let mut last = UnitsBack::Down;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let _ = store.load_sale("radio", &terms).await;
        match tokio::time::timeout_at(deadline, events.recv()).await.expect("seen within 10 s").unwrap() {
            UnitsBack::Sku(sku) if sku == "radio" => break,
            UnitsBack::Sku(_) => {}
            state => last = state,
        }
    }
    assert_eq!(last, UnitsBack::Up, "a message arrives only while the watch says it is up");
    watch.abort();
}
