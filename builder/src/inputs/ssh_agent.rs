//! `--ssh ID=KEYFILE[,KEYFILE]`: an agent of the build's own holding those
//! keys (the host's `ssh-agent` and `ssh-add`, as buildx loads keys into
//! an agent of its own), on a socket in a private temp directory; the
//! agent is killed and the directory removed when the build ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::BuildError;

/// A running agent; dropping it kills it and removes its socket.
#[derive(Debug)]
pub struct KeyAgent {
    child: Child,
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
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    let child = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| bad(format!("key files need ssh-agent on this machine: {e}")))?;
    let mut agent = KeyAgent {
        child,
        socket,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !agent.socket.exists() {
        if let Ok(Some(st)) = agent.child.try_wait() {
            return Err(bad(format!("ssh-agent exited ({st})")));
        }
        if Instant::now() > deadline {
            return Err(bad("ssh-agent did not make its socket".into()));
        }
        std::thread::sleep(Duration::from_millis(10));
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
