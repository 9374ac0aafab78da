//! Shard routing. A user id hashes to one of [`BUCKETS`] logical buckets,
//! forever; buckets map onto however many physical databases there are.
//! Adding a database moves whole buckets, never re-hashes users.

/// Number of logical buckets. Part of the order id layout: never change it.
pub const BUCKETS: u16 = 1 << BUCKET_BITS;
pub(crate) const BUCKET_BITS: u32 = 10;

/// A logical shard bucket, `0..BUCKETS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bucket(u16);

impl Bucket {
    /// Panics if `value` is not below [`BUCKETS`]; callers pass masked values.
    pub fn new(value: u16) -> Self {
        assert!(value < BUCKETS, "bucket {value} out of range");
        Self(value)
    }

    pub fn get(self) -> u16 {
        self.0
    }
}

/// The bucket of a user. The splitmix64 finaliser spreads sequential ids
/// evenly and is fixed here, so it cannot change with a library upgrade.
pub fn bucket_for_user(user_id: u64) -> Bucket {
    let mut z = user_id.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    Bucket((z % u64::from(BUCKETS)) as u16)
}

/// Maps buckets onto `shards` physical databases (bucket modulo shard count).
#[derive(Debug, Clone, Copy)]
pub struct ShardRouter {
    shards: usize,
}

impl ShardRouter {
    /// `shards` must be between 1 and [`BUCKETS`].
    pub fn new(shards: usize) -> Option<Self> {
        (1..=usize::from(BUCKETS)).contains(&shards).then_some(Self { shards })
    }

    pub fn shards(&self) -> usize {
        self.shards
    }

    pub fn shard_of(&self, bucket: Bucket) -> usize {
        usize::from(bucket.get()) % self.shards
    }

    pub fn shard_for_user(&self, user_id: u64) -> usize {
        self.shard_of(bucket_for_user(user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn every_user_lands_on_a_valid_shard() {
        let mut rng = rand::thread_rng();
        for shards in [1, 2, 3, 4, 7, 1024] {
            let router = ShardRouter::new(shards).unwrap();
            for _ in 0..10_000 {
                assert!(router.shard_for_user(rng.gen()) < shards);
            }
        }
        assert!(ShardRouter::new(0).is_none());
        assert!(ShardRouter::new(1025).is_none());
    }

    #[test]
    fn the_hash_is_stable() {
        // Pinned: changing these values would move every stored order.
        assert_eq!(bucket_for_user(0).get(), 431);
        assert_eq!(bucket_for_user(1).get(), 193);
    }

    #[test]
    fn sequential_users_spread_evenly() {
        let router = ShardRouter::new(4).unwrap();
        let mut counts = [0usize; 4];
        for user in 0..40_000u64 {
            counts[router.shard_for_user(user)] += 1;
        }
        assert!(counts.iter().all(|&c| (9_000..11_000).contains(&c)), "{counts:?}");
    }
}
