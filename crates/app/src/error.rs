//! Errors of the application layer, each with the contract's exit code.

use std::net::SocketAddr;

use portcullis_policy::ConfigError;

/// Why serving (or a command of this layer) stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The config file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config file cannot be read.
    #[error("{path}: {source}")]
    ReadConfig {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime could not start (threads, signals): exit 2, never 1, which
    /// means a negative answer.
    #[error("{0}")]
    Runtime(String),
    /// `verify --config`: the token is invalid (exit 1).
    #[error("{0}")]
    Invalid(String),
    /// A command's input is not usable (exit 2).
    #[error("{0}")]
    Usage(String),
}

impl AppError {
    /// The contract's exit code: 1 for a negative answer, 2 for bad usage, bad config
    /// or a gateway that cannot run (a port taken, no runtime).
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Invalid(_) => 1,
            AppError::Config(_)
            | AppError::ReadConfig { .. }
            | AppError::Bind { .. }
            | AppError::Runtime(_)
            | AppError::Usage(_) => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1 means "a negative answer" (an invalid token): a runtime failure is not one.
    #[test]
    fn only_a_negative_answer_exits_1() {
        assert_eq!(AppError::Invalid("token_expired".to_owned()).exit_code(), 1);
        assert_eq!(AppError::Runtime("no threads".to_owned()).exit_code(), 2);
    }
}
