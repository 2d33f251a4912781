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

/// `--network`: `None` for the default (the host's network); `bridge` is
/// [`BuildOptions::bridge`](crate::BuildOptions) (and `None` here).
pub fn network(raw: Option<&str>) -> Result<Option<Network>, BuildError> {
    match raw {
        None | Some("host") | Some("default") => Ok(None),
        Some("bridge") => {
            if !rustix::process::geteuid().is_root() {
                return Err(BuildError::Invalid(
                    "--network bridge for build needs root (netavark); use host or none".into(),
                ));
            }
            Ok(None)
        }
        Some("none") => Ok(Some(Network::None)),
        Some(other) => Err(BuildError::Invalid(format!(
            "unsupported --network {other:?}: use host, bridge or none"
        ))),
    }
}

/// `--add-host HOST:IP`. `host-gateway` is refused: RUN steps are on the
/// host's network (or none), where there is no gateway to the host.
pub fn add_host(s: &str) -> Result<(String, String), BuildError> {
    let (host, addr) = containers::network::etc::parse_add_host(s)
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    if addr == "host-gateway" {
        return Err(BuildError::Invalid(format!(
            "invalid --add-host {s:?}: host-gateway is for container networks; RUN steps use the host's network (or none), give an address"
        )));
    }
    Ok((host, addr))
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
        // The bridge needs root (netavark); the mode is no runner network.
        let root = rustix::process::geteuid().is_root();
        assert_eq!(network(Some("bridge")).ok(), root.then_some(None));
        assert!(network(Some("container:x")).is_err());
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
    }
}
