//! Reading archives into the store, in one pass over the tar stream.
//!
//! Members arrive in any order (docker writes `manifest.json` last), so
//! every file member is streamed into the store's temp area as a blob while
//! it is hashed; the small JSON documents are then read back from there.
//! Compressed layer files are stored decompressed. Nothing is named until
//! every digest has been checked; on failure the blobs this load added are
//! deleted again, so the store is left as it was.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};

use super::{ArchiveError, DockerManifestEntry};
use crate::digest::Digest;
use crate::layer::{self, LayerError};
use crate::layout::Store;
use crate::model::media::Compression;
use crate::model::{media, Descriptor, ImageConfig, Index, Manifest};
use crate::reference::Reference;
use crate::verify::{self, CopyError};

/// What a load added: each image ID with the names it now carries.
#[derive(Debug, Default)]
pub struct Loaded {
    pub images: Vec<(Digest, Vec<String>)>,
}

#[derive(Debug, Clone)]
struct Member {
    digest: Digest,
    size: u64,
    /// Read as a layer: its diff ID when it is one that passes every
    /// check, else why not (members that are not layers fail too; that
    /// matters only if an image lists them as a layer).
    layer: Result<Digest, String>,
}

impl Member {
    /// The diff ID of this member as the layer `path` of an image, or why
    /// it cannot be one.
    fn diff_id(&self, path: &str) -> Result<&Digest, ArchiveError> {
        self.layer.as_ref().map_err(|reason| ArchiveError::Member {
            member: path.to_string(),
            reason: format!("layer {}: {reason}", self.digest),
        })
    }
}

pub fn load<R: Read>(store: &Store, input: R) -> Result<Loaded, ArchiveError> {
    let _w = store.writer_lock()?;
    let mut added: BTreeSet<Digest> = BTreeSet::new();
    let result = load_inner(store, input, &mut added);
    match &result {
        Err(_) => {
            let _ = store.remove_blobs(&added);
        }
        Ok(loaded) => {
            // Members that are not part of an image (manifest.json,
            // repositories, …) were stored as blobs on the way in.
            let mut used = BTreeSet::new();
            for img in store.images()? {
                if loaded.images.iter().any(|(id, _)| id == img.id()) {
                    used.insert(img.manifest_digest().clone());
                    used.insert(img.id().clone());
                    used.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
                }
            }
            let junk: Vec<Digest> = added.difference(&used).cloned().collect();
            store.remove_blobs(&junk)?;
        }
    }
    result
}

fn load_inner<R: Read>(
    store: &Store,
    input: R,
    added: &mut BTreeSet<Digest>,
) -> Result<Loaded, ArchiveError> {
    let plain = layer::decompressed(input)?;
    let mut archive = tar::Archive::new(plain);
    let mut members: BTreeMap<String, Member> = BTreeMap::new();
    let entries = archive
        .entries()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = String::from_utf8_lossy(&entry.path_bytes())
            .trim_start_matches("./")
            .to_string();
        let expected = name
            .strip_prefix("blobs/sha256/")
            .and_then(|h| Digest::from_hex(h).ok());
        let (member, new) = store_member(store, &mut entry, &name, expected.as_ref())?;
        if new {
            added.insert(member.digest.clone());
        }
        members.insert(name, member);
    }

    if let Some(m) = members.get("manifest.json") {
        let entries: Vec<DockerManifestEntry> = read_member_json(store, "manifest.json", m)?;
        return load_docker(store, &members, entries);
    }
    if let Some(m) = members.get("index.json") {
        let index: Index = read_member_json(store, "index.json", m)?;
        return load_oci(store, &members, index);
    }
    Err(ArchiveError::NoManifest)
}

/// Streams one member into the store as a blob. Members under
/// `blobs/sha256/` must hash to their name; other members that are
/// compressed tars are stored decompressed. Every member is also read as a
/// layer in the same pass (decompressed, hashed, each entry checked), since
/// which members are layers is known only at the end. Also says whether
/// the blob is new to the store.
fn store_member(
    store: &Store,
    entry: &mut impl Read,
    name: &str,
    expected: Option<&Digest>,
) -> Result<(Member, bool), ArchiveError> {
    let bad = |reason: String| ArchiveError::Member {
        member: name.to_string(),
        reason,
    };
    let mut w = store.blob_writer()?;
    let mut br = BufReader::with_capacity(1 << 20, entry);
    let head = br.fill_buf().map_err(|e| bad(e.to_string()))?.to_vec();
    let compression = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let checked = if expected.is_none() && compression != Compression::None {
        // Stored decompressed, and so limited like a layer.
        let limit = layer::max_layer_size()?;
        let plain = layer::decompressed(br).map_err(|e| bad(e.to_string()))?;
        let mut plain = layer::SizeLimit::new(plain, limit);
        let r = verify::copy_checked(&mut plain, &mut w, Compression::None);
        if let Some(e) = plain.exceeded() {
            return Err(bad(e.to_string()));
        }
        r
    } else {
        verify::copy_checked(&mut br, &mut w, compression)
    };
    let layer = match checked {
        Ok(d) => Ok(d),
        Err(CopyError::Layer(e)) => Err(e.to_string()),
        Err(CopyError::Io(e)) => return Err(bad(e.to_string())),
    };
    let (digest, size, new) = w
        .commit_reporting(expected)
        .map_err(|e| bad(e.to_string()))?;
    Ok((
        Member {
            digest,
            size,
            layer,
        },
        new,
    ))
}

fn read_member_json<T: serde::de::DeserializeOwned>(
    store: &Store,
    name: &str,
    m: &Member,
) -> Result<T, ArchiveError> {
    if m.size > 64 << 20 {
        return Err(ArchiveError::Member {
            member: name.into(),
            reason: "too large for a JSON document".into(),
        });
    }
    let data = store.read_blob(&m.digest)?;
    serde_json::from_slice(&data).map_err(|e| ArchiveError::Member {
        member: name.into(),
        reason: format!("invalid JSON: {e}"),
    })
}

fn member<'a>(
    members: &'a BTreeMap<String, Member>,
    name: &str,
) -> Result<&'a Member, ArchiveError> {
    members
        .get(name.trim_start_matches("./"))
        .ok_or_else(|| ArchiveError::Corrupt(format!("{name:?} is listed but not in the archive")))
}

fn load_docker(
    store: &Store,
    members: &BTreeMap<String, Member>,
    entries: Vec<DockerManifestEntry>,
) -> Result<Loaded, ArchiveError> {
    let mut plans = Vec::new();
    for e in &entries {
        let cm = member(members, &e.config)?;
        let config: ImageConfig = read_member_json(store, &e.config, cm)?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(ArchiveError::Corrupt(format!(
                "{}: the config lists {} layers, manifest.json {}",
                e.config,
                config.rootfs.diff_ids.len(),
                e.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (path, diff_id) in e.layers.iter().zip(&config.rootfs.diff_ids) {
            let m = member(members, path)?;
            m.diff_id(path)?;
            if m.digest != *diff_id {
                return Err(ArchiveError::Member {
                    member: path.clone(),
                    reason: format!("content hashes to {}, the config says {diff_id}", m.digest),
                });
            }
            layers.push(Descriptor::new(media::OCI_LAYER, m.digest.clone(), m.size));
        }
        let names = normalize_names(e.repo_tags.as_deref().unwrap_or_default())?;
        plans.push((cm.clone(), layers, names));
    }
    let mut loaded = Loaded::default();
    for (cm, layers, names) in plans {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor::new(media::OCI_CONFIG, cm.digest.clone(), cm.size),
            layers,
            annotations: None,
            extra: Default::default(),
        };
        let desc = store.write_json(media::OCI_MANIFEST, &manifest)?;
        store.add_image(&desc, &names)?;
        loaded.images.push((
            cm.digest,
            names.iter().map(|n| n.normalized().to_string()).collect(),
        ));
    }
    Ok(loaded)
}

fn load_oci(
    store: &Store,
    members: &BTreeMap<String, Member>,
    index: Index,
) -> Result<Loaded, ArchiveError> {
    let mut plans = Vec::new();
    for d in &index.manifests {
        let desc = pick_manifest(store, members, d)?;
        let m = member(members, &format!("blobs/sha256/{}", desc.digest.hex()))?;
        let manifest: Manifest = read_member_json(store, "manifest", m)?;
        let config_path = format!("blobs/sha256/{}", manifest.config.digest.hex());
        let config: ImageConfig =
            read_member_json(store, &config_path, member(members, &config_path)?)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ArchiveError::Corrupt(format!(
                "{config_path}: the config lists {} layers, the manifest {}",
                config.rootfs.diff_ids.len(),
                manifest.layers.len()
            )));
        }
        // The config's diff IDs are claims; each layer must hash to its own.
        for (l, claimed) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let path = format!("blobs/sha256/{}", l.digest.hex());
            let actual = member(members, &path)?.diff_id(&path)?;
            LayerError::check_diff_id(&l.digest, claimed, actual)?;
        }
        for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
            let got = member(members, &format!("blobs/sha256/{}", blob.digest.hex()))?;
            if got.size != blob.size {
                return Err(ArchiveError::Corrupt(format!(
                    "blob {} has {} bytes, its descriptor says {}",
                    blob.digest, got.size, blob.size
                )));
            }
        }
        let name = d
            .annotations
            .as_ref()
            .and_then(|a| a.get("io.containerd.image.name"))
            .map(String::as_str)
            .or_else(|| d.ref_name());
        let names = match name {
            Some(n) if n.contains([':', '/']) || n.parse::<Reference>().is_ok() => {
                normalize_names(&[n.to_string()]).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        let mut clean = desc.clone();
        clean.annotations = None;
        clean.platform = None;
        plans.push((clean, manifest.config.digest.clone(), names));
    }
    let mut loaded = Loaded::default();
    for (desc, id, names) in plans {
        store.add_image(&desc, &names)?;
        loaded.images.push((
            id,
            names.iter().map(|n| n.normalized().to_string()).collect(),
        ));
    }
    Ok(loaded)
}

/// A manifest descriptor, or for an index the host platform's manifest.
fn pick_manifest(
    store: &Store,
    members: &BTreeMap<String, Member>,
    d: &Descriptor,
) -> Result<Descriptor, ArchiveError> {
    match d.media_type.as_str() {
        media::OCI_MANIFEST | media::DOCKER_MANIFEST => Ok(d.clone()),
        media::OCI_INDEX | media::DOCKER_LIST => {
            let m = member(members, &format!("blobs/sha256/{}", d.digest.hex()))?;
            let idx: Index = read_member_json(store, "index", m)?;
            let found = idx
                .select(&crate::model::Platform::host())
                .ok()
                .or_else(|| idx.manifests.first())
                .ok_or_else(|| ArchiveError::Corrupt("an empty image index".into()))?;
            pick_manifest(store, members, found)
        }
        other => Err(ArchiveError::Corrupt(format!(
            "unsupported manifest media type {other:?}"
        ))),
    }
}

/// docker's RepoTags: a short name means Docker Hub (`busybox:latest` is
/// `docker.io/library/busybox:latest`), as `docker load` reads it.
fn normalize_names(tags: &[String]) -> Result<Vec<Reference>, ArchiveError> {
    tags.iter()
        .map(|t| {
            let r: Reference = t.parse().map_err(|e: crate::reference::ReferenceError| {
                ArchiveError::Corrupt(e.to_string())
            })?;
            Ok(if r.is_qualified() {
                r
            } else {
                format!(
                    "docker.io/{}",
                    r.normalized().to_string().trim_start_matches("localhost/")
                )
                .parse()
                .map_err(|e: crate::reference::ReferenceError| {
                    ArchiveError::Corrupt(e.to_string())
                })?
            })
        })
        .collect()
}
