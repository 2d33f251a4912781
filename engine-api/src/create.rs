//! `POST /containers/create`'s body (docker's `Config` with `HostConfig`
//! and `NetworkingConfig`) turned into the [`RunRequest`] `kiln run`
//! builds from its flags, through the same parsers (`-v`, `--mount`,
//! `--tmpfs`, `-p`, `--restart`). What kiln cannot do is refused in one
//! message, never dropped.

use std::collections::BTreeMap;

use containers::network::{ConnectRequest, NetworkFlags};
use containers::restart::RestartPolicy;
use containers::run::RunRequest;
use containers::security::{self, Hardening};
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
    pub stdin_once: Option<bool>,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Value>,
    /// Read through [`healthcheck`]: clients send `null` for unset fields.
    pub healthcheck: Option<Value>,
    pub image: Option<String>,
    pub volumes: Option<BTreeMap<String, Value>>,
    pub working_dir: Option<String>,
    pub entrypoint: Option<Value>,
    pub network_disabled: Option<bool>,
    pub labels: Option<BTreeMap<String, String>>,
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
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
    pub devices: Option<Vec<DeviceBody>>,
    pub init: Option<bool>,
    pub shm_size: Option<i64>,
    pub ulimits: Option<Vec<UlimitBody>>,
    pub security_opt: Option<Vec<String>>,
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
pub struct DeviceBody {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UlimitBody {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
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

/// `Config.Healthcheck` with `null` fields as unset (docker-compose sends
/// `"Timeout": null`), into the image config's form.
fn healthcheck(v: Option<Value>) -> ApiResult<Option<image_store::model::Healthcheck>> {
    let Some(mut v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if let Value::Object(m) = &mut v {
        m.retain(|_, x| !x.is_null());
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|e| ApiError::bad_request(format!("Healthcheck: {e}")))
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

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// The request `kiln run` would make for this body (`name` from the query),
/// and the further networks the container joins once created.
pub fn run_request(
    mut body: CreateBody,
    name: Option<String>,
) -> ApiResult<(RunRequest, Vec<ConnectRequest>)> {
    let image = body
        .image
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad_request("Config.Image is required"))?;
    if let Some(n) = &name {
        containers::container_name(n).map_err(bad)?;
    }
    let health = healthcheck(body.healthcheck.take())?;
    if let Some(h) = &health {
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
    let hardening = hardening(&mut host)?;
    if body.stop_timeout.is_some_and(|t| t < 0) {
        return Err(ApiError::bad_request("StopTimeout cannot be negative"));
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
        Some(m) => Some(m.to_string()),
    };
    if body.network_disabled == Some(true) {
        mode = Some("none".into());
    }
    let mut aliases = Vec::new();
    let mut ip = None;
    let mut extra = Vec::new();
    for (net, ep) in host_endpoints(body.networking_config).unwrap_or_default() {
        // "default": whatever NetworkMode says (the CLI sends both).
        let named = net != "default";
        let primary = !named || mode.is_none() || mode.as_deref() == Some(net.as_str());
        let ep = ep.unwrap_or_default();
        let ep_aliases = ep.aliases.unwrap_or_default();
        let ep_ip = ep
            .ipam_config
            .and_then(|i| i.ipv4_address)
            .filter(|a| !a.is_empty());
        if primary {
            if named {
                mode = Some(net);
            }
            aliases = ep_aliases;
            ip = ep_ip;
        } else {
            // More networks: joined after create, as `kiln network connect`.
            let ip = ep_ip
                .map(|a| {
                    a.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "IPAMConfig.IPv4Address {a:?}: not an IPv4 address"
                        ))
                    })
                })
                .transpose()?;
            extra.push(ConnectRequest {
                network: net,
                aliases: ep_aliases,
                ip,
            });
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
    let request = RunRequest {
        image,
        name,
        entrypoint: words(&body.entrypoint, "Entrypoint")?,
        command: words(&body.cmd, "Cmd")?.unwrap_or_default(),
        env: body.env.unwrap_or_default(),
        user: body.user.filter(|u| !u.is_empty()),
        workdir,
        hostname: body.hostname.filter(|h| !h.is_empty()),
        terminal: body.tty.unwrap_or(false),
        interactive: body.open_stdin.unwrap_or(false),
        // The one attached client's end of input is the container's
        // (`docker run -i`); else input stays open for later attaches.
        stdin_once: body.open_stdin == Some(true) && body.stdin_once == Some(true),
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
        health,
        hardening,
        stop_timeout: body.stop_timeout,
        ..Default::default()
    };
    if !extra.is_empty() && request.networking.is_none() {
        return Err(ApiError::bad_request(
            "more networks in EndpointsConfig need a container network first (not none, host or container:)",
        ));
    }
    Ok((request, extra))
}

/// Privileged, CapAdd/CapDrop, Devices, Init, ShmSize, Ulimits and
/// SecurityOpt through the parsers `kiln run`'s flags go through.
fn hardening(host: &mut HostConfig) -> ApiResult<Hardening> {
    let privileged = host.privileged.unwrap_or(false);
    let mut devices = match privileged {
        true => security::host_devices(),
        false => Vec::new(),
    };
    for d in host.devices.take().unwrap_or_default() {
        let ctr = match d.path_in_container.is_empty() {
            true => d.path_on_host.clone(),
            false => d.path_in_container,
        };
        let perms = match d.cgroup_permissions.is_empty() {
            true => "rwm".to_string(),
            false => d.cgroup_permissions,
        };
        let spec = format!("{}:{ctr}:{perms}", d.path_on_host);
        devices.push(security::parse_device(&spec).map_err(bad)?);
    }
    let mut ulimits = Vec::new();
    for u in host.ulimits.take().unwrap_or_default() {
        let spec = format!("{}={}:{}", u.name, u.soft, u.hard);
        ulimits.push(security::parse_ulimit(&spec).map_err(bad)?);
    }
    if host.shm_size.is_some_and(|s| s < 0) {
        return Err(ApiError::bad_request("ShmSize cannot be negative"));
    }
    let mut h = Hardening {
        cap_add: security::parse_caps("CapAdd", &host.cap_add.take().unwrap_or_default())
            .map_err(bad)?,
        cap_drop: security::parse_caps("CapDrop", &host.cap_drop.take().unwrap_or_default())
            .map_err(bad)?,
        ulimits,
        // 0 is docker's "the default".
        shm_size: host.shm_size.filter(|s| *s > 0),
        init: match host.init {
            Some(true) => Some(security::find_init().map_err(bad)?),
            _ => None,
        },
        devices,
        privileged,
        ..Default::default()
    };
    for o in host.security_opt.take().unwrap_or_default() {
        security::parse_security_opt(&mut h, &o).map_err(bad)?;
    }
    Ok(h)
}

fn host_endpoints(n: Option<NetworkingConfig>) -> Option<BTreeMap<String, Option<EndpointConfig>>> {
    n.and_then(|n| n.endpoints_config).filter(|e| !e.is_empty())
}
