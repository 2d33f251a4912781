//! Writing new images, as a store transaction: [`Store::ingest`] takes the
//! writer lock, records every blob it adds (layer blobs from tar streams,
//! then config and manifest) and names images only when it is committed, so
//! a reader never sees a name whose blobs are missing. Dropped without
//! [`Ingest::commit`] (an error, a panic, a killed transfer) it deletes the
//! blobs it added, so a failed pull, load or build leaves the store as it
//! was. Blobs that were in the store before are never removed.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::layer::{self, LayerError, TarStats};
use crate::lock::LockGuard;
use crate::model::{media, Descriptor, ImageConfig, Manifest};
use crate::reference::Reference;
use crate::store::{BlobWriter, Store};

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

/// The blobs a transaction added. Cheap to clone into the threads and tasks
/// that write blobs for it.
#[derive(Debug, Clone, Default)]
pub struct Added(Arc<Mutex<BTreeSet<Digest>>>);

impl Added {
    fn set(&self) -> MutexGuard<'_, BTreeSet<Digest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a blob this transaction brought into the store (one that
    /// was not there before it).
    pub fn record(&self, digest: Digest) {
        self.set().insert(digest);
    }

    pub fn digests(&self) -> Vec<Digest> {
        self.set().iter().cloned().collect()
    }
}

/// An open store transaction; see the module documentation.
#[must_use = "an ingest dropped without commit() removes what it added"]
pub struct Ingest {
    store: Store,
    added: Added,
    /// Images to name on commit, in order.
    names: Mutex<Vec<(Descriptor, Vec<Reference>)>>,
    committed: bool,
    // Last: released after the rollback in `drop`.
    _lock: LockGuard,
}

impl Store {
    /// Starts a transaction. It holds the writer lock until it is committed
    /// or dropped, so no collector deletes its blobs before they are named.
    pub fn ingest(&self) -> Result<Ingest> {
        let lock = self.writer_lock()?;
        Ok(Ingest {
            store: self.clone(),
            added: Added::default(),
            names: Mutex::new(Vec::new()),
            committed: false,
            _lock: lock,
        })
    }
}

impl Ingest {
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The record of added blobs, for writers that run elsewhere (threads,
    /// async tasks) and report new blobs with [`Added::record`].
    pub fn added(&self) -> Added {
        self.added.clone()
    }

    /// A streaming writer whose blob, if new, is recorded on commit.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(self.store.blob_writer()?.recording(self.added.clone()))
    }

    /// Stores a small blob given whole; returns its descriptor.
    pub fn write_blob(&self, media_type: &str, data: &[u8]) -> Result<Descriptor> {
        let mut w = self.blob_writer()?;
        w.write_all(data)
            .map_err(StoreError::io(self.store.tmp_dir()))?;
        let (digest, size) = w.commit(None)?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    pub fn write_json<T: serde::Serialize>(
        &self,
        media_type: &str,
        value: &T,
    ) -> Result<Descriptor> {
        let data = serde_json::to_vec(value).expect("serializing plain data cannot fail");
        self.write_blob(media_type, &data)
    }

    /// Reads a tar stream (plain, gzip, zstd, bzip2 or xz), normalises it
    /// and stores it as an uncompressed layer blob, recorded.
    pub fn store_layer_from_tar(&self, input: impl Read) -> Result<StoredLayer, ComposeError> {
        let w = self.blob_writer()?;
        self.store.store_layer_into(input, w)
    }

    /// Names the stored image `manifest` under `names` (untagged when empty)
    /// when the transaction commits; see [`Store::add_image`].
    pub fn add_image(&self, manifest: &Descriptor, names: &[Reference]) {
        self.names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((manifest.clone(), names.to_vec()));
    }

    /// Writes `config` and a manifest over `layers`; the image is named
    /// `names` on commit. The config's `rootfs.diff_ids` must already list
    /// the layers.
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        names: &[Reference],
    ) -> Result<Committed> {
        self.commit_annotated_image(config, layers, names, None)
    }

    /// [`Ingest::commit_image`] with annotations on the manifest
    /// (`kiln build --annotation`).
    pub fn commit_annotated_image(
        &self,
        config: &ImageConfig,
        layers: Vec<Descriptor>,
        names: &[Reference],
        annotations: Option<std::collections::BTreeMap<String, String>>,
    ) -> Result<Committed> {
        let config_desc = self.write_json(media::OCI_CONFIG, config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.to_string()),
            config: config_desc,
            layers,
            annotations,
            extra: Default::default(),
        };
        let desc = self.write_json(media::OCI_MANIFEST, &manifest)?;
        self.add_image(&desc, names);
        Ok(Committed {
            id: manifest.config.digest,
            manifest: desc,
        })
    }

    /// The blobs added so far.
    pub fn added_blobs(&self) -> Vec<Digest> {
        self.added.digests()
    }

    /// Deletes blobs this transaction added that it turned out not to need
    /// (e.g. archive members that are no image's part). Digests it did not
    /// add are left alone.
    pub fn remove_added(&self, digests: &[Digest]) -> Result<u64> {
        let mut set = self.added.set();
        let mine: Vec<Digest> = digests.iter().filter(|d| set.remove(d)).cloned().collect();
        drop(set);
        self.store.remove_blobs(&mine)
    }

    /// Names the images (one update of `index.json`) and keeps every blob.
    /// On error nothing is named and the added blobs are removed.
    pub fn commit(mut self) -> Result<()> {
        let names = std::mem::take(&mut *self.names.lock().unwrap_or_else(|p| p.into_inner()));
        if !names.is_empty() {
            self.store.update_index(|index| {
                for (manifest, names) in &names {
                    crate::images::name_in(index, manifest, names);
                }
                Ok(())
            })?;
        }
        self.committed = true;
        Ok(())
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.committed {
            let added = self.added.digests();
            let _ = self.store.remove_blobs(&added);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "hello.txt", &b"hello"[..]).unwrap();
        b.into_inner().unwrap()
    }

    fn blobs(store: &Store) -> BTreeSet<Digest> {
        store.list_blobs().unwrap().into_iter().collect()
    }

    fn image(ingest: &Ingest, name: &str) -> Committed {
        let layer = ingest.store_layer_from_tar(&layer_tar()[..]).unwrap();
        let mut config = ImageConfig::for_host();
        config.rootfs.diff_ids.push(layer.diff_id().clone());
        ingest
            .commit_image(&config, vec![layer.descriptor], &[name.parse().unwrap()])
            .unwrap()
    }

    /// Fails without the rollback in `Drop`: the layer, config and
    /// manifest blobs stay behind.
    #[test]
    fn dropped_ingest_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        // A blob that was there before is kept even if the ingest writes it.
        let old = store.write_blob("x", b"already here").unwrap();
        let before = blobs(&store);
        let index_before = std::fs::read(store.index_path()).unwrap();
        {
            let ingest = store.ingest().unwrap();
            image(&ingest, "half:done");
            ingest.write_blob("x", b"already here").unwrap();
            assert_eq!(ingest.added_blobs().len(), 3, "layer, config, manifest");
            assert!(blobs(&store).len() > before.len());
        }
        assert_eq!(blobs(&store), before);
        assert!(store.has_blob(&old.digest));
        assert_eq!(std::fs::read(store.index_path()).unwrap(), index_before);
        assert!(store.resolve("half:done").is_err());
        let report = store.check(false).unwrap();
        assert_eq!(report.remaining(), 0, "{:?}", report.problems);
        assert_eq!(report.unreferenced.0, 1, "only the blob from before");
    }

    #[test]
    fn committed_ingest_keeps_blobs_and_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("s")).unwrap();
        let ingest = store.ingest().unwrap();
        let c = image(&ingest, "done:1");
        // Named only on commit.
        assert!(store.resolve("done:1").is_err());
        let junk = ingest.write_blob("x", b"junk").unwrap();
        ingest
            .remove_added(std::slice::from_ref(&junk.digest))
            .unwrap();
        ingest.commit().unwrap();
        assert_eq!(store.resolve("done:1").unwrap().id(), &c.id);
        assert!(!store.has_blob(&junk.digest));
        assert_eq!(blobs(&store).len(), 3);
    }
}
