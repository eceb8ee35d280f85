//! The storage layer against the real servers: every case runs on PostgreSQL, MySQL/MariaDB and SQLite
//! (one test per case and dialect, so one dialect's failure never hides another's), plus the adoption of
//! databases Rasa created and the commit rule on a really full disk.

mod adoption;
mod cases;
mod fixture;
mod full_disk;
