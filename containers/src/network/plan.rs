//! What a container on a network asked for, kept beside its record in
//! `network-plan.json` for as long as the container exists: its first
//! network with the ports and DNS flags of `kiln run`, and the networks
//! `network connect` added. The live state ([`super::attach`]'s
//! `network.json`) goes when the container stops; a later `start` sets it
//! up again from here, as docker keeps a stopped container's endpoints.

use std::fs;
use std::path::Path;

use image_store::Store;
use serde::{Deserialize, Serialize};

use super::attach::{self, Attachment, ConnectRequest, Identity, NetworkRequest};
use super::config::Networks;
use super::ports::Proto;
use crate::error::{Error, Result};
use crate::records::Containers;

pub const PLAN_FILE: &str = "network-plan.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    /// The first network (by its name), ports and DNS flags.
    pub request: NetworkRequest,
    /// The image's EXPOSE'd ports (for `-P`).
    pub exposed: Vec<(u16, Proto)>,
    pub hostname: String,
    /// `network connect`, in order.
    #[serde(default)]
    pub connected: Vec<ConnectRequest>,
}

pub fn read(dir: &Path) -> Option<Plan> {
    serde_json::from_slice(&fs::read(dir.join(PLAN_FILE)).ok()?).ok()
}

pub fn write(dir: &Path, plan: &Plan) -> Result<()> {
    let p = dir.join(PLAN_FILE);
    let tmp = dir.join(".network-plan.json.tmp");
    let data = serde_json::to_vec_pretty(plan).expect("plain data");
    fs::write(&tmp, data)
        .and_then(|()| fs::rename(&tmp, &p))
        .map_err(Error::io(p))
}

/// Sets the container's networks up again for a start: its first network
/// as `kiln run` did (new free host ports for those it let kiln pick),
/// then each connected one. On failure nothing is left.
pub fn reattach(store: &Store, who: Identity, plan: &Plan) -> Result<Attachment> {
    let dir = who.dir;
    attach::attach(store, who, &plan.request, &plan.exposed)?;
    let nets = Networks::new(store);
    let joined = nets.lock().and_then(|lock| {
        plan.connected
            .iter()
            .try_for_each(|c| attach::join(store, &lock, dir, c).map(drop))
    });
    if let Err(e) = joined {
        let _ = attach::detach(store, dir);
        return Err(e);
    }
    attach::attachment(dir)
        .ok_or_else(|| Error::Invalid("the network was torn down meanwhile".into()))
}

/// `kiln network connect [--alias A] [--ip IP] NET CONTAINER`: a running
/// (or created) container joins the network now; a stopped one at its
/// next start.
pub fn connect(store: &Store, container: &str, req: ConnectRequest) -> Result<()> {
    let containers = Containers::new(store);
    let rec = containers.container(container)?;
    let dir = containers.container_dir(&rec.id);
    let nets = Networks::new(store);
    let lock = nets.lock()?;
    let mut plan = read(&dir).ok_or_else(|| {
        Error::Invalid(format!(
            "container {} has no container network (it runs with --network none, host or container:): it cannot be connected to one",
            rec.name
        ))
    })?;
    for a in &req.aliases {
        super::etc::check_alias("--alias", a)?;
    }
    let net = nets.get(&lock, &req.network)?;
    if plan.request.network == net.name || plan.connected.iter().any(|c| c.network == net.name) {
        return Err(Error::Invalid(format!(
            "container {} is already connected to network {}",
            rec.name, net.name
        )));
    }
    if !req.aliases.is_empty() && !net.dns {
        return Err(Error::Invalid(format!(
            "--alias needs a network with name resolution; {} has none",
            net.name
        )));
    }
    if let Some(ip) = req.ip {
        if !net.subnet.contains(ip) || ip == net.gateway || ip == net.subnet.addr {
            return Err(Error::Invalid(format!(
                "--ip {ip}: not a host address of network {}'s subnet {} (gateway {})",
                net.name, net.subnet, net.gateway
            )));
        }
    }
    let req = ConnectRequest {
        network: net.name.clone(),
        ..req
    };
    let before = plan.clone();
    plan.connected.push(req.clone());
    write(&dir, &plan)?;
    if let Err(e) = attach::join(store, &lock, &dir, &req) {
        let _ = write(&dir, &before);
        return Err(e);
    }
    Ok(())
}

/// `kiln network disconnect [-f] NET CONTAINER`: the reverse of
/// [`connect`]. A container keeps at least one network.
pub fn disconnect(store: &Store, container: &str, network: &str, force: bool) -> Result<()> {
    let containers = Containers::new(store);
    let rec = containers.container(container)?;
    let dir = containers.container_dir(&rec.id);
    let nets = Networks::new(store);
    let lock = nets.lock()?;
    // A network removed meanwhile is still named in the plan.
    let name = match nets.get(&lock, network) {
        Ok(n) => n.name,
        Err(_) => network.to_string(),
    };
    let not_connected = || {
        Error::Invalid(format!(
            "container {} is not connected to network {name}",
            rec.name
        ))
    };
    let mut plan = read(&dir).ok_or_else(not_connected)?;
    if plan.request.network == name {
        // Its first network, with the published ports, which go with it:
        // the next connected one takes its place.
        if plan.connected.is_empty() {
            return Err(attach::only_network(&rec.name, &name));
        }
        attach::leave(store, &lock, &dir, &name, force)?;
        let next = plan.connected.remove(0);
        let r = &mut plan.request;
        r.network = next.network;
        r.aliases = next.aliases;
        r.ip = next.ip;
        r.publish.clear();
        r.publish_all = false;
        r.mac = None;
        return write(&dir, &plan);
    }
    let i = plan
        .connected
        .iter()
        .position(|c| c.network == name)
        .ok_or_else(not_connected)?;
    attach::leave(store, &lock, &dir, &name, force)?;
    plan.connected.remove(i);
    write(&dir, &plan)
}
