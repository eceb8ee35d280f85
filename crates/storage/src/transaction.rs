//! The one way Colloquy runs a write transaction, on every dialect.
//!
//! The rule it keeps: a transaction counts as stored only once its COMMIT returned success, and a
//! connection on which anything in the transaction failed (a statement, the COMMIT or the ROLLBACK) is
//! closed, never handed back to the pool.
//!
//! sqlx's own `Transaction` keeps a transaction depth counter beside the server's real state, and the two
//! drift apart on SQLite's full disk. Observed (sqlx 0.9, SQLite in WAL mode on a full tmpfs; the test
//! `full_disk::sqlite_on_a_full_disk_acknowledges_only_committed_batches` fails this way on the old code):
//! 1. `COMMIT` fails with `database or disk is full`, and SQLite rolls the transaction back itself. sqlx's
//!    counter stays at 1; the `ROLLBACK` it issues when the `Transaction` is dropped fails (no transaction is
//!    active), so the counter stays at 1 for good.
//! 2. The next `begin()` on that pooled connection therefore issues `SAVEPOINT _sqlx_savepoint_1`, which, with
//!    no transaction open, opens one; its "commit" is `RELEASE SAVEPOINT`, which fails on the full disk too,
//!    but this time leaves the transaction open, and the `ROLLBACK TO SAVEPOINT` on drop keeps it open.
//! 3. From then on every batch is a savepoint inside that never-ending transaction: each "commit" only
//!    releases the savepoint and returns success, the deliveries are acknowledged, nothing reaches the file,
//!    other writers get `database is locked`, and closing the connection at shutdown rolls it all back.
//!
//! Transactions here are plain `BEGIN`/`COMMIT` statements on a connection that is closed on any failure, so
//! no state can outlive an error.

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
