//! Refusals decided before an order is placed, from what this instance
//! knows: the token buckets and deny lists, the in-flight cap, a sale window
//! known locally, an open circuit breaker. One type for all of them;
//! the gateway's `answers.rs` says how it is answered.

use chrono::{DateTime, Utc};

/// A dependency whose failure turns into a 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} unavailable", self.as_str())]
pub enum Dependency {
    Redis,
    Kafka,
    Mysql,
    PaymentChannel,
    Warehouse,
}

impl Dependency {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Kafka => "kafka",
            Self::Mysql => "mysql",
            Self::PaymentChannel => "payment_channel",
            Self::Warehouse => "warehouse",
        }
    }
}

/// `map_err` for a failed call to `dependency`: logs what was being done
/// and why it failed, and gives the dependency, which `?` turns into the
/// caller's "unavailable" (a 503).
pub fn down<E: std::fmt::Display>(dependency: Dependency, what: &'static str) -> impl FnOnce(E) -> Dependency {
    move |err| {
        tracing::warn!(dependency = dependency.as_str(), error = %err, "{what} failed");
        dependency
    }
}

/// Which bucket or deny list refused (or admitted) a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Ip,
    User,
    /// A storefront channel's quota (all its requests, or one route's).
    Channel,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Global => "global",
            Self::Ip => "ip",
            Self::User => "user",
            Self::Channel => "channel",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("rate limited ({})", .scope.as_str())]
    RateLimited { scope: Scope, retry_after_secs: u64 },
    /// On a deny list.
    #[error("denied ({})", .scope.as_str())]
    Denied { scope: Scope },
    #[error("too many requests in flight")]
    Overloaded,
    #[error("the sale has not started")]
    SaleNotStarted { starts_at: DateTime<Utc> },
    #[error("the sale has ended")]
    SaleEnded,
    /// The dependency's circuit breaker is open: failing fast.
    #[error("{} breaker open", .0.as_str())]
    BreakerOpen(Dependency),
}
