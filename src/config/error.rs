//! Every config mistake is one [`ConfigError`]: the file, the dotted key, what was expected.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub message: String,
}

/// Where the keys being resolved were written: the file named in errors, and the directory
/// relative paths (`storage.path`, `token_file`, `thresholds_file`) are read against.
pub(super) struct Origin {
    pub(super) file: String,
    pub(super) base_dir: PathBuf,
}

impl Origin {
    /// `None` is the embedded defaults.
    pub(super) fn of(source: Option<&Path>) -> Origin {
        Origin {
            file: source
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(defaults)".into()),
            base_dir: source
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        error(&self.file, key, message)
    }
}

pub(super) fn error(file: &str, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError {
        file: file.into(),
        key: key.into(),
        message: message.into(),
    }
}
