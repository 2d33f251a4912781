//! Pulling from and pushing to registries (`docker://`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context as _, Result};
use image_store::compressed::LayerFormat;
use image_store::model::media::{self, layer_compression, Compression};
use image_store::{Descriptor, Digest, Image, Manifest, Store};
use registry_client::manifest::{is_index, DOCKER_MANIFEST, OCI_MANIFEST};
use registry_client::{select_platform, BlobSource, Client, Platform, PushOutcome, Reference};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::progress::{Counting, Progress};
use super::{client_digest, runtime, store_digest};

/// Blobs moved at once.
pub const DEFAULT_JOBS: usize = 4;

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

/// Pulls `reference` into the store. On failure the blobs this pull added
/// are deleted again.
pub fn pull(
    store: &Store,
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    progress: &Progress,
) -> Result<Pulled> {
    let _ = store.sweep_compressed();
    let _w = store.writer_lock()?;
    let added: Arc<Mutex<Vec<Digest>>> = Arc::default();
    let rt = runtime()?;
    let res = rt.block_on(pull_inner(
        store,
        client,
        reference,
        platform,
        progress,
        added.clone(),
    ));
    if res.is_err() {
        let added = added.lock().unwrap_or_else(|p| p.into_inner());
        let _ = store.remove_blobs(added.iter());
    }
    res
}

async fn pull_inner(
    store: &Store,
    client: &Client,
    reference: &Reference,
    platform: &Platform,
    progress: &Progress,
    added: Arc<Mutex<Vec<Digest>>>,
) -> Result<Pulled> {
    let mut m = client.get_manifest(reference).await?;
    if is_index(&m.media_type) {
        let d = select_platform(&m.bytes, platform)?;
        let by_digest = reference.with_digest(d.digest.clone());
        m = client.get_manifest(&by_digest).await?;
    }
    if m.media_type != OCI_MANIFEST && m.media_type != DOCKER_MANIFEST {
        bail!(
            "{reference}: unsupported manifest type {:?} (only OCI and Docker schema 2 images)",
            m.media_type
        );
    }
    let manifest: Manifest = serde_json::from_slice(&m.bytes)
        .with_context(|| format!("{reference}: invalid manifest"))?;
    if let Some(w) = super::too_many_layers(&reference.to_string(), manifest.layers.len()) {
        progress.warn(&w);
    }
    // The config first: its diff IDs are what each layer is checked
    // against while it streams in.
    fetch_blob(
        client,
        store,
        &reference.repository(),
        &manifest.config,
        None,
        progress,
        &added,
    )
    .await?;
    let config: image_store::ImageConfig = store
        .read_json(&manifest.config.digest)
        .with_context(|| format!("{reference}: invalid image config"))?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "{reference}: the image config lists {} diff IDs but the manifest has {} layers",
            diff_ids.len(),
            manifest.layers.len()
        );
    }
    let sem = Arc::new(Semaphore::new(DEFAULT_JOBS));
    let mut tasks = JoinSet::new();
    let mut seen: BTreeMap<Digest, Digest> = BTreeMap::new();
    for (desc, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if let Some(first) = seen.insert(desc.digest.clone(), diff_id.clone()) {
            if first != *diff_id {
                bail!(
                    "{reference}: the image config gives layer {} two diff IDs, {first} and {diff_id}",
                    desc.digest
                );
            }
            continue;
        }
        let (client, store, desc, progress, added, sem) = (
            client.clone(),
            store.clone(),
            desc.clone(),
            progress.clone(),
            added.clone(),
            sem.clone(),
        );
        let (repo, diff_id) = (reference.repository(), diff_id.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            fetch_blob(
                &client,
                &store,
                &repo,
                &desc,
                Some(&diff_id),
                &progress,
                &added,
            )
            .await
        });
    }
    // Let every transfer finish (their writers must be done before any
    // cleanup), keeping the first error.
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        let r = r.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let manifest_digest = store_digest(&m.digest)?;
    let mut w = store.blob_writer()?;
    w.write_all(&m.bytes)?;
    let (_, size, new) = w.commit_reporting(Some(&manifest_digest))?;
    if new {
        added
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(manifest_digest.clone());
    }
    progress.line("Writing manifest to image destination");
    let name = store_name(reference)?;
    let desc = Descriptor::new(&m.media_type, manifest_digest.clone(), size);
    store.add_image(&desc, std::slice::from_ref(&name))?;
    Ok(Pulled {
        id: manifest.config.digest.clone(),
        manifest: manifest_digest,
        name: name.normalized().to_string(),
    })
}

/// Streams one blob into the store, verified against its digest; a layer
/// (`diff_id` given) is also decompressed, checked and hashed on the way
/// in, and must hash to `diff_id`.
async fn fetch_blob(
    client: &Client,
    store: &Store,
    repo: &registry_client::Repository,
    desc: &Descriptor,
    diff_id: Option<&Digest>,
    progress: &Progress,
    added: &Arc<Mutex<Vec<Digest>>>,
) -> Result<()> {
    let digest = desc.digest.clone();
    let bp = progress.blob("Copying", &digest.to_string(), desc.size);
    if store.has_blob(&digest) {
        if let Some(diff_id) = diff_id {
            // Another image brought this blob; this config's claim about
            // it is checked all the same.
            let (st, d, c, id) = (
                store.clone(),
                desc.clone(),
                media_compression(desc)?,
                diff_id.clone(),
            );
            if let Err(e) =
                tokio::task::spawn_blocking(move || st.check_stored_layer(&d.digest, c, &id))
                    .await?
            {
                bp.fail();
                return Err(e.into());
            }
        }
        bp.finish("skipped: already exists");
        return Ok(());
    }
    let rc_digest = client_digest(&digest)?;
    let (tx, rx) = tokio::io::duplex(4 << 20);
    let mut reader = tokio_util::io::SyncIoBridge::new(rx);
    let (st, exp, added2) = (store.clone(), digest.clone(), added.clone());
    let (layer_desc, layer_diff_id) = (desc.clone(), diff_id.cloned());
    let writer = tokio::task::spawn_blocking(move || -> Result<()> {
        let new = match &layer_diff_id {
            Some(diff_id) => st.store_checked_layer(&mut reader, &layer_desc, diff_id)?,
            None => {
                let mut w = st.blob_writer()?;
                std::io::copy(&mut reader, &mut w)?;
                w.commit_reporting(Some(&exp))?.2
            }
        };
        if new {
            added2.lock().unwrap_or_else(|p| p.into_inner()).push(exp);
        }
        Ok(())
    });
    let mut out = Counting {
        inner: tx,
        progress: &bp,
    };
    let res = client
        .pull_blob(repo, &rc_digest, Some(desc.size), &mut out)
        .await;
    drop(out);
    let wres = writer.await.map_err(anyhow::Error::from).and_then(|r| r);
    match (res, wres) {
        (Err(e), _) => {
            bp.fail();
            Err(e.into())
        }
        (Ok(_), Err(e)) => {
            bp.fail();
            Err(e.context(format!("storing blob {digest}")))
        }
        (Ok(_), Ok(())) => {
            bp.finish("done");
            Ok(())
        }
    }
}

/// How a layer blob is compressed, from its media type.
fn media_compression(desc: &Descriptor) -> Result<Compression> {
    layer_compression(&desc.media_type).ok_or_else(|| {
        anyhow!(
            "layer {}: unsupported layer media type {:?}",
            desc.digest,
            desc.media_type
        )
    })
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

pub struct PushOptions {
    /// `None`: keep the image's own format when nothing else changes, else OCI.
    pub format: Option<ManifestFormat>,
    pub compression: LayerFormat,
    pub jobs: usize,
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

/// Another repository of `dest`'s registry that is known to hold the
/// image's blobs (one of its names), for cross-repository mounts.
fn mount_source(img: &Image, dest: &Reference) -> Option<registry_client::Repository> {
    img.names
        .iter()
        .filter_map(|n| n.parse::<Reference>().ok())
        .map(|r| r.repository())
        .find(|r| r.registry == dest.registry() && r.name != dest.repository().name)
}

/// Pushes `img` to `dest`; returns the manifest digest.
pub fn push(
    store: &Store,
    client: &Client,
    img: &Image,
    dest: &Reference,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<registry_client::Digest> {
    let _ = store.sweep_compressed();
    let _w = store.writer_lock()?;
    let rt = runtime()?;
    rt.block_on(push_inner(store, client, img, dest, opts, progress))
}

async fn push_inner(
    store: &Store,
    client: &Client,
    img: &Image,
    dest: &Reference,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<registry_client::Digest> {
    let repo = dest.repository();
    let mount = mount_source(img, dest);
    let sem = Arc::new(Semaphore::new(opts.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for (i, layer) in img.manifest.layers.iter().enumerate() {
        let (client, store, layer, progress, sem, repo, mount) = (
            client.clone(),
            store.clone(),
            layer.clone(),
            progress.clone(),
            sem.clone(),
            repo.clone(),
            mount.clone(),
        );
        let compression = opts.compression;
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await?;
            let desc = match layer_compression(&layer.media_type) {
                Some(Compression::None) => {
                    match store.compressed_layer(&layer.digest, compression) {
                        Some(d) => d,
                        None => {
                            progress.line(&format!(
                                "Compressing layer {} ({})",
                                layer.digest.short(),
                                compression.name()
                            ));
                            let st = store.clone();
                            let diff_id = layer.digest.clone();
                            tokio::task::spawn_blocking(move || {
                                st.compress_layer(&diff_id, compression)
                            })
                            .await??
                        }
                    }
                }
                _ => layer.clone(),
            };
            send_blob(&client, &store, &repo, &desc, mount.as_ref(), &progress).await?;
            anyhow::Ok((i, desc))
        });
    }
    let mut layers: Vec<Option<Descriptor>> = vec![None; img.manifest.layers.len()];
    let mut first_err = None;
    while let Some(r) = tasks.join_next().await {
        match r.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok((i, d)) => layers[i] = Some(d),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let layers: Vec<Descriptor> = layers.into_iter().map(|d| d.expect("set")).collect();
    send_blob(
        client,
        store,
        &repo,
        &img.manifest.config,
        mount.as_ref(),
        progress,
    )
    .await?;

    // The manifest: the stored bytes when nothing changed, else rewritten.
    let source_format = if img.manifest_descriptor.media_type == media::DOCKER_MANIFEST {
        ManifestFormat::V2s2
    } else {
        ManifestFormat::Oci
    };
    let layers_changed = layers
        .iter()
        .zip(&img.manifest.layers)
        .any(|(a, b)| a.digest != b.digest);
    let format = opts.format.unwrap_or(if layers_changed {
        ManifestFormat::Oci
    } else {
        source_format
    });
    let (media_type, bytes) = if !layers_changed && format == source_format {
        (
            img.manifest_descriptor.media_type.clone(),
            store.read_blob(img.manifest_digest())?,
        )
    } else {
        let mut m = img.manifest.clone();
        let (mt, config_type) = match format {
            ManifestFormat::Oci => (media::OCI_MANIFEST, media::OCI_CONFIG),
            ManifestFormat::V2s2 => (media::DOCKER_MANIFEST, media::DOCKER_CONFIG),
        };
        m.media_type = Some(mt.to_string());
        m.config.media_type = config_type.to_string();
        m.layers = layers
            .into_iter()
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
    progress.line("Writing manifest to image destination");
    let target = match (dest.tag(), dest.digest()) {
        (Some(t), _) => t.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_string(),
    };
    let digest = client
        .put_manifest(&repo, &target, &media_type, &bytes)
        .await?;
    Ok(digest)
}

/// Uploads one blob from the store unless the repository has it.
async fn send_blob(
    client: &Client,
    store: &Store,
    repo: &registry_client::Repository,
    desc: &Descriptor,
    mount: Option<&registry_client::Repository>,
    progress: &Progress,
) -> Result<()> {
    let bp = progress.blob("Copying", &desc.digest.to_string(), desc.size);
    let path = store.blob_path(&desc.digest);
    if !path.exists() {
        bp.fail();
        return Err(anyhow!("blob {} is missing from the store", desc.digest));
    }
    let source = match bp.bar() {
        Some(bar) => {
            let path = path.clone();
            BlobSource::Reader(Arc::new(move || {
                bar.set_position(0);
                let f = std::fs::File::open(&path)?;
                Ok(Box::new(CountingRead {
                    inner: f,
                    bar: bar.clone(),
                }) as Box<dyn Read + Send>)
            }))
        }
        None => BlobSource::File(path),
    };
    let digest = client_digest(&desc.digest)?;
    match client
        .push_blob(repo, &digest, desc.size, &source, mount)
        .await
    {
        Ok(PushOutcome::Existed) => bp.finish("skipped: already exists"),
        Ok(PushOutcome::Mounted) => bp.finish(&format!(
            "mounted from {}",
            mount.map(|m| m.name.as_str()).unwrap_or("?")
        )),
        Ok(PushOutcome::Uploaded) => bp.finish("done"),
        Err(e) => {
            bp.fail();
            return Err(e.into());
        }
    }
    Ok(())
}

struct CountingRead<R> {
    inner: R,
    bar: indicatif::ProgressBar,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}
