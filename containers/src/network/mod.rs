//! Container networking, rootful, through netavark (podman's backend):
//! network definitions ([`config`]), published ports ([`ports`]), and a
//! container's place on a network ([`attach`]): a network namespace file
//! ([`netns`]) that netavark sets up before the container joins it and
//! tears down after it ends.

pub mod attach;
pub mod config;
pub mod etc;
pub mod keeper;
mod lease;
pub mod leftovers;
pub mod link;
mod netavark;
mod netns;
pub mod plan;
pub mod ports;
pub mod shared;
pub mod slirp;
pub mod subnet;

pub use attach::{attach, attachment, detach, Attachment, ConnectRequest, NetworkRequest};
pub use config::{CreateRequest, NetworkDef, Networks, DEFAULT_NETWORK};
pub use plan::{connect, disconnect};
pub use ports::{PortMapping, PortSpec, Proto};

/// Where the network namespace of container `id` is mounted.
pub fn netns_path(store: &image_store::Store, id: &str) -> std::path::PathBuf {
    Networks::new(store).run_dir().join("netns").join(id)
}

/// The published ports of container `name` (none when it has no network
/// or it has ended), for `kiln port` and `kiln ps`.
pub fn published(store: &image_store::Store, c: &crate::Container) -> Vec<PortMapping> {
    let dir = crate::Containers::new(store).container_dir(&c.id);
    if let Some(a) = attachment(&dir) {
        return a.ports;
    }
    match c.is_running() {
        true => slirp::state(&dir).map(|s| s.ports).unwrap_or_default(),
        false => Vec::new(),
    }
}

/// The networks container `c` is on now (for `ps`): its network and the
/// connected ones, or slirp4netns while it runs there.
pub fn names(store: &image_store::Store, c: &crate::Container) -> Vec<String> {
    let dir = crate::Containers::new(store).container_dir(&c.id);
    match attachment(&dir) {
        Some(a) => a.addresses().map(|(n, _)| n.to_string()).collect(),
        None if c.is_running() && dir.join(slirp::SLIRP_FILE).exists() => {
            vec![slirp::MODE.to_string()]
        }
        None => Vec::new(),
    }
}

/// docker's `HostConfig.NetworkMode` of the container in `dir`, when it
/// is on a container network or joins another container's namespace.
pub fn mode(dir: &std::path::Path) -> Option<String> {
    if let Some(p) = plan::read(dir) {
        return Some(p.request.network);
    }
    if dir.join(slirp::SLIRP_FILE).exists() {
        return Some(slirp::MODE.into());
    }
    let id = std::fs::read_to_string(dir.join(shared::SHARED_FILE)).ok()?;
    Some(format!("container:{id}"))
}

/// `--mac-address`: six hex pairs, a unicast address, lower-cased.
fn parse_mac(s: &str) -> crate::Result<String> {
    let parts: Vec<&str> = s.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    let multicast = ok && u8::from_str_radix(parts[0], 16).is_ok_and(|b| b & 1 == 1);
    match ok && !multicast {
        true => Ok(s.to_ascii_lowercase()),
        false => Err(crate::Error::Invalid(format!(
            "invalid --mac-address {s:?}: want a unicast address such as 92:d0:c6:0a:29:33"
        ))),
    }
}

/// `kiln run`'s network when none is asked for: the default bridge, as
/// docker's, when kiln can set one up (root in the host's user namespace:
/// netavark needs the host's network namespace); otherwise `none`, since
/// unprivileged networks (slirp4netns, pasta) are not built yet.
pub fn default_mode() -> &'static str {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let initial_userns = std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    });
    match root && initial_userns {
        true => DEFAULT_NETWORK,
        // Root of another user namespace keeps none: slirp4netns is for
        // the unprivileged user, whose containers get a user namespace.
        false if !root && slirp::available() => slirp::MODE,
        false => "none",
    }
}

/// `kiln run`'s network flags, as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkFlags<'a> {
    /// `--network`; None: [`default_mode`].
    pub mode: Option<&'a str>,
    pub publish: &'a [String],
    pub publish_all: bool,
    pub expose: &'a [String],
    pub aliases: &'a [String],
    /// `--ip`.
    pub ip: Option<&'a str>,
    pub dns: &'a [String],
    pub dns_search: &'a [String],
    pub dns_options: &'a [String],
    pub add_hosts: &'a [String],
    /// `--link NAME[:ALIAS]`.
    pub links: &'a [String],
    /// `--mac-address`.
    pub mac: Option<&'a str>,
}

/// What the network flags chose.
#[derive(Debug)]
pub struct Choice {
    /// The runner's mode.
    pub network: runner::spec::Network,
    /// A netavark network: what to ask of it.
    pub request: Option<NetworkRequest>,
    /// `--network container:NAME`: the container whose namespace to join.
    pub container: Option<String>,
}

/// The network flags, checked. Bad flags are refused with one line.
pub fn from_flags(f: NetworkFlags) -> crate::Result<Choice> {
    use crate::Error;
    let mode = f.mode.unwrap_or(default_mode()).to_string();
    let mut container = None;
    let request = match mode.as_str() {
        "none" | "host" => None,
        name if name.starts_with("container:") => {
            let c = &name["container:".len()..];
            if c.is_empty() {
                return Err(Error::Invalid(
                    "--network container: needs a container's name or ID".into(),
                ));
            }
            container = Some(c.to_string());
            None
        }
        name if name.contains(':') => {
            return Err(Error::Invalid(format!(
                "unsupported network mode {name:?}: none, host, bridge, container:NAME or a network name"
            )))
        }
        name => {
            // SAFETY: geteuid cannot fail.
            if name != slirp::MODE && unsafe { libc::geteuid() } != 0 {
                return Err(Error::Invalid(format!(
                    "--network {name}: bridge and user networks need root; unprivileged containers use --network {} (or none or host)",
                    slirp::MODE
                )));
            }
            if name == slirp::MODE && (!f.aliases.is_empty() || f.ip.is_some()) {
                return Err(Error::Invalid(format!(
                    "--network-alias and --ip need a bridge or user network, not {name}"
                )));
            }
            let mut dns = etc::DnsRequest::default();
            for d in f.dns {
                dns.servers.push(d.parse().map_err(|_| {
                    Error::Invalid(format!("invalid --dns {d:?}: not an IP address"))
                })?);
            }
            for w in f.dns_search {
                etc::check_word("--dns-search", w)?;
                dns.search.push(w.clone());
            }
            for w in f.dns_options {
                etc::check_word("--dns-option", w)?;
                dns.options.push(w.clone());
            }
            for a in f.aliases {
                etc::check_alias("--network-alias", a)?;
            }
            for h in f.add_hosts {
                dns.add_hosts.push(etc::parse_add_host(h)?);
            }
            let links = f
                .links
                .iter()
                .map(|l| link::parse(l))
                .collect::<crate::Result<_>>()?;
            let mac = f.mac.map(parse_mac).transpose()?;
            if mac.is_some() && name == slirp::MODE {
                return Err(Error::Invalid(format!(
                    "--mac-address needs a bridge or user network, not {name}"
                )));
            }
            let mut expose = Vec::new();
            for e in f.expose {
                expose.extend(ports::parse_expose(e)?);
            }
            Some(NetworkRequest {
                network: name.to_string(),
                aliases: f.aliases.to_vec(),
                publish: f
                    .publish
                    .iter()
                    .map(|p| PortSpec::parse(p))
                    .collect::<crate::Result<_>>()?,
                publish_all: f.publish_all,
                expose,
                ip: f
                    .ip
                    .map(|ip| {
                        ip.parse().map_err(|_| {
                            Error::Invalid(format!("invalid --ip {ip:?}: not an IPv4 address"))
                        })
                    })
                    .transpose()?,
                dns,
                links,
                mac,
            })
        }
    };
    if request.is_none()
        && (!f.publish.is_empty()
            || f.publish_all
            || !f.expose.is_empty()
            || !f.aliases.is_empty()
            || f.ip.is_some()
            || !f.dns.is_empty()
            || !f.dns_search.is_empty()
            || !f.dns_options.is_empty()
            || !f.add_hosts.is_empty()
            || !f.links.is_empty()
            || f.mac.is_some())
    {
        return Err(Error::Invalid(format!(
            "-p, -P, --expose, --network-alias, --ip, --mac-address, --link, --dns, --dns-search, --dns-option and --add-host need a container network (--network bridge or a network name), not --network {mode}"
        )));
    }
    let network = match (&request, &container) {
        (None, None) => crate::options::parse_network(&mode)?,
        _ => runner::spec::Network::None,
    };
    Ok(Choice {
        network,
        request,
        container,
    })
}
