//! What crashed or interrupted kiln processes can leave of this store's
//! container networks, for `kiln system check [--repair]`: address leases
//! and host port claims (host-wide, under /run/kiln) of its containers
//! that are gone or no longer hold them, its network namespace files that
//! no container's network state names, and the bridges of its user
//! networks that neither a lease nor their keeper ([`super::keeper`])
//! holds. They are compared with its containers' `network.json` under
//! `networks.lock`, so a container being set up is not taken for a
//! leftover. Other stores' are theirs to check (a deleted store's stale
//! leases are torn down by the next attach to their bridge,
//! [`super::lease::sweep`]), and the default `kiln0`, which every store
//! shares, is kept for good, as docker's `docker0`.

use std::fs;
use std::path::{Path, PathBuf};

use image_store::check::{CheckReport, Problem};
use image_store::Store;

use super::attach::attachment;
use super::config::Networks;
use super::{lease, netavark, netns};
use crate::records::Containers;

fn problem(object: String, message: String, repaired: bool) -> Problem {
    Problem {
        kind: "network",
        object,
        message,
        repaired,
        action: "removed",
    }
}

/// Adds the store's (and the host's stale) network leftovers to `rep`;
/// with `repair`, removes them.
pub fn check(store: &Store, repair: bool, rep: &mut CheckReport) {
    let nets = Networks::new(store);
    let Ok(lock) = nets.lock() else { return };
    let containers = Containers::new(store);
    let ours = fs::canonicalize(containers.containers_dir()).ok();
    // The holder's attachment when it is a container of this store.
    let own = |holder: &Path| -> Option<Option<super::Attachment>> {
        let ours = ours.as_ref()?;
        holder
            .parent()
            .is_some_and(|p| p == ours)
            .then(|| attachment(holder))
    };

    for (bridge, ip, p, holder) in lease::all_leases() {
        let object = p.display().to_string();
        if own(&holder).is_none() {
            continue;
        }
        if !holder.exists() {
            let repaired = repair && lease::clean(&p);
            let message = format!(
                "lease of {ip} on {bridge} held by container directory {}, which is gone (its interface and firewall rules are torn down)",
                holder.display()
            );
            rep.problems.push(problem(object, message, repaired));
            continue;
        }
        if let Some(a) = own(&holder) {
            let held = a.as_ref().is_some_and(|a| {
                a.addresses().any(|(_, i)| i == ip)
                    && (a.bridge() == Some(bridge.as_str())
                        || a.extra
                            .iter()
                            .any(|e| e.interface() == Some(bridge.as_str())))
            });
            if !held {
                // With no network state the container uses none of it: all
                // goes. Else only the claim (what it names may be the
                // container's current interface).
                let repaired = repair
                    && match a {
                        None => lease::clean(&p),
                        Some(_) => fs::remove_file(&p).is_ok(),
                    };
                let message = format!(
                    "lease of {ip} on {bridge} by container {}, which does not hold that address",
                    short(&holder)
                );
                rep.problems.push(problem(object, message, repaired));
            }
        }
    }

    for (p, key, ip, holder) in lease::all_port_claims() {
        if own(&holder).is_none() {
            continue;
        }
        let object = p.display().to_string();
        let stale = !holder.exists();
        let unheld = !stale
            && own(&holder).is_some_and(|a| {
                !a.is_some_and(|a| {
                    a.ports
                        .iter()
                        .any(|m| lease::port_claim_key(m) == (key.clone(), ip.clone()))
                })
            });
        if stale || unheld {
            let repaired = repair && fs::remove_file(&p).is_ok();
            if repaired {
                let _ = fs::remove_dir(p.parent().expect("in a port directory"));
            }
            let message = match stale {
                true => format!(
                    "host port claim {key} on {ip} by container directory {}, which is gone",
                    holder.display()
                ),
                false => format!(
                    "host port claim {key} on {ip} by container {}, which does not publish it",
                    short(&holder)
                ),
            };
            rep.problems.push(problem(object, message, repaired));
        }
    }

    let netns_dir = nets.run_dir().join("netns");
    for e in fs::read_dir(&netns_dir).into_iter().flatten().flatten() {
        let id = e.file_name().to_string_lossy().into_owned();
        let p = e.path();
        // A RUN step on the bridge (`build --network bridge`) of a live
        // build holds its own.
        let live_step = containers
            .build_step_pid(&id)
            .is_some_and(crate::records::pid_alive);
        let named =
            live_step || attachment(&containers.container_dir(&id)).is_some_and(|a| a.netns == p);
        if !named {
            let repaired = repair && netns::remove(&p).is_ok();
            let message = format!(
                "network namespace of container {} that no container's network state names",
                &id[..12.min(id.len())]
            );
            rep.problems
                .push(problem(p.display().to_string(), message, repaired));
        }
    }

    // Bridges: under the host lock, which netavark's setup and teardown
    // hold, so none is half made here. Leases go after teardown, so a
    // kiln bridge without one is used by no container of any store; without
    // its keeper too, nothing keeps it on purpose (netavark removes such a
    // bridge with its last container).
    let Ok(_host) = netavark::host_lock() else {
        return;
    };
    let own_bridges: Vec<String> = nets
        .list(&lock)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.name != super::DEFAULT_NETWORK)
        .map(|n| n.interface)
        .collect();
    for b in own_bridges.into_iter().filter(|b| is_bridge(b)) {
        // A kept bridge lives as long as its network.
        if lease::bridge_in_use(&b) || super::keeper::kept(&b) {
            continue;
        }
        let repaired = repair && super::keeper::ip(&["link", "delete", &b]).is_ok();
        let message = "kiln network bridge with no container on it".to_string();
        rep.problems.push(problem(b, message, repaired));
    }
}

fn short(holder: &Path) -> String {
    let id = holder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    id[..12.min(id.len())].to_string()
}

/// Whether the host has a bridge named `name`.
fn is_bridge(name: &str) -> bool {
    PathBuf::from("/sys/class/net")
        .join(name)
        .join("bridge")
        .is_dir()
}
