//! netavark, podman's network backend, which kiln drives as podman does:
//! `netavark --config DIR setup|teardown NETNS` with the container's
//! network options as JSON on standard input (the 1.4 format: see
//! netavark's `src/network/types.rs`). It makes the bridge, the veth pair,
//! the addresses and routes, the firewall rules for NAT and published
//! ports, and starts aardvark-dns for networks with name resolution.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::config::NetworkDef;
use super::ports::PortMapping;
use crate::error::{Error, Result};

/// Where distributions install them (podman's helper directories).
const HELPER_DIRS: [&str; 4] = [
    "/usr/libexec/podman",
    "/usr/lib/podman",
    "/usr/local/libexec/podman",
    "/usr/local/lib/podman",
];

fn helper(name: &str) -> Result<PathBuf> {
    HELPER_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{name} not found in {}: install the {name} package for container networks, or run with --network none",
                HELPER_DIRS.join(", ")
            ))
        })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Subnet {
    subnet: String,
    gateway: Ipv4Addr,
}

/// netavark's `Network`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Network {
    name: String,
    id: String,
    driver: String,
    network_interface: String,
    subnets: Vec<Subnet>,
    ipv6_enabled: bool,
    internal: bool,
    dns_enabled: bool,
    ipam_options: BTreeMap<String, String>,
}

/// netavark's `PerNetworkOptions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PerNetwork {
    interface_name: String,
    static_ips: Vec<Ipv4Addr>,
    aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    static_mac: Option<String>,
}

/// netavark's `NetworkOptions`: what `setup` and `teardown` are given.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    container_id: String,
    container_name: String,
    networks: BTreeMap<String, PerNetwork>,
    network_info: BTreeMap<String, Network>,
    port_mappings: Vec<PortMapping>,
    /// Where aardvark-dns forwards what it does not answer (`--dns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns_servers: Option<Vec<std::net::IpAddr>>,
}

impl Options {
    pub fn set_dns_servers(&mut self, servers: &[std::net::IpAddr]) {
        self.dns_servers = (!servers.is_empty()).then(|| servers.to_vec());
    }

    /// `--mac-address` for the (one) network's interface.
    pub fn set_mac(&mut self, mac: Option<String>) {
        for n in self.networks.values_mut() {
            n.static_mac = mac.clone();
        }
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    pub fn container_name(&self) -> &str {
        &self.container_name
    }

    /// The container's interface on the (one) network.
    pub fn interface_name(&self) -> &str {
        self.networks
            .values()
            .next()
            .map_or("", |n| n.interface_name.as_str())
    }

    /// Whether the (one) network has name resolution (aardvark-dns).
    pub fn dns_enabled(&self) -> bool {
        self.network_info.values().any(|n| n.dns_enabled)
    }

    /// The (one) network's ID.
    pub fn network_id(&self) -> Option<&str> {
        self.network_info.values().next().map(|n| n.id.as_str())
    }

    /// The bridge of the (one) network.
    pub fn bridge(&self) -> Option<&str> {
        self.network_info
            .values()
            .next()
            .map(|n| n.network_interface.as_str())
    }

    /// One interface, `interface` (`eth0` for the first network), on `net`
    /// with address `ip`.
    pub fn new(
        who: (&str, &str),
        interface: &str,
        net: &NetworkDef,
        ip: Ipv4Addr,
        aliases: Vec<String>,
        ports: Vec<PortMapping>,
    ) -> Options {
        let (id, name) = who;
        let info = Network {
            name: net.name.clone(),
            id: net.id.clone(),
            driver: net.driver.clone(),
            network_interface: net.interface.clone(),
            subnets: vec![Subnet {
                subnet: net.subnet.to_string(),
                gateway: net.gateway,
            }],
            ipv6_enabled: false,
            internal: net.internal,
            dns_enabled: net.dns,
            // kiln allocates the addresses (static_ips); netavark only
            // configures them.
            ipam_options: [("driver".to_string(), "host-local".to_string())].into(),
        };
        Options {
            container_id: id.to_string(),
            container_name: name.to_string(),
            networks: [(
                net.name.clone(),
                PerNetwork {
                    interface_name: interface.into(),
                    static_ips: vec![ip],
                    aliases,
                    static_mac: None,
                },
            )]
            .into(),
            network_info: [(net.name.clone(), info)].into(),
            port_mappings: ports,
            dns_servers: None,
        }
    }
}

/// What `setup` reports per network (netavark's `StatusBlock`, the parts
/// kiln uses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub dns_search_domains: Option<Vec<String>>,
    #[serde(default)]
    pub dns_server_ips: Option<Vec<std::net::IpAddr>>,
    /// The container's interfaces by name.
    #[serde(default)]
    pub interfaces: Option<BTreeMap<String, Interface>>,
}

/// One interface of a `setup` status.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Interface {
    #[serde(default)]
    pub mac_address: String,
}

/// Held around each netavark call: the bridges and firewall chains it
/// makes and removes are the host's, shared by every store, and netavark
/// only locks per configuration directory (per store).
const HOST_LOCK: &str = "/run/kiln/netavark.lock";

pub(super) fn host_lock() -> Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    let p = Path::new(HOST_LOCK);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(Error::io(d))?;
    }
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(p)
        .map_err(Error::io(p))?;
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(p)(std::io::Error::last_os_error()));
    }
    Ok(f)
}

fn run(config: &Path, verb: &str, netns: &Path, opts: &Options) -> Result<Vec<u8>> {
    std::fs::create_dir_all(config).map_err(Error::io(config))?;
    let _host = host_lock()?;
    let mut cmd = Command::new(helper("netavark")?);
    cmd.arg("--config")
        .arg(config)
        .arg("--aardvark-binary")
        .arg(helper("aardvark-dns")?)
        .arg(verb)
        .arg(netns)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Invalid(format!("starting netavark: {e}")))?;
    let input = serde_json::to_vec(opts).expect("plain data");
    let mut stdin = child.stdin.take().expect("piped");
    let _ = stdin.write_all(&input);
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Invalid(format!("waiting for netavark: {e}")))?;
    if !out.status.success() {
        // Errors come as `{"error": "..."}` on standard output.
        #[derive(Deserialize)]
        struct Failure {
            error: String,
        }
        let msg = serde_json::from_slice::<Failure>(&out.stdout)
            .map(|f| f.error)
            .unwrap_or_else(|_| {
                let text = String::from_utf8_lossy(&out.stderr);
                text.lines().last().unwrap_or("").to_string()
            });
        return Err(Error::Invalid(format!("netavark {verb}: {msg}")));
    }
    Ok(out.stdout)
}

/// `netavark setup`: configures `netns`; returns the network's status.
/// The bridge is then kept for the network's life ([`super::keeper`]).
pub fn setup(config: &Path, netns: &Path, opts: &Options) -> Result<Status> {
    let status = setup_once(config, netns, opts)?;
    if let Some(bridge) = opts.bridge() {
        // Without its keeper the bridge still works: netavark removes it
        // with the last container and makes it again for the next one,
        // as before; only slower. So a host without `ip` is not refused.
        if let Err(e) = super::keeper::keep(bridge) {
            eprintln!("kiln: WARNING: keeping bridge {bridge} between containers: {e}");
        }
    }
    Ok(status)
}

/// `netavark setup` alone, for the stand-in of [`super::keeper::release`].
pub(super) fn setup_unkept(config: &Path, netns: &Path, opts: &Options) -> Result<()> {
    setup_once(config, netns, opts).map(drop)
}

fn setup_once(config: &Path, netns: &Path, opts: &Options) -> Result<Status> {
    let out = run(config, "setup", netns, opts)?;
    let mut all: BTreeMap<String, Status> = serde_json::from_slice(&out)
        .map_err(|e| Error::Invalid(format!("netavark setup: unexpected output: {e}")))?;
    Ok(all.pop_first().map(|(_, s)| s).unwrap_or_default())
}

/// `netavark teardown`: removes what `setup` made.
pub fn teardown(config: &Path, netns: &Path, opts: &Options) -> Result<()> {
    run(config, "teardown", netns, opts).map(drop)
}
