//! Image locations as skopeo names them.

use std::path::PathBuf;

use crate::{bail, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `docker://NAME` or a bare NAME.
    Docker(String),
    /// `oci:DIR[:REF]`: an OCI image layout directory.
    OciDir {
        dir: PathBuf,
        reference: Option<String>,
    },
    /// `oci-archive:FILE[:REF]`.
    OciArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// `docker-archive:FILE[:REF]`.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
}

/// `PATH[:REF]`: the first ':' ends the path, as skopeo reads it.
fn split_path(rest: &str, what: &str) -> Result<(PathBuf, Option<String>)> {
    let (path, reference) = match rest.split_once(':') {
        Some((p, r)) => (p, Some(r.to_string()).filter(|r| !r.is_empty())),
        None => (rest, None),
    };
    if path.is_empty() {
        bail!("{what}: no path given");
    }
    Ok((PathBuf::from(path), reference))
}

impl Location {
    pub fn parse(s: &str) -> Result<Location> {
        if let Some(rest) = s.strip_prefix("docker://") {
            if rest.is_empty() {
                bail!("{s:?}: no image name after docker://");
            }
            return Ok(Location::Docker(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("oci:") {
            let (dir, reference) = split_path(rest, s)?;
            return Ok(Location::OciDir { dir, reference });
        }
        if let Some(rest) = s.strip_prefix("oci-archive:") {
            let (file, reference) = split_path(rest, s)?;
            return Ok(Location::OciArchive { file, reference });
        }
        if let Some(rest) = s.strip_prefix("docker-archive:") {
            let (file, reference) = split_path(rest, s)?;
            return Ok(Location::DockerArchive { file, reference });
        }
        for other in [
            "dir:",
            "containers-storage:",
            "docker-daemon:",
            "ostree:",
            "sif:",
        ] {
            if s.starts_with(other) {
                bail!(
                    "{s:?}: transport {} is not supported (use docker://, oci:, oci-archive: or docker-archive:)",
                    other.trim_end_matches(':')
                );
            }
        }
        Ok(Location::Docker(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_transports() {
        assert_eq!(
            Location::parse("127.0.0.1:5055/bench/big:latest").unwrap(),
            Location::Docker("127.0.0.1:5055/bench/big:latest".into())
        );
        assert_eq!(
            Location::parse("docker://busybox").unwrap(),
            Location::Docker("busybox".into())
        );
        assert_eq!(
            Location::parse("oci:/tmp/x:tag").unwrap(),
            Location::OciDir {
                dir: "/tmp/x".into(),
                reference: Some("tag".into())
            }
        );
        assert_eq!(
            Location::parse("oci-archive:a.tar").unwrap(),
            Location::OciArchive {
                file: "a.tar".into(),
                reference: None
            }
        );
        assert_eq!(
            Location::parse("docker-archive:a.tar:busybox:1").unwrap(),
            Location::DockerArchive {
                file: "a.tar".into(),
                reference: Some("busybox:1".into())
            }
        );
        assert!(Location::parse("dir:/x").is_err());
        assert!(Location::parse("oci:").is_err());
    }
}
