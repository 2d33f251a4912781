//! Platforms: the host's, `os/arch[/variant]` parsing, architecture names
//! normalised to Go's (`GOARCH`), and the one rule for choosing a manifest
//! for a platform from an index.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::manifest::{Descriptor, Index};

/// `os/architecture[/variant]` with Go's names (`amd64`, `arm64`), as in
/// index entries and `--platform`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid platform {0:?}: expected os/arch[/variant]")]
pub struct PlatformError(pub String);

#[derive(Debug, thiserror::Error)]
#[error("no manifest for platform {platform} in the index (available: {available})")]
pub struct PlatformNotFound {
    pub platform: String,
    pub available: String,
}

/// Maps uname and Rust architecture names to Go's (`GOARCH`), which image
/// platforms use; names already in Go's form pass through.
pub fn normalize_arch(arch: &str) -> &str {
    match arch {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        "x86" | "i386" | "i686" => "386",
        "powerpc64le" => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        "armhf" | "armel" => "arm",
        a => a,
    }
}

/// The host architecture in Go's terms. Rust names both byte orders of
/// 64-bit PowerPC (and MIPS) alike, so the byte order decides.
pub fn host_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "powerpc64" if little => "ppc64le",
        "mips64" if little => "mips64le",
        "mips" if little => "mipsle",
        a => normalize_arch(a),
    }
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        Platform {
            os: os.to_string(),
            architecture: normalize_arch(architecture).to_string(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
            ..Default::default()
        }
    }

    /// The platform this binary runs on.
    pub fn host() -> Self {
        let variant = match host_arch() {
            "arm" => Some("v7"),
            _ => None,
        };
        Platform::new(std::env::consts::OS, host_arch(), variant)
    }

    fn variant_matches(&self, candidate: &Platform) -> bool {
        let norm = |p: &Platform| match (normalize_arch(&p.architecture), p.variant.as_deref()) {
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
            && normalize_arch(&self.architecture) == normalize_arch(&candidate.architecture)
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
    type Err = PlatformError;
    fn from_str(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform::new(os, arch, Some(v)))
            }
            _ => Err(PlatformError(s.to_string())),
        }
    }
}

impl Index {
    /// Picks the manifest for `want` from an OCI index or Docker manifest
    /// list. When `want` has no variant, an entry without variant (or the
    /// first one listed) wins; attestation entries (`unknown/unknown`) never
    /// match.
    pub fn select(&self, want: &Platform) -> Result<&Descriptor, PlatformNotFound> {
        let candidates: Vec<&Descriptor> = self
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
            Some(d) => Ok(d),
            None => Err(PlatformNotFound {
                platform: want.to_string(),
                available: self
                    .manifests
                    .iter()
                    .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::{OCI_INDEX, OCI_MANIFEST};

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    fn index() -> Index {
        serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d('a'), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": d('b'), "size": 2,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v6"}},
                {"mediaType": OCI_MANIFEST, "digest": d('c'), "size": 3,
                 "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
                {"mediaType": OCI_MANIFEST, "digest": d('d'), "size": 4,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": d('e'), "size": 5,
                 "platform": {"os": "unknown", "architecture": "unknown"}}
            ]
        }))
        .unwrap()
    }

    fn pick(p: &str) -> Result<String, String> {
        let want: Platform = p.parse().map_err(|e: PlatformError| e.to_string())?;
        let index = index();
        let d = index.select(&want).map_err(|e| e.to_string())?;
        Ok(d.digest.to_string())
    }

    #[test]
    fn selects_by_platform() {
        assert_eq!(pick("linux/amd64").unwrap(), d('a'));
        assert_eq!(pick("linux/x86_64").unwrap(), d('a'));
        assert_eq!(pick("linux/arm/v7").unwrap(), d('c'));
        assert_eq!(pick("linux/arm64").unwrap(), d('d'));
        assert_eq!(pick("linux/aarch64/v8").unwrap(), d('d'));
        let e = pick("linux/s390x").unwrap_err();
        assert!(
            e.contains("linux/s390x") && e.contains("linux/amd64"),
            "{e}"
        );
        assert!(pick("linux").is_err());
        assert!(Index::default().select(&Platform::host()).is_err());
    }

    #[test]
    fn host_platform_uses_go_names() {
        let h = Platform::host();
        assert_eq!(h.os, "linux");
        assert_ne!(h.architecture, "x86_64");
        assert_ne!(h.architecture, "aarch64");
        assert_ne!(h.architecture, "powerpc64");
    }

    /// registry-client mapped `powerpc64le` but not `powerpc64`; the store
    /// mapped `powerpc64` to `ppc64le` whatever the byte order. One mapping
    /// now: each uname/Rust name to its own GOARCH.
    #[test]
    fn architecture_names_map_to_goarch() {
        for (from, to) in [
            ("x86_64", "amd64"),
            ("x86-64", "amd64"),
            ("aarch64", "arm64"),
            ("powerpc64le", "ppc64le"),
            ("powerpc64", "ppc64"),
            ("ppc64le", "ppc64le"),
            ("i686", "386"),
            ("x86", "386"),
            ("loongarch64", "loong64"),
            ("armhf", "arm"),
            ("s390x", "s390x"),
            ("riscv64", "riscv64"),
            ("amd64", "amd64"),
        ] {
            assert_eq!(normalize_arch(from), to, "{from}");
        }
        let host = host_arch();
        assert_eq!(
            normalize_arch(host),
            host,
            "host_arch is already in Go's terms"
        );
        if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            assert_eq!(host, "ppc64le");
        }
        if cfg!(target_arch = "x86_64") {
            assert_eq!(host, "amd64");
        }
    }
}
