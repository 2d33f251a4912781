//! One copy for every pair of places: read the manifest (choosing a
//! platform from an index) and the config (read whole and checked: its
//! diff IDs are what each layer is checked against), stream each layer the
//! destination lacks through it, with the config before or after them (as
//! the destination writes it), and the manifest last.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use image_store::model::media;
use image_store::{Descriptor, Digest, ImageConfig, Manifest};
use oci_model::{Index, Platform};

use crate::image::{BytesBlob, ImageDest, ImageSource, SourceImage};
use crate::progress::Progress;
use crate::{bail, Context as _, Result};

/// Blobs moved at once.
pub const DEFAULT_JOBS: usize = 4;

/// A config larger than this is not one.
const MAX_CONFIG: u64 = 64 << 20;

#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Chosen from an index (the one platform picker).
    pub platform: Platform,
    pub jobs: usize,
}

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            platform: Platform::host(),
            jobs: DEFAULT_JOBS,
        }
    }
}

/// What a copy wrote.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The image ID (its config's digest).
    pub id: Digest,
    /// The manifest's digest at the destination.
    pub manifest: Digest,
    /// The image as it was read from the source.
    pub image: SourceImage,
}

/// Copies the image `src` offers into `dest`. Every blob is verified by
/// the destination as it streams in (layers also against their diff IDs);
/// blobs the destination has are skipped (layers it has are still checked
/// against this image's diff IDs).
pub fn copy(
    src: &dyn ImageSource,
    dest: &dyn ImageDest,
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<Copied> {
    let label = src.label();
    let mut image = read_image(src, &opts.platform)?;
    let manifest = image.manifest.clone();
    let config_bytes = read_config(src, &manifest.config)
        .with_context(|| format!("{label}: reading the image config"))?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .with_context(|| format!("{label}: invalid image config"))?;
    image.diff_ids = config.rootfs.diff_ids.clone();
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "{label}: the image config lists {} diff IDs but the manifest has {} layers",
            diff_ids.len(),
            manifest.layers.len()
        );
    }
    // Each distinct layer once; one layer under two diff IDs is a lie.
    let mut seen: BTreeMap<&Digest, &Digest> = BTreeMap::new();
    let mut work = Vec::new();
    for (i, (desc, diff_id)) in manifest.layers.iter().zip(diff_ids).enumerate() {
        match seen.insert(&desc.digest, diff_id) {
            Some(first) if first != diff_id => bail!(
                "{label}: the image config gives layer {} two diff IDs, {first} and {diff_id}",
                desc.digest
            ),
            Some(_) => {}
            None => work.push(i),
        }
    }
    // The config, from the bytes already read and checked: first or last,
    // as the destination writes it.
    let put_config = || {
        let bp = progress.blob(dest.verb(), &manifest.config.digest, manifest.config.size);
        let res = if dest.has_blob(&manifest.config) {
            Ok("skipped: already exists".to_string())
        } else if src.blob_file(&manifest.config).is_some() {
            dest.put_blob(src, &manifest.config, None, bp.clone())
        } else {
            let bytes = BytesBlob(config_bytes.clone());
            dest.put_blob(&bytes, &manifest.config, None, bp.clone())
        };
        finish(&*bp, res)
    };
    if dest.config_first() {
        put_config()?;
    }
    let sent = copy_layers(src, dest, &image, diff_ids, &work, opts, progress)?;
    let layers: Vec<Descriptor> = manifest
        .layers
        .iter()
        .map(|l| {
            sent.iter()
                .find(|(orig, _)| orig == &l.digest)
                .map_or_else(|| l.clone(), |(_, d)| d.clone())
        })
        .collect();
    if !dest.config_first() {
        put_config()?;
    }

    progress.line("Writing manifest to image destination");
    let digest = dest.put_manifest(&image, &layers)?;
    Ok(Copied {
        id: manifest.config.digest.clone(),
        manifest: digest,
        image,
    })
}

fn finish(bp: &dyn crate::BlobProgress, res: Result<String>) -> Result<()> {
    match res {
        Ok(msg) => {
            bp.finish(&msg);
            Ok(())
        }
        Err(e) => {
            bp.fail();
            Err(e)
        }
    }
}

/// The manifest, a platform chosen when the source offers an index.
fn read_image(src: &dyn ImageSource, platform: &Platform) -> Result<SourceImage> {
    let label = src.label();
    let mut raw = src.manifest()?;
    if registry_client::manifest::is_index(&raw.media_type) {
        let index: Index = serde_json::from_slice(&raw.bytes)
            .with_context(|| format!("{label}: invalid index"))?;
        let desc = index
            .select(platform)
            .with_context(|| label.clone())?
            .clone();
        raw = src.manifest_at(&desc)?;
    }
    if raw.media_type != media::OCI_MANIFEST && raw.media_type != media::DOCKER_MANIFEST {
        bail!(
            "{label}: unsupported manifest type {:?} (only OCI and Docker schema 2 images)",
            raw.media_type
        );
    }
    let manifest: Manifest =
        serde_json::from_slice(&raw.bytes).with_context(|| format!("{label}: invalid manifest"))?;
    Ok(SourceImage {
        raw,
        manifest,
        names: src.names(),
        diff_ids: Vec::new(),
    })
}

/// The config's bytes, checked against its descriptor.
fn read_config(src: &dyn ImageSource, desc: &Descriptor) -> Result<Vec<u8>> {
    if desc.size > MAX_CONFIG {
        bail!(
            "config {} is {} bytes, too large for a config",
            desc.digest,
            desc.size
        );
    }
    let blob = src.open_blob(desc, Arc::new(crate::Silent))?;
    blob.consume(&desc.digest, |r| {
        let mut data = Vec::new();
        r.take(MAX_CONFIG + 1).read_to_end(&mut data)?;
        if Digest::of_bytes(&data) != desc.digest {
            bail!("config {} does not match its digest", desc.digest);
        }
        Ok(data)
    })
}

/// Copies the layers at `work` (indexes into the manifest), `jobs` at a
/// time; every transfer finishes before the first error is returned.
/// Returns each layer's descriptor as sent, where the source changed it.
fn copy_layers(
    src: &dyn ImageSource,
    dest: &dyn ImageDest,
    image: &SourceImage,
    diff_ids: &[Digest],
    work: &[usize],
    opts: &CopyOptions,
    progress: &dyn Progress,
) -> Result<Vec<(Digest, Descriptor)>> {
    let queue = Mutex::new(work.iter().copied());
    let sent = Mutex::new(Vec::new());
    let first_err = Mutex::new(None);
    let jobs = opts
        .jobs
        .clamp(1, dest.jobs().max(1))
        .min(work.len().max(1));
    let one = |i: usize| -> Result<()> {
        let layer = &image.manifest.layers[i];
        let diff_id = &diff_ids[i];
        let desc = src.prepare_layer(layer, progress)?;
        let bp = progress.blob(dest.verb(), &desc.digest, desc.size);
        let res = if dest.has_blob(&desc) {
            // Another image brought this blob; this config's claim
            // about it is checked all the same.
            dest.check_layer(&desc, diff_id)
                .map(|()| "skipped: already exists".to_string())
        } else {
            dest.put_blob(src, &desc, Some(diff_id), bp.clone())
        };
        finish(&*bp, res)?;
        if desc.digest != layer.digest {
            sent.lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((layer.digest.clone(), desc));
        }
        Ok(())
    };
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
                let Some(i) = next else { break };
                if let Err(e) = one(i) {
                    first_err
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = first_err.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(sent.into_inner().unwrap_or_else(|p| p.into_inner()))
}
