//! `--ssh ID=KEYFILE[,KEYFILE]`: an agent of the build's own holding those
//! keys (the host's `ssh-agent` and `ssh-add`, as buildx loads keys into
//! an agent of its own), on a socket in a private temp directory; the
//! agent is killed and the directory removed when the build ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::BuildError;

/// A running agent; dropping it kills it and removes its socket.
#[derive(Debug)]
pub struct KeyAgent {
    /// The agent's command: a `cat` reading a pipe only kiln holds.
    keeper: Child,
    agent_pid: i32,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeyAgent {
    /// The agent's socket, for `RUN --mount=type=ssh`.
    pub fn socket(&self) -> &Path {
        &self.socket
    }
}

impl Drop for KeyAgent {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.agent_pid) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let _ = self.keeper.kill();
        let _ = self.keeper.wait();
    }
}

/// Starts an agent and adds `keys` (unencrypted: nothing can ask for a
/// passphrase). `what` names the flag value in errors.
pub fn with_keys(keys: &[PathBuf], what: &str) -> Result<KeyAgent, BuildError> {
    let bad = |why: String| BuildError::Invalid(format!("--ssh {what}: {why}"));
    let dir = tempfile::Builder::new()
        .prefix("kiln-ssh-")
        .tempdir()
        .map_err(|e| BuildError::Io(std::env::temp_dir(), e))?;
    let socket = dir.path().join("agent.sock");
    // ssh-agent runs the command it is given and exits once that has
    // ended (it checks every few seconds). The command prints the agent's
    // pid (for Drop), then reads a pipe kiln holds: if kiln dies, however
    // it dies, the pipe closes and the agent goes. (A parent-death signal
    // would not do: ssh-agent is set-group-ID, which clears it.)
    let mut keeper = Command::new("ssh-agent")
        .arg("-a")
        .arg(&socket)
        .args(["sh", "-c", "echo \"$SSH_AGENT_PID\"; exec cat >/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| bad(format!("key files need ssh-agent on this machine: {e}")))?;
    let mut line = String::new();
    let read = keeper
        .stdout
        .take()
        .map(|out| std::io::BufRead::read_line(&mut std::io::BufReader::new(out), &mut line));
    let agent_pid = match (read, line.trim().parse::<i32>()) {
        (Some(Ok(_)), Ok(pid)) => pid,
        _ => {
            let _ = keeper.kill();
            let _ = keeper.wait();
            return Err(bad("ssh-agent did not start".into()));
        }
    };
    let agent = KeyAgent {
        keeper,
        agent_pid,
        socket,
        _dir: dir,
    };
    if !agent.socket.exists() {
        return Err(bad("ssh-agent made no socket".into()));
    }
    for key in keys {
        let out = Command::new("ssh-add")
            .arg("-q")
            .arg(key)
            .env("SSH_AUTH_SOCK", &agent.socket)
            .env_remove("SSH_ASKPASS")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| bad(format!("key files need ssh-add on this machine: {e}")))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(bad(format!(
                "adding {}: {} (keys with a passphrase need an agent: pass its socket)",
                key.display(),
                last.trim()
            )));
        }
    }
    Ok(agent)
}
