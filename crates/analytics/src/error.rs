//! The crate's one error type.

/// What went wrong while deriving analytics rows or evaluating markers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event arrived at a position beyond the next one expected for its conversation: events in between
    /// were never given. Nothing was changed; give the missing events first.
    #[error(
        "conversation {sender_id:?}: expected the event at position {expected}, got position {got}"
    )]
    Gap {
        /// The conversation.
        sender_id: String,
        /// The next position the conversation's state expects.
        expected: u64,
        /// The position given.
        got: u64,
    },
    /// A marker configuration is not valid; the message says where and why.
    #[error("invalid marker configuration: {0}")]
    MarkerConfig(String),
    /// A conversation state could not be read back (it was not written by this version).
    #[error("cannot read a conversation state: {0}")]
    State(String),
    /// Writing a CSV file failed.
    #[error("cannot write {what}")]
    Write {
        /// The file being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// `true` when the input (a configuration, a state, a stream of events) is at fault and retrying the same
    /// input cannot succeed; `false` for I/O failures.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, Error::Write { .. })
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
