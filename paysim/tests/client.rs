//! The channel client against the simulator: a lookup answer is believed
//! only when signed with the shared secret.

use std::time::Duration;

use paychannel::client::{ChannelError, HttpChannel, PaymentChannel};
use paychannel::messages::CreatePayment;
use paysim::Simulator;

#[tokio::test]
async fn lookup_answers_must_carry_the_channel_signature() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let simulator = Simulator::new(b"channel-secret", &[]);
    tokio::spawn(simulator.serve(listener, std::future::pending()));
    let genuine = HttpChannel::new(&base, Duration::from_secs(2), b"channel-secret");
    let payment = CreatePayment {
        merchant_order_id: "42".into(),
        amount_cents: 100,
        attach: "sku".into(),
        notify_url: "http://127.0.0.1:9/unused".into(),
    };
    genuine.create(&payment).await.unwrap();

    assert!(genuine.query("42").await.unwrap().is_some(), "signed with the shared secret");
    assert!(genuine.query("43").await.unwrap().is_none());
    let impostor = HttpChannel::new(&base, Duration::from_secs(2), b"another-secret");
    assert!(matches!(impostor.query("42").await, Err(ChannelError::BadSignature)));
}
