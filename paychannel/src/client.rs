//! The payment channel behind a small trait, and its HTTP implementation.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::messages::{CreatePayment, CreateRefund, CreatedPayment, PaymentState, RefundState};
use crate::{signature, SIGNATURE_HEADER};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("payment channel unreachable: {0}")]
    Unreachable(String),
    #[error("payment channel answered {status}: {body}")]
    Refused { status: StatusCode, body: String },
    #[error("payment channel sent something unreadable: {0}")]
    Unreadable(#[from] serde_json::Error),
    #[error("payment lookup answer with a missing or wrong signature")]
    BadSignature,
}

impl ChannelError {
    /// Whether the channel itself failed (unreachable, slow, broken or
    /// unsigned answers, a 5xx), not the request (a 4xx): what its circuit
    /// breaker counts.
    pub fn is_channel_fault(&self) -> bool {
        match self {
            Self::Refused { status, .. } => status.is_server_error(),
            Self::Unreachable(_) | Self::Unreadable(_) | Self::BadSignature => true,
        }
    }
}

/// What the gateway needs of a payment channel.
pub trait PaymentChannel: Send + Sync {
    /// Creates (or returns the existing) payment for an order.
    fn create<'a>(&'a self, payment: &'a CreatePayment) -> BoxFuture<'a, Result<CreatedPayment, ChannelError>>;

    /// The state of the payment for an order; `None` if the channel has none.
    /// An answer is believed only with a valid signature, like a notification.
    fn query<'a>(&'a self, merchant_order_id: &'a str) -> BoxFuture<'a, Result<Option<PaymentState>, ChannelError>>;

    /// Asks for a refund (or returns the state of the one with its id).
    fn refund<'a>(&'a self, refund: &'a CreateRefund) -> BoxFuture<'a, Result<RefundState, ChannelError>>;

    /// The state of a refund; `None` if the channel has none. Believed only signed.
    fn query_refund<'a>(&'a self, refund_id: &'a str) -> BoxFuture<'a, Result<Option<RefundState>, ChannelError>>;
}

/// A channel spoken to over HTTP (the simulator's API).
pub struct HttpChannel {
    http: Http,
    /// Shared with the channel; signs notifications and lookup answers.
    secret: Vec<u8>,
}

impl HttpChannel {
    pub fn new(base_url: &str, timeout: Duration, secret: &[u8]) -> Self {
        Self { http: Http::new(base_url, timeout), secret: secret.to_vec() }
    }

    /// The answer's status, signature header and body.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Option<String>, Bytes), ChannelError> {
        let (status, headers, body) = self.http.call(method, path, body).await.map_err(ChannelError::Unreachable)?;
        let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Ok((status, signature, body))
    }
}

/// JSON over HTTP to one partner (the channel, the warehouse), each
/// exchange bounded by a timeout.
pub(crate) struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Http {
    pub(crate) fn new(base_url: &str, timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(timeout));
        connector.set_nodelay(true);
        Self {
            base: base_url.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// The answer's status, headers and body; an error text if there was none in time.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = self.client.request(req).await.map_err(|e| e.to_string())?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
            Ok((status, headers, body.to_bytes()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

impl HttpChannel {
    /// A lookup whose answer counts only with the channel's signature.
    async fn signed_lookup<T: serde::de::DeserializeOwned>(&self, path: String) -> Result<Option<T>, ChannelError> {
        let (status, signature, body) = self.call(Method::GET, &path, None).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => {
                if !signature.is_some_and(|signature| signature::verify(&self.secret, &body, &signature)) {
                    return Err(ChannelError::BadSignature);
                }
                Ok(Some(serde_json::from_slice(&body)?))
            }
            status => Err(refused(status, &body)),
        }
    }
}

fn refused(status: StatusCode, body: &Bytes) -> ChannelError {
    ChannelError::Refused { status, body: String::from_utf8_lossy(body).into_owned() }
}

impl PaymentChannel for HttpChannel {
    fn create<'a>(&'a self, payment: &'a CreatePayment) -> BoxFuture<'a, Result<CreatedPayment, ChannelError>> {
        Box::pin(async move {
            let (status, _, body) = self.call(Method::POST, "/v1/payments", Some(serde_json::to_vec(payment)?)).await?;
            if !status.is_success() {
                return Err(refused(status, &body));
            }
            Ok(serde_json::from_slice(&body)?)
        })
    }

    fn query<'a>(&'a self, merchant_order_id: &'a str) -> BoxFuture<'a, Result<Option<PaymentState>, ChannelError>> {
        Box::pin(self.signed_lookup(format!("/v1/payments?merchant_order_id={merchant_order_id}")))
    }

    fn refund<'a>(&'a self, refund: &'a CreateRefund) -> BoxFuture<'a, Result<RefundState, ChannelError>> {
        Box::pin(async move {
            let (status, _, body) = self.call(Method::POST, "/v1/refunds", Some(serde_json::to_vec(refund)?)).await?;
            if !status.is_success() {
                return Err(refused(status, &body));
            }
            Ok(serde_json::from_slice(&body)?)
        })
    }

    fn query_refund<'a>(&'a self, refund_id: &'a str) -> BoxFuture<'a, Result<Option<RefundState>, ChannelError>> {
        Box::pin(self.signed_lookup(format!("/v1/refunds/{refund_id}")))
    }
}
