//! Network definitions, one JSON file each in the store's
//! `kiln/networks/<name>.json`, changed under `kiln/locks/networks.lock`
//! (which also guards address and port allocation, see
//! [`super::attach`]), written to a temp file and renamed.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use image_store::Store;
use serde::{Deserialize, Serialize};

use super::subnet::Subnet;
use crate::error::{Error, Result};

/// The default network's name, as docker's.
pub const DEFAULT_NETWORK: &str = "bridge";

/// The default network's subnet. Not docker's 172.17.0.0/16 (a local
/// docker's `docker0` has it) nor the rest of docker's default pools
/// (172.17–31/16, 192.168/16), not podman's 10.88.0.0/16 and 10.89.x/24,
/// not kubernetes' common 10.42/16, 10.43/16 and 10.96/12, and away from
/// the 10.0.x/24 and 10.1.x/24 home and office LANs use most.
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

/// Where `network create` without `--subnet` takes /24s from:
/// 10.78.0.0/24, 10.78.1.0/24, … (the same reasoning as
/// [`DEFAULT_SUBNET`]), skipping any that overlaps a kiln network or a
/// route of the host.
const USER_POOL: [u8; 2] = [10, 78];

/// A network containers can be attached to (netavark's bridge driver).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkDef {
    pub name: String,
    pub id: String,
    pub driver: String,
    /// The host bridge (`kiln0` for the default network, `kiln` and the
    /// first 8 digits of the ID for others).
    pub interface: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// No route out, no NAT.
    pub internal: bool,
    /// Containers resolve each other's names (aardvark-dns); off on the
    /// default network, as docker's.
    pub dns: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub created: String,
}

/// What `network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<Subnet>,
    pub gateway: Option<Ipv4Addr>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// The store's networks.
pub struct Networks<'s> {
    store: &'s Store,
}

/// The held `networks.lock`.
pub struct NetworkLock(#[allow(dead_code)] image_store::LockGuard);

impl<'s> Networks<'s> {
    pub fn new(store: &'s Store) -> Networks<'s> {
        Networks { store }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    fn dir(&self) -> PathBuf {
        self.store.kiln_dir().join("networks")
    }

    /// Run-time state that does not survive a reboot: network namespace
    /// files and netavark's (aardvark-dns's) configuration.
    pub fn run_dir(&self) -> PathBuf {
        self.store.kiln_dir().join("run")
    }

    /// Takes `networks.lock` (exclusive), held while definitions,
    /// addresses or ports are read and changed.
    pub fn lock(&self) -> Result<NetworkLock> {
        Ok(NetworkLock(self.store.exclusive_lock("networks")?))
    }

    /// All networks, the default one included (made on first use), by name.
    pub fn list(&self, lock: &NetworkLock) -> Result<Vec<NetworkDef>> {
        let mut out = vec![self.get(lock, DEFAULT_NETWORK)?];
        let dir = self.dir();
        for e in fs::read_dir(&dir).map_err(Error::io(&dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(n) = name.strip_suffix(".json") else {
                continue;
            };
            if n != DEFAULT_NETWORK {
                out.push(self.read(n)?.expect("listed"));
            }
        }
        out[1..].sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn read(&self, name: &str) -> Result<Option<NetworkDef>> {
        let p = self.dir().join(format!("{name}.json"));
        match fs::read(&p) {
            Ok(data) => serde_json::from_slice(&data)
                .map(Some)
                .map_err(Error::json(p)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(p)(e)),
        }
    }

    fn write(&self, n: &NetworkDef) -> Result<()> {
        let dir = self.dir();
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        let p = dir.join(format!("{}.json", n.name));
        let tmp = dir.join(format!(".{}.json.tmp", n.name));
        let data = serde_json::to_vec_pretty(n).expect("plain data");
        fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&data).and_then(|()| f.sync_all()))
            .and_then(|()| fs::rename(&tmp, &p))
            .map_err(Error::io(&p))
    }

    /// The network `name` (a unique ID prefix also works); the default
    /// network is made when first asked for.
    pub fn get(&self, lock: &NetworkLock, name: &str) -> Result<NetworkDef> {
        if name == DEFAULT_NETWORK {
            if let Some(n) = self.read(name)? {
                return Ok(n);
            }
            let subnet: Subnet = DEFAULT_SUBNET.parse().expect("a valid constant");
            let n = NetworkDef {
                name: DEFAULT_NETWORK.into(),
                id: crate::names::new_id()?,
                driver: "bridge".into(),
                interface: "kiln0".into(),
                subnet,
                gateway: subnet.first_host(),
                internal: false,
                dns: false,
                labels: BTreeMap::new(),
                created: image_store::model::now(),
            };
            self.write(&n)?;
            return Ok(n);
        }
        if crate::records::container_name(name).is_ok() {
            if let Some(n) = self.read(name)? {
                return Ok(n);
            }
        }
        let all = self.list(lock)?;
        let hits: Vec<_> = all
            .into_iter()
            .filter(|n| name.len() >= 3 && n.id.starts_with(name))
            .collect();
        match hits.len() {
            1 => Ok(hits.into_iter().next().expect("one")),
            0 => Err(Error::Invalid(format!("no such network: {name}"))),
            _ => Err(Error::Invalid(format!(
                "network ID {name:?} is ambiguous: it matches {} networks",
                hits.len()
            ))),
        }
    }

    /// `network create`.
    pub fn create(&self, lock: &NetworkLock, req: CreateRequest) -> Result<NetworkDef> {
        crate::records::container_name(&req.name)
            .map_err(|_| Error::Invalid(format!("invalid network name {:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters", req.name)))?;
        let all = self.list(lock)?;
        if all.iter().any(|n| n.name == req.name) {
            return Err(Error::Invalid(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let routes = host_routes();
        let subnet = match req.subnet {
            Some(s) => {
                if let Some(o) = all.iter().find(|n| n.subnet.overlaps(s)) {
                    return Err(Error::Invalid(format!(
                        "subnet {s} overlaps network {}'s {}",
                        o.name, o.subnet
                    )));
                }
                s
            }
            None => (0..=255u8)
                .map(|i| Subnet {
                    addr: Ipv4Addr::new(USER_POOL[0], USER_POOL[1], i, 0),
                    prefix: 24,
                })
                .find(|s| {
                    !all.iter().any(|n| n.subnet.overlaps(*s))
                        && !routes.iter().any(|r| r.overlaps(*s))
                })
                .ok_or_else(|| {
                    Error::Invalid("no free subnet left in 10.78.0.0/16: give --subnet".into())
                })?,
        };
        let gateway = match req.gateway {
            Some(g) if !subnet.contains(g) || g == subnet.addr => {
                return Err(Error::Invalid(format!(
                    "gateway {g} is not a host address of subnet {subnet}"
                )))
            }
            Some(g) => g,
            None => subnet.first_host(),
        };
        // Named after the network's ID, not numbered per store: bridges are
        // the host's, and another store's first network would be `kiln1`
        // too. (The default `kiln0` is shared on purpose, see lease.rs.)
        let id = crate::names::new_id()?;
        let interface = format!("kiln{}", &id[..8]);
        let n = NetworkDef {
            name: req.name,
            id,
            driver: "bridge".into(),
            interface,
            subnet,
            gateway,
            internal: req.internal,
            dns: true,
            labels: req.labels,
            created: image_store::model::now(),
        };
        self.write(&n)?;
        Ok(n)
    }

    /// Removes a user network no container is attached to.
    pub fn remove(&self, lock: &NetworkLock, name: &str) -> Result<NetworkDef> {
        let n = self.get(lock, name)?;
        if n.name == DEFAULT_NETWORK {
            return Err(Error::Invalid(format!(
                "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
            )));
        }
        let users = super::attach::users(self.store, &n.name);
        if !users.is_empty() {
            return Err(Error::Invalid(format!(
                "network {} is in use by container {}",
                n.name,
                users.join(", ")
            )));
        }
        // The bridge first: if that fails the network is still there to
        // remove again.
        super::keeper::release(&n, &self.run_dir())?;
        let p = self.dir().join(format!("{}.json", n.name));
        fs::remove_file(&p).map_err(Error::io(p))?;
        Ok(n)
    }
}

impl Networks<'_> {
    /// `network prune`: removes every user network no container is
    /// attached to; returns their names.
    pub fn prune(&self, lock: &NetworkLock) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for n in self.list(lock)? {
            if n.name != DEFAULT_NETWORK && super::attach::users(self.store, &n.name).is_empty() {
                self.remove(lock, &n.name)?;
                out.push(n.name);
            }
        }
        Ok(out)
    }
}

/// The IPv4 destinations of the host's routes (other than the default
/// route), which a new network's subnet must not overlap.
fn host_routes() -> Vec<Subnet> {
    let text = fs::read_to_string("/proc/net/route").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            // The file prints the network-order bytes as a native integer.
            let dest = Ipv4Addr::from(dest.to_ne_bytes());
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then_some(Subnet { addr: dest, prefix })
        })
        .collect()
}
