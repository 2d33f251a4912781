//! Image archives: `docker-archive` (`manifest.json` + `repositories` +
//! config and layer files, as `docker save` and `podman save` write) and
//! `oci-archive` (an OCI image layout in a tar). Both are written and read
//! as streams: no blob is held in memory, every blob is hashed as it passes.

mod load;
mod save;

pub use load::{load, ArchiveImage, Loaded, Staged};
pub use save::{save, save_to, save_to_file, select, ArchiveFormat, DockerArchiveDest, TarFiles};

use image_store::layer::LayerError;
use image_store::{ComposeError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("archive member {member:?}: {reason}")]
    Member { member: String, reason: String },
    #[error("not an image archive: it has neither manifest.json nor index.json")]
    NoManifest,
    #[error("the archive is corrupt: {0}")]
    Corrupt(String),
}

impl From<ComposeError> for ArchiveError {
    fn from(e: ComposeError) -> Self {
        match e {
            ComposeError::Layer(l) => ArchiveError::Layer(l),
            ComposeError::Store(s) => ArchiveError::Store(s),
        }
    }
}

/// One entry of docker's `manifest.json`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}
