//! What writing a new image produces: layer blobs from tar streams (then
//! config, manifest and names, through an [`crate::ingest::Ingest`], in that
//! order, so a reader never sees a name whose blobs are missing).

use std::io::Read;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layer::{self, LayerError, TarStats};
use crate::layout::{BlobWriter, Store};
use crate::model::{media, Descriptor};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A layer stored locally: uncompressed, so its digest is its diff ID.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    pub descriptor: Descriptor,
    pub stats: TarStats,
}

impl StoredLayer {
    pub fn diff_id(&self) -> &Digest {
        &self.descriptor.digest
    }
}

/// A newly written image.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The image ID (config digest).
    pub id: Digest,
    pub manifest: Descriptor,
}

impl Store {
    /// Reads a tar stream (plain, gzip, zstd, bzip2 or xz), normalises it
    /// and stores it through `w` as an uncompressed layer blob.
    pub(crate) fn store_layer_into(
        &self,
        input: impl Read,
        mut w: BlobWriter,
    ) -> Result<StoredLayer, ComposeError> {
        let plain = layer::decompressed(input)?;
        let stats = layer::normalize_tar(plain, &mut w)?;
        let (digest, size) = w.commit(None)?;
        Ok(StoredLayer {
            descriptor: Descriptor::new(media::OCI_LAYER, digest, size),
            stats,
        })
    }
}
