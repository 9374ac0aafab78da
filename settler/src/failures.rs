//! Which database errors are worth retrying. A transient error (the shard
//! is down, restarting, failing over, or two transactions collided) goes
//! away by itself: the write is retried with backoff and the offsets wait.
//! A permanent one (a constraint the event breaks, a value the column
//! refuses) would fail the same way forever: that event goes to the
//! dead-letter topic with the reason, and the batch goes on.

use sqlx::mysql::MySqlDatabaseError;

/// MySQL / MariaDB error numbers that clear up by themselves.
const TRANSIENT_CODES: &[u16] = &[
    1040, // too many connections
    1053, // server shutdown in progress
    1205, // lock wait timeout
    1213, // deadlock
    1290, // read-only (a failover in progress)
    1927, // connection killed
    2002, // cannot connect
    2006, // server has gone away
    2013, // lost connection during query
];

/// Whether retrying `err` may succeed. Anything that is not a database's
/// refusal counts as transient (a connection, pool or protocol failure):
/// better to wait on a real order than to set it aside.
pub fn is_transient(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(db) => match db.try_downcast_ref::<MySqlDatabaseError>() {
            Some(mysql) => TRANSIENT_CODES.contains(&mysql.number()),
            None => true,
        },
        _ => true,
    }
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
}
