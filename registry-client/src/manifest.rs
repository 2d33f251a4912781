//! Manifests, manifest lists / OCI indexes, and platform selection.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;

use crate::auth::{pull_scope, push_scope};
use crate::client::{status_error, Client, Replay};
use crate::error::{Error, Result};
use oci_model::{Descriptor, Digest, Index, Platform, Reference, Repository};

pub use oci_model::media::{
    is_index, DOCKER_LIST as DOCKER_MANIFEST_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
};

/// Everything we accept on a manifest GET, best first.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Manifests are small; refuse to buffer anything claiming to be larger.
const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// A manifest exactly as the registry served it, verified against `digest`.
pub use oci_model::RawManifest as Manifest;

/// What a manifest HEAD tells (the registry's word, not verified bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// Parses an OCI index or Docker manifest list and picks the manifest for
/// `want` ([`oci_model::Index::select`], the one platform rule).
pub fn select_platform(index: &[u8], want: &Platform) -> Result<Descriptor> {
    let index: Index =
        serde_json::from_slice(index).map_err(|e| Error::Manifest(format!("not an index: {e}")))?;
    Ok(index.select(want)?.clone())
}

/// The `mediaType` field of a manifest document, if any.
fn embedded_media_type(bytes: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Mt {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Mt>(bytes).ok()?.media_type
}

impl Client {
    /// Fetches a manifest or index by tag or digest and verifies its digest
    /// (against the reference's digest, else against `Docker-Content-Digest`).
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest> {
        let repo = &reference.repository();
        let host = self.host(&repo.registry).await?;
        let path = format!("/v2/{}/manifests/{}", repo.name, reference.manifest_ref());
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let mut resp = self
            .send(
                &host,
                Method::GET,
                &path,
                &[pull_scope(&repo.name)],
                Replay::Yes,
                |r| r.header(ACCEPT, &accept),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&repo.registry, "GET", &path, resp).await);
        }
        let header_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    bytes.extend_from_slice(&c);
                    if bytes.len() > MAX_MANIFEST_BYTES {
                        return Err(Error::Manifest(format!(
                            "{path}: larger than {MAX_MANIFEST_BYTES} bytes"
                        )));
                    }
                }
                Ok(None) => break,
                Err(source) => {
                    return Err(Error::Transport {
                        registry: repo.registry.clone(),
                        context: format!("reading {path}"),
                        source: source.without_url(),
                    })
                }
            }
        }
        let what = format!("manifest {reference}");
        let actual = Digest::of_bytes(&bytes);
        let digest = match (reference.digest(), header_digest) {
            (Some(d), _) => d.clone(),
            (None, Some(h)) => h.parse::<Digest>()?,
            (None, None) => actual.clone(),
        };
        Error::check_digest(&what, &digest, &actual)?;
        let media_type = match header_type {
            Some(t) if ACCEPTED_MANIFEST_TYPES.contains(&t.as_str()) => t,
            other => embedded_media_type(&bytes)
                .or(other)
                .ok_or_else(|| Error::Manifest(format!("{path}: no media type")))?,
        };
        Ok(Manifest {
            media_type,
            digest,
            bytes,
        })
    }

    /// HEADs a manifest: its digest, media type and size if it exists.
    /// Cheap way to see whether a tag moved without downloading it.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<ManifestHead>> {
        let repo = &reference.repository();
        let host = self.host(&repo.registry).await?;
        let path = format!("/v2/{}/manifests/{}", repo.name, reference.manifest_ref());
        let accept = ACCEPTED_MANIFEST_TYPES.join(", ");
        let resp = self
            .send(
                &host,
                Method::HEAD,
                &path,
                &[pull_scope(&repo.name)],
                Replay::Yes,
                |r| r.header(ACCEPT, &accept),
            )
            .await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(status_error(&repo.registry, "HEAD", &path, resp).await);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let digest = match (reference.digest(), header("docker-content-digest")) {
            (_, Some(h)) => h.parse::<Digest>()?,
            (Some(d), None) => d.clone(),
            (None, None) => {
                return Err(Error::Protocol {
                    registry: repo.registry.clone(),
                    message: format!("HEAD {path}: no Docker-Content-Digest header"),
                })
            }
        };
        if let Some(want) = reference.digest() {
            if want != &digest {
                return Err(Error::DigestMismatch {
                    what: format!("manifest {reference}"),
                    expected: want.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        Ok(Some(ManifestHead {
            digest,
            media_type: header("content-type")
                .map(|t| t.split(';').next().unwrap_or("").trim().to_string())
                .unwrap_or_default(),
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        }))
    }

    /// Uploads a manifest under `tag_or_digest` and returns its digest.
    /// Blobs it refers to must already be in the repository.
    pub async fn put_manifest(
        &self,
        repo: &Repository,
        tag_or_digest: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        // Registries refuse a Content-Type that contradicts the document
        // with a bare "manifest invalid"; say what is wrong instead.
        if let Some(inner) = embedded_media_type(bytes) {
            if inner != media_type {
                return Err(Error::Manifest(format!(
                    "pushing as {media_type}, but the manifest's mediaType is {inner}"
                )));
            }
        }
        if let Ok(d) = tag_or_digest.parse::<Digest>() {
            Error::check_digest("manifest to push", &d, &digest)?;
        }
        let host = self.host(&repo.registry).await?;
        let path = format!("/v2/{}/manifests/{}", repo.name, tag_or_digest);
        let body = bytes::Bytes::copy_from_slice(bytes);
        let resp = self
            .send(
                &host,
                Method::PUT,
                &path,
                &[push_scope(&repo.name)],
                Replay::Yes,
                |r| r.header(CONTENT_TYPE, media_type).body(body.clone()),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(status_error(&repo.registry, "PUT", &path, resp).await);
        }
        if let Some(h) = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
        {
            if h != digest.to_string() {
                return Err(Error::DigestMismatch {
                    what: format!("manifest pushed to {repo}"),
                    expected: digest.to_string(),
                    actual: h.to_string(),
                });
            }
        }
        Ok(digest)
    }
}
