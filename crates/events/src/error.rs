//! The crate's one error type.

/// Everything that can go wrong reading or writing events. Every variant says what is wrong and where:
/// `path` is a JSONPath-like location inside the event object (`$` is the object itself, e.g.
/// `$.parse_data.entities[2].start`). `Display` is the whole message: there are no underlying causes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid JSON (or not UTF-8).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        /// serde_json's description of the problem.
        message: String,
        /// 1-based line of the problem (0 when unknown).
        line: usize,
        /// 1-based column of the problem (0 when unknown).
        column: usize,
    },
    /// A required key is absent.
    #[error("missing key `{key}` in {path}")]
    MissingKey {
        /// Where the key was expected.
        path: String,
        /// The missing key.
        key: &'static str,
    },
    /// A value has the wrong JSON type.
    #[error("{path} must be {expected}, found {found}")]
    WrongType {
        /// The offending value.
        path: String,
        /// What Rasa expects there, e.g. `a string or null`.
        expected: &'static str,
        /// The JSON type that was found, e.g. `a number`.
        found: &'static str,
    },
    /// An `action` event with neither `name` nor `action_text` (Rasa refuses to build one).
    #[error("{path}: an `action` event needs `name` or `action_text`, found neither")]
    ActionWithoutName {
        /// The event.
        path: String,
    },
    /// A `reminder`'s `date_time` is not an ISO-8601 date-time.
    #[error(
        "{path} is not an ISO-8601 date-time (`YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|±HH:MM]`): {value:?}"
    )]
    InvalidDateTime {
        /// The offending value.
        path: String,
        /// The string found.
        value: String,
    },
    /// The key `event` appears twice with different type names.
    #[error("{path}: key `event` appears twice with different values ({first:?}, {second:?})")]
    ConflictingEventType {
        /// The event.
        path: String,
        /// The first type name.
        first: String,
        /// The second type name.
        second: String,
    },
    /// A number that JSON cannot carry (infinity or NaN): handed to a writer or constructor, or read from a
    /// literal beyond the double range such as `1e400` (Python reads it as infinity and writes `Infinity`).
    #[error("{path}: {value} is not a finite number; JSON (and Rasa) cannot carry it")]
    NonFiniteNumber {
        /// Where the number was to go.
        path: String,
        /// The number.
        value: f64,
    },
    /// An integer of more than 4300 digits: Python (hence Rasa) refuses to convert it from or to text.
    #[error("{path}: an integer of {digits} digits; Python reads and writes at most 4300")]
    IntegerTooLong {
        /// Where the number is.
        path: String,
        /// How many digits it has.
        digits: usize,
    },
}

impl Error {
    /// Whether the input was not JSON at all (as opposed to JSON that is not a valid event).
    pub fn is_syntax(&self) -> bool {
        matches!(self, Error::Json { .. })
    }

    pub(crate) fn from_json(e: &serde_json::Error) -> Self {
        let text = e.to_string();
        // serde_json appends " at line L column C"; keep only the description.
        let message = match text.rfind(" at line ") {
            Some(i) if e.line() > 0 => text[..i].to_owned(),
            _ => text,
        };
        Error::Json {
            message,
            line: e.line(),
            column: e.column(),
        }
    }
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
