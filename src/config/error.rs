//! The one error type of the configuration: every variant displays as one
//! line that names the file, the key path, the value and what is allowed.

use std::path::PathBuf;

/// Why a configuration could not be loaded or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration: {reason}")]
    Read {
        /// The path as given.
        file: String,
        /// The operating system's explanation.
        reason: String,
    },
    /// The text is not valid YAML.
    #[error("{file}: YAML syntax error{}: {message}", at(*line, *column))]
    Syntax {
        /// Where the text came from.
        file: String,
        /// 1-based line of the error, when the parser knows it.
        line: Option<usize>,
        /// 1-based column of the error, when the parser knows it.
        column: Option<usize>,
        /// The parser's explanation.
        message: String,
    },
    /// A key holds a value that cannot be used.
    #[error("{file}: {key}: {message}")]
    Invalid {
        /// Where the text came from.
        file: String,
        /// Dotted key path (`nas.search_algorithm.policy.num_individual`).
        key: String,
        /// The value found and what is allowed.
        message: String,
    },
    /// A dataset folder named by the configuration is missing or not a folder.
    #[error("{file}: {key}: {}: {reason}", path.display())]
    Path {
        /// Where the configuration came from.
        file: String,
        /// Dotted key path of the folder setting.
        key: String,
        /// The folder, resolved against the configuration's directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `Config::embedded` was asked for a name that is not built in.
    #[error("no built-in configuration named {name:?} (available: {available})")]
    UnknownEmbedded {
        /// The name asked for.
        name: String,
        /// The built-in names.
        available: String,
    },
}

impl ConfigError {
    /// The dotted key path the error is about, when it is about one key.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } | ConfigError::Path { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// ` at line L, column C` when the position is known.
fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" at line {l}, column {c}"),
        (Some(l), None) => format!(" at line {l}"),
        _ => String::new(),
    }
}
