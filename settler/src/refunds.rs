//! The refund driver: every pending refund whose attempt is due is asked
//! of the payment channel, and asked about again until the channel settles
//! it (its signed notification reaches the gateway, or a lookup here finds
//! it done). An attempt whose answer never came is unknown, not failed: the
//! next one looks the refund up before asking again, and the channel takes
//! one refund per id, so nothing is refunded twice. Out of attempts, the
//! refund is STUCK, logged, and waits for an operator (`/admin/refunds`).

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use order::id::OrderId;
use orderdb::refunds::{DueRefund, Settled};
use orderdb::ShardPools;
use paychannel::channels::Channels;
use paychannel::client::ChannelError;
use paychannel::messages::{CreateRefund, RefundState, RefundStatus};

/// Most refunds asked about per shard per round.
const AT_ONCE: u32 = 100;
/// The wait between attempts stops doubling at `retry_every` times this.
const MAX_BACKOFF_FACTOR: u32 = 16;
/// The retry budget: once a channel failed this many calls in a round
/// (unreachable, slow, a 5xx), the round asks it nothing more; its other
/// due refunds wait their first retry time again, their attempts unspent,
/// so refunds through the other channels are fetched first.
const CHANNEL_FAULTS_PER_ROUND: u32 = 5;

/// The wait after attempt `attempts` (from 0) before the next: doubling
/// from `retry_every` up to [`MAX_BACKOFF_FACTOR`] times it, and drawn
/// (`draw`, 0 to 1) between half of that and all of it, so a channel
/// failing many refunds at once is not asked about them all at once again.
fn next_wait(retry_every: Duration, attempts: u32, draw: f64) -> Duration {
    let factor = 2u32.saturating_pow(attempts).min(MAX_BACKOFF_FACTOR);
    retry_every.saturating_mul(factor).mul_f64(0.5 + draw.clamp(0.0, 1.0) / 2.0)
}

/// What one attempt at a refund came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attempted {
    Settled(Settled),
    /// Asked; its outcome comes later (or the next attempt asks again).
    Waiting,
    /// The channel failed the call: it counts against the round's budget.
    ChannelFault,
}

impl Attempted {
    fn after(err: &ChannelError) -> Self {
        if err.is_channel_fault() {
            Self::ChannelFault
        } else {
            Self::Waiting
        }
    }
}

impl From<Option<Settled>> for Attempted {
    fn from(settled: Option<Settled>) -> Self {
        settled.map_or(Self::Waiting, Self::Settled)
    }
}

pub struct RefundDriver {
    /// The payment channels: a refund goes through its payment's.
    pub channels: Channels,
    /// The gateway's `/v1/refunds/notify`, as the channels reach it: a
    /// channel's notifications go to it followed by `/<channel id>`.
    pub notify_url: String,
    /// Wait before asking about a refund again, the first time (then
    /// doubling, with jitter: see [`next_wait`]).
    pub retry_every: Duration,
    /// Attempts before a refund is STUCK.
    pub max_attempts: u32,
}

impl RefundDriver {
    /// One round over shard `shard`'s due refunds: how many were settled,
    /// and the orders whose refunds it looked at (their views changed).
    pub async fn round(&self, shards: &ShardPools, shard: usize) -> Result<(u64, Vec<OrderId>), sqlx::Error> {
        let mut settled = 0;
        let due_now = shards.due_refunds(shard, AT_ONCE).await?;
        let touched = due_now.iter().map(|due| due.order_id).collect();
        let mut faults: HashMap<String, u32> = HashMap::new();
        for due in due_now {
            let channel = Channels::resolve(&due.channel).to_owned();
            if faults.get(&channel).is_some_and(|faults| *faults >= CHANNEL_FAULTS_PER_ROUND) {
                // Behind the other channels' due refunds, so the next
                // round fetches those first; no attempt spent.
                let later = Utc::now()
                    + chrono::Duration::from_std(next_wait(self.retry_every, 0, rand::random::<f64>()))
                        .unwrap_or(chrono::Duration::MAX);
                shards.defer_refund(&due.refund_id, later).await?;
                metrics::counter!("settler_refund_attempts_deferred_total", "channel" => channel).increment(1);
                continue;
            }
            let wait = next_wait(self.retry_every, due.attempts, rand::random::<f64>());
            let next_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
            if !shards.claim_refund(&due, next_at, self.max_attempts).await? {
                if due.attempts >= self.max_attempts {
                    metrics::counter!("settler_refunds_stuck_total").increment(1);
                    tracing::error!(
                        refund_id = due.refund_id,
                        "refund stuck: no outcome after its attempts; an operator must retry it"
                    );
                }
                continue;
            }
            match self.attempt(shards, &due).await? {
                Attempted::Settled(Settled::Recorded) => settled += 1,
                Attempted::ChannelFault => *faults.entry(channel).or_default() += 1,
                Attempted::Settled(_) | Attempted::Waiting => {}
            }
        }
        Ok((settled, touched))
    }

    async fn attempt(&self, shards: &ShardPools, due: &DueRefund) -> Result<Attempted, sqlx::Error> {
        let id = due.refund_id.as_str();
        let Some(channel) = self.channels.get(&due.channel) else {
            tracing::error!(refund_id = id, channel = due.channel, "refund through a channel no longer configured");
            shards.refund_attempted(id, "UNKNOWN", &format!("no channel {:?} configured", due.channel)).await?;
            return Ok(Attempted::Waiting);
        };
        // After an attempt, the channel may have it already: look first.
        if due.attempts > 0 {
            match channel.query_refund(id).await {
                Ok(Some(state)) if state.refund_id == id && state.status != RefundStatus::Failed => {
                    return self.found(shards, due, &state).await.map(Attempted::from);
                }
                Ok(_) => {}
                Err(err) => {
                    shards.refund_attempted(id, "UNKNOWN", &format!("lookup: {err}")).await?;
                    return Ok(Attempted::after(&err));
                }
            }
        }
        let request = CreateRefund {
            refund_id: id.to_owned(),
            payment_id: due.payment_id.clone(),
            merchant_order_id: due.order_id.to_string(),
            amount_cents: due.amount_cents,
            notify_url: format!("{}/{}", self.notify_url.trim_end_matches('/'), Channels::resolve(&due.channel)),
        };
        match channel.refund(&request).await {
            // Only a signed notification or lookup settles a refund: an
            // unsigned answer here only says the channel took it.
            Ok(state) if state.refund_id == id => {
                shards.refund_attempted(id, "REQUESTED", &format!("the channel took it ({:?})", state.status)).await?;
                Ok(Attempted::Waiting)
            }
            Ok(state) => {
                tracing::error!(
                    refund_id = id,
                    answered = state.refund_id,
                    "the channel answered about another refund"
                );
                shards.refund_attempted(id, "UNKNOWN", "the answer named another refund").await?;
                Ok(Attempted::Waiting)
            }
            Err(ChannelError::Refused { status, body }) => {
                tracing::warn!(refund_id = id, %status, body, "the channel refused a refund");
                shards.refund_attempted(id, "FAILED", &format!("{status}: {body}")).await?;
                Ok(if status.is_server_error() { Attempted::ChannelFault } else { Attempted::Waiting })
            }
            Err(err) => {
                tracing::warn!(refund_id = id, error = %err, "refund outcome unknown; asking again later");
                shards.refund_attempted(id, "UNKNOWN", &err.to_string()).await?;
                Ok(Attempted::after(&err))
            }
        }
    }

    /// Settles a refund the channel reports done; one still processing waits.
    async fn found(
        &self,
        shards: &ShardPools,
        due: &DueRefund,
        state: &RefundState,
    ) -> Result<Option<Settled>, sqlx::Error> {
        let succeeded = match state.status {
            RefundStatus::Processing => return Ok(None),
            RefundStatus::Success => true,
            RefundStatus::Failed => false,
        };
        let channels = [due.channel.as_str()];
        shards.refund_settled(&state.refund_id, &channels, succeeded, "lookup").await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_a_cap_and_is_jittered_within_half_of_it() {
        let every = Duration::from_secs(30);
        let waits: Vec<u64> = (0..7).map(|attempts| next_wait(every, attempts, 1.0).as_secs()).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 480, 480]);
        assert_eq!(next_wait(every, 2, 0.0), Duration::from_secs(60));
        assert_eq!(next_wait(every, u32::MAX, 0.5), Duration::from_secs(360));
    }
}
