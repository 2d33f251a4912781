//! A container on a network: [`attach`] before it starts (an address and
//! host ports allocated, a network namespace made and set up by netavark),
//! [`detach`] once it is over (netavark's teardown, the namespace removed,
//! the address and ports freed). What a container holds is its
//! `network.json`, beside its record: the store's allocations are the
//! union of those files, read under `networks.lock`, so removing the file
//! is what frees them and nothing else can drift out of step.

use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use image_store::Store;
use serde::{Deserialize, Serialize};

use super::config::{NetworkDef, NetworkLock, Networks};
use super::etc::DnsRequest;
use super::netavark::{self, Options};
use super::ports::{self, PortMapping, PortSpec, Proto};
use super::{lease, netns};
use crate::error::{Error, Result};
use crate::records::Containers;

/// A container's network state, in its directory.
pub const NETWORK_FILE: &str = "network.json";

/// What `kiln run` asks of the network (kept in the container's
/// [`super::plan`] for its next start).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NetworkRequest {
    /// The network's name (`bridge` or a user network).
    pub network: String,
    /// `--network-alias`: more names other containers resolve.
    pub aliases: Vec<String>,
    /// `-p`.
    pub publish: Vec<PortSpec>,
    /// `-P`: every exposed port to a free host port.
    pub publish_all: bool,
    /// `--expose`, added to the image's EXPOSE.
    pub expose: Vec<(u16, Proto)>,
    /// `--ip`: this address (user networks only, as docker).
    pub ip: Option<Ipv4Addr>,
    /// `--dns*`, `--add-host` (and the hosts lines of `--link`).
    pub dns: DnsRequest,
    /// `--link NAME[:ALIAS]`: resolved when the container is created.
    #[serde(default)]
    pub links: Vec<(String, String)>,
    /// `--mac-address` (the first network's interface).
    #[serde(default)]
    pub mac: Option<String>,
}

/// What a container holds on its network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    pub ports: Vec<PortMapping>,
    /// The ports the container exposes (image and `--expose`).
    #[serde(default)]
    pub exposed: Vec<(u16, Proto)>,
    /// For teardown: what setup was given.
    options: Options,
    /// The container's /etc/hosts entries and resolv.conf, once set up.
    #[serde(default)]
    pub etc: Option<EtcFiles>,
    /// The names other containers resolve besides its name (`--network-alias`
    /// and its short ID), on a network with name resolution.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Its interface's MAC address, as netavark reports it.
    #[serde(default)]
    pub mac: String,
    /// The container's host name (its /etc/hosts line on every network).
    #[serde(default)]
    pub hostname: String,
    /// Networks joined later (`network connect`), each on an interface
    /// of its own in the same namespace.
    #[serde(default)]
    pub extra: Vec<Extra>,
}

/// A network joined by `network connect`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Extra {
    pub network: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// aardvark-dns's addresses on it (a network with name resolution).
    #[serde(default)]
    pub dns_servers: Vec<IpAddr>,
    /// As [`Attachment`]'s.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub mac: String,
    options: Options,
}

impl Extra {
    pub fn interface(&self) -> Option<&str> {
        self.options.bridge()
    }

    /// The ID of the network.
    pub fn network_id(&self) -> &str {
        self.options.network_id().unwrap_or("")
    }
}

/// The container's /etc/hosts lines (after localhost's) and resolv.conf.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EtcFiles {
    pub hosts: String,
    pub resolv_conf: String,
}

impl Attachment {
    /// Every network the container is on, with its address there.
    pub fn addresses(&self) -> impl Iterator<Item = (&str, Ipv4Addr)> {
        std::iter::once((self.network.as_str(), self.ip))
            .chain(self.extra.iter().map(|e| (e.network.as_str(), e.ip)))
    }

    /// Whether the container is on network `name`.
    pub fn on(&self, name: &str) -> bool {
        self.addresses().any(|(n, _)| n == name)
    }

    /// The ID of the network.
    pub fn network_id(&self) -> &str {
        self.options.network_id().unwrap_or("")
    }

    /// The host bridge the container's interface is on.
    pub fn bridge(&self) -> Option<&str> {
        self.options.bridge()
    }

    /// The /etc files for the runner.
    pub fn runner_etc(&self) -> Option<runner::EtcNetwork> {
        self.etc.as_ref().map(|e| runner::EtcNetwork {
            hosts: e.hosts.clone(),
            resolv_conf: e.resolv_conf.clone(),
        })
    }
}

/// The container's attachment, if it has one.
pub fn attachment(dir: &Path) -> Option<Attachment> {
    let data = fs::read(dir.join(NETWORK_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

fn write(dir: &Path, a: &Attachment) -> Result<()> {
    let p = dir.join(NETWORK_FILE);
    let tmp = dir.join(".network.json.tmp");
    let data = serde_json::to_vec_pretty(a).expect("plain data");
    fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&data))
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(Error::io(p))
}

/// Every attachment of the store's containers: `(id, name, attachment)`.
fn all(store: &Store) -> Vec<(String, String, Attachment)> {
    let c = Containers::new(store);
    c.containers()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let a = attachment(&c.container_dir(&r.id))?;
            Some((r.id, r.name, a))
        })
        .collect()
}

/// The names of the containers attached to network `name`, sorted.
pub fn users(store: &Store, name: &str) -> Vec<String> {
    let mut v: Vec<String> = all(store)
        .into_iter()
        .filter(|(_, _, a)| a.on(name))
        .map(|(_, n, _)| n)
        .collect();
    v.sort();
    v
}

/// The container's identity on the network.
pub struct Identity<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub hostname: &'a str,
    pub dir: &'a Path,
}

/// Puts the container on the network `req` names: allocates, makes the
/// namespace, runs netavark setup, records it all in `network.json`. On
/// failure nothing is left. Returns the attachment (its `netns` is what the
/// container joins).
pub fn attach(
    store: &Store,
    who: Identity,
    req: &NetworkRequest,
    image_exposed: &[(u16, Proto)],
) -> Result<Attachment> {
    let nets = Networks::new(store);
    let lock = nets.lock()?;
    let net = nets.get(&lock, &req.network)?;
    if !req.aliases.is_empty() && !net.dns {
        return Err(Error::Invalid(format!(
            "--network-alias needs a network with name resolution; {} has none (create one with `kiln network create`)",
            net.name
        )));
    }
    let others = all(store);
    let mut exposed: Vec<(u16, Proto)> = image_exposed.to_vec();
    for e in &req.expose {
        if !exposed.contains(e) {
            exposed.push(*e);
        }
    }
    let taken: Vec<(String, PortMapping)> = others
        .iter()
        .flat_map(|(_, n, a)| a.ports.iter().map(move |p| (n.clone(), p.clone())))
        .collect();
    let ports = ports::resolve(&req.publish, &exposed, req.publish_all, &taken)?;
    lease::sweep(&net.interface);
    lease::claim_ports(&ports, who.dir)?;
    let ip = match allocate(&net, &others, who.dir, req.ip) {
        Ok(ip) => ip,
        Err(e) => {
            lease::release_ports(&ports, who.dir);
            return Err(e);
        }
    };
    let netns = super::netns_path(store, who.id);
    let mut aliases = req.aliases.clone();
    aliases.push(who.id[..12].to_string());
    let mut options = Options::new(
        (who.id, who.name),
        "eth0",
        &net,
        ip,
        aliases.clone(),
        ports.clone(),
    );
    options.set_dns_servers(&req.dns.servers);
    options.set_mac(req.mac.clone());
    let mut a = Attachment {
        network: net.name.clone(),
        netns: netns.clone(),
        ip,
        prefix: net.subnet.prefix,
        gateway: net.gateway,
        ports,
        exposed,
        options,
        etc: None,
        aliases: match net.dns {
            true => aliases,
            false => Vec::new(),
        },
        mac: String::new(),
        hostname: who.hostname.to_string(),
        extra: Vec::new(),
    };
    // Recorded before anything is made: from here on a crash leaves
    // something [`detach`] (from the orphan reaping) knows how to undo.
    if let Err(e) = write(who.dir, &a) {
        lease::release(&net.interface, ip, who.dir);
        lease::release_ports(&a.ports, who.dir);
        return Err(e);
    }
    let config = nets.run_dir().join("netavark");
    let made = netns::make(&netns)
        .and_then(|()| {
            let setup = lease::Setup {
                netns: netns.clone(),
                config: config.clone(),
                options: a.options.clone(),
            };
            lease::record_setup(&net.interface, ip, who.dir, setup)
        })
        .and_then(|()| netavark::setup(&config, &netns, &a.options));
    let status = match made {
        Ok(s) => s,
        Err(e) => {
            drop(lock);
            let _ = detach(store, who.dir);
            return Err(e);
        }
    };
    a.etc = Some(etc_files(&net, &a, who.hostname, &status, &req.dns));
    a.mac = status
        .interfaces
        .as_ref()
        .and_then(|i| i.get("eth0"))
        .map(|i| i.mac_address.clone())
        .unwrap_or_default();
    write(who.dir, &a)?;
    Ok(a)
}

/// The first free address of `net` (not the gateway, not another
/// container's of this store), or the one asked for, leased host-wide for
/// the container in `holder` (see [`lease`]).
fn allocate(
    net: &NetworkDef,
    others: &[(String, String, Attachment)],
    holder: &Path,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr> {
    if let Some(ip) = wanted {
        if net.name == super::DEFAULT_NETWORK {
            return Err(Error::Invalid(format!(
                "--ip {ip}: a chosen address is supported on user networks only, not {}",
                net.name
            )));
        }
        if !net.subnet.hosts().any(|h| h == ip) || ip == net.gateway {
            return Err(Error::Invalid(format!(
                "--ip {ip}: not a free host address of network {}'s subnet {} (gateway {})",
                net.name, net.subnet, net.gateway
            )));
        }
    }
    let held = |a: &Attachment, ip: Ipv4Addr| a.addresses().any(|(n, i)| n == net.name && i == ip);
    let taken = |ip: Ipv4Addr| {
        others
            .iter()
            .find(|(_, _, a)| held(a, ip))
            .map(|(_, n, _)| n.clone())
    };
    if let Some(ip) = wanted {
        let claimed = match taken(ip) {
            Some(by) => {
                return Err(Error::Invalid(format!(
                    "--ip {ip}: the address is in use by container {by}"
                )))
            }
            None => lease::claim(&net.interface, ip, holder).map_err(|e| {
                Error::Invalid(format!("leasing address {ip} on {}: {e}", net.interface))
            })?,
        };
        return match claimed {
            true => Ok(ip),
            false => Err(Error::Invalid(format!(
                "--ip {ip}: the address is in use on {} by a container of another kiln store",
                net.interface
            ))),
        };
    }
    lease_first_free(net, holder, |ip| taken(ip).is_some())
}

/// The first host address of `net` that is not the gateway nor `taken`,
/// leased host-wide for `holder`.
pub(super) fn lease_first_free(
    net: &NetworkDef,
    holder: &Path,
    taken: impl Fn(Ipv4Addr) -> bool,
) -> Result<Ipv4Addr> {
    for ip in net.subnet.hosts() {
        if ip == net.gateway || taken(ip) {
            continue;
        }
        let claimed = lease::claim(&net.interface, ip, holder).map_err(|e| {
            Error::Invalid(format!("leasing address {ip} on {}: {e}", net.interface))
        })?;
        if claimed {
            return Ok(ip);
        }
    }
    Err(Error::Invalid(format!(
        "network {} has no free address left",
        net.name
    )))
}

/// docker's /etc files for the container (see [`super::etc`]): on a
/// network with name resolution aardvark-dns is its resolver.
fn etc_files(
    net: &NetworkDef,
    a: &Attachment,
    hostname: &str,
    status: &netavark::Status,
    dns: &DnsRequest,
) -> EtcFiles {
    let servers: Vec<IpAddr> = match net.dns {
        true => status.dns_server_ips.clone().unwrap_or_default(),
        false => Vec::new(),
    };
    let search: Vec<String> = match net.dns && !servers.is_empty() {
        true => status.dns_search_domains.clone().unwrap_or_default(),
        false => Vec::new(),
    };
    let resolver = super::etc::Resolver {
        servers: &servers,
        search: &search,
    };
    let (hosts, resolv_conf) = super::etc::files(a.ip, net.gateway, hostname, resolver, dns);
    EtcFiles { hosts, resolv_conf }
}

/// Undoes [`attach`] for the container in `dir`: netavark teardown, the
/// namespace unmounted and removed, `network.json` removed (which frees
/// the address and ports). Nothing to do without an attachment; safe to
/// call from several processes (the lock orders them).
pub fn detach(store: &Store, dir: &Path) -> Result<()> {
    let nets = Networks::new(store);
    let _lock = nets.lock()?;
    let Some(a) = attachment(dir) else {
        return Ok(());
    };
    let mut first_err = None;
    // The networks joined later first, the one with the ports last.
    for e in a.extra.iter().rev() {
        if a.netns.exists() {
            if let Err(err) =
                netavark::teardown(&nets.run_dir().join("netavark"), &a.netns, &e.options)
            {
                first_err.get_or_insert(err);
            }
        }
    }
    if a.netns.exists() {
        if let Err(e) = netavark::teardown(&nets.run_dir().join("netavark"), &a.netns, &a.options) {
            first_err.get_or_insert(e);
        }
    }
    if let Err(e) = netns::remove(&a.netns) {
        first_err.get_or_insert(Error::Invalid(format!(
            "removing network namespace {}: {e}",
            a.netns.display()
        )));
    }
    let p = dir.join(NETWORK_FILE);
    let bridge = a.bridge().map(str::to_string);
    match fs::remove_file(&p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            first_err.get_or_insert(Error::io(p)(e));
        }
        _ => {}
    }
    if let Some(b) = bridge {
        lease::release(&b, a.ip, dir);
    }
    for e in &a.extra {
        if let Some(b) = e.interface() {
            lease::release(b, e.ip, dir);
        }
    }
    lease::release_ports(&a.ports, dir);
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `network connect`'s request: one more network for a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ConnectRequest {
    pub network: String,
    /// `--alias`.
    pub aliases: Vec<String>,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
}

/// Puts the container in `dir`, whose namespace is set up, on one more
/// network: an address leased, netavark setup for that network alone on
/// the next free `ethN`, its /etc files updated. Returns false (and does
/// nothing) when the container has no live attachment (it is stopped: the
/// request waits in its plan for the next start).
pub fn join(store: &Store, lock: &NetworkLock, dir: &Path, req: &ConnectRequest) -> Result<bool> {
    let nets = Networks::new(store);
    let Some(mut a) = attachment(dir) else {
        return Ok(false);
    };
    let net = nets.get(lock, &req.network)?;
    if !req.aliases.is_empty() && !net.dns {
        return Err(Error::Invalid(format!(
            "--alias needs a network with name resolution; {} has none",
            net.name
        )));
    }
    let others = all(store);
    lease::sweep(&net.interface);
    let ip = allocate(&net, &others, dir, req.ip)?;
    let interface = (1..)
        .map(|i| format!("eth{i}"))
        .find(|i| !a.extra.iter().any(|e| e.options.interface_name() == i))
        .expect("an unbounded search");
    let id = a.options.container_id().to_string();
    let name = a.options.container_name().to_string();
    let mut aliases = req.aliases.clone();
    aliases.push(id[..12].to_string());
    let options = Options::new(
        (&id, &name),
        &interface,
        &net,
        ip,
        aliases.clone(),
        Vec::new(),
    );
    a.extra.push(Extra {
        network: net.name.clone(),
        ip,
        prefix: net.subnet.prefix,
        gateway: net.gateway,
        dns_servers: Vec::new(),
        aliases: match net.dns {
            true => aliases,
            false => Vec::new(),
        },
        mac: String::new(),
        options: options.clone(),
    });
    // Recorded first, as in [`attach`]: a crash leaves what detach undoes.
    let config = nets.run_dir().join("netavark");
    let setup = lease::Setup {
        netns: a.netns.clone(),
        config: config.clone(),
        options: options.clone(),
    };
    let made = write(dir, &a)
        .and_then(|()| lease::record_setup(&net.interface, ip, dir, setup))
        .and_then(|()| netavark::setup(&config, &a.netns, &options));
    let status = match made {
        Ok(s) => s,
        Err(e) => {
            let _ = netavark::teardown(&config, &a.netns, &options);
            a.extra.pop();
            let _ = write(dir, &a);
            lease::release(&net.interface, ip, dir);
            return Err(e);
        }
    };
    let extra = a.extra.last_mut().expect("pushed above");
    extra.mac = status
        .interfaces
        .as_ref()
        .and_then(|i| i.get(&interface))
        .map(|i| i.mac_address.clone())
        .unwrap_or_default();
    if net.dns {
        extra.dns_servers = status.dns_server_ips.unwrap_or_default();
    }
    let extra = extra.clone();
    let known = resolvers(&a);
    if let Some(etc) = &mut a.etc {
        if !a.hostname.is_empty() {
            etc.hosts.push_str(&format!("{ip}\t{}\n", a.hostname));
        }
        etc.resolv_conf = super::etc::add_nameservers(&etc.resolv_conf, &extra.dns_servers, &known);
    }
    write(dir, &a)?;
    rewrite_etc(dir, &a)?;
    Ok(true)
}

/// [`leave`] for the container's first network (the one with its
/// published ports, which go with it): the next one takes its place.
fn leave_first(nets: &Networks, dir: &Path, mut a: Attachment, force: bool) -> Result<bool> {
    if a.extra.is_empty() {
        return Err(only_network(a.options.container_name(), &a.network));
    }
    if a.netns.exists() {
        if let Err(err) = netavark::teardown(&nets.run_dir().join("netavark"), &a.netns, &a.options)
        {
            if !force {
                return Err(err);
            }
            eprintln!("kiln: WARNING: {err} (disconnected anyway: -f)");
        }
    }
    let old_ip = a.ip;
    let old_bridge = a.bridge().map(str::to_string);
    let old_ports = std::mem::take(&mut a.ports);
    let old_dns: Vec<IpAddr> = match a.options.dns_enabled() {
        true => vec![IpAddr::V4(a.gateway)],
        false => Vec::new(),
    };
    let next = a.extra.remove(0);
    a.network = next.network;
    a.ip = next.ip;
    a.prefix = next.prefix;
    a.gateway = next.gateway;
    a.aliases = next.aliases;
    a.mac = next.mac;
    a.options = next.options;
    let still = resolvers(&a);
    if let Some(etc) = &mut a.etc {
        let line = format!("{old_ip}\t{}\n", a.hostname);
        etc.hosts = etc.hosts.replacen(&line, "", 1);
        let gone: Vec<IpAddr> = old_dns.into_iter().filter(|s| !still.contains(s)).collect();
        etc.resolv_conf = super::etc::remove_nameservers(&etc.resolv_conf, &gone);
    }
    write(dir, &a)?;
    if let Some(b) = old_bridge {
        lease::release(&b, old_ip, dir);
    }
    lease::release_ports(&old_ports, dir);
    rewrite_etc(dir, &a)?;
    Ok(true)
}

/// The refusal to take a container off its last network.
pub(super) fn only_network(container: &str, network: &str) -> Error {
    Error::Invalid(format!(
        "container {container} cannot be disconnected from {network}: it is its only network (connect another one first, or run it with --network none)"
    ))
}

/// The aardvark-dns addresses the container's resolv.conf may hold: the
/// gateways of its networks with name resolution.
fn resolvers(a: &Attachment) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = Vec::new();
    if a.options.dns_enabled() {
        v.push(IpAddr::V4(a.gateway));
    }
    for e in &a.extra {
        v.extend(e.dns_servers.iter().copied());
    }
    v
}

fn rewrite_etc(dir: &Path, a: &Attachment) -> Result<()> {
    match a.runner_etc() {
        Some(etc) => runner::rewrite_etc_network(dir, &etc).map_err(Error::Run),
        None => Ok(()),
    }
}

/// Takes the container in `dir` off network `name` joined by [`join`]:
/// netavark teardown of that network alone, the address freed, the /etc
/// files updated. `force`: a failed teardown is reported on stderr and the
/// network dropped anyway. Returns false when the container has no live
/// attachment (stopped).
pub fn leave(
    store: &Store,
    _lock: &NetworkLock,
    dir: &Path,
    name: &str,
    force: bool,
) -> Result<bool> {
    let nets = Networks::new(store);
    let Some(mut a) = attachment(dir) else {
        return Ok(false);
    };
    if a.network == name {
        return leave_first(&nets, dir, a, force);
    }
    let Some(i) = a.extra.iter().position(|e| e.network == name) else {
        return Err(Error::Invalid(format!(
            "container {} is not connected to network {name}",
            a.options.container_name()
        )));
    };
    let e = a.extra[i].clone();
    if a.netns.exists() {
        if let Err(err) = netavark::teardown(&nets.run_dir().join("netavark"), &a.netns, &e.options)
        {
            if !force {
                return Err(err);
            }
            eprintln!("kiln: WARNING: {err} (disconnected anyway: -f)");
        }
    }
    a.extra.remove(i);
    let still = resolvers(&a);
    if let Some(etc) = &mut a.etc {
        let line = format!("{}\t{}\n", e.ip, a.hostname);
        etc.hosts = etc.hosts.replacen(&line, "", 1);
        let gone: Vec<IpAddr> = e
            .dns_servers
            .iter()
            .filter(|s| !still.contains(s))
            .copied()
            .collect();
        etc.resolv_conf = super::etc::remove_nameservers(&etc.resolv_conf, &gone);
    }
    write(dir, &a)?;
    if let Some(b) = e.interface() {
        lease::release(b, e.ip, dir);
    }
    rewrite_etc(dir, &a)?;
    Ok(true)
}
