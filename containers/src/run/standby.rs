//! Containers created now and started later: `kiln create` keeps what a
//! start needs (`spec.json`, `launch.json` with the layers and runtime) and
//! leaves the record `created` with no owner; `start` rebuilds the
//! [`Created`] from them and runs it as `kiln run` would, in the
//! foreground (`-a`) or under a monitor. An exited container starts again
//! the same way, on its kept upper layer (`restart`).

use std::fs;
use std::time::Duration;

use image_store::Store;

use super::{Created, Launch, LAUNCH_FILE, SPEC_FILE};
use crate::error::{Error, Result};
use crate::records::{pid_alive, Container, Containers, State};

impl Created<'_> {
    /// `kiln create`: records what `start` needs and leaves the container
    /// waiting, owned by no process.
    pub fn keep(mut self) -> Result<Container> {
        let launch = Launch {
            lowers: self.lowers.clone(),
            runtime: self.runtime.clone(),
            ready_fd: -1,
            interactive: self.interactive,
            stdin_once: self.stdin_once,
        };
        let p = self.dir.join(LAUNCH_FILE);
        fs::write(&p, serde_json::to_vec(&launch).expect("plain data")).map_err(Error::io(p))?;
        self.record.owner = None;
        self.containers.save(&self.record)?;
        Ok(self.record)
    }
}

/// How `start` runs a container.
pub enum Start<'s> {
    /// Already running: nothing to do.
    Running,
    /// Ready: [`Created::run_foreground`] (`start -a`) or
    /// [`Created::start_detached`].
    Ready(Box<Created<'s>>),
}

/// `kiln start`: the container `name`, rebuilt from what `create` (or an
/// earlier run) kept. `interactive`: `start -i`.
pub fn start<'s>(store: &'s Store, name: &str, interactive: bool) -> Result<Start<'s>> {
    let containers = Containers::new(store);
    let _ = containers.reap_orphans();
    let mut record = containers.container(name)?;
    if record.is_running() {
        return Ok(Start::Running);
    }
    if record.owner.is_some_and(pid_alive) {
        return Err(Error::Invalid(format!(
            "container {} is being started or stopped by another kiln process",
            record.name
        )));
    }
    let dir = containers.container_dir(&record.id);
    let read = |file: &str| {
        let p = dir.join(file);
        match fs::read(&p) {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Invalid(format!(
                "container {} cannot be started again: it was run by an older kiln ({file} is missing)",
                record.name
            ))),
            Err(e) => Err(Error::io(p)(e)),
        }
    };
    let mut spec: runner::Spec =
        serde_json::from_slice(&read(SPEC_FILE)?).map_err(Error::json(dir.join(SPEC_FILE)))?;
    // `--network container:NAME`: that container's namespace as it is now
    // (kept in spec.json for the monitor).
    if crate::network::shared::refresh(store, &dir, &mut spec)? {
        let p = dir.join(SPEC_FILE);
        fs::write(&p, serde_json::to_vec(&spec).expect("a spec serializes"))
            .map_err(Error::io(p))?;
    }
    let launch: Launch =
        serde_json::from_slice(&read(LAUNCH_FILE)?).map_err(Error::json(dir.join(LAUNCH_FILE)))?;
    // A container on a network had it torn down when it exited; its spec
    // still names the namespace, which its plan sets up again below.
    let gone_netns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone())
        .find(|p| !p.exists());
    let plan = crate::network::plan::read(&dir);
    if let (Some(ns), None) = (&gone_netns, &plan) {
        return Err(Error::Invalid(format!(
            "container {} was on a network that was torn down when it exited ({} is gone) and kept no network plan (it was created by an older kiln): run a new container",
            record.name,
            ns.display()
        )));
    }
    // From here until its monitor (or this process) records how it went,
    // the container is this process's.
    record.owner = Some(std::process::id() as i32);
    record.pid = None;
    containers.save(&record)?;
    if let (Some(_), Some(plan)) = (gone_netns, plan) {
        let who = crate::network::attach::Identity {
            id: &record.id,
            name: &record.name,
            hostname: &plan.hostname,
            dir: &dir,
        };
        if let Err(e) = crate::network::plan::reattach(store, who, &plan) {
            record.owner = None;
            let _ = containers.save(&record);
            return Err(e);
        }
    }
    Ok(Start::Ready(Box::new(Created {
        containers,
        record,
        dir,
        spec,
        lowers: launch.lowers,
        runtime: launch.runtime,
        interactive: interactive && launch.interactive,
        stdin_once: launch.stdin_once,
        // Attached (and recorded) by `create`; nothing to attach again.
        networking: None,
        exposed: Vec::new(),
        hostname: String::new(),
    })))
}

/// `kiln wait`: blocks until the container `name` has exited (a created
/// one until it was started and exited) and returns its exit code.
pub fn wait(store: &Store, name: &str) -> Result<i32> {
    let containers = Containers::new(store);
    let id = containers.container(name)?.id;
    loop {
        let c = match containers.container(&id) {
            Ok(c) => c,
            // Removed meanwhile (`--rm`): docker reports the removal too.
            Err(Error::NoSuchContainer(_)) => return Err(Error::NoSuchContainer(name.to_string())),
            Err(e) => return Err(e),
        };
        if c.state == State::Exited {
            return Ok(c.exit_code.unwrap_or(crate::records::ORPHAN_EXIT_CODE));
        }
        if c.orphaned() {
            containers.reap_orphans()?;
            continue;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `kiln restart`: stops the container `name` (as `stop` does, `timeout`
/// before SIGKILL; None: the container's own stop timeout) and makes it
/// ready to start again, which the caller does under a monitor
/// ([`Created::start_detached`]).
pub fn restart<'s>(store: &'s Store, name: &str, timeout: Option<Duration>) -> Result<Start<'s>> {
    crate::control::stop(store, name, None, timeout)?;
    // The monitor records the exit, then goes.
    let containers = Containers::new(store);
    for _ in 0..500 {
        match containers.container(name) {
            Ok(c) if c.owner.is_some_and(pid_alive) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => break,
        }
    }
    start(store, name, false)
}
