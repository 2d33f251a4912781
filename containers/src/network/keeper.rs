//! A network's bridge lives as long as the network, as docker's `docker0`
//! and its user bridges do, not only while a container is on it.
//!
//! netavark removes a bridge, and its NAT and forwarding rules, when the
//! last container leaves it ("complete teardown"), and makes them all
//! again for the next one. That is most of what `kiln run --rm` costs on
//! the default network: about 25 `iptables` runs and the bridge's removal,
//! 160 ms of a 230 ms run here. netavark 1.4 decides on it by one test:
//! whether any interface is still attached to the bridge. So each bridge
//! gets a keeper: one end of a veth pair, attached and left down (it
//! carries no traffic), which netavark sees and leaves the bridge and its
//! rules in place. No rule is written by hand: netavark still makes every
//! one, and removes them when the network goes ([`release`]).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use super::config::NetworkDef;
use super::netavark::{self, Options};
use super::{lease, netns};
use crate::error::{Error, Result};

/// The keeper of `bridge`: `kk` and 8 hex digits of the bridge's name
/// (interface names have 15 bytes at most, and so may bridge names). Its
/// peer is the same name with a `p`.
pub fn name(bridge: &str) -> String {
    let d = Sha256::digest(bridge.as_bytes());
    format!("kk{:02x}{:02x}{:02x}{:02x}", d[0], d[1], d[2], d[3])
}

fn sys(link: &str) -> PathBuf {
    Path::new("/sys/class/net").join(link)
}

/// The bridge `link` is attached to.
fn master(link: &str) -> Option<String> {
    let m = fs::read_link(sys(link).join("master")).ok()?;
    Some(m.file_name()?.to_string_lossy().into_owned())
}

/// Whether `bridge` has its keeper attached.
pub fn kept(bridge: &str) -> bool {
    master(&name(bridge)).is_some_and(|m| m == bridge)
}

/// `ip ARGS` (iproute2), its last line of error on failure.
pub(super) fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| Error::Invalid(format!("running ip {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::Invalid(format!(
            "ip {}: {}",
            args.join(" "),
            err.lines().last().unwrap_or("failed")
        )));
    }
    Ok(())
}

/// Attaches `bridge`'s keeper (made if missing), after a setup on it.
/// Under the host lock, as netavark's own calls: a keeper is never made
/// or removed while netavark looks at the bridge's interfaces.
pub(super) fn keep(bridge: &str) -> Result<()> {
    if kept(bridge) {
        return Ok(());
    }
    let _host = netavark::host_lock()?;
    let k = name(bridge);
    if !sys(&k).exists() {
        let peer = format!("{k}p");
        ip(&["link", "add", &k, "type", "veth", "peer", "name", &peer])?;
    }
    ip(&["link", "set", &k, "master", bridge])
}

/// Before network `net` is removed: its bridge and rules go, by the one
/// way netavark removes them, the last container's teardown. A stand-in
/// container is set up on it, the keeper removed, and the stand-in torn
/// down. Also for a bridge that lost its keeper (a release whose last
/// teardown failed, tried again). Nothing to do without a bridge (no
/// container ever ran, or netavark removed it with its last one).
pub(super) fn release(net: &NetworkDef, run_dir: &Path) -> Result<()> {
    let k = name(&net.interface);
    if !sys(&net.interface).exists() {
        return remove_keeper(&k);
    }
    // The stand-in's lease names a directory that lives as long as it
    // does: a crash leaves a lease the next release on this network takes
    // again (same holder), and once that directory is gone, a stale one
    // the next attach to the bridge tears down.
    let holder = run_dir.join("release").join(&net.id);
    fs::create_dir_all(&holder).map_err(Error::io(&holder))?;
    lease::sweep(&net.interface);
    // No container of the store is on it, but a crashed one's lease may
    // remain.
    let ip = super::attach::lease_first_free(net, &holder, |_| false)?;
    let id = crate::names::new_id()?;
    let netns = run_dir.join("netns").join(&id);
    let config = run_dir.join("netavark");
    let options = Options::new(
        (&id, "kiln-network-release"),
        "eth0",
        net,
        ip,
        vec![id[..12].to_string()],
        Vec::new(),
    );
    let setup = lease::Setup {
        netns: netns.clone(),
        config: config.clone(),
        options: options.clone(),
    };
    let made = lease::record_setup(&net.interface, ip, &holder, setup)
        .and_then(|()| netns::make(&netns))
        .and_then(|()| netavark::setup_unkept(&config, &netns, &options));
    let res = made
        .and_then(|()| remove_keeper(&k))
        .and_then(|()| netavark::teardown(&config, &netns, &options));
    if res.is_err() && netns.exists() {
        let _ = netavark::teardown(&config, &netns, &options);
    }
    let _ = netns::remove(&netns);
    lease::release(&net.interface, ip, &holder);
    let _ = fs::remove_dir(&holder);
    res
}

fn remove_keeper(k: &str) -> Result<()> {
    let _host = netavark::host_lock()?;
    match sys(k).exists() {
        // Either end removes the pair.
        true => ip(&["link", "delete", k]),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeper_names_fit_an_interface_name_with_the_peer_suffix() {
        for b in ["kiln0", "kiln30c87f28", "a-fifteen-bytes"] {
            let k = name(b);
            assert_eq!(k.len(), 10, "{k}");
            assert!(format!("{k}p").len() <= 15);
            assert!(k.starts_with("kk") && k[2..].bytes().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(name("kiln0"), name("kiln1"));
    }
}
