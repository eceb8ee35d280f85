//! SQLite: one statement per row.

super::per_row::per_row_dialect!(
    "sqlite",
    sqlx::Sqlite,
    sqlx::SqliteConnection,
    sqlx::sqlite::SqliteArguments
);
