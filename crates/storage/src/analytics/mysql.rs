//! MySQL and MariaDB: one statement per row.

super::per_row::per_row_dialect!(
    "mysql",
    sqlx::MySql,
    sqlx::MySqlConnection,
    sqlx::mysql::MySqlArguments
);
