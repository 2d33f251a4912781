//! Manifests, manifest lists / OCI indexes, and platform selection.

use std::fmt;
use std::str::FromStr;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::auth::{pull_scope, push_scope};
use crate::client::{status_error, Client, Replay};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::reference::{Reference, Repository};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Everything we accept on a manifest GET, best first.
pub const ACCEPTED_MANIFEST_TYPES: [&str; 4] = [
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
];

/// Manifests are small; refuse to buffer anything claiming to be larger.
const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// A manifest exactly as the registry served it, verified against `digest`.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

/// What a manifest HEAD tells (the registry's word, not verified bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: String,
    pub size: u64,
}

/// A content descriptor, as found in indexes and manifests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// `os/architecture[/variant]`, with Go's names (`amd64`, `arm64`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Maps Rust/uname architecture names to Go's.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64le" => "ppc64le",
        "armhf" | "armel" => "arm",
        a => a,
    }
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: normalize_arch(architecture).to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
        }
    }

    /// The platform this binary runs on.
    pub fn host() -> Self {
        let variant = match std::env::consts::ARCH {
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new(std::env::consts::OS, std::env::consts::ARCH, variant)
    }

    fn variant_matches(&self, candidate: &Platform) -> bool {
        let norm = |p: &Platform| match (p.architecture.as_str(), p.variant.as_deref()) {
            // arm64 images are v8 unless they say otherwise.
            ("arm64", None) => Some("v8".to_string()),
            (_, v) => v.map(str::to_string),
        };
        match &self.variant {
            None => true,
            Some(_) => norm(self) == norm(candidate),
        }
    }

    /// Whether an index entry for `candidate` can run as `self`.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.os == candidate.os
            && self.architecture == normalize_arch(&candidate.architecture)
            && self.variant_matches(candidate)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform::new(os, arch, Some(v)))
            }
            _ => Err(Error::Manifest(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            ))),
        }
    }
}

#[derive(Deserialize)]
struct IndexDoc {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Picks the manifest for `want` from an OCI index or docker manifest list.
/// When `want` has no variant, an entry without variant (or the lowest one
/// listed first) wins; attestation entries (`unknown/unknown`) never match.
pub fn select_platform(index: &[u8], want: &Platform) -> Result<Descriptor> {
    let doc: IndexDoc =
        serde_json::from_slice(index).map_err(|e| Error::Manifest(format!("not an index: {e}")))?;
    let candidates: Vec<&Descriptor> = doc
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    let best = candidates
        .iter()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.variant.is_none() || p.variant == want.variant)
        })
        .or(candidates.first());
    match best {
        Some(d) => Ok((*d).clone()),
        None => Err(Error::PlatformNotFound {
            platform: want.to_string(),
            available: doc
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
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
        let repo = &reference.repository;
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
        let digest = match (&reference.digest, header_digest) {
            (Some(d), _) => {
                d.verify(&what, &bytes)?;
                d.clone()
            }
            (None, Some(h)) => {
                let d: Digest = h.parse()?;
                d.verify(&what, &bytes)?;
                d
            }
            (None, None) => Digest::sha256_of(&bytes),
        };
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
        let repo = &reference.repository;
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
        let digest = match (&reference.digest, header("docker-content-digest")) {
            (_, Some(h)) => h.parse::<Digest>()?,
            (Some(d), None) => d.clone(),
            (None, None) => {
                return Err(Error::Protocol {
                    registry: repo.registry.clone(),
                    message: format!("HEAD {path}: no Docker-Content-Digest header"),
                })
            }
        };
        if let Some(want) = &reference.digest {
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
        let digest = Digest::sha256_of(bytes);
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
            d.verify("manifest to push", bytes)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Vec<u8> {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:aa", "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:bb", "size": 2,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:cc", "size": 3,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:dd", "size": 4,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": "sha256:ee", "size": 5,
                 "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        })
        .to_string()
        .into_bytes()
    }

    fn pick(p: &str) -> Result<String> {
        select_platform(&index(), &p.parse()?).map(|d| d.digest)
    }

    #[test]
    fn selects_by_platform() {
        assert_eq!(pick("linux/amd64").unwrap(), "sha256:aa");
        assert_eq!(pick("linux/x86_64").unwrap(), "sha256:aa");
        assert_eq!(pick("linux/arm/v7").unwrap(), "sha256:cc");
        assert_eq!(pick("linux/arm64").unwrap(), "sha256:dd");
        assert_eq!(pick("linux/aarch64/v8").unwrap(), "sha256:dd");
        let e = pick("linux/s390x").unwrap_err().to_string();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/amd64"),
            "{e}"
        );
        assert!(pick("linux").is_err());
        assert!(select_platform(b"[]", &Platform::host()).is_err());
    }

    #[test]
    fn host_platform_uses_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert_ne!(h.architecture, "x86_64");
        assert_ne!(h.architecture, "aarch64");
    }
}
