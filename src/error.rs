//! The library's error type. Every variant says what was wrong in one line that names the field and the value.

use std::fmt::Display;
use std::path::PathBuf;

/// Errors raised by singlora.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A field holds a value outside what is accepted.
    #[error("invalid {field} = {value}: expected {expected}")]
    Invalid {
        /// The field's name as the user writes it.
        field: String,
        /// The offending value.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// A config file that does not parse.
    #[error("{path}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A file or folder that cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Command-line syntax the parser rejected (its own one-line message).
    #[error("{0}")]
    Usage(String),
    /// A safetensors file that cannot be written or read back.
    #[error("safetensors: {0}")]
    Safetensors(String),
}

impl Error {
    /// `invalid FIELD = VALUE: expected EXPECTED`.
    pub fn invalid(field: &str, value: impl Display, expected: &str) -> Self {
        Error::Invalid {
            field: field.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// Wraps an I/O error with its path.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with singlora's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
