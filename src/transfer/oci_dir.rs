//! `oci:DIR[:REF]`: a plain OCI image layout directory.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use image_store::model::media::layer_compression;
use image_store::model::{media, Index};
use image_store::{Descriptor, Digest, Image, Manifest, Store};
use registry_client::Platform;

fn blob_path(dir: &Path, d: &Digest) -> std::path::PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// Writes `img` into the layout at `dir` (created if needed) and names it
/// `reference` in `index.json` (replacing any manifest of that name).
pub fn write(store: &Store, img: &Image, dir: &Path, reference: Option<&str>) -> Result<()> {
    fs::create_dir_all(dir.join("blobs/sha256"))
        .with_context(|| format!("creating {}", dir.display()))?;
    let layout = dir.join("oci-layout");
    if !layout.exists() {
        image_store::write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)
            .with_context(|| format!("writing {}", layout.display()))?;
    }
    let blobs = img
        .manifest
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([img.id()]);
    let mut manifest_desc = img.manifest_descriptor.clone();
    if manifest_desc.media_type == media::DOCKER_MANIFEST {
        // An OCI layout holds OCI manifests (as skopeo writes them).
        let m = to_oci(&img.manifest);
        let bytes = serde_json::to_vec(&m)?;
        let d = Digest::of_bytes(&bytes);
        image_store::write_atomic(&blob_path(dir, &d), &bytes)
            .with_context(|| format!("writing manifest to {}", dir.display()))?;
        manifest_desc = Descriptor::new(media::OCI_MANIFEST, d, bytes.len() as u64);
    } else {
        copy_blob(store, dir, img.manifest_digest())?;
    }
    for d in blobs {
        copy_blob(store, dir, d)?;
    }
    let index_path = dir.join("index.json");
    let mut index: Index = match fs::read(&index_path) {
        Ok(data) => serde_json::from_slice(&data)
            .with_context(|| format!("{}: invalid index", index_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", index_path.display())),
    };
    let mut desc = manifest_desc;
    desc.annotations = None;
    desc.set_ref_name(reference);
    if desc.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        desc.annotations = None;
    }
    match reference {
        Some(r) => index.manifests.retain(|d| d.ref_name() != Some(r)),
        None => index
            .manifests
            .retain(|d| !(d.digest == desc.digest && d.ref_name().is_none())),
    }
    index.manifests.push(desc);
    let data = serde_json::to_vec(&index)?;
    image_store::write_atomic(&index_path, &data)
        .with_context(|| format!("writing {}", index_path.display()))?;
    Ok(())
}

fn copy_blob(store: &Store, dir: &Path, d: &Digest) -> Result<()> {
    let dest = blob_path(dir, d);
    if dest.exists() {
        return Ok(());
    }
    let tmp = dest.with_extension("tmp");
    fs::copy(store.blob_path(d), &tmp)
        .with_context(|| format!("copying blob {d} to {}", dir.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}

/// Copies one blob (config, manifest) in, verified against its digest.
fn copy_in(store: &Store, dir: &Path, d: &Digest, added: &mut Vec<Digest>) -> Result<()> {
    if store.has_blob(d) {
        return Ok(());
    }
    let src = blob_path(dir, d);
    let mut f = fs::File::open(&src).with_context(|| format!("reading {}", src.display()))?;
    let mut w = store.blob_writer()?;
    std::io::copy(&mut f, &mut w)?;
    let (_, _, new) = w
        .commit_reporting(Some(d))
        .with_context(|| format!("{}: blob {d}", dir.display()))?;
    if new {
        added.push(d.clone());
    }
    Ok(())
}

/// A Docker schema 2 manifest with OCI media types.
fn to_oci(m: &Manifest) -> Manifest {
    use image_store::model::media::{layer_compression, Compression};
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

/// Picks the manifest named `reference` (or the only one) from the layout.
fn pick(dir: &Path, reference: Option<&str>, platform: &Platform) -> Result<Descriptor> {
    let index_path = dir.join("index.json");
    let data =
        fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?;
    let index: Index = serde_json::from_slice(&data)
        .with_context(|| format!("{}: invalid index", index_path.display()))?;
    let found: Vec<&Descriptor> = match reference {
        Some(r) => index
            .manifests
            .iter()
            .filter(|d| d.ref_name() == Some(r))
            .collect(),
        None => index.manifests.iter().collect(),
    };
    let desc = match found.as_slice() {
        [one] => (*one).clone(),
        [] => match reference {
            Some(r) => bail!("{}: no image named {r:?}", dir.display()),
            None => bail!("{}: the layout holds no image", dir.display()),
        },
        _ => bail!(
            "{}: the layout holds {} images; name one with oci:DIR:REF",
            dir.display(),
            found.len()
        ),
    };
    if desc.media_type == media::OCI_INDEX || desc.media_type == media::DOCKER_LIST {
        let bytes = read_verified(dir, &desc.digest)?;
        let d = registry_client::select_platform(&bytes, platform)?;
        return Ok(Descriptor::new(&d.media_type, d.digest, d.size));
    }
    Ok(desc)
}

fn read_verified(dir: &Path, d: &Digest) -> Result<Vec<u8>> {
    let p = blob_path(dir, d);
    let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    if Digest::of_bytes(&data) != *d {
        bail!("{}: blob {d} does not match its digest", dir.display());
    }
    Ok(data)
}

/// Copies the image `reference` of the layout at `dir` into the store
/// (every blob verified) and returns its manifest descriptor and ID. On
/// failure the blobs added are removed again.
pub fn read(
    store: &Store,
    dir: &Path,
    reference: Option<&str>,
    platform: &Platform,
    names: &[image_store::Reference],
) -> Result<(Descriptor, Digest)> {
    let _w = store.writer_lock()?;
    let mut added = Vec::new();
    let res = read_inner(store, dir, reference, platform, names, &mut added);
    if res.is_err() {
        let _ = store.remove_blobs(added.iter());
    }
    res
}

fn read_inner(
    store: &Store,
    dir: &Path,
    reference: Option<&str>,
    platform: &Platform,
    names: &[image_store::Reference],
    added: &mut Vec<Digest>,
) -> Result<(Descriptor, Digest)> {
    let desc = pick(dir, reference, platform)?;
    if desc.media_type != media::OCI_MANIFEST && desc.media_type != media::DOCKER_MANIFEST {
        bail!("unsupported manifest type {:?}", desc.media_type);
    }
    let bytes = read_verified(dir, &desc.digest)?;
    let manifest: Manifest = serde_json::from_slice(&bytes)
        .with_context(|| format!("{}: invalid manifest {}", dir.display(), desc.digest))?;
    // The config first: each layer is checked against its diff ID as it
    // is copied in.
    copy_in(store, dir, &manifest.config.digest, added)?;
    let config: image_store::ImageConfig = store
        .read_json(&manifest.config.digest)
        .with_context(|| format!("{}: invalid image config", dir.display()))?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        bail!(
            "{}: the image config lists {} diff IDs but the manifest has {} layers",
            dir.display(),
            diff_ids.len(),
            manifest.layers.len()
        );
    }
    let mut seen = BTreeSet::new();
    for (l, diff_id) in manifest.layers.iter().zip(diff_ids) {
        if !seen.insert((l.digest.clone(), diff_id.clone())) {
            continue;
        }
        if store.has_blob(&l.digest) {
            let c = layer_compression(&l.media_type).ok_or_else(|| {
                anyhow::anyhow!(
                    "layer {}: unsupported layer media type {:?}",
                    l.digest,
                    l.media_type
                )
            })?;
            store
                .check_stored_layer(&l.digest, c, diff_id)
                .with_context(|| format!("{}", dir.display()))?;
            continue;
        }
        let src = blob_path(dir, &l.digest);
        let f = fs::File::open(&src).with_context(|| format!("reading {}", src.display()))?;
        let new = store
            .store_checked_layer(f, l, diff_id)
            .with_context(|| format!("{}", dir.display()))?;
        if new {
            added.push(l.digest.clone());
        }
    }
    copy_in(store, dir, &desc.digest, added)?;
    let mut desc = desc;
    desc.annotations = None;
    store.add_image(&desc, names)?;
    Ok((desc, manifest.config.digest.clone()))
}
