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

/// `--cache-to` / `--cache-from`: where the step cache is shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSpec {
    /// `type=registry,ref=REG/REPO:TAG`: a cache manifest in a registry.
    Registry {
        reference: String,
        mode: CacheMode,
        compression: image_store::compressed::LayerFormat,
    },
    /// `type=local,dest=DIR` / `src=DIR` (`tag=`, default `latest`): a
    /// cache manifest in an OCI layout directory (CI caches kept as files).
    Local {
        dir: PathBuf,
        tag: String,
        mode: CacheMode,
        compression: image_store::compressed::LayerFormat,
    },
    /// `--cache-to type=inline`: the final image's steps in its own config,
    /// read back by `--cache-from IMAGE` once the image is pushed.
    Inline,
}

impl CacheSpec {
    /// How messages name it.
    pub fn label(&self) -> String {
        match self {
            CacheSpec::Registry { reference, .. } => reference.clone(),
            CacheSpec::Local { dir, tag, .. } => format!("{}:{tag}", dir.display()),
            CacheSpec::Inline => "the image config (inline)".into(),
        }
    }

    pub fn mode(&self) -> CacheMode {
        match self {
            CacheSpec::Registry { mode, .. } | CacheSpec::Local { mode, .. } => *mode,
            CacheSpec::Inline => CacheMode::Min,
        }
    }
}

/// Which steps an export writes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CacheMode {
    /// The steps whose layers make the final image (BuildKit's default).
    #[default]
    Min,
    /// Every step of every stage built.
    Max,
}

/// `--cache-to` (`export`) or `--cache-from` (BuildKit's CSV form; a bare
/// `REF` for `--cache-from` means `type=registry,ref=REF`).
pub fn cache_spec(raw: &str, export: bool) -> Result<CacheSpec, BuildError> {
    let flag = if export { "--cache-to" } else { "--cache-from" };
    let invalid = |why: String| BuildError::Invalid(format!("invalid {flag} {raw:?}: {why}"));
    if !raw.contains('=') && !export {
        return Ok(CacheSpec::Registry {
            reference: raw.to_string(),
            mode: CacheMode::Min,
            compression: image_store::compressed::LayerFormat::Gzip,
        });
    }
    let mut pairs = Vec::new();
    for part in raw.split(',') {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| invalid(format!("{part:?} is not KEY=VALUE")))?;
        pairs.push((k, v));
    }
    let kind = pairs.iter().find(|(k, _)| *k == "type").map(|(_, v)| *v);
    match kind {
        Some("registry" | "local") => {}
        Some("inline") if export => {
            return match pairs.as_slice() {
                [_] => Ok(CacheSpec::Inline),
                _ => Err(invalid("type=inline takes no options".into())),
            }
        }
        Some("inline") => {
            return Err(invalid(
                "an inline cache is read from its image: --cache-from type=registry,ref=IMAGE"
                    .into(),
            ))
        }
        Some(t) => {
            return Err(invalid(format!(
                "unsupported type={t}; kiln shares its cache through type=registry"
            )))
        }
        None => {
            return Err(invalid(
                "no type= (e.g. type=registry,ref=REG/REPO:TAG)".into(),
            ))
        }
    }
    let mut reference = None;
    let mut dir = None;
    let mut tag = "latest".to_string();
    let mut mode = CacheMode::Min;
    let mut compression = image_store::compressed::LayerFormat::Gzip;
    for (k, v) in pairs {
        match k {
            "type" => {}
            "ref" if kind == Some("registry") => reference = Some(v.to_string()),
            "dest" if export && kind == Some("local") => dir = Some(PathBuf::from(v)),
            "src" if !export && kind == Some("local") => dir = Some(PathBuf::from(v)),
            "tag" if kind == Some("local") => tag = v.to_string(),
            "mode" => {
                mode = match v {
                    "min" => CacheMode::Min,
                    "max" => CacheMode::Max,
                    _ => return Err(invalid(format!("mode={v}: use min or max"))),
                }
            }
            "compression" => compression = v.parse().map_err(invalid)?,
            // The cache manifest is always an OCI manifest.
            "oci-mediatypes" | "image-manifest" if v == "true" => {}
            "ignore-error" if v == "false" => {}
            _ => return Err(invalid(format!("unsupported option {k}={v}"))),
        }
    }
    if kind == Some("local") {
        let what = if export { "dest" } else { "src" };
        return Ok(CacheSpec::Local {
            dir: dir.ok_or_else(|| invalid(format!("type=local needs {what}=DIR")))?,
            tag,
            mode,
            compression,
        });
    }
    Ok(CacheSpec::Registry {
        reference: reference.ok_or_else(|| invalid("type=registry needs ref=".into()))?,
        mode,
        compression,
    })
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
            cache_spec("r.io/a:c", false).unwrap(),
            CacheSpec::Registry {
                reference: "r.io/a:c".into(),
                mode: CacheMode::Min,
                compression: image_store::compressed::LayerFormat::Gzip,
            }
        );
        assert!(matches!(
            cache_spec("type=registry,ref=r.io/a:c,mode=max", true).unwrap(),
            CacheSpec::Registry {
                mode: CacheMode::Max,
                ..
            }
        ));
        assert!(cache_spec("r.io/a:c", true).is_err());
        assert!(cache_spec("type=registry,ref=r/a,mode=all", true).is_err());
        assert!(cache_spec("type=gha", false).is_err());
        assert!(matches!(
            cache_spec("type=local,src=/c", false).unwrap(),
            CacheSpec::Local { tag, .. } if tag == "latest"
        ));
        assert!(cache_spec("type=local,src=/c", true).is_err());
        assert_eq!(
            source_date_epoch(&BTreeMap::new(), Some("7".into())).unwrap(),
            Some(7)
        );
        assert!(source_date_epoch(&BTreeMap::new(), Some("x".into())).is_err());
    }
}
