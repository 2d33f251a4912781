//! `kiln system check [--repair]`: the store's own check
//! ([`Store::check_locked`]) and, under the same collector lock, what only
//! this crate knows: container records that parse and match their
//! directories, containers whose kiln process died, and cgroups that killed
//! runners left, volumes ([`crate::volumes::Volumes::check`]). Also the cleanup of those cgroups the store runs with its
//! stale temps ([`remove_leftover_cgroups`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;

use image_store::check::{CheckReport, Problem};
use image_store::{Digest, Store};

use crate::error::Result;
use crate::records::{pid_alive, Container, Containers};

/// The whole store and its containers, checked (and with `repair` mended)
/// under the collector lock.
pub fn system_check(store: &Store, repair: bool) -> Result<CheckReport> {
    let _gc = store.collector_lock()?;
    let mut rep = store.check_locked(repair)?;
    let records = Containers::new(store);
    records.check_containers(repair, &mut rep);
    records.check_orphans(repair, &mut rep);
    crate::volumes::Volumes::new(store).check(repair, &mut rep);
    crate::network::leftovers::check(store, repair, &mut rep);
    for c in records.leftover_cgroups() {
        let repaired = repair && runner::remove_empty_cgroup(&c);
        rep.problems.push(Problem {
            kind: "cgroup",
            object: c.path.display().to_string(),
            message: format!(
                "empty cgroup of container {} left by a kiln process that is gone",
                c.id
            ),
            repaired,
            action: "removed",
        });
    }
    Ok(rep)
}

/// Removes the empty cgroups killed runners left: the janitor the store
/// calls with its stale-temp cleanup (see [`Store::with_janitor`]).
pub fn remove_leftover_cgroups(store: &Store) {
    for c in Containers::new(store).leftover_cgroups() {
        runner::remove_empty_cgroup(&c);
    }
}

impl Containers<'_> {
    /// Every container directory has a record that parses, carries its
    /// directory's ID and names an image the store still has.
    fn check_containers(&self, repair: bool, rep: &mut CheckReport) {
        let Ok(entries) = fs::read_dir(self.containers_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let dir = e.path();
            let id = e.file_name().to_string_lossy().into_owned();
            if !dir.is_dir() {
                continue;
            }
            let rec = dir.join("container.json");
            let fault = match fs::read(&rec) {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    Some("has no record (partly created or removed)".to_string())
                }
                Err(err) => Some(format!("record cannot be read: {err}")),
                Ok(data) => match serde_json::from_slice::<Container>(&data) {
                    Err(err) => Some(format!("record does not parse: {err}")),
                    Ok(c) if c.id != id => Some(format!("record carries ID {}", c.id)),
                    Ok(c) => {
                        if !rep.examined.contains(&c.image_id)
                            && !self.store().has_blob(&c.image_id)
                        {
                            rep.problems.push(Problem {
                                kind: "container",
                                object: id.clone(),
                                message: format!(
                                    "its image {} is gone (not repairable: remove the container)",
                                    c.image_id
                                ),
                                repaired: false,
                                action: "removed",
                            });
                        }
                        None
                    }
                },
            };
            if let Some(message) = fault {
                let repaired = repair && image_store::fsutil::remove_tree(&dir).is_ok();
                rep.problems.push(Problem {
                    kind: "container",
                    object: id,
                    message,
                    repaired,
                    action: "removed",
                });
            }
        }
    }

    /// Container records that say created/running, but whose kiln process
    /// and init are gone; repaired by [`Containers::reap_orphans`].
    fn check_orphans(&self, repair: bool, rep: &mut CheckReport) {
        let Ok(all) = self.containers() else { return };
        let orphans: Vec<_> = all.into_iter().filter(|c| c.orphaned()).collect();
        if orphans.is_empty() {
            return;
        }
        let reaped = if repair {
            self.reap_orphans().unwrap_or_default()
        } else {
            Vec::new()
        };
        for c in orphans {
            let (action, message) = if c.auto_remove {
                ("removed", "a --rm container whose kiln process died")
            } else {
                (
                    "marked exited (137)",
                    "recorded as running, but its kiln process and init are gone",
                )
            };
            rep.problems.push(Problem {
                kind: "container",
                object: c.id[..12.min(c.id.len())].to_string(),
                message: message.into(),
                repaired: reaped.iter().any(|r| r.id == c.id),
                action,
            });
        }
    }

    /// Empty `kiln-*` cgroups of this store that no live container and no
    /// live build step owns: `kill -9` of `kiln run` or `build` leaves them.
    /// A container's record (with its owner) is made before its cgroup, and
    /// a build step's id carries its live pid, so a starting container or
    /// step is live here. Cgroups of other stores (container ids without a
    /// directory here, build ids without this store's tag) are left alone.
    pub fn leftover_cgroups(&self) -> Vec<runner::EmptyCgroup> {
        // This store's candidates are told by name before any cgroup file
        // is read: its build steps carry its tag, its containers have a
        // directory here (listed once). A container created after the
        // listing is left alone, as a live one.
        let tag = self.runner_tag();
        let dirs: std::collections::BTreeSet<String> = fs::read_dir(self.containers_dir())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let found = runner::empty_cgroups_of(&|id| {
            Self::build_step_pid_tagged(&tag, id).is_some()
                || (Digest::from_hex(id).is_ok() && dirs.contains(id))
        });
        if found.is_empty() {
            return found;
        }
        // Without every record, no cgroup can be told to be stale.
        let Ok(all) = self.containers() else {
            return Vec::new();
        };
        let records: BTreeMap<String, bool> =
            all.into_iter().map(|c| (c.id.clone(), c.live())).collect();
        found
            .into_iter()
            .filter(|c| match self.build_step_pid(&c.id) {
                Some(pid) => !pid_alive(pid),
                None => {
                    Digest::from_hex(&c.id).is_ok()
                        && self.container_dir(&c.id).is_dir()
                        && !records.get(&c.id).copied().unwrap_or(false)
                }
            })
            .collect()
    }
}
