//! An exec whose output is kept rather than shown, and which is killed if it
//! outlives a timeout: what a health probe is (docker runs its probes as
//! execs). Its stdout and stderr share one pipe, of which only the first
//! `limit` bytes are kept; the rest is read and dropped, so a chatty probe
//! never blocks on a full pipe.

use std::fs;
use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

use image_store::Store;

use super::{prepare, tempfile_in, ExecRequest};
use crate::error::{Error, Result};

/// What a process run by [`captured`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Its exit code (128+N after signal N), or None when it was killed
    /// for outliving the timeout.
    pub code: Option<i32>,
    /// The start of its output, stdout and stderr interleaved.
    pub output: Vec<u8>,
}

/// The process being waited for: kiln's runner's, or the external
/// runtime's `exec` (with the process file it reads).
enum Running {
    Builtin(Box<runner::Container>),
    External(std::process::Child, super::ProcessFile),
}

impl Running {
    fn pid(&self) -> i32 {
        match self {
            Running::Builtin(c) => c.pid(),
            Running::External(c, _) => c.id() as i32,
        }
    }

    fn wait(self) -> Result<i32> {
        match self {
            Running::Builtin(c) => Ok(c.wait()?.code() as i32),
            Running::External(mut c, _file) => {
                use std::os::unix::process::ExitStatusExt as _;
                let st = c
                    .wait()
                    .map_err(|e| Error::Runtime(format!("waiting for the exec: {e}")))?;
                Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
            }
        }
    }
}

/// Runs `command` in the running container `name` (its user, environment
/// and working directory), keeping at most `limit` bytes of its output and
/// killing it after `timeout`. A program that cannot be started comes back
/// as the error the runner gives (126/127 in [`Error::exit_code`]).
pub fn captured(
    store: &Store,
    name: &str,
    command: Vec<String>,
    timeout: Duration,
    limit: usize,
) -> Result<Captured> {
    let req = ExecRequest {
        container: name.to_string(),
        command,
        ..Default::default()
    };
    let p = prepare(store, &req)?;
    let (rd, wr) = pipe()?;
    let null = fs::File::open("/dev/null").map_err(Error::io("/dev/null"))?;
    let running = match &p.external {
        None => {
            let opts = runner::ExecOptions {
                init_pid: p.init,
                stdio: runner::Stdio::Fds {
                    stdin: null.as_raw_fd(),
                    stdout: wr.as_raw_fd(),
                    stderr: wr.as_raw_fd(),
                },
                detach: false,
                privileged: false,
                forward_signals: false,
            };
            Running::Builtin(Box::new(runner::exec(&p.spec, &opts)?))
        }
        Some(rt) => {
            runner::check_executable(p.init, &p.spec)?;
            let process = p.spec.process().clone().expect("set by prepare");
            let file = tempfile_in(&p.dir, &process)?;
            let err = |e: std::io::Error| Error::Runtime(format!("running {}: {e}", rt.display()));
            let child = Command::new(rt)
                .arg("exec")
                .arg("--process")
                .arg(file.path())
                .arg(&p.container.id)
                .stdin(null)
                .stdout(wr.try_clone().map_err(err)?)
                .stderr(wr.try_clone().map_err(err)?)
                .spawn()
                .map_err(err)?;
            Running::External(child, file)
        }
    };
    drop(wr);
    let deadline = Instant::now() + timeout;
    let (output, exited) = collect(rd, running.pid(), deadline, limit);
    if !exited {
        // Still ours to kill: it is not reaped until `wait` below. kiln's
        // runner makes an exec'd process a session leader, so its group
        // holds what it started too (a shell's `sleep`), which would
        // otherwise outlive it in the container.
        // SAFETY: kill(2) with plain integers.
        unsafe {
            if matches!(running, Running::Builtin(_)) {
                libc::kill(-running.pid(), libc::SIGKILL);
            }
            libc::kill(running.pid(), libc::SIGKILL);
        }
    }
    let code = running.wait()?;
    Ok(Captured {
        code: exited.then_some(code),
        output,
    })
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::io("pipe")(std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads the pipe until process `pid` has exited (and the pipe has no more
/// for now) or `deadline` passes; returns what was kept and whether the
/// process exited in time. Without a pidfd (old kernels) the end of the
/// pipe stands for the exit.
fn collect(rd: OwnedFd, pid: i32, deadline: Instant, limit: usize) -> (Vec<u8>, bool) {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a fresh descriptor owned here.
    let pidfd = (raw >= 0).then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) });
    let mut file = fs::File::from(rd);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let mut pipe_open = true;
    let mut exited = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (out, exited);
        }
        let mut fds = [
            libc::pollfd {
                fd: if pipe_open { file.as_raw_fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: poll on two valid (or ignored, -1) descriptors.
        let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if rc < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return (out, exited);
        }
        if fds[0].revents != 0 {
            match file.read(&mut buf) {
                Ok(0) | Err(_) => pipe_open = false,
                Ok(n) => {
                    let room = limit.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                    continue;
                }
            }
        }
        if fds[1].revents != 0 {
            exited = true;
        }
        // Done once the process has exited and the pipe is drained (or
        // only held open by something it left behind), or, without a
        // pidfd, once the pipe has ended.
        if exited && fds[0].revents == 0 {
            return (out, true);
        }
        if pidfd.is_none() && !pipe_open {
            return (out, true);
        }
    }
}
