//! `POST /containers/create`'s body (docker's `Config` with `HostConfig`
//! and `NetworkingConfig`) turned into the [`RunRequest`] `kiln run`
//! builds from its flags, through the same parsers (`-v`, `--mount`,
//! `--tmpfs`, `-p`, `--restart`). What kiln cannot do is refused in one
//! message, never dropped.

use std::collections::BTreeMap;

use containers::network::NetworkFlags;
use containers::restart::RestartPolicy;
use containers::run::RunRequest;
use containers::{mountopts, options};
use runner::spec::Resources;
use serde::Deserialize;
use serde_json::Value;

use crate::http::{ApiError, ApiResult};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateBody {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    pub tty: Option<bool>,
    pub open_stdin: Option<bool>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Value>,
    pub healthcheck: Option<image_store::model::Healthcheck>,
    pub image: Option<String>,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<Value>,
    pub network_disabled: Option<bool>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub mac_address: Option<String>,
    pub host_config: Option<HostConfig>,
    pub networking_config: Option<NetworkingConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub network_mode: Option<String>,
    pub port_bindings: Option<BTreeMap<String, Option<Vec<PortBinding>>>>,
    pub restart_policy: Option<RestartPolicyBody>,
    pub auto_remove: Option<bool>,
    pub volumes_from: Option<Vec<String>>,
    pub mounts: Option<Vec<MountBody>>,
    pub tmpfs: Option<BTreeMap<String, String>>,
    pub dns: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub publish_all_ports: Option<bool>,
    pub readonly_rootfs: Option<bool>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub privileged: Option<bool>,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub devices: Option<Vec<Value>>,
    pub runtime: Option<String>,
    /// docker's legacy links, `NAME[:ALIAS]`.
    pub links: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    pub host_ip: Option<String>,
    pub host_port: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicyBody {
    pub name: Option<String>,
    pub maximum_retry_count: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountBody {
    #[serde(rename = "Type")]
    pub kind: Option<String>,
    pub source: Option<String>,
    pub target: Option<String>,
    pub read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<BTreeMap<String, Option<EndpointConfig>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointConfig {
    pub aliases: Option<Vec<String>>,
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: Option<String>,
}

/// docker's strslice: a list, or one string as a one-word list.
fn words(v: &Option<Value>, field: &str) -> ApiResult<Option<Vec<String>>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(vec![s.clone()])),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| ApiError::bad_request(format!("{field}: want strings")))
            })
            .collect::<ApiResult<Vec<_>>>()
            .map(Some),
        Some(_) => Err(ApiError::bad_request(format!(
            "{field}: want a list of strings"
        ))),
    }
}

fn refuse(what: &str) -> ApiError {
    ApiError::bad_request(format!("{what} is not supported by kiln's Engine API"))
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The request `kiln run` would make for this body; `name` from the query.
pub fn run_request(body: CreateBody, name: Option<String>) -> ApiResult<RunRequest> {
    let image = body
        .image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("Config.Image is required"))?;
    if let Some(n) = &name {
        containers::container_name(n).map_err(bad)?;
    }
    if body.tty == Some(true) {
        return Err(refuse("a terminal (Tty, docker run -t)"));
    }
    if body.open_stdin == Some(true) {
        return Err(refuse("standard input (OpenStdin, docker run -i)"));
    }
    if let Some(h) = &body.healthcheck {
        let kind = h.test.as_ref().and_then(|t| t.first()).map(String::as_str);
        if !matches!(kind, None | Some("NONE" | "CMD" | "CMD-SHELL")) {
            return Err(ApiError::bad_request(format!(
                "Healthcheck.Test: {kind:?} is not NONE, CMD or CMD-SHELL"
            )));
        }
        let times = [h.interval, h.timeout, h.start_period, h.start_interval];
        if times.iter().any(|t| *t < 0) || h.retries < 0 {
            return Err(ApiError::bad_request(
                "Healthcheck: durations and retries cannot be negative",
            ));
        }
    }
    let mut host = body.host_config.unwrap_or_default();
    if host.privileged == Some(true) {
        return Err(refuse("Privileged"));
    }
    if host.cap_add.as_ref().is_some_and(|c| !c.is_empty())
        || host.cap_drop.as_ref().is_some_and(|c| !c.is_empty())
    {
        return Err(refuse("CapAdd/CapDrop"));
    }
    if host.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return Err(refuse("Devices"));
    }
    let runtime = match host.runtime.as_deref() {
        None | Some("") | Some("kiln") => None,
        Some(p) if p.starts_with('/') => Some(std::path::PathBuf::from(p)),
        Some(r) => {
            return Err(ApiError::bad_request(format!(
                "unknown runtime {r:?}: kiln's own, or an OCI runtime's absolute path"
            )))
        }
    };

    // Networking: the same flag parser as `kiln run`.
    let mut mode = match host.network_mode.as_deref() {
        None | Some("") | Some("default") => None,
        Some(m) if m.starts_with("container:") => {
            return Err(refuse("NetworkMode container:…"));
        }
        Some(m) => Some(m.to_string()),
    };
    if body.network_disabled == Some(true) {
        mode = Some("none".into());
    }
    let mut aliases = Vec::new();
    let mut ip = None;
    if let Some(eps) = host_endpoints(body.networking_config) {
        if eps.len() > 1 {
            return Err(refuse("more than one network at create"));
        }
        if let Some((net, ep)) = eps.into_iter().next() {
            // "default": whatever NetworkMode says (the CLI sends both).
            let named = net != "default";
            if named && (mode.is_none() || mode.as_deref() == Some(net.as_str())) {
                mode = Some(net);
            }
            if let Some(ep) = ep {
                aliases = ep.aliases.unwrap_or_default();
                ip = ep
                    .ipam_config
                    .and_then(|i| i.ipv4_address)
                    .filter(|a| !a.is_empty());
            }
        }
    }
    let mut publish = Vec::new();
    for (port, bindings) in host.port_bindings.unwrap_or_default() {
        for b in bindings.unwrap_or_default() {
            let hip = b.host_ip.unwrap_or_default();
            let hport = b.host_port.unwrap_or_default();
            publish.push(match (hip.is_empty(), hport.is_empty()) {
                (true, true) => port.clone(),
                (true, false) => format!("{hport}:{port}"),
                (false, _) => format!("{hip}:{hport}:{port}"),
            });
        }
    }
    let expose: Vec<String> = body.exposed_ports.unwrap_or_default().into_keys().collect();
    let dns = host.dns.unwrap_or_default();
    let dns_search = host.dns_search.unwrap_or_default();
    let dns_options = host.dns_options.unwrap_or_default();
    let add_hosts = host.extra_hosts.unwrap_or_default();
    let links = host.links.take().unwrap_or_default();
    let choice = containers::network::from_flags(NetworkFlags {
        mode: mode.as_deref(),
        publish: &publish,
        publish_all: host.publish_all_ports.unwrap_or(false),
        expose: &expose,
        aliases: &aliases,
        ip: ip.as_deref(),
        dns: &dns,
        dns_search: &dns_search,
        dns_options: &dns_options,
        add_hosts: &add_hosts,
        links: &links,
        mac: body.mac_address.as_deref().filter(|m| !m.is_empty()),
    })
    .map_err(bad)?;

    // Mounts: `-v` (Binds, and Config.Volumes as anonymous volumes),
    // `--mount`, `--tmpfs`, `--volumes-from`.
    let mut volumes = Vec::new();
    for b in host.binds.unwrap_or_default() {
        volumes.push(mountopts::parse_v(&b).map_err(bad)?);
    }
    for m in host.mounts.unwrap_or_default() {
        let mut spec = format!("type={}", m.kind.unwrap_or_else(|| "volume".into()));
        if let Some(s) = m.source.filter(|s| !s.is_empty()) {
            spec.push_str(&format!(",source={s}"));
        }
        if let Some(t) = m.target {
            spec.push_str(&format!(",target={t}"));
        }
        if m.read_only == Some(true) {
            spec.push_str(",readonly");
        }
        volumes.push(mountopts::parse_mount(&spec).map_err(bad)?);
    }
    let bound: Vec<String> = volumes
        .iter()
        .map(|v| v.destination().to_string())
        .collect();
    for target in body.volumes.unwrap_or_default().into_keys() {
        // Already a bind or volume target: docker lets those win.
        if bound.contains(&target) {
            continue;
        }
        volumes.push(mountopts::parse_v(&target).map_err(bad)?);
    }
    let mut mounts = Vec::new();
    for (path, opts) in host.tmpfs.unwrap_or_default() {
        let spec = match opts.is_empty() {
            true => path,
            false => format!("{path}:{opts}"),
        };
        mounts.push(options::parse_tmpfs(&spec).map_err(bad)?);
    }
    let volumes_from = host.volumes_from.unwrap_or_default();
    for f in &volumes_from {
        mountopts::parse_volumes_from(f).map_err(bad)?;
    }

    let mut resources = Resources::default();
    if let Some(m) = host.memory.filter(|m| *m > 0) {
        resources.memory_bytes = Some(m);
    }
    if let Some(n) = host.nano_cpus.filter(|n| *n > 0) {
        resources.cpus = Some(n as f64 / 1e9);
    }
    resources.pids = host.pids_limit.filter(|p| *p > 0);

    let restart = match host.restart_policy {
        None => RestartPolicy::default(),
        Some(p) => {
            let n = p.name.unwrap_or_default();
            let spec = match (n.as_str(), p.maximum_retry_count.unwrap_or(0)) {
                ("", _) => "no".to_string(),
                ("on-failure", c) if c > 0 => format!("on-failure:{c}"),
                (n, _) => n.to_string(),
            };
            RestartPolicy::parse(&spec).map_err(bad)?
        }
    };
    let workdir = body.working_dir.filter(|w| !w.is_empty());
    if let Some(w) = &workdir {
        options::check_workdir(w).map_err(bad)?;
    }
    Ok(RunRequest {
        image,
        name,
        entrypoint: words(&body.entrypoint, "Entrypoint")?,
        command: words(&body.cmd, "Cmd")?.unwrap_or_default(),
        env: body.env.unwrap_or_default(),
        user: body.user.filter(|u| !u.is_empty()),
        workdir,
        hostname: body.hostname.filter(|h| !h.is_empty()),
        terminal: false,
        interactive: false,
        readonly_rootfs: host.readonly_rootfs.unwrap_or(false),
        network: choice.network,
        networking: choice.request,
        network_container: choice.container,
        mounts,
        volumes,
        volumes_from,
        resources,
        runtime,
        auto_remove: host.auto_remove.unwrap_or(false),
        restart,
        labels: body.labels.unwrap_or_default().into_iter().collect(),
        stop_signal: body.stop_signal.filter(|s| !s.is_empty()),
        health: body.healthcheck,
        ..Default::default()
    })
}

fn host_endpoints(n: Option<NetworkingConfig>) -> Option<BTreeMap<String, Option<EndpointConfig>>> {
    n.and_then(|n| n.endpoints_config).filter(|e| !e.is_empty())
}
