//! `--cache-to type=registry`: the steps of this build as a cache manifest
//! ([`super::remote`]'s format).
//!
//! Blobs go first (each after a HEAD, so what the registry has is not sent
//! again; a layer known only from an imported cache of the same registry
//! is mounted across repositories), then the config, then the manifest:
//! two builds exporting to one ref at once each tag a manifest whose blobs
//! are all there, and the last one wins the tag.
//!
//! With `mode=max` every layer the build makes is exported, so an
//! [`Uploader`] has sent each one as soon as its step was done; the export
//! at the end then only waits for it and writes the config and the
//! manifest. `type=local` writes the same manifest into an OCI layout
//! directory through transfer's layout writer.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::StreamExt;
use image_store::compressed::LayerFormat;
use image_store::model::media;
use image_store::{Descriptor, Digest, Manifest, Store};
use std::sync::{Arc, Mutex};

use registry_client::{BlobSource, PushOutcome, Reference, Repository};
use transfer::{ImageDest, ImageSource, RegistryAccess, SourceBlob};

use super::remote::{CacheConfig, Entry, Imported, LayerRef, CONFIG_TYPE, VERSION};
use super::uploader::{Sent, Uploader};
use super::Used;
use crate::error::BuildError;
use crate::flags::{CacheMode, CacheSpec};

/// Uploads at once.
const JOBS: usize = 4;

/// What an export did.
#[derive(Debug)]
pub struct Exported {
    pub steps: usize,
    pub layers: usize,
    /// Layers the registry did not have.
    pub uploaded: usize,
    pub manifest: Digest,
}

/// The steps an export writes: with `Min` those of the final image (the
/// chain of parents from `final_key`), with `Max` every step built.
pub(super) fn select<'u>(used: &'u [Used], final_key: &str, mode: CacheMode) -> Vec<&'u Used> {
    let mut by_key: HashMap<&str, &Used> = HashMap::new();
    for u in used {
        by_key.entry(u.key.as_str()).or_insert(u);
    }
    match mode {
        CacheMode::Max => {
            let mut seen = HashSet::new();
            used.iter()
                .filter(|u| seen.insert(u.key.as_str()))
                .collect()
        }
        CacheMode::Min => {
            let mut out = Vec::new();
            let mut at = final_key;
            while let Some(u) = by_key.remove(at) {
                out.push(u);
                at = &u.parent;
            }
            out.reverse();
            out
        }
    }
}

/// Where a layer's compressed blob comes from.
enum Blob {
    Local(Descriptor),
    /// Uploaded while the build ran.
    Sent(Descriptor, PushOutcome),
    /// In `from`, a repository of the destination's registry.
    Mount(Descriptor, Repository),
}

pub struct Export<'a> {
    pub store: &'a Store,
    pub spec: &'a CacheSpec,
    pub access: &'a RegistryAccess,
    pub imported: &'a Imported,
    /// Layers already sent while the build ran.
    pub uploader: Option<Uploader>,
}

/// The cache manifest being written: each distinct layer once, in build
/// order, with its compressed blob once that is where it goes.
struct Layers {
    order: Vec<Digest>,
    sent: HashMap<Digest, Descriptor>,
    uploaded: usize,
}

impl Export<'_> {
    pub fn run(
        mut self,
        used: &[Used],
        aliases: &[(String, String)],
        final_key: &str,
    ) -> Result<Exported, BuildError> {
        let steps = select(used, final_key, self.spec.mode());
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for u in &steps {
            if let Some(l) = &u.rec.layer {
                if seen.insert(l.digest.clone()) {
                    order.push(l.digest.clone());
                }
            }
        }
        let fail = |what: String| {
            BuildError::Invalid(format!(
                "exporting the cache to {}: {what}",
                self.spec.label()
            ))
        };
        let (layers, manifest) = match self.spec {
            // Written into the image config before it was committed.
            CacheSpec::Inline => {
                return Ok(Exported {
                    steps: steps.len(),
                    layers: order.len(),
                    uploaded: 0,
                    manifest: Digest::of_bytes(b""),
                })
            }
            CacheSpec::Registry { reference, .. } => {
                let dest = reference
                    .parse::<Reference>()
                    .map_err(|e| fail(e.to_string()))?
                    .remote();
                let pre = self
                    .uploader
                    .take()
                    .map(Uploader::finish)
                    .unwrap_or_default();
                let client = self.access.client().map_err(|e| fail(e.render()))?;
                let rt = transfer::runtime().map_err(|e| fail(e.to_string()))?;
                let layers = self.layers_to_registry(&dest, order, &pre, &client, &rt)?;
                let (config, manifest) = document(&steps, aliases, &layers);
                let repo = dest.repository();
                rt.block_on(client.push_blob(
                    &repo,
                    &manifest.config.digest,
                    manifest.config.size,
                    &BlobSource::Bytes(config.into()),
                    None,
                ))
                .map_err(|e| fail(e.to_string()))?;
                let bytes = serde_json::to_vec(&manifest).expect("plain data");
                let tag = match (dest.tag(), dest.digest()) {
                    (Some(t), _) => t.to_string(),
                    (None, Some(_)) => {
                        return Err(fail("a cache ref needs a tag, not a digest".into()))
                    }
                    (None, None) => "latest".into(),
                };
                let digest = rt
                    .block_on(client.put_manifest(&repo, &tag, media::OCI_MANIFEST, &bytes))
                    .map_err(|e| fail(e.to_string()))?;
                (layers, digest)
            }
            CacheSpec::Local { dir, tag, .. } => {
                let fail_t = |e: transfer::Error| fail(e.render());
                let dest = transfer::oci_dir::dest(dir).map_err(fail_t)?;
                let src = StoreBlobs {
                    store: self.store.clone(),
                    extra: Default::default(),
                };
                let mut layers = Layers {
                    order,
                    sent: HashMap::new(),
                    uploaded: 0,
                };
                for diff_id in &layers.order {
                    let d = self.compressed(diff_id)?;
                    if !dest.has_blob(&d) {
                        dest.put_blob(&src, &d, None, Arc::new(transfer::Silent))
                            .map_err(fail_t)?;
                        layers.uploaded += 1;
                    }
                    layers.sent.insert(diff_id.clone(), d);
                }
                let (config, manifest) = document(&steps, aliases, &layers);
                src.extra
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(manifest.config.digest.clone(), config);
                dest.put_blob(&src, &manifest.config, None, Arc::new(transfer::Silent))
                    .map_err(fail_t)?;
                let bytes = serde_json::to_vec(&manifest).expect("plain data");
                let digest = Digest::of_bytes(&bytes);
                let image = transfer::SourceImage {
                    raw: transfer::RawManifest {
                        media_type: media::OCI_MANIFEST.into(),
                        digest: digest.clone(),
                        bytes,
                    },
                    names: vec![tag.clone()],
                    diff_ids: Vec::new(),
                    manifest: manifest.clone(),
                };
                // Blobs first, then the manifest, then the index names it.
                dest.put_manifest(&image, &manifest.layers)
                    .and_then(|_| dest.finish())
                    .map_err(fail_t)?;
                (layers, digest)
            }
        };
        Ok(Exported {
            steps: steps.len(),
            layers: layers.order.len(),
            uploaded: layers.uploaded,
            manifest,
        })
    }

    /// Sends the layers to the registry (those the build's uploader has
    /// not sent yet), at most [`JOBS`] at once.
    fn layers_to_registry(
        &self,
        dest: &Reference,
        order: Vec<Digest>,
        pre: &HashMap<Digest, Sent>,
        client: &registry_client::Client,
        rt: &tokio::runtime::Runtime,
    ) -> Result<Layers, BuildError> {
        let fail = |what: String| {
            BuildError::Invalid(format!(
                "exporting the cache to {}: {what}",
                self.spec.label()
            ))
        };
        let repo = dest.repository();
        let mut blobs: Vec<(Digest, Blob)> = Vec::new();
        for diff_id in &order {
            if let Some(Ok((d, o))) = pre.get(diff_id) {
                blobs.push((diff_id.clone(), Blob::Sent(d.clone(), *o)));
                continue;
            }
            let blob = match self.imported.layer(diff_id) {
                Some((origin, lr)) if !self.store.has_blob(diff_id) => match &origin.registry {
                    Some(r) if r.registry() == dest.registry() => {
                        Blob::Mount(lr.blob.clone(), r.repository())
                    }
                    _ => Blob::Local(self.compressed(diff_id)?),
                },
                _ => Blob::Local(self.compressed(diff_id)?),
            };
            blobs.push((diff_id.clone(), blob));
        }
        let outcomes: Vec<(Digest, Result<PushOutcome, registry_client::Error>)> =
            rt.block_on(async {
                futures_util::stream::iter(blobs.iter().map(|(diff_id, blob)| {
                    let repo = &repo;
                    async move {
                        let res = match blob {
                            Blob::Sent(_, o) => Ok(*o),
                            Blob::Local(d) => {
                                let src = BlobSource::File(self.store.blob_path(&d.digest));
                                client.push_blob(repo, &d.digest, d.size, &src, None).await
                            }
                            Blob::Mount(d, from) => {
                                let none = BlobSource::Reader(Arc::new(|| {
                                    Err(std::io::Error::other("the layer is not in the store"))
                                }));
                                client
                                    .push_blob(repo, &d.digest, d.size, &none, Some(from))
                                    .await
                            }
                        };
                        (diff_id.clone(), res)
                    }
                }))
                .buffer_unordered(JOBS)
                .collect()
                .await
            });
        let mut layers = Layers {
            order,
            sent: HashMap::new(),
            uploaded: 0,
        };
        for (diff_id, res) in outcomes {
            let blob = &blobs.iter().find(|(d, _)| *d == diff_id).expect("pushed").1;
            let desc = match (res, blob) {
                (Ok(o), Blob::Local(d) | Blob::Mount(d, _) | Blob::Sent(d, _)) => {
                    layers.uploaded += usize::from(o == PushOutcome::Uploaded);
                    d.clone()
                }
                // A mount the registry refused: fetch the layer, send it.
                (Err(_), Blob::Mount(..)) => {
                    self.imported.fetch(self.store, &diff_id)?;
                    let d = self.compressed(&diff_id)?;
                    let src = BlobSource::File(self.store.blob_path(&d.digest));
                    rt.block_on(client.push_blob(&repo, &d.digest, d.size, &src, None))
                        .map_err(|e| fail(e.to_string()))?;
                    layers.uploaded += 1;
                    d
                }
                (Err(e), Blob::Local(_) | Blob::Sent(..)) => return Err(fail(e.to_string())),
            };
            layers.sent.insert(diff_id, desc);
        }
        Ok(layers)
    }

    /// The layer `diff_id` compressed as the export asks (made once and
    /// remembered, so a later push of the image sends the same blob).
    fn compressed(&self, diff_id: &Digest) -> Result<Descriptor, BuildError> {
        let format = match self.spec {
            CacheSpec::Registry { compression, .. } | CacheSpec::Local { compression, .. } => {
                *compression
            }
            CacheSpec::Inline => LayerFormat::Gzip,
        };
        if let Some(d) = self.store.compressed_layer(diff_id, format) {
            return Ok(d);
        }
        if !self.store.has_blob(diff_id) && !self.imported.fetch(self.store, diff_id)? {
            return Err(BuildError::Invalid(format!(
                "exporting the cache: layer {diff_id} is neither in the store nor in an imported cache"
            )));
        }
        Ok(self.store.compress_layer(diff_id, format)?)
    }
}

/// The cache config (its bytes) and the manifest naming it.
fn document(steps: &[&Used], aliases: &[(String, String)], layers: &Layers) -> (Vec<u8>, Manifest) {
    let mut config = CacheConfig {
        version: VERSION,
        steps: BTreeMap::new(),
        aliases: BTreeMap::new(),
    };
    for u in steps {
        let layer = u.rec.layer.as_ref().map(|l| LayerRef {
            diff_id: l.digest.clone(),
            size: l.size,
            blob: layers.sent[&l.digest].clone(),
        });
        config.steps.insert(
            u.key.clone(),
            Entry {
                parent: u.parent.clone(),
                created: u.rec.created.clone(),
                layer,
            },
        );
    }
    for (alias, key) in aliases {
        if config.steps.contains_key(key) {
            config.aliases.insert(alias.clone(), key.clone());
        }
    }
    let bytes = serde_json::to_vec(&config).expect("plain data");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.into()),
        config: Descriptor::new(CONFIG_TYPE, Digest::of_bytes(&bytes), bytes.len() as u64),
        layers: layers
            .order
            .iter()
            .map(|d| layers.sent[d].clone())
            .collect(),
        annotations: None,
        extra: Default::default(),
    };
    (bytes, manifest)
}

/// The store's blobs (and the config, in memory) as a source for the
/// layout writer.
struct StoreBlobs {
    store: Store,
    extra: Mutex<HashMap<Digest, Vec<u8>>>,
}

impl ImageSource for StoreBlobs {
    fn label(&self) -> String {
        "the build cache".into()
    }

    fn manifest(&self) -> transfer::Result<transfer::RawManifest> {
        Err(transfer::Error::invalid("the build cache has no manifest"))
    }

    fn manifest_at(&self, _desc: &Descriptor) -> transfer::Result<transfer::RawManifest> {
        Err(transfer::Error::invalid("the build cache has no manifest"))
    }

    fn open_blob(
        &self,
        desc: &Descriptor,
        _progress: Arc<dyn transfer::BlobProgress>,
    ) -> transfer::Result<SourceBlob> {
        let extra = self.extra.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(data) = extra.get(&desc.digest) {
            return Ok(SourceBlob::reader(std::io::Cursor::new(data.clone())));
        }
        Ok(SourceBlob::reader(self.store.open_blob(&desc.digest)?))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<std::path::PathBuf> {
        let p = self.store.blob_path(&desc.digest);
        p.exists().then_some(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Record;

    fn used(key: &str, parent: &str) -> Used {
        Used {
            key: key.into(),
            parent: parent.into(),
            rec: Record {
                created: "now".into(),
                layer: None,
            },
            imported: false,
        }
    }

    /// `min` follows the final image's chain of parents; `max` keeps every
    /// step, each once.
    #[test]
    fn min_is_the_final_chain_and_max_is_everything() {
        let all = vec![
            used("a1", "img"),
            used("b1", "img"),
            used("a2", "a1"),
            used("b2", "b1"),
            used("a3", "a2"),
            used("a2", "a1"),
        ];
        let keys = |v: Vec<&Used>| v.iter().map(|u| u.key.clone()).collect::<Vec<_>>();
        assert_eq!(keys(select(&all, "a3", CacheMode::Min)), ["a1", "a2", "a3"]);
        assert_eq!(
            keys(select(&all, "a3", CacheMode::Max)),
            ["a1", "b1", "a2", "b2", "a3"]
        );
    }
}
