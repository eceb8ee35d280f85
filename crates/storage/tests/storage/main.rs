//! The storage layer against the real servers: every case runs on PostgreSQL, MySQL/MariaDB and SQLite
//! (one test per case and dialect, so one dialect's failure never hides another's), plus the adoption of
//! databases Rasa created, the commit rule on a really full disk (SQLite on a tmpfs, a private PostgreSQL
//! cluster with a full tablespace) and MySQL's refusals on a private server that is not strict by default.

mod adoption;
mod cases;
mod connect_errors;
mod fixture;
mod full_disk;
mod scale;
mod strict;
