//! Writing new images: layer blobs from tar streams, then config and
//! manifest, then names in `index.json` — in that order, so a reader never
//! sees a name whose blobs are missing.

use std::io::Read;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layer::{self, LayerError, TarStats};
use crate::layout::Store;
use crate::model::{media, Descriptor, ImageConfig, Manifest};
use crate::reference::Reference;

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
    /// Reads a tar stream (plain, gzip, zstd, bzip2 or xz), normalises it and stores it
    /// as an uncompressed layer blob.
    pub fn store_layer_from_tar(&self, input: impl Read) -> Result<StoredLayer, ComposeError> {
        let plain = layer::decompressed(input)?;
        let mut w = self.blob_writer()?;
        let stats = layer::normalize_tar(plain, &mut w)?;
        let (digest, size) = w.commit(None)?;
        Ok(StoredLayer {
            descriptor: Descriptor::new(media::OCI_LAYER, digest, size),
            stats,
        })
    }

    /// Writes `config` and a manifest over `layers` and names the result.
    /// The config's `rootfs.diff_ids` must already list the layers.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        names: &[Reference],
    ) -> Result<Committed> {
        let config_desc = self.write_json(media::OCI_CONFIG, config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            config: config_desc,
            layers,
            annotations: None,
            extra: Default::default(),
        };
        let desc = self.write_json(media::OCI_MANIFEST, &manifest)?;
        self.add_image(&desc, names)?;
        Ok(Committed {
            id: manifest.config.digest,
            manifest: desc,
        })
    }
}
