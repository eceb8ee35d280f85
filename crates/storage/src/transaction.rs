//! The one way Colloquy runs a write transaction, on every dialect.
//!
//! The rule it keeps: a transaction counts as stored only once its COMMIT returned success, and a
//! connection on which anything in the transaction failed (a statement, the COMMIT or the ROLLBACK) is
//! closed, never handed back to the pool. sqlx's own `Transaction` keeps a transaction depth counter beside
//! the server's real state; when SQLite's COMMIT fails (`database or disk is full`) the counter stays at one
//! while the transaction is still open, so the next `begin()` on that pooled connection issues a SAVEPOINT
//! inside the old transaction, and every later "commit" only releases a savepoint: the batches report
//! success, their deliveries are acknowledged, and nothing ever reaches the file. Transactions here are plain
//! `BEGIN`/`COMMIT` statements on a connection that is discarded on any failure, so no state can outlive an
//! error.

use sqlx::pool::PoolConnection;
use sqlx::{Executor, Pool};

/// Runs `body` in a transaction opened with `begin` on a connection of `pool`, then commits. On any error
/// the connection is closed (which rolls the transaction back on the server) instead of being reused.
pub(crate) async fn write<DB, T>(
    pool: &Pool<DB>,
    begin: &'static str,
    body: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn: PoolConnection<DB> = pool.acquire().await?;
    let outcome = async {
        conn.execute(sqlx::raw_sql(begin)).await?;
        let value = body(&mut conn).await?;
        conn.execute(sqlx::raw_sql("COMMIT")).await?;
        Ok(value)
    }
    .await;
    if outcome.is_err() {
        conn.close_on_drop();
    }
    outcome
}

/// Runs one statement (atomic on its own) on a connection of `pool`; on an error the connection is closed
/// instead of being reused.
pub(crate) async fn single<DB, T>(
    pool: &Pool<DB>,
    body: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error>
where
    DB: sqlx::Database,
{
    let mut conn: PoolConnection<DB> = pool.acquire().await?;
    let outcome = body(&mut conn).await;
    if outcome.is_err() {
        conn.close_on_drop();
    }
    outcome
}
