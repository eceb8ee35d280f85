//! The server's one error type.

use std::net::SocketAddr;

/// What can go wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A non-loopback address without a token.
    #[error(
        "refusing to listen on {addr} without --auth-token: an unauthenticated server listens on loopback only \
         (give --auth-token TOKEN, or listen on 127.0.0.1)"
    )]
    Unauthenticated {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A setting is wrong.
    #[error("{0}")]
    Config(String),
    /// The database failed.
    #[error(transparent)]
    Storage(#[from] colloquy_storage::Error),
    /// The tracker store failed.
    #[error(transparent)]
    TrackerStore(#[from] colloquy_tracker_store::Error),
    /// The broker failed.
    #[error(transparent)]
    Broker(#[from] colloquy_broker::Error),
    /// The HTTP server stopped with an error.
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl Error {
    /// Whether the settings are at fault (exit code 2 in the CLI): a refused address, a bad URL, refused
    /// credentials, a database without Rasa's `events` table, an unreadable domain file.
    pub fn is_config(&self) -> bool {
        match self {
            Self::Unauthenticated { .. } | Self::Bind { .. } | Self::Config(_) => true,
            Self::Storage(error) => error.is_config() || error.is_schema_missing(),
            Self::TrackerStore(error) => error.is_config(),
            Self::Broker(error) => error.is_config(),
            Self::Serve(_) => false,
        }
    }
}

/// The server's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
