//! Image references: `[registry/]repository[:tag][@digest]`, with docker's
//! defaults (`docker.io`, `library/`, `latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;
use crate::error::{Error, Result};

pub const DOCKER_HUB: &str = "docker.io";

/// A registry host plus repository name: the unit of auth scopes and of
/// every blob/manifest URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    /// `host[:port]` as the user wrote it (`docker.io` for Docker Hub).
    pub registry: String,
    /// The path inside the registry, e.g. `library/alpine`.
    pub name: String,
}

impl Repository {
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Result<Self> {
        let registry = registry.into();
        let name = name.into();
        validate_name(&name).map_err(|reason| Error::InvalidReference {
            input: format!("{registry}/{name}"),
            reason,
        })?;
        Ok(Repository { registry, name })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// A parsed image reference. At least one of `tag`/`digest` is set after
/// parsing (`latest` is filled in when neither is given).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    pub repository: Repository,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl Reference {
    /// What to put after `/manifests/`: the digest if known, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason: &str| Error::InvalidReference {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(bad("empty"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>()?)),
            None => (input, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (path, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let valid = !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                && !t.starts_with(['.', '-']);
            if !valid {
                return Err(bad("invalid tag"));
            }
        }
        let (registry, name) = match path.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
            {
                (normalize_registry(first), remainder.to_string())
            }
            _ => (DOCKER_HUB.to_string(), path.to_string()),
        };
        let name = if registry == DOCKER_HUB && !name.contains('/') {
            format!("library/{name}")
        } else {
            name
        };
        validate_name(&name).map_err(|r| bad(&r))?;
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".to_string())
        } else {
            tag
        };
        Ok(Reference {
            repository: Repository { registry, name },
            tag,
            digest,
        })
    }
}

/// Maps docker's alternate spellings of Docker Hub to `docker.io`.
pub fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

/// The host the HTTP API is actually served from.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}

fn validate_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty repository name".into());
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return Err("empty path component".into());
        }
        let ok = comp
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !ok {
            return Err(format!(
                "invalid path component {comp:?} (lowercase letters, digits, '.', '_', '-')"
            ));
        }
        if !comp.as_bytes()[0].is_ascii_alphanumeric()
            || !comp.as_bytes()[comp.len() - 1].is_ascii_alphanumeric()
        {
            return Err(format!(
                "path component {comp:?} must start and end with a letter or digit"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn docker_hub_defaults() {
        let r = p("alpine");
        assert_eq!(r.repository.registry, "docker.io");
        assert_eq!(r.repository.name, "library/alpine");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(p("user/app:1").repository.name, "user/app");
        assert_eq!(
            p("index.docker.io/library/busybox").repository.registry,
            "docker.io"
        );
    }

    #[test]
    fn registry_with_port_and_digest() {
        let d = Digest::sha256_of(b"x");
        let r = p(&format!("127.0.0.1:5000/a/b:v1@{d}"));
        assert_eq!(r.repository.registry, "127.0.0.1:5000");
        assert_eq!(r.repository.name, "a/b");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert_eq!(r.manifest_ref(), d.to_string());
        let r = p("localhost/x");
        assert_eq!(r.repository.registry, "localhost");
        let r = p("localhost:5000/x");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        assert_eq!(r.to_string(), "localhost:5000/x:latest");
    }

    #[test]
    fn rejects_bad_input() {
        for s in [
            "",
            "UPPER",
            "a//b",
            "x:",
            "x:-bad",
            "x@sha256:12",
            "reg.io/-a",
        ] {
            assert!(s.parse::<Reference>().is_err(), "{s} should fail");
        }
    }
}
