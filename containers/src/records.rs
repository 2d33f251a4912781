//! Container records: what `kiln run` created, so that `ps`, `rm`, `logs`,
//! `commit` and `export` can find a container's image and directories later.
//! Each lives in `kiln/containers/<id>/` with `container.json` beside its
//! overlay `upper/` and `work/` directories.
//!
//! Growing the record (networks, published ports, volumes, exec sessions,
//! restart policy and count, health log): every field is optional with a
//! serde default, so records written by an older kiln still parse; state
//! that changes often or grows (a health log, the log file, the monitor's
//! pid, the external runtime's path) goes in its own file in the
//! container's directory instead, so that `save` stays one small rename.
//! The monitor of a detached container ([`crate::run::monitor`]) is the one
//! process that lives as long as the container: restart policies and
//! health probes belong there; teardown of what a container was given
//! (network namespaces, anonymous volumes) belongs where it is settled
//! ([`crate::run`]'s finish and [`Containers::reap_orphans`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use image_store::{Digest, Store};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::restart::{RestartPolicy, RunExit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Created,
    Running,
    /// Between two runs of a container with a restart policy: its
    /// monitor waits out the delay ([`crate::restart`]).
    Restarting,
    Exited,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub image_id: Digest,
    /// The name the user gave for the image.
    pub image: String,
    pub command: Vec<String>,
    pub created: String,
    pub state: State,
    #[serde(default)]
    pub pid: Option<i32>,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub finished: Option<String>,
    /// Remove the container when it exits (`--rm`).
    #[serde(default)]
    pub auto_remove: bool,
    /// The kiln process that manages the container (the `kiln run` in the
    /// foreground, the monitor of a detached one): while it lives, the
    /// container is being started or waited for.
    #[serde(default)]
    pub owner: Option<i32>,
    /// Binds, volumes and tmpfs mounts (see [`crate::volumes`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<crate::volumes::MountRecord>,
    /// `--restart` and the restarts done so far ([`crate::restart`]).
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    #[serde(default)]
    pub restart_count: u32,
    /// When the current (or last) run started.
    #[serde(default)]
    pub started: Option<String>,
    /// How the last runs ended, oldest first (at most
    /// [`crate::restart::RUNS_KEPT`]).
    #[serde(default)]
    pub runs: Vec<RunExit>,
    /// The image's labels with `--label` over them (docker's
    /// `Config.Labels`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The image's HEALTHCHECK with `--health-*` over it
    /// ([`crate::health`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::Check>,
    /// `--stop-signal` (else the image's STOPSIGNAL, else SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `--log-opt` (max-size, max-file: [`crate::logfile::Rotation`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub log_opts: BTreeMap<String, String>,
    /// ENTRYPOINT and CMD apart (`command` is both); None in records of
    /// an older kiln.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
}

/// The exit code recorded for a container whose kiln process died without
/// recording one: docker's for a container killed with SIGKILL, which is
/// what happens to a container whose daemon is killed.
pub const ORPHAN_EXIT_CODE: i32 = 137;

/// Is `pid` a live (not zombie) process?
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state follows the `(comm)` field.
            let state = s
                .rsplit_once(')')
                .and_then(|(_, r)| r.trim_start().chars().next());
            !matches!(state, Some('Z') | Some('X') | None)
        }
        Err(_) => false,
    }
}

impl Container {
    /// Created or running by its record, but neither its kiln process nor
    /// its init is alive: nobody will record how it ended (a `kill -9`'d
    /// `kiln run`, a monitor that died). A record without an owner (older
    /// kiln) counts by its init alone.
    pub fn orphaned(&self) -> bool {
        // `kiln create`'s containers wait for `start` with no process at all.
        if self.state == State::Created && self.owner.is_none() && self.pid.is_none() {
            return false;
        }
        self.state != State::Exited
            && !self.owner.is_some_and(pid_alive)
            && !self.pid.is_some_and(pid_alive)
    }

    /// Is the container's init running right now?
    pub fn is_running(&self) -> bool {
        self.state == State::Running && self.pid.is_some_and(pid_alive)
    }

    /// Its init has just exited and its kiln process has yet to record
    /// how (the exit, or a restart): the record still says running.
    pub fn is_ending(&self) -> bool {
        self.state == State::Running && !self.is_running() && !self.orphaned()
    }

    /// Waiting to be restarted by its monitor.
    pub fn is_restarting(&self) -> bool {
        self.state == State::Restarting && !self.orphaned()
    }

    /// Is this container (possibly) using its cgroups: starting, running,
    /// or managed by a live kiln process?
    pub fn live(&self) -> bool {
        self.state != State::Exited && !self.orphaned()
    }
}

/// What [`Containers::reap_orphans`] did to one container.
#[derive(Debug, Clone)]
pub struct Reaped {
    pub id: String,
    pub name: String,
    /// `--rm`: removed; otherwise marked exited with [`ORPHAN_EXIT_CODE`].
    pub removed: bool,
}

/// Checks a user-given container name against docker's rule
/// (`[a-zA-Z0-9][a-zA-Z0-9_.-]+`, one leading `/` allowed and dropped) and
/// returns the name to record. Names become paths and log lines, so
/// separators, `..` and control characters must never reach them.
pub fn container_name(name: &str) -> Result<&str> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest: Vec<char> = chars.collect();
    let rest_ok = !rest.is_empty()
        && rest
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok {
        Ok(bare)
    } else {
        Err(Error::InvalidName(name.to_string()))
    }
}

/// The container records of one store, in `kiln/containers/`.
#[derive(Debug, Clone, Copy)]
pub struct Containers<'s> {
    store: &'s Store,
}

impl<'s> Containers<'s> {
    pub fn new(store: &'s Store) -> Containers<'s> {
        Containers { store }
    }

    pub fn store(&self) -> &'s Store {
        self.store
    }

    pub fn containers_dir(&self) -> PathBuf {
        self.store.kiln_dir().join("containers")
    }

    pub fn container_dir(&self, id: &str) -> PathBuf {
        self.containers_dir().join(id)
    }

    /// Creates the container's directory and record; fails if the name is
    /// taken. With `name == None` a random free name is chosen.
    pub fn create(&self, c: &mut Container, name: Option<&str>) -> Result<PathBuf> {
        let _g = self.name_lock()?;
        let taken: Vec<String> = self.containers()?.into_iter().map(|o| o.name).collect();
        match name {
            Some(n) => {
                if taken.iter().any(|t| t == n) {
                    return Err(Error::NameInUse(n.to_string()));
                }
                c.name = n.to_string();
            }
            None => {
                c.name = (0..)
                    .map(|i| crate::names::random_name(&c.id, i))
                    .find(|n| !taken.contains(n))
                    .expect("an unbounded search finds a free name");
            }
        }
        let dir = self.container_dir(&c.id);
        fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        self.save(c)?;
        Ok(dir)
    }

    /// A free name for container `id` now (the one [`Containers::create`]
    /// would pick), for what must name the container before it is made.
    pub fn free_name(&self, id: &str) -> Result<String> {
        let taken: Vec<String> = self.containers()?.into_iter().map(|o| o.name).collect();
        Ok((0..)
            .map(|i| crate::names::random_name(id, i))
            .find(|n| !taken.contains(n))
            .expect("an unbounded search finds a free name"))
    }

    /// `kiln rename`: gives container `name` the name `new` (checked as
    /// `--name` is, and free).
    pub fn rename(&self, name: &str, new: &str) -> Result<()> {
        let new = container_name(new)?;
        let _g = self.name_lock()?;
        let mut c = self.container(name)?;
        if self
            .containers()?
            .iter()
            .any(|o| o.name == new && o.id != c.id)
        {
            return Err(Error::NameInUse(new.to_string()));
        }
        c.name = new.to_string();
        self.save(&c)
    }

    /// An exclusive flock on `kiln/locks/containers.lock`, held while a
    /// name is checked and a record created (separate from the store's
    /// writer lock so a long import does not delay `kiln run`).
    fn name_lock(&self) -> Result<image_store::LockGuard> {
        Ok(self.store.exclusive_lock("containers")?)
    }

    /// Writes the record with a rename but no fsync: container records
    /// describe processes that do not survive a reboot anyway, and
    /// `run --rm` must be fast.
    pub fn save(&self, c: &Container) -> Result<()> {
        let dir = self.container_dir(&c.id);
        let p = dir.join("container.json");
        let tmp = dir.join(".container.json.tmp");
        let data = serde_json::to_vec_pretty(c).expect("serializing plain data cannot fail");
        let res = fs::File::create(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
            .and_then(|()| fs::rename(&tmp, &p));
        res.map_err(Error::io(p))
    }

    pub fn containers(&self) -> Result<Vec<Container>> {
        let dir = self.containers_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(dir)(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let p = e.path().join("container.json");
            // A directory without a record is one being created or removed.
            let Ok(data) = fs::read(&p) else { continue };
            let c: Container = serde_json::from_slice(&data).map_err(Error::json(p))?;
            out.push(c);
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    /// The record of container `id` (a full ID), read from its directory
    /// alone.
    pub fn load(&self, id: &str) -> Result<Container> {
        let p = self.container_dir(id).join("container.json");
        let data = fs::read(&p).map_err(Error::io(&p))?;
        serde_json::from_slice(&data).map_err(Error::json(p))
    }

    /// Finds a container by name, full ID or unique ID prefix.
    pub fn container(&self, name: &str) -> Result<Container> {
        let all = self.containers()?;
        if let Some(c) = all.iter().find(|c| c.name == name || c.id == name) {
            return Ok(c.clone());
        }
        let matches: Vec<&Container> = all.iter().filter(|c| c.id.starts_with(name)).collect();
        match matches.len() {
            1 => Ok(matches[0].clone()),
            0 => Err(Error::NoSuchContainer(name.to_string())),
            n => Err(Error::Ambiguous {
                name: name.to_string(),
                count: n,
            }),
        }
    }

    /// Removes a container's directory whatever its state (after it
    /// stopped); one already gone is fine.
    pub fn remove(&self, id: &str) -> Result<()> {
        match self.remove_container(id) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    fn remove_container(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id);
        // Its network namespace, address and ports go first. A failed
        // teardown still frees them (see `detach`): it is reported, not
        // allowed to keep the container forever.
        if let Err(e) = crate::network::detach(self.store, &dir) {
            eprintln!("WARNING: tearing down the network of container {id}: {e}");
        }
        // The record goes first, so a half-removed directory is not listed.
        let rec = dir.join("container.json");
        match fs::remove_file(&rec) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(rec)(e)),
        }
        // A rootless run leaves its overlay work/work mode 000.
        image_store::fsutil::remove_tree(&dir).map_err(Error::io(dir))
    }

    /// Settles containers whose kiln process died ([`Container::orphaned`]),
    /// as docker's daemon does when it restarts: an `--rm` container is
    /// removed, any other is marked exited with [`ORPHAN_EXIT_CODE`]. Their
    /// cgroups are removed too. `ps`, `rm`, `run` and `system check
    /// --repair` call this; it is cheap when there is nothing to do.
    pub fn reap_orphans(&self) -> Result<Vec<Reaped>> {
        let mut out = Vec::new();
        for mut c in self.containers()? {
            if !c.orphaned() {
                continue;
            }
            runner::remove_cgroups(&c.id);
            // Best effort: a later reap or `rm` tries again.
            let _ = crate::network::detach(self.store, &self.container_dir(&c.id));
            if c.auto_remove {
                // Gone already: another process settled it first.
                crate::volumes::auto_remove(self, &c)?;
            } else {
                c.state = State::Exited;
                c.exit_code = Some(ORPHAN_EXIT_CODE);
                c.finished = Some(image_store::model::now());
                // `rm` may have removed it meanwhile.
                if !self.container_dir(&c.id).join("container.json").exists() {
                    continue;
                }
                if let Err(e) = self.save(&c) {
                    if self.container_dir(&c.id).exists() {
                        return Err(e);
                    }
                    continue;
                }
            }
            out.push(Reaped {
                id: c.id,
                name: c.name,
                removed: c.auto_remove,
            });
        }
        Ok(out)
    }

    /// A short tag of this store (its path's hash), in the runner ids of
    /// build steps so that their cgroups can be told from other stores'.
    pub(crate) fn runner_tag(&self) -> String {
        use sha2::Digest as _;
        let dir = self.store.kiln_dir();
        let path = fs::canonicalize(&dir).unwrap_or(dir);
        hex::encode(sha2::Sha256::digest(path.as_os_str().as_encoded_bytes()))[..12].to_string()
    }

    /// The runner id (which names cgroups) of a build's RUN step in scratch
    /// directory `dir` of build process `pid`: per step, as stages run
    /// side by side.
    pub fn build_step_id(&self, pid: u32, dir: &std::path::Path) -> String {
        let step = dir
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        format!("build-{}-{pid}-{step}", self.runner_tag())
    }

    /// The build process of a runner id from [`Containers::build_step_id`]
    /// of this store.
    pub(crate) fn build_step_pid(&self, id: &str) -> Option<i32> {
        Self::build_step_pid_tagged(&self.runner_tag(), id)
    }

    /// [`Containers::build_step_pid`] with this store's tag at hand.
    pub(crate) fn build_step_pid_tagged(tag: &str, id: &str) -> Option<i32> {
        let rest = id.strip_prefix("build-")?.strip_prefix(tag)?;
        rest.strip_prefix('-')?.split('-').next()?.parse().ok()
    }

    /// The first container using image `id`, for `rmi`'s in-use check.
    pub fn container_using(&self, id: &Digest) -> Option<String> {
        self.containers()
            .ok()?
            .into_iter()
            .find(|c| c.image_id == *id)
            .map(|c| c.id[..12].to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::container_name;

    #[test]
    fn container_names_follow_docker() {
        for ok in ["web", "a1", "my_app.v2-x", "0abc"] {
            assert_eq!(container_name(ok).unwrap(), ok);
        }
        assert_eq!(container_name("/web").unwrap(), "web");
        for bad in [
            "", "a", "/", "//web", "../../x", "a/b", "a\nb", "-web", ".web", "_x", "wéb", "a b",
        ] {
            assert!(container_name(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
