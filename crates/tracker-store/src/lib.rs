//! `colloquy-tracker-store`: tracker stores (in memory and PostgreSQL) and the SQL event schema shared with the
//! consumer service.
//!
//! PROVISIONAL: the stores land with the tracker-store issue; [`schema`] is the shared schema.

pub mod schema;
