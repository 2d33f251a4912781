//! What crashed or interrupted kiln processes can leave of container
//! networks, for `kiln system check [--repair]`: address leases and host
//! port claims (host-wide, under /run/kiln) whose container is gone or no
//! longer holds them, network namespace files of this store that no
//! container's network state names, and kiln bridges no lease keeps.
//! Host-wide claims of other stores are only judged stale when their
//! container's directory is gone (as [`super::lease::sweep`] does); this
//! store's are compared with its containers' `network.json` under
//! `networks.lock`, so a container being set up is not taken for a
//! leftover.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let Ok(_lock) = nets.lock() else { return };
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
    // kiln bridge without one is used by no container of any store.
    let Ok(_host) = netavark::host_lock() else {
        return;
    };
    for b in kiln_bridges() {
        if lease::bridge_in_use(&b) {
            continue;
        }
        let repaired = repair
            && Command::new("ip")
                .args(["link", "delete", &b])
                .output()
                .is_ok_and(|o| o.status.success());
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

/// The host's bridges named as kiln names them (`kiln0`, `kiln` + 8 hex
/// digits of a network ID).
fn kiln_bridges() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.strip_prefix("kiln").is_some_and(|rest| {
                rest == "0" || (rest.len() == 8 && rest.bytes().all(|c| c.is_ascii_hexdigit()))
            })
        })
        .filter(|n| {
            PathBuf::from("/sys/class/net")
                .join(n)
                .join("bridge")
                .is_dir()
        })
        .collect();
    v.sort();
    v
}
