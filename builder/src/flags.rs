//! `docker build`'s flag values, parsed into what [`crate::BuildOptions`]
//! holds, so any front end (the CLI, an API) reads them the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::str::FromStr;

use runner::spec::Network;

use crate::error::BuildError;
use crate::stages::PullPolicy;

impl FromStr for PullPolicy {
    type Err = BuildError;

    /// `--pull[=missing|always|never]` (`true`/`false` as docker spells them).
    fn from_str(s: &str) -> Result<PullPolicy, BuildError> {
        match s {
            "missing" | "false" => Ok(PullPolicy::Missing),
            "always" | "true" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(BuildError::Invalid(format!(
                "invalid --pull={other:?}: use missing, always or never"
            ))),
        }
    }
}

/// `--build-arg K=V` (or `K` alone: the value comes from the environment
/// when an ARG asks for it).
pub fn build_args(raw: &[String]) -> BTreeMap<String, Option<String>> {
    raw.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        })
        .collect()
}

/// `--label K=V` (`K` alone is an empty value).
pub fn labels(raw: &[String]) -> Vec<(String, String)> {
    raw.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// `--network`: `None` for the default (the host's network).
pub fn network(raw: Option<&str>) -> Result<Option<Network>, BuildError> {
    match raw {
        None | Some("host") | Some("default") => Ok(None),
        Some("none") => Ok(Some(Network::None)),
        Some(other) => Err(BuildError::Invalid(format!(
            "unsupported --network {other:?}: use host or none"
        ))),
    }
}

/// `--secret id=ID,src=PATH`: the id and the file (which must exist).
pub fn secret(s: &str) -> Result<(String, PathBuf), BuildError> {
    let invalid = |why: &str| BuildError::Invalid(format!("invalid --secret {s:?}: {why}"));
    let mut id = None;
    let mut src = None;
    for part in s.split(',') {
        match part.split_once('=') {
            Some(("id", v)) => id = Some(v.to_string()),
            Some(("src" | "source", v)) => src = Some(PathBuf::from(v)),
            _ => return Err(invalid("expected id=ID,src=PATH")),
        }
    }
    let id = id.ok_or_else(|| invalid("no id"))?;
    let src = src.ok_or_else(|| invalid("no src"))?;
    if !src.is_file() {
        return Err(BuildError::Invalid(format!(
            "--secret {id}: {} is not a file",
            src.display()
        )));
    }
    Ok((id, src))
}

/// `--platform`: only the host's is built.
pub fn platform(raw: Option<&str>) -> Result<(), BuildError> {
    let host = format!("linux/{}", image_store::model::host_arch());
    match raw {
        Some(p) if p != host => Err(BuildError::Invalid(format!(
            "unsupported --platform {p}: kiln builds for {host}"
        ))),
        _ => Ok(()),
    }
}

/// `SOURCE_DATE_EPOCH`: the build arg of that name, else the variable in
/// `env` (the CLI's environment), as BuildKit takes it.
pub fn source_date_epoch(
    build_args: &BTreeMap<String, Option<String>>,
    env: Option<String>,
) -> Result<Option<u64>, BuildError> {
    build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .flatten()
        .or(env)
        .map(|v| {
            v.parse::<u64>()
                .map_err(|e| BuildError::Invalid(format!("invalid SOURCE_DATE_EPOCH {v:?}: {e}")))
        })
        .transpose()
}

/// `--annotation [manifest:]KEY=VALUE`: kiln writes one manifest per
/// build (no index, no descriptors), so only manifest annotations exist.
pub fn annotations(raw: &[String]) -> Result<BTreeMap<String, String>, BuildError> {
    let mut out = BTreeMap::new();
    for a in raw {
        let bad = |why: &str| BuildError::Invalid(format!("invalid --annotation {a:?}: {why}"));
        let (key, value) = a.split_once('=').ok_or_else(|| bad("expected KEY=VALUE"))?;
        let key = match key.split_once(':') {
            Some(("manifest", k)) => k,
            Some((kind, _)) if !kind.contains('.') && !kind.contains('/') => {
                return Err(bad(&format!(
                    "only manifest annotations are written (kiln makes no {kind})"
                )))
            }
            _ => key,
        };
        if key.is_empty() {
            return Err(bad("empty key"));
        }
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// `--add-host HOST:IP` for RUN steps. `host-gateway` names a bridge's
/// gateway, and build steps use the host's network: refused.
pub fn add_host(s: &str) -> Result<(String, String), BuildError> {
    let (host, ip) = containers::network::etc::parse_add_host(s)
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    if ip == "host-gateway" {
        return Err(BuildError::Invalid(format!(
            "invalid --add-host {s:?}: host-gateway needs a container network; RUN steps use the host's"
        )));
    }
    Ok((host, ip))
}

/// `--shm-size` in docker's units (`64m`, `1g`, bytes).
pub fn shm_size(s: &str) -> Result<i64, BuildError> {
    containers::options::parse_bytes(s)
        .map_err(|_| BuildError::Invalid(format!("invalid --shm-size {s:?}")))
}

/// `--ulimit NAME=SOFT[:HARD]` (`-1` is unlimited), as `kiln run` reads it.
pub fn ulimit(s: &str) -> Result<oci_spec::runtime::PosixRlimit, BuildError> {
    containers::security::parse_ulimit(s).map_err(|e| BuildError::Invalid(e.to_string()))
}

/// `--cgroup-parent`: RUN steps live in kiln's own cgroup for build
/// steps, whose limits and cleanup depend on that place.
pub fn cgroup_parent(raw: Option<&str>) -> Result<(), BuildError> {
    match raw {
        Some(p) => Err(BuildError::Invalid(format!(
            "--cgroup-parent {p}: not supported: kiln runs build steps in its own cgroup"
        ))),
        None => Ok(()),
    }
}

/// Where an `--ssh` id's agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket.
    Socket(PathBuf),
    /// Key files, to load into an agent of the build's own.
    Keys(Vec<PathBuf>),
}

/// `--ssh default|ID[=SOCKET|KEY[,KEY]]`: the id and its agent socket
/// (`$SSH_AUTH_SOCK` when none is given) or key files.
pub fn ssh(s: &str, auth_sock: Option<&str>) -> Result<(String, SshSource), BuildError> {
    use std::os::unix::fs::FileTypeExt;
    let (id, paths) = match s.split_once('=') {
        Some((id, p)) => (id, Some(p)),
        None => (s, None),
    };
    if id.is_empty() {
        return Err(BuildError::Invalid(format!("invalid --ssh {s:?}: no id")));
    }
    let paths: Vec<PathBuf> = match paths.or(auth_sock) {
        Some(p) if !p.is_empty() => p.split(',').map(PathBuf::from).collect(),
        _ => {
            return Err(BuildError::Invalid(format!(
                "--ssh {s}: no socket given and SSH_AUTH_SOCK is not set"
            )))
        }
    };
    let mut keys = Vec::new();
    for path in &paths {
        match std::fs::metadata(path) {
            Ok(m) if m.file_type().is_socket() && paths.len() == 1 => {
                return Ok((id.to_string(), SshSource::Socket(path.clone())))
            }
            Ok(m) if m.is_file() => keys.push(path.clone()),
            Ok(_) => {
                return Err(BuildError::Invalid(format!(
                    "--ssh {s}: {} is neither an agent socket nor a key file",
                    path.display()
                )))
            }
            Err(e) => {
                return Err(BuildError::Invalid(format!(
                    "--ssh {s}: {}: {e}",
                    path.display()
                )))
            }
        }
    }
    Ok((id.to_string(), SshSource::Keys(keys)))
}

/// `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`: a git context keeps `.git`.
pub fn keep_git_dir(build_args: &BTreeMap<String, Option<String>>) -> bool {
    build_args
        .get(crate::inputs::KEEP_GIT_DIR_ARG)
        .cloned()
        .flatten()
        .is_some_and(|v| matches!(v.as_str(), "1" | "true"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_parse_as_docker_reads_them() {
        assert_eq!("true".parse::<PullPolicy>().unwrap(), PullPolicy::Always);
        assert_eq!(
            "maybe".parse::<PullPolicy>().unwrap_err().to_string(),
            "invalid --pull=\"maybe\": use missing, always or never"
        );
        let args = build_args(&["A=1".into(), "B".into()]);
        assert_eq!(args["A"].as_deref(), Some("1"));
        assert_eq!(args["B"], None);
        assert_eq!(labels(&["k".into()]), vec![("k".into(), String::new())]);
        assert!(network(Some("bridge")).is_err());
        assert_eq!(
            secret("id=x").unwrap_err().to_string(),
            "invalid --secret \"id=x\": no src"
        );
        let epoch = build_args(&["SOURCE_DATE_EPOCH=5".into()]);
        assert_eq!(
            source_date_epoch(&epoch, Some("7".into())).unwrap(),
            Some(5)
        );
        assert_eq!(
            source_date_epoch(&BTreeMap::new(), Some("7".into())).unwrap(),
            Some(7)
        );
        assert!(source_date_epoch(&BTreeMap::new(), Some("x".into())).is_err());
        let a = annotations(&["manifest:a=1".into(), "org.opencontainers.x=2".into()]).unwrap();
        assert_eq!(a["a"], "1");
        assert_eq!(a["org.opencontainers.x"], "2");
        assert!(annotations(&["index:a=1".into()]).is_err());
        let nofile = ulimit("nofile=10:20").unwrap();
        assert_eq!((nofile.soft(), nofile.hard()), (10, 20));
        assert_eq!(ulimit("core=-1").unwrap().hard(), u64::MAX);
        assert!(ulimit("nofile=20:10").is_err());
        assert!(ulimit("bogus=1").is_err());
        assert_eq!(shm_size("1m").unwrap(), 1 << 20);
        assert!(add_host("gw:host-gateway").is_err());
        assert_eq!(add_host("db:10.0.0.2").unwrap().1, "10.0.0.2");
    }
}
