use std::path::PathBuf;

use crate::digest::{Digest, DigestError};
use crate::reference::ReferenceError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error("no such image: {0}")]
    NoSuchImage(String),
    #[error("image reference {name:?} is ambiguous: it matches {count} images")]
    Ambiguous { name: String, count: usize },
    #[error("image {name} is damaged: its {what} {blob} {reason} (`kiln system check --repair` removes it)")]
    BrokenImage {
        name: String,
        what: &'static str,
        blob: Digest,
        reason: String,
    },
    #[error("blob {0} is missing from the store")]
    MissingBlob(Digest),
    #[error("blob {digest} is corrupt: {reason}")]
    CorruptBlob { digest: Digest, reason: String },
    #[error("{path}: {reason}")]
    BadLayout { path: PathBuf, reason: String },
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    MultipleRepositories { id: String },
    #[error("conflict: unable to delete {id} (must be forced) - image is being used by container {container}")]
    InUse { id: String, container: String },
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    /// A `--filter` that cannot be used: the item and why.
    #[error("invalid filter {item:?}: {why}")]
    InvalidFilter { item: String, why: String },
}

impl StoreError {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
