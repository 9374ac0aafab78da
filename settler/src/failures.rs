//! Which database errors are worth retrying. A transient error (the shard
//! is down, restarting, full, failing over, or two transactions collided)
//! goes away by itself: the write is retried with backoff and the offsets
//! wait. A permanent one is the shard refusing that row (a constraint the
//! event breaks, a value the column refuses): it would fail the same way
//! forever, so that event goes to the dead-letter topic with the reason,
//! and the batch goes on.

use orderdb::orders::error_number;

/// MySQL / MariaDB error numbers that single out one row: the same event
/// fails the same way on any retry. Anything else — the server down, full,
/// read-only in a failover, over a limit, a deadlock — may clear up, and a
/// real order is better waited on than set aside.
const ROW_REFUSED_CODES: &[u16] = &[
    1048, // column cannot be null
    1062, // duplicate entry
    1264, // out of range value
    1265, // data truncated
    1292, // incorrect value (e.g. a date)
    1366, // incorrect value for the column's type or charset
    1406, // data too long
    1452, // foreign key constraint
    3819, // check constraint
    4025, // constraint failed (MariaDB)
];

/// Whether retrying `err` may succeed: everything but a row's own refusal
/// and an event or row that does not decode to a valid order or move.
pub fn is_transient(err: &sqlx::Error) -> bool {
    if matches!(err, sqlx::Error::Decode(_) | sqlx::Error::ColumnDecode { .. }) {
        return false;
    }
    !error_number(err).is_some_and(|number| ROW_REFUSED_CODES.contains(&number))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_are_transient() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(is_transient(&io));
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
    }

    #[test]
    fn a_move_the_table_refuses_is_not() {
        assert!(!is_transient(&sqlx::Error::Decode("Ship by Buyer is not allowed from PAID".into())));
    }
}
