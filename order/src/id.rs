//! Order ids: 64-bit, time-ordered, minted in the gateway without a round
//! trip, and carrying the shard bucket of the user who placed the order.
//!
//! Bit layout, most significant first (63 bits, so an id is a positive
//! `i64` and fits MySQL's signed `BIGINT`):
//!
//! | 41 bits: ms since 2024-01-01 UTC | 10 bits: bucket | 4 bits: node | 8 bits: sequence |
//!
//! 41 bits of milliseconds last until 2093. The node field keeps up to 15
//! gateway instances from minting the same id; the sixteenth node number is
//! the orders a database fallback takes while Redis is down, whose ids the
//! inventory database's primary key keeps unique across gateways. The
//! sequence gives 256 ids per millisecond per node, and a burst beyond that
//! borrows the next millisecond.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::shard::{Bucket, BUCKET_BITS};

/// 2024-01-01T00:00:00Z in Unix milliseconds.
pub const EPOCH_MS: i64 = 1_704_067_200_000;
const SEQUENCE_BITS: u32 = 8;
const NODE_BITS: u32 = 4;
/// Highest node number a gateway may have.
pub const MAX_NODE: u8 = DATABASE_NODE - 1;
/// The node number of orders the database fallback takes (see
/// [`IdGenerator::for_database`]).
pub const DATABASE_NODE: u8 = (1 << NODE_BITS) - 1;

/// An order id. Shown to clients and written to events as a decimal string,
/// because JavaScript numbers lose precision above 2^53.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OrderId(u64);

impl OrderId {
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    pub fn raw(self) -> u64 {
        self.0
    }

    /// The shard bucket of the user who placed the order.
    pub fn bucket(self) -> Bucket {
        let mask = (1u64 << BUCKET_BITS) - 1;
        Bucket::new(((self.0 >> (NODE_BITS + SEQUENCE_BITS)) & mask) as u16)
    }

    /// Whether the database fallback minted it: an order Redis may not
    /// know yet.
    pub fn from_database(self) -> bool {
        (self.0 >> SEQUENCE_BITS) & ((1 << NODE_BITS) - 1) == u64::from(DATABASE_NODE)
    }

    /// When the id was minted, in Unix milliseconds.
    pub fn unix_ms(self) -> i64 {
        (self.0 >> (BUCKET_BITS + NODE_BITS + SEQUENCE_BITS)) as i64 + EPOCH_MS
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("order id must be a positive decimal integer below 2^63")]
pub struct BadOrderId;

impl FromStr for OrderId {
    type Err = BadOrderId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<u64>() {
            Ok(raw) if raw > 0 && raw <= i64::MAX as u64 => Ok(Self(raw)),
            _ => Err(BadOrderId),
        }
    }
}

impl Serialize for OrderId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for OrderId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// Mints unique, increasing ids for one node. Lock-free: one atomic holds the
/// last (millisecond, sequence) pair handed out.
#[derive(Debug)]
pub struct IdGenerator {
    node: u64,
    last_tick: AtomicU64,
}

impl IdGenerator {
    /// `node` must be at most [`MAX_NODE`]; every gateway instance needs its own.
    pub fn new(node: u8) -> Option<Self> {
        (node <= MAX_NODE).then(|| Self { node: u64::from(node), last_tick: AtomicU64::new(0) })
    }

    /// The generator of the database fallback's orders. Every gateway has
    /// one, so two may mint the same id: the fallback's table refuses the
    /// second, which mints another.
    pub fn for_database() -> Self {
        Self { node: u64::from(DATABASE_NODE), last_tick: AtomicU64::new(0) }
    }

    /// An id for an order of a user in `bucket`, minted at `now_ms` (Unix ms).
    /// A clock that steps back does not break uniqueness: ids keep counting up
    /// from the last one handed out.
    pub fn next(&self, bucket: Bucket, now_ms: i64) -> OrderId {
        let now_tick = ((now_ms - EPOCH_MS).max(0) as u64) << SEQUENCE_BITS;
        let mut last = self.last_tick.load(Ordering::Relaxed);
        let tick = loop {
            let next = if now_tick > last { now_tick } else { last + 1 };
            match self.last_tick.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break next,
                Err(seen) => last = seen,
            }
        };
        let millis = tick >> SEQUENCE_BITS;
        let sequence = tick & ((1 << SEQUENCE_BITS) - 1);
        OrderId(
            millis << (BUCKET_BITS + NODE_BITS + SEQUENCE_BITS)
                | u64::from(bucket.get()) << (NODE_BITS + SEQUENCE_BITS)
                | self.node << SEQUENCE_BITS
                | sequence,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shard::bucket_for_user;
    use std::collections::HashSet;

    const NOW: i64 = 1_790_000_000_000;

    #[test]
    fn ids_carry_bucket_and_time() {
        let ids = IdGenerator::new(3).unwrap();
        for user in [1u64, 42, 9_999_999, u64::MAX] {
            let bucket = bucket_for_user(user);
            let id = ids.next(bucket, NOW);
            assert_eq!(id.bucket(), bucket);
            assert_eq!(id.unix_ms(), NOW);
            assert!(id.raw() <= i64::MAX as u64);
        }
    }

    #[test]
    fn a_burst_in_one_millisecond_stays_unique_and_increasing() {
        let ids = IdGenerator::new(0).unwrap();
        let bucket = bucket_for_user(7);
        let minted: Vec<OrderId> = (0..10_000).map(|_| ids.next(bucket, NOW)).collect();
        assert!(minted.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(minted.iter().collect::<HashSet<_>>().len(), minted.len());
        assert!(minted.iter().all(|id| id.bucket() == bucket));
    }

    #[test]
    fn a_clock_stepping_back_does_not_repeat_ids() {
        let ids = IdGenerator::new(1).unwrap();
        let a = ids.next(Bucket::new(5), NOW);
        let b = ids.next(Bucket::new(5), NOW - 10_000);
        assert!(b > a);
    }

    #[test]
    fn nodes_never_collide() {
        let (a, b) = (IdGenerator::new(1).unwrap(), IdGenerator::new(2).unwrap());
        assert_ne!(a.next(Bucket::new(9), NOW), b.next(Bucket::new(9), NOW));
        assert!(IdGenerator::new(MAX_NODE + 1).is_none());
    }

    #[test]
    fn the_database_fallbacks_ids_are_told_from_a_gateways() {
        let database = IdGenerator::for_database().next(Bucket::new(1023), NOW);
        assert!(database.from_database());
        assert_eq!(database.bucket(), Bucket::new(1023));
        for node in 0..=MAX_NODE {
            assert!(!IdGenerator::new(node).unwrap().next(Bucket::new(1023), NOW).from_database());
        }
    }

    #[test]
    fn ids_round_trip_as_decimal_strings() {
        let id = IdGenerator::new(0).unwrap().next(Bucket::new(1023), NOW);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.raw()));
        assert_eq!(serde_json::from_str::<OrderId>(&json).unwrap(), id);
        assert_eq!("0".parse::<OrderId>(), Err(BadOrderId));
        assert_eq!("-5".parse::<OrderId>(), Err(BadOrderId));
        assert_eq!("18446744073709551615".parse::<OrderId>(), Err(BadOrderId));
    }
}
