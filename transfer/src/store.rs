//! The local store as a source (push, save) and as a destination (pull).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use image_store::compressed::LayerFormat;
use image_store::model::media::{layer_compression, Compression};
use image_store::{Descriptor, Digest, Image, Ingest, Reference, Store};

use crate::image::{ImageDest, ImageSource, RawManifest, SourceBlob, SourceImage};
use crate::progress::{BlobProgress, CountingRead, Progress};
use crate::{invalid, Result};

/// An image of the store. The caller holds the store's reader lock for
/// as long as the source is read, so no `rmi` deletes a blob of it.
pub struct StoreSource {
    store: Store,
    image: Image,
    names: Vec<String>,
    compress: Option<LayerFormat>,
}

impl StoreSource {
    pub fn new(store: &Store, image: Image) -> StoreSource {
        let names = image.names.clone();
        StoreSource {
            store: store.clone(),
            image,
            names,
            compress: None,
        }
    }

    /// The names the image carries to the destination (an archive's tags).
    pub fn with_names(mut self, names: Vec<String>) -> StoreSource {
        self.names = names;
        self
    }

    /// Layers stored uncompressed are sent compressed as `format` (a
    /// registry push); the compressed blob is kept for the next push.
    pub fn compressing(mut self, format: LayerFormat) -> StoreSource {
        self.compress = Some(format);
        self
    }

    pub fn image(&self) -> &Image {
        &self.image
    }
}

impl ImageSource for StoreSource {
    fn label(&self) -> String {
        self.image
            .names
            .first()
            .cloned()
            .unwrap_or_else(|| self.image.id().to_string())
    }

    fn manifest(&self) -> Result<RawManifest> {
        let desc = &self.image.manifest_descriptor;
        Ok(RawManifest {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            bytes: self.store.read_blob(&desc.digest)?,
        })
    }

    fn manifest_at(&self, desc: &Descriptor) -> Result<RawManifest> {
        Err(invalid!(
            "{}: the store holds manifests, not indexes ({})",
            self.label(),
            desc.digest
        ))
    }

    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn open_blob(&self, desc: &Descriptor, progress: Arc<dyn BlobProgress>) -> Result<SourceBlob> {
        let f = self.store.open_blob(&desc.digest)?;
        Ok(SourceBlob::reader(CountingRead { inner: f, progress }))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let p = self.store.blob_path(&desc.digest);
        p.exists().then_some(p)
    }

    fn prepare_layer(&self, layer: &Descriptor, progress: &dyn Progress) -> Result<Descriptor> {
        let Some(format) = self.compress else {
            return Ok(layer.clone());
        };
        if layer_compression(&layer.media_type) != Some(Compression::None) {
            return Ok(layer.clone());
        }
        if let Some(d) = self.store.compressed_layer(&layer.digest, format) {
            return Ok(d);
        }
        progress.line(&format!(
            "Compressing layer {} ({})",
            layer.digest.short(),
            format.name()
        ));
        Ok(self.store.compress_layer(&layer.digest, format)?)
    }
}

/// The store as a destination: one store transaction ([`Ingest`]), so the
/// writer lock is held throughout, images are named only on
/// [`StoreDest::commit`], and dropped uncommitted it deletes the blobs it
/// added.
pub struct StoreDest {
    ingest: Ingest,
    names: Vec<Reference>,
    /// Name each image as its source does instead (an archive's tags).
    by_source: bool,
}

impl StoreDest {
    /// A destination that names the image `names`.
    pub fn new(store: &Store, names: Vec<Reference>) -> Result<StoreDest> {
        let _ = store.sweep_compressed();
        Ok(StoreDest {
            ingest: store.ingest()?,
            names,
            by_source: false,
        })
    }

    /// Names each image by the names its source gives it (several images
    /// through one transaction, as a load).
    pub fn named_by_source(mut self) -> StoreDest {
        self.by_source = true;
        self
    }

    /// Names what was copied and keeps its blobs.
    pub fn commit(self) -> Result<()> {
        Ok(self.ingest.commit()?)
    }

    fn store(&self) -> &Store {
        self.ingest.store()
    }

    /// The transaction, for a source that stages its blobs in it (an
    /// archive read in one pass).
    pub fn ingest(&self) -> &Ingest {
        &self.ingest
    }
}

impl ImageDest for StoreDest {
    /// As pulls always showed it: the config, then the layers.
    fn config_first(&self) -> bool {
        true
    }

    fn has_blob(&self, desc: &Descriptor) -> bool {
        self.store().has_blob(&desc.digest)
    }

    fn check_layer(&self, desc: &Descriptor, diff_id: &Digest) -> Result<()> {
        let c = layer_compression(&desc.media_type).ok_or_else(|| {
            invalid!(
                "layer {}: unsupported layer media type {:?}",
                desc.digest,
                desc.media_type
            )
        })?;
        Ok(self.store().check_stored_layer(&desc.digest, c, diff_id)?)
    }

    fn put_blob(
        &self,
        src: &dyn ImageSource,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
        progress: Arc<dyn BlobProgress>,
    ) -> Result<String> {
        let blob = src.open_blob(desc, progress)?;
        blob.consume(&desc.digest, |r| match diff_id {
            Some(diff_id) => {
                if self.store().store_checked_layer(r, desc, diff_id)? {
                    self.ingest.added().record(desc.digest.clone());
                }
                Ok(())
            }
            None => {
                let mut w = self.ingest.blob_writer()?;
                std::io::copy(r, &mut w)?;
                w.commit(Some(&desc.digest))?;
                Ok(())
            }
        })?;
        Ok("done".into())
    }

    fn put_manifest(&self, image: &SourceImage, layers: &[Descriptor]) -> Result<Digest> {
        if layers
            .iter()
            .zip(&image.manifest.layers)
            .any(|(a, b)| a.digest != b.digest)
        {
            return Err(invalid!(
                "the store takes layers as the manifest lists them"
            ));
        }
        let mut w = self.ingest.blob_writer()?;
        w.write_all(&image.raw.bytes)?;
        let (digest, size) = w.commit(Some(&image.raw.digest))?;
        let desc = Descriptor::new(&image.raw.media_type, digest.clone(), size);
        if self.by_source {
            let names = image
                .names
                .iter()
                .map(|n| n.parse())
                .collect::<std::result::Result<Vec<Reference>, _>>()?;
            self.ingest.add_image(&desc, &names);
        } else {
            self.ingest.add_image(&desc, &self.names);
        }
        Ok(digest)
    }
}
