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
//! Transactions here are plain `BEGIN`/`COMMIT` statements on a connection that is closed on any failure,
//! and when the future running them is dropped half-way ([`Discarding`]), so no state can outlive an error
//! or a cancellation.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Executor, Pool};

/// A pooled connection that goes back to the pool only through [`Discarding::keep`]; dropped any other way
/// — an error returned early, or the future that held it dropped by a caller's timeout or at shutdown — it is
/// closed, which ends (rolls back) whatever transaction and locks it held on the server. Without this, a
/// cancelled outbox relay pass went back to the pool idle in its transaction, holding the relay lock for
/// good, and a cancelled write left its BEGIN open for the next user of the connection.
pub(crate) struct Discarding<DB: sqlx::Database>(Option<PoolConnection<DB>>);

impl<DB: sqlx::Database> Discarding<DB> {
    /// A connection of `pool`.
    pub(crate) async fn acquire(pool: &Pool<DB>) -> Result<Self, sqlx::Error> {
        Ok(Self(Some(pool.acquire().await?)))
    }

    /// Hands the connection back to the pool: call only once it is outside any transaction.
    pub(crate) fn keep(mut self) {
        drop(self.0.take());
    }
}

impl<DB: sqlx::Database> Deref for Discarding<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        // tidy: allow(unwrap) `None` only inside `keep` and `drop`, which consume the guard.
        self.0.as_ref().expect("held until kept or dropped")
    }
}

impl<DB: sqlx::Database> DerefMut for Discarding<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        // tidy: allow(unwrap) `None` only inside `keep` and `drop`, which consume the guard.
        self.0.as_mut().expect("held until kept or dropped")
    }
}

impl<DB: sqlx::Database> Drop for Discarding<DB> {
    fn drop(&mut self) {
        if let Some(mut conn) = self.0.take() {
            conn.close_on_drop();
        }
    }
}

/// Runs `body` in a transaction opened with `begin` on a connection of `pool`, then commits. On any error,
/// or if the returned future is dropped before it finishes, the connection is closed (which rolls the
/// transaction back on the server) instead of being reused.
pub(crate) async fn write<DB, T>(
    pool: &Pool<DB>,
    begin: &'static str,
    body: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    let mut conn = Discarding::acquire(pool).await?;
    (&mut *conn).execute(sqlx::raw_sql(begin)).await?;
    let value = body(&mut conn).await?;
    (&mut *conn).execute(sqlx::raw_sql("COMMIT")).await?;
    conn.keep();
    Ok(value)
}

/// Runs one statement (atomic on its own) on a connection of `pool`; on an error, or if the returned future
/// is dropped before it finishes, the connection is closed instead of being reused.
#[cfg(feature = "postgres")]
pub(crate) async fn single<DB, T>(
    pool: &Pool<DB>,
    body: impl AsyncFnOnce(&mut DB::Connection) -> Result<T, sqlx::Error>,
) -> Result<T, sqlx::Error>
where
    DB: sqlx::Database,
{
    let mut conn = Discarding::acquire(pool).await?;
    let value = body(&mut conn).await?;
    conn.keep();
    Ok(value)
}
