//! docker's legacy `--link NAME[:ALIAS]`: the linked (running) container's
//! address under the alias (and its name) in the new container's
//! /etc/hosts, and docker's environment variables for it
//! (`ALIAS_PORT_80_TCP_ADDR`, `ALIAS_NAME`, `ALIAS_ENV_*`, as docker's
//! `daemon/links`), set once when the container is created.

use std::fs;

use image_store::Store;

use super::ports::Proto;
use crate::error::{Error, Result};
use crate::records::Containers;

/// `NAME[:ALIAS]` (the alias defaults to the name).
pub fn parse(s: &str) -> Result<(String, String)> {
    let (name, alias) = s.split_once(':').unwrap_or((s, s));
    if name.is_empty() {
        return Err(Error::Invalid(format!(
            "invalid --link {s:?}: want NAME[:ALIAS]"
        )));
    }
    super::etc::check_alias("--link alias", alias)?;
    Ok((name.to_string(), alias.to_string()))
}

/// What one link gives the new container.
pub struct Link {
    /// Environment variables, `KEY=VALUE`.
    pub env: Vec<String>,
    /// An /etc/hosts entry: the names and the address.
    pub host: (String, String),
}

/// The link to container `name` (running, on `network`) as `alias`, for
/// the new container `linking` (its name).
pub fn resolve(
    store: &Store,
    network: &str,
    linking: &str,
    (name, alias): (&str, &str),
) -> Result<Link> {
    let containers = Containers::new(store);
    let rec = containers.container(name)?;
    if !rec.is_running() {
        return Err(Error::Invalid(format!(
            "--link {name}: container {} is not running",
            rec.name
        )));
    }
    let dir = containers.container_dir(&rec.id);
    let a = super::attachment(&dir);
    let ip = a
        .as_ref()
        .and_then(|a| a.addresses().find(|(n, _)| *n == network).map(|(_, ip)| ip))
        .ok_or_else(|| {
            Error::Invalid(format!(
                "--link {name}: container {} is not on network {network}",
                rec.name
            ))
        })?;
    let mut ports: Vec<(u16, Proto)> = a.map(|a| a.exposed).unwrap_or_default();
    // docker's default port (`ALIAS_PORT`): TCP ones first, then by number.
    ports.sort_by_key(|&(p, proto)| (proto != Proto::Tcp, p));
    let upper = alias.to_uppercase().replace(['-', '.'], "_");
    let mut env = Vec::new();
    if let Some((p, proto)) = ports.first() {
        env.push(format!("{upper}_PORT={proto}://{ip}:{p}"));
    }
    for (p, proto) in &ports {
        let key = format!("{upper}_PORT_{p}_{}", proto.to_string().to_uppercase());
        env.push(format!("{key}={proto}://{ip}:{p}"));
        env.push(format!("{key}_ADDR={ip}"));
        env.push(format!("{key}_PORT={p}"));
        env.push(format!("{key}_PROTO={proto}"));
    }
    env.push(format!("{upper}_NAME=/{linking}/{alias}"));
    // Its environment, as docker passes it on (not HOME and PATH, nor
    // HOSTNAME, which docker's config never holds).
    let spec: Option<runner::Spec> = fs::read(dir.join(crate::run::SPEC_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok());
    let vars = spec
        .and_then(|s| s.process().as_ref().and_then(|p| p.env().clone()))
        .unwrap_or_default();
    for v in vars {
        if let Some((k, val)) = v.split_once('=') {
            if !matches!(k, "HOME" | "PATH" | "HOSTNAME") {
                env.push(format!("{upper}_ENV_{k}={val}"));
            }
        }
    }
    let names = match alias == rec.name {
        true => alias.to_string(),
        false => format!("{alias} {}", rec.name),
    };
    Ok(Link {
        env,
        host: (names, ip.to_string()),
    })
}
