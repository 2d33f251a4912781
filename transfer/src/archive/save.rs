//! Writing archives from the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, Write};

use super::{ArchiveError, DockerManifestEntry};
use image_store::digest::Digest;
use image_store::images::{split_name, Image};
use image_store::layout::Store;
use image_store::model::{media, Descriptor, Index};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

/// Writes `images` (each with the names it should carry in the archive) to
/// `out` as one archive.
pub fn save<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    format: ArchiveFormat,
    out: W,
) -> Result<(), ArchiveError> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    let mut written: BTreeSet<Digest> = BTreeSet::new();
    match format {
        ArchiveFormat::DockerArchive => save_docker(store, images, &mut b, &mut written)?,
        ArchiveFormat::OciArchive => save_oci(store, images, &mut b, &mut written)?,
    }
    b.into_inner()?.flush()?;
    Ok(())
}

fn save_docker<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    b: &mut tar::Builder<W>,
    written: &mut BTreeSet<Digest>,
) -> Result<(), ArchiveError> {
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, names) in images {
        let config = img.id().clone();
        add_blob(store, b, &config, None, written)?;
        let mut layers = Vec::new();
        for (desc, diff_id) in img.manifest.layers.iter().zip(&img.config.rootfs.diff_ids) {
            // docker-archive layers are plain tars named by their diff ID.
            add_blob(store, b, diff_id, Some(desc), written)?;
            layers.push(blob_name(diff_id));
        }
        if let Some(top) = img.config.rootfs.diff_ids.last() {
            for n in names {
                let (repo, tag) = split_name(n);
                repositories
                    .entry(repo)
                    .or_default()
                    .insert(tag, top.hex().to_string());
            }
        }
        manifest.push(DockerManifestEntry {
            config: blob_name(&config),
            repo_tags: (!names.is_empty()).then(|| names.clone()),
            layers,
        });
    }
    add_json(b, "manifest.json", &manifest)?;
    add_json(b, "repositories", &repositories)?;
    Ok(())
}

fn save_oci<W: Write>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    b: &mut tar::Builder<W>,
    written: &mut BTreeSet<Digest>,
) -> Result<(), ArchiveError> {
    let mut index = Index::default();
    add_file(
        b,
        "oci-layout",
        format!(
            "{{\"imageLayoutVersion\":\"{}\"}}",
            media::OCI_LAYOUT_VERSION
        )
        .as_bytes(),
    )?;
    for (img, names) in images {
        for l in &img.manifest.layers {
            add_blob(store, b, &l.digest, None, written)?;
        }
        add_blob(store, b, img.id(), None, written)?;
        add_blob(store, b, img.manifest_digest(), None, written)?;
        let base = img.manifest_descriptor.clone();
        if names.is_empty() {
            index.manifests.push(base.clone());
        }
        for n in names {
            let mut d: Descriptor = base.clone();
            d.set_ref_name(Some(n));
            d.annotations
                .get_or_insert_with(Default::default)
                .insert("io.containerd.image.name".into(), n.clone());
            index.manifests.push(d);
        }
    }
    add_json(b, "index.json", &index)?;
    Ok(())
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Adds blob `digest` (once per archive). With `decompress_from`, the blob
/// is the uncompressed form of that stored layer.
fn add_blob<W: Write>(
    store: &Store,
    b: &mut tar::Builder<W>,
    digest: &Digest,
    decompress_from: Option<&Descriptor>,
    written: &mut BTreeSet<Digest>,
) -> Result<(), ArchiveError> {
    if !written.insert(digest.clone()) {
        return Ok(());
    }
    let stored = decompress_from.map_or(digest, |d| &d.digest);
    let compression = decompress_from.and_then(|d| media::layer_compression(&d.media_type));
    let mut file = store.open_blob(stored)?;
    let mut tmp_holder;
    let (reader, size): (&mut dyn Read, u64) = match compression {
        None | Some(media::Compression::None) => {
            let size = file.metadata()?.len();
            (&mut file, size)
        }
        Some(c) => {
            // The size must precede the data in a tar header: spool the
            // plain tar to a temp file first.
            tmp_holder = tempfile_in_store(store)?;
            let mut dec: Box<dyn Read> = match c {
                media::Compression::Gzip => {
                    Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
                }
                _ => Box::new(zstd::Decoder::new(file)?),
            };
            let size = io::copy(&mut dec, &mut tmp_holder)?;
            tmp_holder.rewind()?;
            (&mut tmp_holder, size)
        }
    };
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o444);
    h.set_size(size);
    h.set_mtime(0);
    b.append_data(&mut h, blob_name(digest), reader)?;
    Ok(())
}

fn tempfile_in_store(store: &Store) -> io::Result<File> {
    let (path, f) = image_store::fsutil::tempfile_in(&store.tmp_dir())?;
    std::fs::remove_file(&path)?;
    Ok(f)
}

fn add_json<W: Write, T: serde::Serialize>(
    b: &mut tar::Builder<W>,
    name: &str,
    v: &T,
) -> io::Result<()> {
    add_file(
        b,
        name,
        &serde_json::to_vec(v).expect("plain data serializes"),
    )
}

fn add_file<W: Write>(b: &mut tar::Builder<W>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)
}
