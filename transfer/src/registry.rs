//! Registries (`docker://`) as a source (pull) and a destination (push).

use std::io::Read;
use std::sync::Arc;

use image_store::model::media::{self, layer_compression, Compression};
use image_store::{Descriptor, Digest, Store};
use registry_client::{BlobSource, Client, Platform, PushOutcome, Reference};
use tokio::runtime::Runtime;

use crate::copy::{copy, CopyOptions, DEFAULT_JOBS};
use crate::image::{ImageDest, ImageSource, RawManifest, SourceBlob, SourceImage};
use crate::progress::{BlobProgress, Counting, CountingRead, Progress};
use crate::store::StoreDest;
use crate::{bail, runtime, Error, Result};

pub struct Pulled {
    pub id: Digest,
    pub manifest: Digest,
    pub name: String,
}

/// The name a pulled image is stored under: `registry/repo:tag` or
/// `registry/repo@digest`.
pub fn store_name(reference: &Reference) -> Result<image_store::Reference> {
    let r = &reference.repository();
    let s = match (reference.tag(), reference.digest()) {
        (Some(t), _) => format!("{}/{}:{t}", r.registry, r.name),
        (None, Some(d)) => format!("{}/{}@{d}", r.registry, r.name),
        (None, None) => format!("{}/{}:latest", r.registry, r.name),
    };
    Ok(s.parse()?)
}

/// Pulls `reference` into the store under its [`store_name`]. On failure
/// the blobs this pull added are deleted again.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    progress: &dyn Progress,
) -> Result<Pulled> {
    let name = store_name(reference)?;
    let src = RegistrySource::new(client, reference)?;
    let dest = StoreDest::new(store, vec![name.clone()])?;
    let opts = CopyOptions {
        platform: platform.clone(),
        jobs: DEFAULT_JOBS,
    };
    let copied = copy(&src, &dest, &opts, progress)?;
    dest.commit()?;
    if let Some(w) = crate::too_many_layers(&src.label(), copied.image.manifest.layers.len()) {
        progress.warn(&w);
    }
    Ok(Pulled {
        id: copied.id,
        manifest: copied.manifest,
        name: name.normalized().to_string(),
    })
}

/// Pushes the store's image `img` to `reference` (`kiln push`, the Engine
/// API's push): layers stored uncompressed are compressed as
/// `compression`. The caller holds the store's reader lock. Returns the
/// pushed manifest's digest.
pub fn push(
    store: &Store,
    client: &Client,
    img: &image_store::Image,
    reference: &Reference,
    format: Option<ManifestFormat>,
    compression: image_store::compressed::LayerFormat,
    progress: &dyn Progress,
) -> Result<Digest> {
    let src = crate::store::StoreSource::new(store, img.clone()).compressing(compression);
    let to = RegistryDest::new(client, reference, format, &img.names)?;
    Ok(copy(&src, &to, &CopyOptions::default(), progress)?.manifest)
}

/// Base images for a build, pulled as `kiln pull` pulls them (the same
/// registry flags, the host's platform).
pub struct Puller {
    pub access: crate::RegistryAccess,
    pub platform: Platform,
    pub progress: Arc<dyn Progress>,
}

impl Puller {
    pub fn new(access: crate::RegistryAccess, progress: Arc<dyn Progress>) -> Puller {
        Puller {
            access,
            platform: Platform::host(),
            progress,
        }
    }

    /// Brings `name` into the store.
    pub fn pull(&self, store: &Store, name: &str) -> Result<Pulled> {
        let reference = name.parse::<Reference>()?.remote();
        let client = self.access.client()?;
        self.progress
            .line(&format!("Trying to pull {reference}..."));
        pull(store, &client, &reference, &self.platform, &*self.progress)
    }
}

/// An image in a registry, read through the async client on a runtime of
/// its own.
pub struct RegistrySource {
    client: Client,
    reference: Reference,
    rt: Runtime,
}

impl RegistrySource {
    pub fn new(client: &Client, reference: &Reference) -> Result<RegistrySource> {
        Ok(RegistrySource {
            client: client.clone(),
            reference: reference.clone(),
            rt: runtime()?,
        })
    }
}

impl ImageSource for RegistrySource {
    fn label(&self) -> String {
        self.reference.to_string()
    }

    fn manifest(&self) -> Result<RawManifest> {
        Ok(self
            .rt
            .block_on(self.client.get_manifest(&self.reference))?)
    }

    fn manifest_at(&self, desc: &Descriptor) -> Result<RawManifest> {
        let by_digest = self.reference.with_digest(desc.digest.clone());
        Ok(self.rt.block_on(self.client.get_manifest(&by_digest))?)
    }

    /// The download runs on the runtime and streams through a pipe; the
    /// client verifies the digest, and its error is the blob's `done`.
    fn open_blob(&self, desc: &Descriptor, progress: Arc<dyn BlobProgress>) -> Result<SourceBlob> {
        let (tx, rx) = tokio::io::duplex(4 << 20);
        let (client, repo) = (self.client.clone(), self.reference.repository());
        let (digest, size) = (desc.digest.clone(), desc.size);
        let task = self.rt.spawn(async move {
            let mut out = Counting {
                inner: tx,
                progress: &*progress,
            };
            client
                .pull_blob(&repo, &digest, Some(size), &mut out)
                .await
                .map(|_| ())
        });
        let handle = self.rt.handle().clone();
        let reader = tokio_util::io::SyncIoBridge::new_with_handle(rx, handle.clone());
        Ok(SourceBlob {
            reader: Box::new(reader),
            done: Box::new(move || {
                handle
                    .block_on(task)
                    .map_err(Error::from)?
                    .map_err(Error::from)
            }),
        })
    }
}

/// The manifest format a push writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestFormat {
    Oci,
    V2s2,
}

impl std::str::FromStr for ManifestFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "oci" => Ok(ManifestFormat::Oci),
            "v2s2" | "docker" => Ok(ManifestFormat::V2s2),
            other => Err(format!(
                "unsupported manifest format {other:?}: use oci or v2s2"
            )),
        }
    }
}

fn layer_type(format: ManifestFormat, c: Compression) -> &'static str {
    match (format, c) {
        (ManifestFormat::Oci, Compression::None) => media::OCI_LAYER,
        (ManifestFormat::Oci, Compression::Gzip) => media::OCI_LAYER_GZIP,
        (ManifestFormat::Oci, Compression::Zstd) => media::OCI_LAYER_ZSTD,
        (ManifestFormat::V2s2, Compression::None) => media::DOCKER_LAYER,
        (ManifestFormat::V2s2, Compression::Gzip) => media::DOCKER_LAYER_GZIP,
        (ManifestFormat::V2s2, Compression::Zstd) => media::DOCKER_LAYER_ZSTD,
    }
}

/// A repository in a registry as a destination.
pub struct RegistryDest {
    client: Client,
    dest: Reference,
    /// `None`: keep the image's own format when no layer changed, else OCI.
    format: Option<ManifestFormat>,
    /// Another repository of the same registry that holds the image's
    /// blobs (one of its names), for cross-repository mounts.
    mount: Option<registry_client::Repository>,
    rt: Runtime,
}

impl RegistryDest {
    /// `names`: what the image is called elsewhere, to find a repository
    /// of the same registry to mount blobs from.
    pub fn new(
        client: &Client,
        dest: &Reference,
        format: Option<ManifestFormat>,
        names: &[String],
    ) -> Result<RegistryDest> {
        let mount = names
            .iter()
            .filter_map(|n| n.parse::<Reference>().ok())
            .map(|r| r.repository())
            .find(|r| r.registry == dest.registry() && r.name != dest.repository().name);
        Ok(RegistryDest {
            client: client.clone(),
            dest: dest.clone(),
            format,
            mount,
            rt: runtime()?,
        })
    }
}

impl ImageDest for RegistryDest {
    fn verb(&self) -> &'static str {
        crate::progress::PUSHING
    }

    /// Uploads unless the repository has the blob (asked per blob, since
    /// a mount may bring it).
    fn put_blob(
        &self,
        src: &dyn ImageSource,
        desc: &Descriptor,
        _diff_id: Option<&Digest>,
        progress: Arc<dyn BlobProgress>,
    ) -> Result<String> {
        let source = match src.blob_file(desc) {
            Some(path) if progress.counts() => {
                let bp = progress.clone();
                BlobSource::Reader(Arc::new(move || {
                    bp.restart();
                    let f = std::fs::File::open(&path)?;
                    Ok(Box::new(CountingRead {
                        inner: f,
                        progress: bp.clone(),
                    }) as Box<dyn Read + Send>)
                }))
            }
            Some(path) => BlobSource::File(path),
            None => {
                // A stream can be read once: no retry from the start. A
                // source that fails mid-way ends the stream early, and the
                // registry refuses the upload's digest.
                let once = std::sync::Mutex::new(Some(src.open_blob(desc, progress)?));
                BlobSource::Reader(Arc::new(move || {
                    match once.lock().unwrap_or_else(|p| p.into_inner()).take() {
                        Some(b) => Ok(b.reader),
                        None => Err(std::io::Error::other(
                            "a streamed blob cannot be sent again",
                        )),
                    }
                }))
            }
        };
        let outcome = self.rt.block_on(self.client.push_blob(
            &self.dest.repository(),
            &desc.digest,
            desc.size,
            &source,
            self.mount.as_ref(),
        ))?;
        Ok(match outcome {
            PushOutcome::Existed => "skipped: already exists".into(),
            PushOutcome::Mounted => format!(
                "mounted from {}",
                self.mount.as_ref().map(|m| m.name.as_str()).unwrap_or("?")
            ),
            PushOutcome::Uploaded => "done".into(),
        })
    }

    /// The stored bytes when nothing changed, else a manifest rewritten
    /// with the layers as sent.
    fn put_manifest(&self, image: &SourceImage, layers: &[Descriptor]) -> Result<Digest> {
        let source_format = if image.raw.media_type == media::DOCKER_MANIFEST {
            ManifestFormat::V2s2
        } else {
            ManifestFormat::Oci
        };
        let layers_changed = layers
            .iter()
            .zip(&image.manifest.layers)
            .any(|(a, b)| a.digest != b.digest);
        let format = self.format.unwrap_or(if layers_changed {
            ManifestFormat::Oci
        } else {
            source_format
        });
        let (media_type, bytes) = if !layers_changed && format == source_format {
            (image.raw.media_type.clone(), image.raw.bytes.clone())
        } else {
            let mut m = image.manifest.clone();
            let (mt, config_type) = match format {
                ManifestFormat::Oci => (media::OCI_MANIFEST, media::OCI_CONFIG),
                ManifestFormat::V2s2 => (media::DOCKER_MANIFEST, media::DOCKER_CONFIG),
            };
            m.media_type = Some(mt.to_string());
            m.config.media_type = config_type.to_string();
            m.layers = layers
                .iter()
                .cloned()
                .map(|mut d| {
                    if let Some(c) = layer_compression(&d.media_type) {
                        if format == ManifestFormat::V2s2 && c == Compression::Zstd {
                            bail!("zstd layers need an OCI manifest: use --format oci");
                        }
                        if d.media_type != media::DOCKER_FOREIGN_LAYER {
                            d.media_type = layer_type(format, c).to_string();
                        }
                    }
                    Ok(d)
                })
                .collect::<Result<_>>()?;
            (mt.to_string(), serde_json::to_vec(&m)?)
        };
        let target = match (self.dest.tag(), self.dest.digest()) {
            (Some(t), _) => t.to_string(),
            (None, Some(d)) => d.to_string(),
            (None, None) => "latest".to_string(),
        };
        Ok(self.rt.block_on(self.client.put_manifest(
            &self.dest.repository(),
            &target,
            &media_type,
            &bytes,
        ))?)
    }
}
