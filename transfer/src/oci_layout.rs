//! The one OCI image layout writer: `blobs/sha256/<hex>`, `oci-layout` and
//! `index.json`, written into a directory (`oci:`) or a tar stream
//! (`oci-archive:`) through [`LayoutFiles`].

use std::io::Read;
use std::sync::{Arc, Mutex};

use image_store::digest::VerifyingReader;
use image_store::model::media::{self, layer_compression, Compression};
use image_store::model::Index;
use image_store::{Descriptor, Digest, Manifest};

use crate::image::{ImageDest, ImageSource, SourceImage};
use crate::progress::BlobProgress;
use crate::Result;

/// Where a layout's files go.
pub trait LayoutFiles: Send {
    fn has_blob(&self, d: &Digest) -> bool;
    /// Writes `blobs/sha256/<hex>` from `data`, which is `size` bytes and
    /// fails at its end when it does not hash to `d`.
    fn write_blob(&mut self, d: &Digest, size: u64, data: &mut dyn Read) -> Result<()>;
    /// Writes a small file at the layout's top (`oci-layout`, `index.json`).
    fn write_file(&mut self, name: &str, data: &[u8]) -> Result<()>;
    /// The index already there (a directory written before), if any.
    fn read_index(&self) -> Result<Option<Index>>;
    /// Held from reading the index to writing it back, so that two
    /// writers of one directory do not lose each other's entries. A tar
    /// stream has one writer and needs none.
    fn lock_index(&self) -> Result<Option<image_store::lock::LockGuard>> {
        Ok(None)
    }
}

/// How the index names what is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// `oci:DIR[:REF]`: one `org.opencontainers.image.ref.name`, replacing
    /// any manifest of that name; Docker manifests are written as OCI ones
    /// (as skopeo writes them).
    Directory,
    /// `oci-archive:`: every name of every image, also as
    /// `io.containerd.image.name`; manifests as they are.
    Archive,
}

/// An OCI layout as an [`ImageDest`]; [`OciLayoutDest::finish`] writes
/// the index.
pub struct OciLayoutDest<F: LayoutFiles> {
    files: Mutex<F>,
    naming: Naming,
    /// The manifests written, with their names, in order: applied at
    /// [`OciLayoutDest::finish`] to the index as it is then, under its
    /// lock (not to a copy read at the start, which a concurrent writer
    /// may have changed since).
    entries: Mutex<Vec<(Descriptor, Vec<String>)>>,
    /// Blobs written by this writer (a layout shared by several images
    /// holds each once).
    written: Mutex<std::collections::BTreeSet<Digest>>,
}

impl<F: LayoutFiles> OciLayoutDest<F> {
    pub fn new(mut files: F, naming: Naming) -> Result<Self> {
        let layout = format!(
            "{{\"imageLayoutVersion\":\"{}\"}}",
            media::OCI_LAYOUT_VERSION
        );
        files.write_file("oci-layout", layout.as_bytes())?;
        Ok(OciLayoutDest {
            files: Mutex::new(files),
            naming,
            entries: Mutex::default(),
            written: Mutex::default(),
        })
    }

    fn files(&self) -> std::sync::MutexGuard<'_, F> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn write_bytes(&self, d: &Digest, data: &[u8]) -> Result<()> {
        if self.has(d) {
            return Ok(());
        }
        let mut r = VerifyingReader::new(data, d.clone(), Some(data.len() as u64));
        self.files().write_blob(d, data.len() as u64, &mut r)?;
        self.mark(d);
        Ok(())
    }

    fn has(&self, d: &Digest) -> bool {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(d)
            || self.files().has_blob(d)
    }

    fn mark(&self, d: &Digest) {
        self.written
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(d.clone());
    }

    /// Names the manifest `base` in the index that [`Self::finish`] writes.
    pub(crate) fn add_entry(&self, base: Descriptor, names: Vec<String>) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((base, names));
    }

    /// Writes `index.json`: the index there now plus this writer's
    /// manifests, read and written under the index lock. Hands back the
    /// files.
    pub fn finish(self) -> Result<F> {
        let entries = self.entries.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut files = self.files.into_inner().unwrap_or_else(|p| p.into_inner());
        let _lock = files.lock_index()?;
        let mut index = files.read_index()?.unwrap_or_default();
        for (base, names) in &entries {
            add_to_index(&mut index, self.naming, base, names);
        }
        files.write_file("index.json", &serde_json::to_vec(&index)?)?;
        Ok(files)
    }
}

impl<F: LayoutFiles> ImageDest for OciLayoutDest<F> {
    fn has_blob(&self, desc: &Descriptor) -> bool {
        self.has(&desc.digest)
    }

    fn put_blob(
        &self,
        src: &dyn ImageSource,
        desc: &Descriptor,
        _diff_id: Option<&Digest>,
        progress: Arc<dyn BlobProgress>,
    ) -> Result<String> {
        let blob = src.open_blob(desc, progress)?;
        blob.consume(&desc.digest, |r| {
            let mut r = VerifyingReader::new(r, desc.digest.clone(), Some(desc.size));
            self.files().write_blob(&desc.digest, desc.size, &mut r)
        })?;
        self.mark(&desc.digest);
        Ok("done".into())
    }

    fn put_manifest(&self, image: &SourceImage, layers: &[Descriptor]) -> Result<Digest> {
        let changed = layers
            .iter()
            .zip(&image.manifest.layers)
            .any(|(a, b)| a.digest != b.digest);
        let docker = image.raw.media_type == media::DOCKER_MANIFEST;
        let base = if changed || (docker && self.naming == Naming::Directory) {
            let mut m = image.manifest.clone();
            m.layers = layers.to_vec();
            let m = to_oci(&m);
            let bytes = serde_json::to_vec(&m)?;
            let d = Digest::of_bytes(&bytes);
            self.write_bytes(&d, &bytes)?;
            Descriptor::new(media::OCI_MANIFEST, d, bytes.len() as u64)
        } else {
            self.write_bytes(&image.raw.digest, &image.raw.bytes)?;
            image.descriptor()
        };
        self.add_entry(base.clone(), image.names.clone());
        Ok(base.digest)
    }

    /// Blobs go in one at a time, in the image's order (a tar is written
    /// in order, and the same image gives the same archive).
    fn jobs(&self) -> usize {
        1
    }
}

/// Names `base` in `index` as `naming` says: a directory keeps one
/// manifest per name (the new one replaces it), an archive lists every
/// name of every image.
fn add_to_index(index: &mut Index, naming: Naming, base: &Descriptor, names: &[String]) {
    match naming {
        Naming::Directory => {
            let reference = names.first().map(String::as_str);
            let mut desc = base.clone();
            desc.set_ref_name(reference);
            match reference {
                Some(r) => index.manifests.retain(|d| d.ref_name() != Some(r)),
                None => index
                    .manifests
                    .retain(|d| !(d.digest == desc.digest && d.ref_name().is_none())),
            }
            index.manifests.push(desc);
        }
        Naming::Archive => {
            if names.is_empty() {
                index.manifests.push(base.clone());
            }
            for n in names {
                let mut d = base.clone();
                d.set_ref_name(Some(n));
                d.annotations
                    .get_or_insert_with(Default::default)
                    .insert("io.containerd.image.name".into(), n.clone());
                index.manifests.push(d);
            }
        }
    }
}

/// A Docker schema 2 manifest with OCI media types.
fn to_oci(m: &Manifest) -> Manifest {
    let mut m = m.clone();
    m.media_type = Some(media::OCI_MANIFEST.to_string());
    m.config.media_type = media::OCI_CONFIG.to_string();
    for l in &mut m.layers {
        if l.media_type == media::DOCKER_FOREIGN_LAYER {
            continue;
        }
        l.media_type = match layer_compression(&l.media_type) {
            Some(Compression::None) => media::OCI_LAYER,
            Some(Compression::Gzip) => media::OCI_LAYER_GZIP,
            Some(Compression::Zstd) => media::OCI_LAYER_ZSTD,
            None => continue,
        }
        .to_string();
    }
    m
}
