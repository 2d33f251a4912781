//! Image references as docker writes them (`[domain/]path[:tag][@digest]`)
//! with docker's and podman's normalisation: a missing tag is `latest`; a name
//! without a domain is stored under `localhost/` and looked up there first,
//! then under `docker.io` (with `library/` for one-component names). Towards
//! a registry a name without a domain means Docker Hub ([`Reference::remote`],
//! [`Reference::repository`]).

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

pub const DEFAULT_TAG: &str = "latest";
pub const LOCAL_DOMAIN: &str = "localhost";
pub const DOCKER_HUB: &str = "docker.io";

#[derive(Debug, thiserror::Error)]
#[error("invalid reference format {value:?}: {reason}")]
pub struct ReferenceError {
    pub value: String,
    pub reason: String,
}

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
    pub fn new(
        registry: impl Into<String>,
        name: impl Into<String>,
    ) -> Result<Self, ReferenceError> {
        let registry = registry.into();
        let name = name.into();
        if name.is_empty() || !name.split('/').all(valid_component) {
            return Err(err(
                &format!("{registry}/{name}"),
                "invalid repository name",
            ));
        }
        Ok(Repository { registry, name })
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// Maps docker's alternate spellings of Docker Hub to `docker.io`.
pub fn normalize_registry(host: &str) -> String {
    match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// The registry host, if the user named one.
    domain: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn err(value: &str, reason: impl Into<String>) -> ReferenceError {
    ReferenceError {
        value: value.to_string(),
        reason: reason.into(),
    }
}

fn valid_component(c: &str) -> bool {
    // [a-z0-9]+ ((\.|_|__|-+)[a-z0-9]+)*
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    // host[:port]; host labels of [A-Za-z0-9-.], or a bracketed IPv6 address.
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => return false,
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b':'))
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(err(s, "empty reference"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d.parse::<Digest>().map_err(|e| err(s, e.reason))?)),
            None => (s, None),
        };
        // A tag is after the last ':' that follows the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let t = &rest[last_slash + i + 1..];
                if !valid_tag(t) {
                    return Err(err(s, format!("invalid tag {t:?}")));
                }
                (&rest[..last_slash + i], Some(t.to_string()))
            }
            None => (rest, None),
        };
        if name.len() > 255 {
            return Err(err(
                s,
                "repository name must not be more than 255 characters",
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, remainder))
                if first.contains(['.', ':'])
                    || first == LOCAL_DOMAIN
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(err(s, format!("invalid registry host {first:?}")));
                }
                (Some(first.to_string()), remainder.to_string())
            }
            _ => (None, name.to_string()),
        };
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(err(s, "repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(err(s, "invalid repository name"));
        }
        let domain = domain.as_deref().map(normalize_registry);
        let path = if domain.as_deref() == Some(DOCKER_HUB) && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }
}

impl Reference {
    pub fn domain(&self) -> Option<&str> {
        self.domain.as_deref()
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// True when the user named a registry host.
    pub fn is_qualified(&self) -> bool {
        self.domain.is_some()
    }

    /// The same reference with the domain made explicit (`localhost` when
    /// none was given) and `latest` added when neither tag nor digest is set.
    /// This is the form stored in `index.json`.
    pub fn normalized(&self) -> Reference {
        let mut r = self.clone();
        if r.domain.is_none() {
            r.domain = Some(LOCAL_DOMAIN.to_string());
        }
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_string());
        }
        r
    }

    /// The fully-qualified names this reference may mean, in lookup order:
    /// itself when qualified, else `localhost/…` then `docker.io/…`.
    pub fn candidates(&self) -> Vec<Reference> {
        if self.domain.is_some() {
            return vec![self.normalized()];
        }
        let local = self.normalized();
        let mut hub = local.clone();
        hub.domain = Some(DOCKER_HUB.to_string());
        if !hub.path.contains('/') {
            hub.path = format!("library/{}", hub.path);
        }
        vec![local, hub]
    }

    /// `domain/path` without tag or digest, as written.
    pub fn name(&self) -> String {
        match &self.domain {
            Some(d) => format!("{d}/{}", self.path),
            None => self.path.clone(),
        }
    }

    /// The registry this reference is pulled from or pushed to: its domain,
    /// or Docker Hub when it names none.
    pub fn registry(&self) -> &str {
        self.domain.as_deref().unwrap_or(DOCKER_HUB)
    }

    /// The registry and repository this reference names on the wire
    /// (`library/` added for one-component Docker Hub names).
    pub fn repository(&self) -> Repository {
        let registry = self.registry().to_string();
        let name = if registry == DOCKER_HUB && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        Repository { registry, name }
    }

    /// The reference as a registry reads it: the domain made explicit
    /// (Docker Hub when none was given) and `latest` added when neither tag
    /// nor digest is set, e.g. `alpine` → `docker.io/library/alpine:latest`.
    pub fn remote(&self) -> Reference {
        let repo = self.repository();
        let tag = match (&self.tag, &self.digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (t, _) => t.clone(),
        };
        Reference {
            domain: Some(repo.registry),
            path: repo.name,
            tag,
            digest: self.digest.clone(),
        }
    }

    /// What to put after `/manifests/`: the digest if known, else the tag.
    pub fn manifest_ref(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        s.parse::<Reference>().unwrap().normalized().to_string()
    }

    #[test]
    fn normalizes_like_podman() {
        assert_eq!(n("busybox"), "localhost/busybox:latest");
        assert_eq!(n("base:1.0"), "localhost/base:1.0");
        assert_eq!(n("foo/bar"), "localhost/foo/bar:latest");
        assert_eq!(n("localhost/busybox"), "localhost/busybox:latest");
        assert_eq!(n("127.0.0.1:5055/a/b:t"), "127.0.0.1:5055/a/b:t");
        assert_eq!(n("docker.io/busybox"), "docker.io/library/busybox:latest");
        assert_eq!(n("index.docker.io/x/y"), "docker.io/x/y:latest");
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(n(&format!("busybox@{d}")), format!("localhost/busybox@{d}"));
    }

    #[test]
    fn candidates_for_short_names() {
        let c: Vec<String> = "busybox"
            .parse::<Reference>()
            .unwrap()
            .candidates()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            c,
            [
                "localhost/busybox:latest",
                "docker.io/library/busybox:latest"
            ]
        );
    }

    fn remote(s: &str) -> Reference {
        s.parse::<Reference>().unwrap().remote()
    }

    #[test]
    fn docker_hub_defaults_towards_a_registry() {
        let r = remote("alpine");
        assert_eq!(r.repository().registry, "docker.io");
        assert_eq!(r.repository().name, "library/alpine");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.to_string(), "docker.io/library/alpine:latest");
        assert_eq!(remote("user/app:1").repository().name, "user/app");
        assert_eq!(
            remote("index.docker.io/library/busybox").registry(),
            "docker.io"
        );
        // Not normalised, a short name still means Docker Hub on the wire.
        let short: Reference = "alpine".parse().unwrap();
        assert_eq!(short.repository(), remote("alpine").repository());
        assert_eq!(short.manifest_ref(), "latest");
    }

    #[test]
    fn registry_with_port_and_digest() {
        let d = Digest::of_bytes(b"x");
        let r = remote(&format!("127.0.0.1:5000/a/b:v1@{d}"));
        assert_eq!(r.repository().registry, "127.0.0.1:5000");
        assert_eq!(r.repository().name, "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.manifest_ref(), d.to_string());
        assert_eq!(remote("localhost/x").registry(), "localhost");
        let r = remote("localhost:5000/x");
        assert_eq!(r.tag(), Some("latest"));
        assert_eq!(r.to_string(), "localhost:5000/x:latest");
        assert!(Repository::new("reg.io", "-a").is_err());
        assert!(Repository::new("reg.io", "a//b").is_err());
        assert_eq!(
            Repository::new("reg.io", "a/b").unwrap().to_string(),
            "reg.io/a/b"
        );
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "UPPER",
            "a//b",
            "a:",
            "a:b:c",
            "-a",
            "a@sha256:12",
            "a:$tag",
            "x:",
            "x:-bad",
            "reg.io/-a",
            "a..b",
        ] {
            assert!(
                bad.parse::<Reference>().is_err(),
                "{bad} should be rejected"
            );
        }
    }
}
