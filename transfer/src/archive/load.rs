//! Reading archives: an [`ImageSource`] per image, after one pass over the
//! tar stream.
//!
//! Members arrive in any order (docker writes `manifest.json` last), so
//! every file member is streamed into the destination store's transaction
//! ([`Ingest`]) as a blob while it is hashed and read as a layer; the small
//! JSON documents are then read back from there. Compressed layer files of
//! a docker archive are stored decompressed. Every image is checked before
//! any is named; [`crate::copy`] then takes each into the store (its blobs
//! are there already, and are checked again), members that are no image's
//! part are removed, and the transaction commits; on failure it rolls back,
//! so the store is left as it was.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;

use image_store::Ingest;
use image_store::StoreError;

use super::{ArchiveError, DockerManifestEntry};
use crate::copy::{copy, CopyOptions};
use crate::image::{ImageSource, RawManifest, SourceBlob};
use crate::progress::{BlobProgress, CountingRead, Silent};
use crate::store::StoreDest;
use image_store::digest::Digest;
use image_store::layer::{self, LayerError};
use image_store::model::media::Compression;
use image_store::model::{media, Descriptor, ImageConfig, Index, Manifest};
use image_store::reference::Reference;
use image_store::verify::{self, CopyError};
use image_store::Store;
use oci_model::Platform;

/// What a load added: each image ID with the names it now carries.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Image ID, names, and how many layers it has.
    pub images: Vec<(Digest, Vec<String>, usize)>,
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

/// Loads every image of the archive `input` into the store, named as the
/// archive names them.
pub fn load<R: Read>(store: &Store, input: R) -> Result<Loaded, crate::Error> {
    let dest = StoreDest::new(store, Vec::new())?.named_by_source();
    let staged = Staged::read(dest.ingest(), input)?;
    let opts = CopyOptions {
        jobs: 1,
        ..CopyOptions::default()
    };
    let mut loaded = Loaded::default();
    for image in staged.images() {
        let names = image.names.clone();
        let copied = copy(&image, &dest, &opts, &Silent)?;
        let layers = copied.image.manifest.layers.len();
        loaded.images.push((copied.id, names, layers));
    }
    // Members that are no image's part (manifest.json, repositories, …).
    dest.ingest().remove_added(&staged.unused())?;
    dest.commit()?;
    Ok(loaded)
}

/// An archive read once into a store transaction, and its images, each
/// checked against the archive's claims.
pub struct Staged {
    store: Store,
    /// Every member's blob.
    members: Vec<Digest>,
    images: Vec<StagedImage>,
}

struct StagedImage {
    raw: RawManifest,
    names: Vec<String>,
}

impl Staged {
    /// Reads the whole archive into `ingest` (each member hashed and read
    /// as a layer on the way) and checks every image it holds.
    pub fn read<R: Read>(ingest: &Ingest, input: R) -> Result<Staged, ArchiveError> {
        let store = ingest.store().clone();
        let members = stage(ingest, input)?;
        let images = if let Some(m) = members.get("manifest.json") {
            let entries: Vec<DockerManifestEntry> = read_member_json(&store, "manifest.json", m)?;
            load_docker(&store, &members, entries)?
        } else if let Some(m) = members.get("index.json") {
            let index: Index = read_member_json(&store, "index.json", m)?;
            load_oci(&store, &members, index)?
        } else {
            return Err(ArchiveError::NoManifest);
        };
        Ok(Staged {
            store,
            members: members.into_values().map(|m| m.digest).collect(),
            images,
        })
    }

    /// Members no image uses.
    pub fn unused(&self) -> Vec<Digest> {
        let mut used = std::collections::BTreeSet::new();
        for image in &self.images {
            used.insert(image.raw.digest.clone());
            if let Ok(m) = serde_json::from_slice::<Manifest>(&image.raw.bytes) {
                used.insert(m.config.digest);
                used.extend(m.layers.into_iter().map(|l| l.digest));
            }
        }
        self.members
            .iter()
            .filter(|d| !used.contains(*d))
            .cloned()
            .collect()
    }

    /// The images, as sources.
    pub fn images(&self) -> Vec<ArchiveImage<'_>> {
        self.images
            .iter()
            .map(|image| ArchiveImage {
                staged: self,
                raw: &image.raw,
                names: image.names.clone(),
            })
            .collect()
    }
}

/// One image of a staged archive.
pub struct ArchiveImage<'a> {
    staged: &'a Staged,
    raw: &'a RawManifest,
    pub names: Vec<String>,
}

impl ImageSource for ArchiveImage<'_> {
    fn label(&self) -> String {
        self.names
            .first()
            .cloned()
            .unwrap_or_else(|| self.raw.digest.to_string())
    }

    fn manifest(&self) -> crate::Result<RawManifest> {
        Ok(self.raw.clone())
    }

    fn manifest_at(&self, desc: &Descriptor) -> crate::Result<RawManifest> {
        Err(crate::invalid!(
            "{}: no manifest {} is staged",
            self.label(),
            desc.digest
        ))
    }

    fn names(&self) -> Vec<String> {
        self.names.clone()
    }

    fn open_blob(
        &self,
        desc: &Descriptor,
        progress: Arc<dyn BlobProgress>,
    ) -> crate::Result<SourceBlob> {
        let path = self.blob_file(desc).ok_or_else(|| {
            ArchiveError::Corrupt(format!("blob {} is not in the archive", desc.digest))
        })?;
        let f = File::open(&path).map_err(|e| StoreError::io(path.clone())(e))?;
        Ok(SourceBlob::reader(CountingRead { inner: f, progress }))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let p = self.staged.store.blob_path(&desc.digest);
        p.exists().then_some(p)
    }
}

/// Streams every file member of the archive into `ingest` as a blob.
fn stage<R: Read>(ingest: &Ingest, input: R) -> Result<BTreeMap<String, Member>, ArchiveError> {
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
        let member = stage_member(ingest, &mut entry, &name, expected.as_ref())?;
        members.insert(name, member);
    }
    Ok(members)
}

/// Streams one member into the store as a blob. Members under
/// `blobs/sha256/` must hash to their name; other members that are
/// compressed tars are stored decompressed. Every member is also read as a
/// layer in the same pass (decompressed, hashed, each entry checked), since
/// which members are layers is known only at the end.
fn stage_member(
    ingest: &Ingest,
    entry: &mut impl Read,
    name: &str,
    expected: Option<&Digest>,
) -> Result<Member, ArchiveError> {
    let bad = |reason: String| ArchiveError::Member {
        member: name.to_string(),
        reason,
    };
    let mut w = ingest.blob_writer()?;
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
    let (digest, size) = w.commit(expected).map_err(|e| bad(e.to_string()))?;
    Ok(Member {
        digest,
        size,
        layer,
    })
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

/// The normalized strings of `names`.
fn strings(names: &[Reference]) -> Vec<String> {
    names.iter().map(|n| n.normalized().to_string()).collect()
}

fn load_docker(
    store: &Store,
    members: &BTreeMap<String, Member>,
    entries: Vec<DockerManifestEntry>,
) -> Result<Vec<StagedImage>, ArchiveError> {
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
    let mut images = Vec::new();
    for (cm, layers, names) in plans {
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor::new(media::OCI_CONFIG, cm.digest.clone(), cm.size),
            layers,
            annotations: None,
            extra: Default::default(),
        };
        let bytes = serde_json::to_vec(&manifest).expect("plain data serializes");
        images.push(StagedImage {
            raw: RawManifest {
                media_type: media::OCI_MANIFEST.into(),
                digest: Digest::of_bytes(&bytes),
                bytes,
            },
            names: strings(&names),
        });
    }
    Ok(images)
}

fn load_oci(
    store: &Store,
    members: &BTreeMap<String, Member>,
    index: Index,
) -> Result<Vec<StagedImage>, ArchiveError> {
    let mut images = Vec::new();
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
        let bytes = store.read_blob(&m.digest)?;
        images.push(StagedImage {
            raw: RawManifest {
                media_type: desc.media_type.clone(),
                digest: desc.digest.clone(),
                bytes,
            },
            names: strings(&names),
        });
    }
    Ok(images)
}

/// A manifest descriptor, or for an index the host platform's manifest
/// (chosen by the one picker; an index without one gives its first).
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
                .select(&Platform::host())
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
            let r: Reference = t
                .parse()
                .map_err(|e: image_store::reference::ReferenceError| {
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
                .map_err(|e: image_store::reference::ReferenceError| {
                    ArchiveError::Corrupt(e.to_string())
                })?
            })
        })
        .collect()
}
