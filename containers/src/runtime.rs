//! The operations that depend on which OCI runtime runs a container:
//! kiln's own runner, or an external one such as runc (`--runtime`),
//! behind one trait. Starting goes through the runner either way (it
//! writes the bundle and runs `RUNTIME run`); what differs afterwards is
//! how to find the container's init and how to signal it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::records::Container;

/// The external runtime's path, in the container's directory, for
/// containers run with `--runtime`.
pub const RUNTIME_FILE: &str = "runtime";

/// What kiln asks of the runtime a container runs under.
pub trait ContainerRuntime {
    /// How the runner is told to start containers with this runtime.
    fn runner(&self) -> runner::Runtime;
    /// The container's init as seen from the host, while it runs.
    fn init_pid(&self, c: &Container) -> Option<i32>;
    /// Sends `sig` to the container's init.
    fn kill(&self, c: &Container, sig: i32) -> Result<()>;
}

/// kiln's own runner: the recorded pid is the container's init.
#[derive(Debug, Clone, Copy, Default)]
pub struct Builtin;

impl ContainerRuntime for Builtin {
    fn runner(&self) -> runner::Runtime {
        runner::Runtime::Builtin
    }

    fn init_pid(&self, c: &Container) -> Option<i32> {
        c.pid.filter(|_| c.is_running())
    }

    fn kill(&self, c: &Container, sig: i32) -> Result<()> {
        let pid = c.pid.unwrap_or(0);
        Ok(runner::kill(pid, sig)?)
    }
}

/// An external OCI runtime binary (runc, crun): the recorded pid is its
/// `run` process, which does not pass SIGKILL on, so the runtime's own
/// `state` and `kill` commands reach the init.
#[derive(Debug, Clone)]
pub struct External(pub PathBuf);

impl ContainerRuntime for External {
    fn runner(&self) -> runner::Runtime {
        runner::Runtime::External(self.0.clone())
    }

    fn init_pid(&self, c: &Container) -> Option<i32> {
        c.pid.filter(|_| c.is_running())?;
        let out = Command::new(&self.0)
            .args(["state", &c.id])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["pid"].as_i64().map(|p| p as i32).filter(|p| *p > 0)
    }

    fn kill(&self, c: &Container, sig: i32) -> Result<()> {
        let st = Command::new(&self.0)
            .args(["kill", &c.id, &sig.to_string()])
            .status()
            .map_err(|e| Error::Runtime(format!("running {}: {e}", self.0.display())))?;
        if !st.success() {
            return Err(Error::Runtime(format!(
                "{} kill {} failed",
                self.0.display(),
                c.id
            )));
        }
        Ok(())
    }
}

/// The runtime recorded in container directory `dir` ([`RUNTIME_FILE`]),
/// or kiln's own.
pub fn of_dir(dir: &Path) -> Box<dyn ContainerRuntime> {
    match std::fs::read_to_string(dir.join(RUNTIME_FILE)) {
        Ok(s) => Box::new(External(PathBuf::from(s.trim()))),
        Err(_) => Box::new(Builtin),
    }
}

/// The runtime `path` names (`--runtime`), or kiln's own.
pub fn from_path(path: Option<&Path>) -> Box<dyn ContainerRuntime> {
    match path {
        Some(p) => Box::new(External(p.to_path_buf())),
        None => Box::new(Builtin),
    }
}
