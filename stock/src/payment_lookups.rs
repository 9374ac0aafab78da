//! Payments their channels are to be asked about (in case their
//! notification is lost): a sorted set of
//! `<sku>:<order id>:<started ms>:<channel>` scored by when the next query
//! is due, claimed atomically by the gateways' pollers.

use fred::prelude::*;
use order::id::OrderId;

use crate::error::StoreError;
use crate::redis::Redis;

/// A payment the channel is to be asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentQuery {
    pub sku: String,
    pub order_id: OrderId,
    pub started_ms: i64,
    /// The channel the payment was created at (`""` in lookups queued
    /// before there were several: the default).
    pub channel: String,
}

impl PaymentQuery {
    /// A lookup queued before there were several channels keeps its
    /// three-part form, so dropping it finds it.
    fn member(&self) -> String {
        match self.channel.as_str() {
            "" => format!("{}:{}:{}", self.sku, self.order_id, self.started_ms),
            channel => format!("{}:{}:{}:{channel}", self.sku, self.order_id, self.started_ms),
        }
    }

    fn parse(member: &str) -> Option<Self> {
        let mut parts = member.split(':');
        let query = Self {
            sku: parts.next()?.to_owned(),
            order_id: parts.next()?.parse().ok()?,
            started_ms: parts.next()?.parse().ok()?,
            channel: parts.next().unwrap_or_default().to_owned(),
        };
        parts.next().is_none().then_some(query)
    }
}

/// The payments the channel is to be asked about, due by time.
#[derive(Clone)]
pub struct PaymentLookups {
    redis: Redis,
}

impl PaymentLookups {
    pub fn new(redis: Redis) -> Self {
        Self { redis }
    }

    /// Asks for the channel to be queried about a payment from `due_ms` on.
    pub async fn queue_payment_query(&self, query: &PaymentQuery, due_ms: i64) -> Result<(), StoreError> {
        let _: i64 = self
            .redis
            .pool
            .next()
            .zadd(&self.redis.global.payment_queries, None, None, false, false, (due_ms as f64, query.member()))
            .await?;
        Ok(())
    }

    /// Claims up to `max` queries due at `now_ms`, pushing them to `next_due_ms`.
    pub async fn claim_payment_lookups(
        &self,
        now_ms: i64,
        next_due_ms: i64,
        max: usize,
    ) -> Result<Vec<PaymentQuery>, StoreError> {
        let members: Vec<String> = self
            .redis
            .scripts
            .claim_queries
            .evalsha_with_reload(
                self.redis.pool.next(),
                self.redis.global.claim_queries(),
                vec![now_ms.to_string(), next_due_ms.to_string(), max.to_string()],
            )
            .await?;
        Ok(members.iter().filter_map(|member| PaymentQuery::parse(member)).collect())
    }

    /// Stops querying about a payment (settled, or given up on).
    pub async fn drop_payment_query(&self, query: &PaymentQuery) -> Result<(), StoreError> {
        let _: i64 = self.redis.pool.next().zrem(&self.redis.global.payment_queries, query.member()).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lookup_queued_before_channels_were_named_is_the_default_channels() {
        let query =
            PaymentQuery { sku: "tv".into(), order_id: OrderId::from_raw(7), started_ms: 5, channel: "wallet".into() };
        assert_eq!(PaymentQuery::parse(&query.member()), Some(query));
        let old = PaymentQuery::parse("tv:7:5").unwrap();
        assert_eq!(old.channel, "");
        assert_eq!(old.member(), "tv:7:5", "dropped by the member it was queued as");
        assert_eq!(PaymentQuery::parse("tv:7:5:card:more"), None);
    }
}
