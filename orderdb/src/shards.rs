//! The shard pools: one per physical database, in shard order; routing by
//! user and by order id; the schema migrations; creating and dropping the
//! databases on a server.

use std::time::Duration;

use order::id::OrderId;
use order::shard::ShardRouter;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::Executor;

/// The schema, embedded at build time from `orderdb/migrations`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The shards of a local development set-up (`scripts/setup.sh`).
pub fn local_dsns() -> Vec<String> {
    (0..4).map(|shard| format!("mysql://flashsale:flashsale@127.0.0.1:3306/orders_{shard}")).collect()
}

pub struct ShardPools {
    pub router: ShardRouter,
    pub pools: Vec<MySqlPool>,
}

impl ShardPools {
    /// Lazy pools of `size` connections: a shard that is down fails its
    /// calls after `acquire_timeout`; it does not stop a service from starting.
    pub fn connect_lazy(dsns: &[String], size: u32, acquire_timeout: Duration) -> Result<Self, sqlx::Error> {
        let router = ShardRouter::new(dsns.len())
            .ok_or_else(|| sqlx::Error::Configuration("between 1 and 1024 shards".into()))?;
        let pools = dsns
            .iter()
            .map(|dsn| MySqlPoolOptions::new().max_connections(size).acquire_timeout(acquire_timeout).connect_lazy(dsn))
            .collect::<Result<_, _>>()?;
        Ok(Self { router, pools })
    }

    pub fn for_user(&self, user_id: u64) -> &MySqlPool {
        &self.pools[self.router.shard_for_user(user_id)]
    }

    /// The shard of the order's user, read from the bucket in its id (also
    /// for a refund of an order whose user is unknown).
    pub fn for_order(&self, order_id: OrderId) -> &MySqlPool {
        &self.pools[self.router.shard_of(order_id.bucket())]
    }

    /// Applies the migrations to every shard.
    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        for pool in &self.pools {
            MIGRATOR.run(pool).await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        for pool in &self.pools {
            pool.close().await;
        }
    }
}

/// Creates each DSN's database if it is missing, connecting to its server
/// without a database.
pub async fn create_databases(dsns: &[String]) -> Result<(), sqlx::Error> {
    on_each_server(dsns, |database| format!("CREATE DATABASE IF NOT EXISTS `{database}`")).await
}

/// Drops each DSN's database (tests and benchmarks clean up with it).
pub async fn drop_databases(dsns: &[String]) -> Result<(), sqlx::Error> {
    on_each_server(dsns, |database| format!("DROP DATABASE IF EXISTS `{database}`")).await
}

async fn on_each_server(dsns: &[String], statement: impl Fn(&str) -> String) -> Result<(), sqlx::Error> {
    for dsn in dsns {
        let (server, database) =
            split_database(dsn).ok_or_else(|| sqlx::Error::Configuration(format!("{dsn}: no database name").into()))?;
        let pool = MySqlPoolOptions::new().max_connections(1).connect(&server).await?;
        let done = pool.execute(statement(&database).as_str()).await;
        pool.close().await;
        done?;
    }
    Ok(())
}

/// Splits `mysql://user@host/db?opts` into (`mysql://user@host/?opts`, `db`).
/// Only names of `[A-Za-z0-9_]` are accepted: they go into DDL unquoted.
pub fn split_database(dsn: &str) -> Option<(String, String)> {
    let (base, query) = dsn.split_once('?').map_or((dsn, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://")? + 3;
    let slash = after_scheme + base[after_scheme..].find('/')?;
    let database = &base[slash + 1..];
    let valid = !database.is_empty() && database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !valid {
        return None;
    }
    let server = match query {
        Some(query) => format!("{}/?{query}", &base[..slash]),
        None => format!("{}/", &base[..slash]),
    };
    Some((server, database.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_database_off_a_dsn() {
        assert_eq!(
            split_database("mysql://u:p@127.0.0.1:3306/orders_0"),
            Some(("mysql://u:p@127.0.0.1:3306/".into(), "orders_0".into()))
        );
        assert_eq!(
            split_database("mysql://u@h/orders_1?ssl-mode=disabled"),
            Some(("mysql://u@h/?ssl-mode=disabled".into(), "orders_1".into()))
        );
        assert_eq!(split_database("mysql://u@h"), None);
        assert_eq!(split_database("mysql://u@h/"), None);
        assert_eq!(split_database("mysql://u@h/x`;drop"), None);
    }
}
