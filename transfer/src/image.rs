//! The two interfaces every place an image can live implements: an
//! [`ImageSource`] hands out manifests and blobs, an [`ImageDest`] takes
//! them. [`crate::copy`] moves an image from one to the other; no backend
//! knows about any other.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use image_store::{Descriptor, Digest, Manifest};

use crate::progress::{BlobProgress, Progress};
use crate::Result;

pub use oci_model::RawManifest;

/// The image being copied: its manifest, parsed and raw, and the names the
/// source knows it by.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub raw: RawManifest,
    pub manifest: Manifest,
    pub names: Vec<String>,
    /// The config's diff IDs, one per layer (filled in once the config
    /// is read).
    pub diff_ids: Vec<Digest>,
}

impl SourceImage {
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            &self.raw.media_type,
            self.raw.digest.clone(),
            self.raw.bytes.len() as u64,
        )
    }

    /// The image ID: the config's digest.
    pub fn id(&self) -> &Digest {
        &self.manifest.config.digest
    }
}

/// An open blob: its bytes, and how the source's side of the transfer
/// ended (a registry download runs beside the reader; its error, when it
/// has one, says more than the reader's early end).
pub struct SourceBlob {
    pub reader: Box<dyn Read + Send>,
    pub done: Box<dyn FnOnce() -> Result<()> + Send>,
}

impl SourceBlob {
    /// A blob that is just a reader.
    pub fn reader(r: impl Read + Send + 'static) -> SourceBlob {
        SourceBlob {
            reader: Box::new(r),
            done: Box::new(|| Ok(())),
        }
    }

    /// Runs `consume` over the bytes; the source's own error wins over the
    /// consumer's, whose error is put in context as storing `digest`.
    pub fn consume<T>(
        self,
        digest: &Digest,
        consume: impl FnOnce(&mut dyn Read) -> Result<T>,
    ) -> Result<T> {
        let mut reader = self.reader;
        let res = consume(&mut reader);
        drop(reader);
        match ((self.done)(), res) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(e)) => Err(e.context(format!("storing blob {digest}"))),
            (Ok(()), Ok(v)) => Ok(v),
        }
    }
}

/// Where an image comes from.
pub trait ImageSource: Sync {
    /// How errors name this source (`127.0.0.1:5000/a/b:1`, a directory).
    fn label(&self) -> String;
    /// The image's top manifest: a manifest, or an index to choose from.
    fn manifest(&self) -> Result<RawManifest>;
    /// A manifest an index of this source lists.
    fn manifest_at(&self, desc: &Descriptor) -> Result<RawManifest>;
    /// The names the source gives the image (for destinations that carry
    /// names, and for registry mounts).
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
    /// Opens a blob; bytes read are reported to `progress`. The caller
    /// (the destination) verifies what it reads.
    fn open_blob(&self, desc: &Descriptor, progress: Arc<dyn BlobProgress>) -> Result<SourceBlob>;
    /// A local file holding the blob, when there is one (an upload can
    /// read it again to retry).
    fn blob_file(&self, _desc: &Descriptor) -> Option<PathBuf> {
        None
    }
    /// The layer as this source sends it (the store compresses a layer it
    /// holds uncompressed when asked to); the diff ID is unchanged.
    fn prepare_layer(&self, desc: &Descriptor, _progress: &dyn Progress) -> Result<Descriptor> {
        Ok(desc.clone())
    }
}

/// Where an image goes.
pub trait ImageDest: Sync {
    /// What is done to each blob, for progress: [`crate::progress::PUSHING`]
    /// for a registry, [`crate::progress::COPYING`] anywhere else.
    fn verb(&self) -> &'static str {
        crate::progress::COPYING
    }
    /// Whether the destination already holds the blob (the copy skips it).
    fn has_blob(&self, _desc: &Descriptor) -> bool {
        false
    }
    /// For a layer the destination holds: check it against the diff ID
    /// this image's config claims for it.
    fn check_layer(&self, _desc: &Descriptor, _diff_id: &Digest) -> Result<()> {
        Ok(())
    }
    /// Takes one blob from `src`, verified against `desc` (and, for a
    /// layer, `diff_id`). Returns how it went ("done", "skipped: already
    /// exists", "mounted from …").
    fn put_blob(
        &self,
        src: &dyn ImageSource,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
        progress: Arc<dyn BlobProgress>,
    ) -> Result<String>;
    /// Writes the manifest last, with `layers` as the source sent them;
    /// returns the digest it is stored or served under.
    fn put_manifest(&self, image: &SourceImage, layers: &[Descriptor]) -> Result<Digest>;
    /// How many blobs it takes at once (an archive is written in order).
    fn jobs(&self) -> usize {
        usize::MAX
    }
    /// Whether the config goes before the layers (else after them, as a
    /// registry push sends them).
    fn config_first(&self) -> bool {
        false
    }
}

/// A source over one blob held in memory (a config already read).
pub(crate) struct BytesBlob(pub Vec<u8>);

impl ImageSource for BytesBlob {
    fn label(&self) -> String {
        String::new()
    }
    fn manifest(&self) -> Result<RawManifest> {
        Err(crate::Error::invalid("a single blob has no manifest"))
    }
    fn manifest_at(&self, _desc: &Descriptor) -> Result<RawManifest> {
        self.manifest()
    }
    fn open_blob(&self, _desc: &Descriptor, progress: Arc<dyn BlobProgress>) -> Result<SourceBlob> {
        progress.inc(self.0.len() as u64);
        Ok(SourceBlob::reader(std::io::Cursor::new(self.0.clone())))
    }
}
