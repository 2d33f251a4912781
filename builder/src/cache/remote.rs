//! The step cache shared through a registry or an OCI layout directory
//! (`--cache-from` / `--cache-to type=registry|local`): kiln's own format, shaped like BuildKit's
//! registry cache (an OCI manifest whose config describes the steps and
//! whose layers are the step layers) but keyed by kiln's step keys.
//!
//! The manifest's config ([`CONFIG_TYPE`]) maps each step key to its
//! parent key, created time and layer (diff ID, uncompressed size and the
//! compressed blob the manifest lists). Keys hash content, never paths of
//! a store or context, so two machines building the same context get the
//! same keys.
//!
//! Importing reads only the manifest and the config; a layer is fetched
//! when a step needs its files ([`Imported::fetch`]) or the final image
//! needs the blob. An image's config may carry the same steps inline
//! ([`INLINE_KEY`], written by `super::inline`); such an image is read
//! as a cache too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

use image_store::model::media::{self, layer_compression};
use image_store::{Descriptor, Digest, Manifest, Store};
use registry_client::Reference;
use serde::{Deserialize, Serialize};
use transfer::oci_dir::OciDirSource;
use transfer::registry::RegistrySource;
use transfer::{ImageSource, RegistryAccess};

use crate::error::BuildError;
use crate::flags::CacheSpec;

/// The media type of a kiln cache manifest's config.
pub const CONFIG_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";
/// The format version this kiln reads and writes.
pub const VERSION: u32 = 1;
/// A config larger than this is not a cache kiln wrote (bounded memory).
const MAX_CONFIG: u64 = 64 << 20;

/// The cache manifest's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CacheConfig {
    pub version: u32,
    /// Step key → what the step made.
    pub steps: BTreeMap<String, Entry>,
    /// `COPY --from` aliases: a key of the instruction and the source
    /// stage's key → the step's key, so a machine that has the source
    /// stage only as cache entries finds the step without reading the
    /// source's files.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

/// One cached step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The key of the step below (an image ID, `scratch`, or a step key).
    pub parent: String,
    /// When the step first ran (kept, so a hit gives the same image ID).
    pub created: String,
    /// The step's layer; none for a step that changes only the config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<LayerRef>,
}

/// A step layer: as the image config names it, and as the registry has it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRef {
    pub diff_id: Digest,
    /// Size of the uncompressed layer (the local blob).
    pub size: u64,
    /// The compressed blob, one of the manifest's layers.
    pub blob: Descriptor,
}

impl LayerRef {
    /// The layer as the store and the image manifest hold it.
    pub fn local(&self) -> Descriptor {
        Descriptor::new(media::OCI_LAYER, self.diff_id.clone(), self.size)
    }
}

/// Why a cache manifest was not used.
fn check(manifest: &Manifest, config: &CacheConfig) -> Result<(), String> {
    if config.version != VERSION {
        return Err(format!(
            "cache format version {} (this kiln reads {VERSION})",
            config.version
        ));
    }
    let listed: HashSet<&Digest> = manifest.layers.iter().map(|l| &l.digest).collect();
    let is_key = |k: &str| k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
    for (alias, key) in &config.aliases {
        if !is_key(alias) || !config.steps.contains_key(key) {
            return Err(format!("alias {alias:?} names no step of the cache"));
        }
    }
    for (key, e) in &config.steps {
        if !is_key(key) {
            return Err(format!("step key {key:?} is not a kiln key"));
        }
        if let Some(l) = &e.layer {
            if !listed.contains(&l.blob.digest) {
                return Err(format!(
                    "step {} names blob {} the manifest does not list",
                    &key[..12],
                    l.blob.digest
                ));
            }
            if layer_compression(&l.blob.media_type).is_none() {
                return Err(format!("layer media type {:?}", l.blob.media_type));
            }
        }
    }
    Ok(())
}

/// Where imported entries came from, and how their blobs are read.
pub struct Origin {
    /// How messages name it.
    pub label: String,
    /// For a registry cache: its reference (blobs can be mounted from it).
    pub registry: Option<Reference>,
    src: Box<dyn ImageSource + Send>,
}

/// The cache manifests read for `--cache-from`.
#[derive(Default)]
pub struct Imported {
    origins: Vec<Origin>,
    /// Key → (origin, entry); the first `--cache-from` that has a key wins.
    steps: HashMap<String, (usize, Entry)>,
    /// Diff ID → (origin, layer).
    layers: HashMap<Digest, (usize, LayerRef)>,
    aliases: HashMap<String, String>,
}

impl Imported {
    /// Reads each cache manifest (a registry's, or an OCI layout
    /// directory's); one that is missing, foreign or damaged is skipped
    /// with a warning (a cache never fails a build).
    pub fn load(
        specs: &[CacheSpec],
        access: &RegistryAccess,
        warn: &mut dyn FnMut(String),
    ) -> Imported {
        let mut out = Imported::default();
        let mut client = None;
        for spec in specs {
            let loaded = (|| -> Result<(Origin, CacheConfig), String> {
                let origin = match spec {
                    CacheSpec::Registry { reference, .. } => {
                        let r = reference
                            .parse::<Reference>()
                            .map_err(|e| e.to_string())?
                            .remote();
                        if client.is_none() {
                            client = Some(access.client().map_err(|e| e.render())?);
                        }
                        let c = client.as_ref().expect("made above");
                        let src = RegistrySource::new(c, &r).map_err(|e| e.render())?;
                        Origin {
                            label: reference.clone(),
                            registry: Some(r),
                            src: Box::new(src),
                        }
                    }
                    CacheSpec::Inline => return Err("read an inline cache from its image".into()),
                    CacheSpec::Local { dir, tag, .. } => Origin {
                        label: spec.label(),
                        registry: None,
                        src: Box::new(OciDirSource::new(dir, Some(tag))),
                    },
                };
                let (manifest, config) = read(&*origin.src)?;
                check(&manifest, &config)?;
                // Checked whole at once (a stat, or a HEAD, per blob): a
                // cache missing a layer is skipped now rather than failing
                // the build when the layer is needed.
                let missing = match (&origin.registry, &client) {
                    (Some(r), Some(c)) => missing_in_registry(c, r, &manifest.layers)?,
                    _ => manifest
                        .layers
                        .iter()
                        .find(|l| origin.src.blob_file(l).is_none())
                        .map(|l| l.digest.clone()),
                };
                if let Some(d) = missing {
                    return Err(format!("blob {d} is missing"));
                }
                Ok((origin, config))
            })();
            match loaded {
                Ok((origin, config)) => {
                    let i = out.origins.len();
                    out.origins.push(origin);
                    for (a, k) in config.aliases {
                        out.aliases.entry(a).or_insert(k);
                    }
                    for (k, e) in config.steps {
                        if let Some(l) = &e.layer {
                            out.layers
                                .entry(l.diff_id.clone())
                                .or_insert_with(|| (i, l.clone()));
                        }
                        out.steps.entry(k).or_insert((i, e));
                    }
                }
                Err(why) => warn(format!("--cache-from {}: ignored: {why}", spec.label())),
            }
        }
        out
    }

    /// The step alias `alias` leads to.
    pub fn alias(&self, alias: &str) -> Option<&str> {
        self.aliases.get(alias).map(String::as_str)
    }

    /// The imported entry of step `key`.
    pub fn entry(&self, key: &str) -> Option<&Entry> {
        self.steps.get(key).map(|(_, e)| e)
    }

    /// Where the layer with `diff_id` can be fetched: its origin and the
    /// layer.
    pub fn layer(&self, diff_id: &Digest) -> Option<(&Origin, &LayerRef)> {
        self.layers
            .get(diff_id)
            .map(|(i, l)| (&self.origins[*i], l))
    }

    /// Brings the layer `diff_id` into the store (decompressed and checked
    /// against its diff ID). `Ok(false)`: no imported cache has it.
    pub fn fetch(&self, store: &Store, diff_id: &Digest) -> Result<bool, BuildError> {
        let Some((i, l)) = self.layers.get(diff_id) else {
            return Ok(false);
        };
        let origin = &self.origins[*i];
        let (label, src) = (&origin.label, &origin.src);
        let failed = |e: transfer::Error| {
            BuildError::Invalid(format!(
                "fetching cached layer {} from {label}: {}",
                l.blob.digest,
                e.render()
            ))
        };
        let blob = src
            .open_blob(&l.blob, Arc::new(transfer::Silent))
            .map_err(failed)?;
        blob.consume(&l.blob.digest, |r| {
            store
                .store_layer_uncompressed(r, &l.blob, &l.diff_id)
                .map_err(|e| transfer::Error::invalid(e.to_string()))
        })
        .map_err(failed)?;
        Ok(true)
    }
}

/// The first of `layers` the repository of `r` lacks (HEADs, a few at once).
fn missing_in_registry(
    client: &registry_client::Client,
    r: &Reference,
    layers: &[Descriptor],
) -> Result<Option<Digest>, String> {
    use futures_util::StreamExt;
    let repo = r.repository();
    let rt = transfer::runtime().map_err(|e| e.to_string())?;
    let found: Vec<(Digest, Result<Option<u64>, registry_client::Error>)> = rt.block_on(
        futures_util::stream::iter(layers.iter().map(|l| {
            let repo = &repo;
            async move { (l.digest.clone(), client.blob_exists(repo, &l.digest).await) }
        }))
        .buffer_unordered(8)
        .collect(),
    );
    for (d, res) in found {
        if res.map_err(|e| e.to_string())?.is_none() {
            return Ok(Some(d));
        }
    }
    Ok(None)
}

/// The manifest and config of a cache manifest, or why not.
fn read(src: &dyn ImageSource) -> Result<(Manifest, CacheConfig), String> {
    let mut raw = src.manifest().map_err(|e| e.render())?;
    if media::is_index(&raw.media_type) {
        // An image index: the host's image (for an inline cache).
        let d = registry_client::select_platform(&raw.bytes, &registry_client::Platform::host())
            .map_err(|e| e.to_string())?;
        raw = src.manifest_at(&d).map_err(|e| e.render())?;
    }
    if raw.media_type != media::OCI_MANIFEST && raw.media_type != media::DOCKER_MANIFEST {
        return Err(format!("a {} is not a kiln cache manifest", raw.media_type));
    }
    let manifest: Manifest =
        serde_json::from_slice(&raw.bytes).map_err(|e| format!("manifest: {e}"))?;
    let config_type = manifest.config.media_type.as_str();
    if config_type != CONFIG_TYPE
        && config_type != media::OCI_CONFIG
        && config_type != media::DOCKER_CONFIG
    {
        return Err(format!(
            "config type {config_type:?} is not a kiln cache ({CONFIG_TYPE})"
        ));
    }
    if manifest.config.size > MAX_CONFIG {
        return Err(format!("config of {} bytes", manifest.config.size));
    }
    let blob = src
        .open_blob(&manifest.config, Arc::new(transfer::Silent))
        .map_err(|e| e.render())?;
    let mut data = Vec::new();
    blob.consume(&manifest.config.digest, |r| {
        r.take(MAX_CONFIG).read_to_end(&mut data)?;
        Ok(())
    })
    .map_err(|e| e.render())?;
    if Digest::of_bytes(&data) != manifest.config.digest {
        return Err("config digest mismatch".into());
    }
    if config_type != CONFIG_TYPE {
        let config = from_image(&manifest, &data)?;
        return Ok((manifest, config));
    }
    let config = serde_json::from_slice(&data).map_err(|e| format!("config: {e}"))?;
    Ok((manifest, config))
}

/// The key under which an image config carries its inline cache.
pub const INLINE_KEY: &str = "kiln.cache.v1";

/// An inline cache (`--cache-to type=inline`): the final image's steps in
/// its own config. Layers are named by diff ID only: they are the image's
/// layers, whatever compression a push gives them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InlineCache {
    pub version: u32,
    pub steps: BTreeMap<String, InlineEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineEntry {
    pub parent: String,
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    #[serde(default)]
    pub size: u64,
}

/// The inline cache of an image (its config `data`), with each layer's
/// blob found through the config's diff IDs and the manifest.
fn from_image(manifest: &Manifest, data: &[u8]) -> Result<CacheConfig, String> {
    #[derive(Deserialize)]
    struct Config {
        #[serde(default)]
        rootfs: image_store::model::RootFs,
        #[serde(rename = "kiln.cache.v1")]
        inline: Option<InlineCache>,
    }
    let c: Config = serde_json::from_slice(data).map_err(|e| format!("image config: {e}"))?;
    let inline = c
        .inline
        .ok_or("an image without an inline cache is not a kiln cache")?;
    let mut out = CacheConfig {
        version: inline.version,
        steps: BTreeMap::new(),
        aliases: BTreeMap::new(),
    };
    for (key, e) in inline.steps {
        let layer = match e.diff_id {
            None => None,
            Some(diff_id) => {
                let at = c.rootfs.diff_ids.iter().position(|d| *d == diff_id);
                // A layer the image does not have (a squashed build).
                let Some(blob) = at.and_then(|i| manifest.layers.get(i)) else {
                    continue;
                };
                Some(LayerRef {
                    diff_id,
                    size: e.size,
                    blob: blob.clone(),
                })
            }
        };
        out.steps.insert(
            key,
            Entry {
                parent: e.parent,
                created: e.created,
                layer,
            },
        );
    }
    out.aliases = inline
        .aliases
        .into_iter()
        .filter(|(_, k)| out.steps.contains_key(k))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn manifest(layers: Vec<Descriptor>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor::new(CONFIG_TYPE, d('c'), 1),
            layers,
            annotations: None,
            extra: Default::default(),
        }
    }

    /// A manifest is used only when every layer its steps name is one of
    /// its blobs and every key is a kiln key.
    #[test]
    fn foreign_or_inconsistent_configs_are_refused() {
        let blob = Descriptor::new(media::OCI_LAYER_GZIP, d('b'), 3);
        let entry = Entry {
            parent: "scratch".into(),
            created: "now".into(),
            layer: Some(LayerRef {
                diff_id: d('a'),
                size: 9,
                blob: blob.clone(),
            }),
        };
        let cfg = |key: &str, version| CacheConfig {
            version,
            steps: BTreeMap::from([(key.to_string(), entry.clone())]),
            aliases: BTreeMap::new(),
        };
        let key = "1".repeat(64);
        assert!(check(&manifest(vec![blob.clone()]), &cfg(&key, 1)).is_ok());
        assert!(check(&manifest(vec![]), &cfg(&key, 1)).is_err());
        assert!(check(&manifest(vec![blob.clone()]), &cfg(&key, 2)).is_err());
        assert!(check(&manifest(vec![blob.clone()]), &cfg("../x", 1)).is_err());
        let mut dangling = cfg(&key, 1);
        dangling.aliases.insert("2".repeat(64), "3".repeat(64));
        assert!(check(&manifest(vec![blob]), &dangling).is_err());
    }
}
