//! docker's syntaxes for what a container is given: `-v HOST:CTR[:ro]`,
//! `--tmpfs PATH[:OPTS]`, sizes (`512m`), `-e` and `--env-file`. Shared by
//! whatever front end creates containers.

use std::fs;
use std::path::PathBuf;

use runner::spec::{MountSpec, Network};

use crate::error::{Error, Result};
use crate::spec::set_env;

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// docker's units: b, k, m, g, t (binary), optional trailing `b`.
pub fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|x| !x.is_empty()).unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| invalid(format!("invalid size: {s:?}")))?;
    if n <= 0.0 {
        return Err(invalid(format!("invalid size: {s:?}")));
    }
    Ok((n * mult as f64) as i64)
}

/// Cleans an absolute path: `.`, `..` and repeated slashes removed.
pub fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `-v HOST:CONTAINER[:ro|rw]`: a bind mount. A missing host directory is
/// created, as docker does.
pub fn parse_volume(v: &str) -> Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (host, ctr, opts) = match parts.as_slice() {
        [h, c] => (*h, *c, ""),
        [h, c, o] => (*h, *c, *o),
        _ => {
            return Err(invalid(format!(
                "invalid volume specification: {v:?} (want HOST:CONTAINER[:ro])"
            )))
        }
    };
    if !host.starts_with('/') {
        return Err(invalid(format!(
            "invalid volume {v:?}: named volumes are not supported, the host path must be absolute"
        )));
    }
    if !ctr.starts_with('/') {
        return Err(invalid(format!(
            "invalid volume {v:?}: the container path must be absolute"
        )));
    }
    let mut readonly = false;
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => readonly = true,
            "rw" => readonly = false,
            "z" | "Z" | "rprivate" | "private" => {}
            _ => {
                return Err(invalid(format!(
                    "invalid volume {v:?}: unknown option {o:?}"
                )))
            }
        }
    }
    let source = PathBuf::from(host);
    if !source.exists() {
        fs::create_dir_all(&source)
            .map_err(|e| invalid(format!("creating the volume directory {host}: {e}")))?;
    }
    Ok(MountSpec::Bind {
        source,
        destination: clean_abs(ctr),
        readonly,
    })
}

/// `--tmpfs PATH[:OPTIONS]`.
pub fn parse_tmpfs(t: &str) -> Result<MountSpec> {
    let (path, opts) = t.split_once(':').unwrap_or((t, ""));
    if !path.starts_with('/') {
        return Err(invalid(format!(
            "invalid tmpfs {t:?}: the path must be absolute"
        )));
    }
    Ok(MountSpec::Tmpfs {
        destination: clean_abs(path),
        options: opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// `--network`: `none` (a namespace with only loopback) or `host`.
pub fn parse_network(mode: &str) -> Result<Network> {
    match mode {
        "none" => Ok(Network::None),
        "host" => Ok(Network::Host),
        other => Err(invalid(format!(
            "unsupported network mode {other:?}: only none and host (user-mode networking may come later)"
        ))),
    }
}

/// `--cpuset-cpus`: CPU numbers and ranges (`0-2,4`).
pub fn check_cpuset(set: &str) -> Result<()> {
    let ok = !set.is_empty()
        && set.split(',').all(|part| {
            let mut ends = part.splitn(2, '-');
            let a = ends.next().and_then(|a| a.parse::<u32>().ok());
            match (a, ends.next()) {
                (Some(_), None) => true,
                (Some(a), Some(b)) => b.parse::<u32>().is_ok_and(|b| b >= a),
                _ => false,
            }
        });
    match ok {
        true => Ok(()),
        false => Err(invalid(format!(
            "invalid --cpuset-cpus {set:?}: want CPU numbers and ranges such as 0-2,4"
        ))),
    }
}

/// `-w`: the working directory must be absolute.
pub fn check_workdir(dir: &str) -> Result<()> {
    match dir.starts_with('/') {
        true => Ok(()),
        false => Err(invalid(format!(
            "the working directory {dir:?} is not absolute"
        ))),
    }
}

/// `-e K=V`, or `-e K` taking the host's value (skipped when unset).
fn host_env(item: &str) -> Option<String> {
    if item.contains('=') {
        Some(item.to_string())
    } else {
        std::env::var(item).ok().map(|v| format!("{item}={v}"))
    }
}

/// The variables `--env-file` files (`KEY=VALUE` lines, `#` comments) and
/// then `-e` flags set, in order, later ones replacing earlier ones.
pub fn env(files: &[PathBuf], flags: &[String]) -> Result<Vec<String>> {
    let mut env = Vec::new();
    for f in files {
        let text = fs::read_to_string(f)
            .map_err(|e| invalid(format!("reading env file {}: {e}", f.display())))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(e) = host_env(line) {
                set_env(&mut env, e);
            }
        }
    }
    for e in flags {
        if e.is_empty() || e.starts_with('=') {
            return Err(invalid(format!("invalid environment variable: {e:?}")));
        }
        if let Some(e) = host_env(e) {
            set_env(&mut env, e);
        }
    }
    Ok(env)
}

/// `--label KEY=VALUE` (a bare `KEY` has an empty value, as docker's).
pub fn parse_label(l: &str) -> Result<(String, String)> {
    let (k, v) = l.split_once('=').unwrap_or((l, ""));
    if k.is_empty() {
        return Err(invalid(format!("invalid label {l:?}: the key is empty")));
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("2kb").unwrap(), 2048);
        assert!(parse_bytes("x").is_err());
    }
}
