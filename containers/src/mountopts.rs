//! docker's syntaxes for what is mounted into a container beyond `--tmpfs`:
//! `-v SRC:DST[:OPTS]` and `-v DST` (a bind when SRC is an absolute path,
//! else a named volume; an anonymous volume without SRC), `--mount
//! type=bind|volume|tmpfs,source=…,target=…,readonly`, and
//! `--volumes-from C[:ro|rw]`. Parsing only: [`crate::volumes::plan`]
//! turns the requests into mounts.

use std::path::PathBuf;

use runner::spec::MountSpec;

use crate::error::{Error, Result};
use crate::options::clean_abs;

/// One thing to mount, as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRequest {
    Bind {
        source: PathBuf,
        destination: String,
        readonly: bool,
    },
    /// A named volume (`name`), or a new anonymous one (`None`).
    Volume {
        name: Option<String>,
        destination: String,
        readonly: bool,
        /// Do not fill an empty volume from the image (`volume-nocopy`).
        nocopy: bool,
    },
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

impl MountRequest {
    pub fn destination(&self) -> &str {
        match self {
            MountRequest::Bind { destination, .. }
            | MountRequest::Volume { destination, .. }
            | MountRequest::Tmpfs { destination, .. } => destination,
        }
    }
}

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

fn absolute(what: &str, p: &str) -> Result<String> {
    if !p.starts_with('/') {
        return Err(invalid(format!(
            "invalid {what}: the container path {p:?} must be absolute"
        )));
    }
    Ok(clean_abs(p))
}

/// `-v`: `/ctr` (anonymous volume), `NAME:/ctr[:ro|rw|nocopy]` (named
/// volume), `/host:/ctr[:ro|rw]` (bind mount; a missing host directory
/// is created, as docker does).
pub fn parse_v(v: &str) -> Result<MountRequest> {
    let parts: Vec<&str> = v.split(':').collect();
    let what = format!("volume {v:?}");
    let (src, dst, opts) = match parts.as_slice() {
        [d] => {
            return Ok(MountRequest::Volume {
                name: None,
                destination: absolute(&what, d)?,
                readonly: false,
                nocopy: false,
            })
        }
        [s, d] => (*s, *d, ""),
        [s, d, o] => (*s, *d, *o),
        _ => {
            return Err(invalid(format!(
                "invalid volume specification: {v:?} (want [SOURCE:]CONTAINER-PATH[:ro])"
            )))
        }
    };
    if src.starts_with('/') {
        return match crate::options::parse_volume(v)? {
            MountSpec::Bind {
                source,
                destination,
                readonly,
            } => Ok(MountRequest::Bind {
                source,
                destination,
                readonly,
            }),
            MountSpec::Tmpfs { .. } => unreachable!("-v parses to a bind"),
        };
    }
    let name = crate::volumes::volume_name(src)
        .map_err(|_| {
            invalid(format!(
                "invalid volume {v:?}: {src:?} is neither an absolute host path nor a valid volume name ([a-zA-Z0-9][a-zA-Z0-9_.-]+)"
            ))
        })?
        .to_string();
    let mut readonly = false;
    let mut nocopy = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "nocopy" => nocopy = true,
            "z" | "Z" => {}
            _ => {
                return Err(invalid(format!(
                    "invalid volume {v:?}: unknown option {o:?}"
                )))
            }
        }
    }
    Ok(MountRequest::Volume {
        name: Some(name),
        destination: absolute(&what, dst)?,
        readonly,
        nocopy,
    })
}

fn boolean(spec: &str, key: &str, val: Option<&str>) -> Result<bool> {
    match val {
        None | Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(invalid(format!(
            "invalid --mount {spec:?}: {key}={v:?} is not a boolean"
        ))),
    }
}

/// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly]` (also
/// `src`, `destination`/`dst`, `ro`, `volume-nocopy`, `tmpfs-size`,
/// `tmpfs-mode`, `bind-propagation`). Unknown keys are refused.
pub fn parse_mount(spec: &str) -> Result<MountRequest> {
    let bad = |m: String| invalid(format!("invalid --mount {spec:?}: {m}"));
    let mut kind = "volume";
    let mut source: Option<&str> = None;
    let mut target: Option<&str> = None;
    let mut readonly = false;
    let mut nocopy = false;
    let mut tmpfs = Vec::new();
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (field, None),
        };
        let need = || v.ok_or_else(|| bad(format!("{k} needs a value")));
        match k {
            "type" => kind = need()?,
            "source" | "src" => source = Some(need()?),
            "target" | "destination" | "dst" => target = Some(need()?),
            "readonly" | "ro" => readonly = boolean(spec, k, v)?,
            "volume-nocopy" => nocopy = boolean(spec, k, v)?,
            "tmpfs-size" => {
                let n = crate::options::parse_bytes(need()?)?;
                tmpfs.push(format!("size={n}"));
            }
            "tmpfs-mode" => {
                let m = need()?;
                u32::from_str_radix(m, 8)
                    .map_err(|_| bad(format!("tmpfs-mode {m:?} is not octal")))?;
                tmpfs.push(format!("mode={m}"));
            }
            "bind-propagation" => match need()? {
                "private" | "rprivate" => {}
                p => {
                    return Err(bad(format!(
                        "bind-propagation {p:?} is not supported (only private, rprivate)"
                    )))
                }
            },
            _ => return Err(bad(format!("unknown key {k:?}"))),
        }
    }
    let target = target.ok_or_else(|| bad("target is required".into()))?;
    let what = format!("--mount {spec:?}");
    let destination = absolute(&what, target)?;
    match kind {
        "bind" => {
            let source = source.ok_or_else(|| bad("source is required for a bind mount".into()))?;
            if !source.starts_with('/') {
                return Err(bad(format!(
                    "the bind source {source:?} must be an absolute path"
                )));
            }
            // Unlike -v, --mount does not create a missing source.
            if !std::path::Path::new(source).exists() {
                return Err(bad(format!("bind source path does not exist: {source}")));
            }
            Ok(MountRequest::Bind {
                source: source.into(),
                destination,
                readonly,
            })
        }
        "volume" => {
            let name = source
                .map(|s| {
                    crate::volumes::volume_name(s)
                        .map(str::to_string)
                        .map_err(|_| bad(format!("invalid volume name {s:?}")))
                })
                .transpose()?;
            Ok(MountRequest::Volume {
                name,
                destination,
                readonly,
                nocopy,
            })
        }
        "tmpfs" => {
            if source.is_some() {
                return Err(bad("a tmpfs mount takes no source".into()));
            }
            if readonly {
                tmpfs.push("ro".into());
            }
            Ok(MountRequest::Tmpfs {
                destination,
                options: tmpfs,
            })
        }
        other => Err(bad(format!(
            "unsupported type {other:?} (bind, volume or tmpfs)"
        ))),
    }
}

/// `--volumes-from C[:ro|rw]`: the container, and whether its mounts are
/// forced read-only (`Some(true)`), read-write, or kept as they are.
pub fn parse_volumes_from(s: &str) -> Result<(String, Option<bool>)> {
    let (c, mode) = match s.rsplit_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (s, None),
    };
    let ro = match mode {
        None => None,
        Some("ro") => Some(true),
        Some("rw") => Some(false),
        Some(m) => {
            return Err(invalid(format!(
                "invalid --volumes-from {s:?}: unknown mode {m:?} (ro or rw)"
            )))
        }
    };
    if c.is_empty() {
        return Err(invalid(format!(
            "invalid --volumes-from {s:?}: no container"
        )));
    }
    Ok((c.to_string(), ro))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_forms() {
        assert_eq!(
            parse_v("/data").unwrap(),
            MountRequest::Volume {
                name: None,
                destination: "/data".into(),
                readonly: false,
                nocopy: false
            }
        );
        assert_eq!(
            parse_v("cache:/var/cache/:ro").unwrap(),
            MountRequest::Volume {
                name: Some("cache".into()),
                destination: "/var/cache".into(),
                readonly: true,
                nocopy: false
            }
        );
        assert!(parse_v("rel/ative:/m").is_err());
        assert!(parse_v("x:/m").is_err(), "one character is not a name");
        assert!(parse_v("vol:relative").is_err());
    }

    #[test]
    fn mount_forms() {
        assert_eq!(
            parse_mount("type=volume,src=v1,dst=/d,readonly").unwrap(),
            MountRequest::Volume {
                name: Some("v1".into()),
                destination: "/d".into(),
                readonly: true,
                nocopy: false
            }
        );
        assert_eq!(
            parse_mount("type=tmpfs,target=/t,tmpfs-size=1m").unwrap(),
            MountRequest::Tmpfs {
                destination: "/t".into(),
                options: vec!["size=1048576".into()]
            }
        );
        let e = parse_mount("type=bind,source=/tmp,target=/t,colour=red").unwrap_err();
        assert!(e.to_string().contains("unknown key \"colour\""), "{e}");
        assert!(parse_mount("type=volume,src=v1").is_err());
        assert!(parse_mount("type=bind,source=/no/such/dir,target=/t").is_err());
        assert_eq!(
            parse_volumes_from("web:ro").unwrap(),
            ("web".into(), Some(true))
        );
        assert!(parse_volumes_from("web:rx").is_err());
    }
}
