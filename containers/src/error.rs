//! The crate's error: store and runner failures keep their own types (the
//! runner's carries the exit code 125/126/127), the rest say which
//! container, file or value was wrong.

use std::path::PathBuf;

use image_store::StoreError;
use runner::RunError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    #[error("the container name {0:?} is already in use")]
    NameInUse(String),
    #[error("invalid container name {0:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters")]
    InvalidName(String),
    #[error("image reference {name:?} is ambiguous: it matches {count} images")]
    Ambiguous { name: String, count: usize },
    /// A request that cannot be carried out (the message says why).
    #[error("{0}")]
    Invalid(String),
    /// A `--change` the caller applies to a committed image's config.
    #[error(transparent)]
    Changes(Box<dyn std::error::Error + Send + Sync>),
    /// Writing to the caller's output failed (a log or tar being copied
    /// out): the caller's own error, kept as it is.
    #[error(transparent)]
    Output(std::io::Error),
    /// An external runtime's command failed.
    #[error("{0}")]
    Runtime(String),
    /// The detached container's monitor failed to start it: its exit code
    /// and message.
    #[error("{message}")]
    Failed { code: u8, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A failed file operation on `path` (the store's error: same words).
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Store(StoreError::Io { path, source })
    }

    /// A JSON file that does not parse.
    pub fn json(path: impl Into<PathBuf>) -> impl FnOnce(serde_json::Error) -> Error {
        let path = path.into();
        move |source| Error::Store(StoreError::Json { path, source })
    }

    /// Is this a file operation that failed because the file is not there?
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Store(StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound)
    }

    /// docker's exit code for this failure: the runner's 126/127 when the
    /// command could not be executed or found, else 125.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Run(e) => e.exit_code(),
            Error::Failed { code, .. } => *code,
            _ => 125,
        }
    }
}

/// `e` and its causes as one line (`a: b: c`), causes that merely repeat
/// their parent's text left out: for messages that add context to an error
/// from another crate.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
