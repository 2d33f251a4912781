//! Descriptors, image manifests (OCI and Docker schema 2) and indexes (OCI
//! index, Docker manifest list, and the layout's own `index.json`). Unknown
//! fields are kept in `extra`, so a document passes through unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::media;
use crate::platform::Platform;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Descriptor {
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_string(),
            digest,
            size,
            annotations: None,
            platform: None,
            extra: Map::new(),
        }
    }

    pub fn ref_name(&self) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(media::ANNOTATION_REF_NAME)
            .map(String::as_str)
    }

    pub fn set_ref_name(&mut self, name: Option<&str>) {
        let ann = self.annotations.get_or_insert_with(BTreeMap::new);
        match name {
            Some(n) => {
                ann.insert(media::ANNOTATION_REF_NAME.to_string(), n.to_string());
            }
            None => {
                ann.remove(media::ANNOTATION_REF_NAME);
            }
        }
        if ann.is_empty() {
            self.annotations = None;
        }
    }
}

/// An OCI image manifest or a Docker schema2 manifest (same shape).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An OCI image index or a Docker manifest list; also `index.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            schema_version: 2,
            media_type: Some(media::OCI_INDEX.to_string()),
            manifests: Vec::new(),
            annotations: None,
            extra: Map::new(),
        }
    }
}

/// The most layers an image may have and still run: a union filesystem
/// (overlayfs) stacks at most this many lower directories. The builder
/// plans against it; pull and load warn past it.
pub const MAX_LAYERS: usize = 127;

/// A manifest (or an index) exactly as its source holds it: the raw bytes
/// are kept, since every digest is computed over them, and `digest` is
/// theirs (checked by whoever read them).
#[derive(Debug, Clone)]
pub struct RawManifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}
