//! What is done to a container after it was created: look at its state,
//! signal it, stop it, remove it, read its log. Each acts through the
//! container's runtime ([`crate::runtime`]).

use std::fs;
use std::io::{Read as _, Seek as _, Write};
use std::time::{Duration, Instant};

use image_store::Store;

use crate::error::{Error, Result};
use crate::records::{pid_alive, Container, Containers, State};
use crate::run::{LOG_FILE, MONITOR_PID_FILE};
use crate::runtime;

/// Settles the containers of kiln processes that died (best effort: a
/// store this user cannot write is still listed), then lists the
/// containers, newest first; only running ones unless `all`.
pub fn list(store: &Store, all: bool) -> Result<Vec<Container>> {
    let containers = Containers::new(store);
    let _ = containers.reap_orphans();
    Ok(containers
        .containers()?
        .into_iter()
        .filter(|c| all || c.is_running())
        .collect())
}

/// The container's init as seen from the host, while it runs.
pub fn init_pid(store: &Store, c: &Container) -> Option<i32> {
    let dir = Containers::new(store).container_dir(&c.id);
    runtime::of_dir(&dir).init_pid(c)
}

/// Sends `sig` to the container's init (through its runtime).
pub fn signal(store: &Store, c: &Container, sig: i32) -> Result<()> {
    if !c.is_running() {
        return Err(Error::Invalid(format!(
            "container {} is not running",
            c.name
        )));
    }
    let dir = Containers::new(store).container_dir(&c.id);
    runtime::of_dir(&dir).kill(c, sig).map_err(|e| match e {
        Error::Run(e) => Error::Invalid(format!("signalling container {}: {e}", c.name)),
        e => e,
    })
}

/// `kiln kill`: signals the container `name`.
pub fn kill(store: &Store, name: &str, sig: i32) -> Result<()> {
    let c = Containers::new(store).container(name)?;
    signal(store, &c, sig)
}

/// `kiln stop`: `sig` (else the image's STOPSIGNAL, else SIGTERM), then
/// SIGKILL after `timeout`. A container that is not running is left as is.
pub fn stop(store: &Store, name: &str, sig: Option<i32>, timeout: Duration) -> Result<()> {
    let c = Containers::new(store).container(name)?;
    if !c.is_running() {
        return Ok(());
    }
    let sig = match sig {
        Some(s) => s,
        None => store
            .resolve(&c.image_id.to_string())
            .ok()
            .and_then(|i| i.config.container_config().stop_signal)
            .map(|s| parse_signal(&s))
            .transpose()?
            .unwrap_or(libc::SIGTERM),
    };
    signal(store, &c, sig)?;
    if !wait_stopped(store, &c, timeout) {
        let _ = signal(store, &c, libc::SIGKILL);
        if !wait_stopped(store, &c, Duration::from_secs(10)) {
            return Err(Error::Invalid(format!(
                "container {name} did not stop after SIGKILL"
            )));
        }
    }
    Ok(())
}

/// `kiln rm`: removes the container `name`; a running one only with
/// `force` (SIGKILL first).
pub fn remove(store: &Store, name: &str, force: bool) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    if c.is_running() {
        if !force {
            return Err(Error::Invalid(format!(
                "cannot remove container {name}: it is running (stop it first or use rm -f)"
            )));
        }
        let _ = signal(store, &c, libc::SIGKILL);
        if !wait_stopped(store, &c, Duration::from_secs(10)) {
            return Err(Error::Invalid(format!(
                "container {name} did not stop after SIGKILL"
            )));
        }
    }
    // A detached container's monitor may still be writing.
    if let Ok(p) = fs::read_to_string(containers.container_dir(&c.id).join(MONITOR_PID_FILE)) {
        if let Ok(p) = p.trim().parse::<i32>() {
            wait_until(Duration::from_secs(2), || !pid_alive(p));
        }
    }
    containers.remove(&c.id)
}

/// `kiln logs`: copies the container's log to `out`; with `follow`, keeps
/// copying until the container exits.
pub fn logs(store: &Store, name: &str, follow: bool, out: &mut dyn Write) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let path = containers.container_dir(&c.id).join(LOG_FILE);
    let mut f = match fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Invalid(format!(
                "container {name} has no log: only detached (-d) containers are logged"
            )))
        }
        Err(e) => return Err(Error::io(path)(e)),
    };
    // Reading the log and writing the output fail apart: a closed output
    // is the caller's to report.
    std::io::copy(&mut f, out).map_err(Error::Output)?;
    if follow {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let running = containers.container(&c.id).map(|c| c.is_running());
            let n = f.read(&mut buf).map_err(Error::io(&path))?;
            if n > 0 {
                out.write_all(&buf[..n]).map_err(Error::Output)?;
                out.flush().map_err(Error::Output)?;
                continue;
            }
            if !matches!(running, Ok(true)) {
                break;
            }
            let pos = f.stream_position().map_err(Error::io(&path))?;
            std::thread::sleep(Duration::from_millis(100));
            f.seek(std::io::SeekFrom::Start(pos))
                .map_err(Error::io(&path))?;
        }
    }
    out.flush().map_err(Error::Output)
}

/// Waits for a killed container's init to go and for whoever ran it to
/// record that (or remove it, for `--rm`).
fn wait_stopped(store: &Store, c: &Container, timeout: Duration) -> bool {
    let pid = c.pid.unwrap_or(0);
    if !wait_until(timeout, || !pid_alive(pid)) {
        return false;
    }
    // The monitor or `kiln run` writes the exit code right after.
    let containers = Containers::new(store);
    wait_until(Duration::from_secs(2), || {
        match containers.container(&c.id) {
            Ok(now) => now.state != State::Running,
            Err(_) => true,
        }
    });
    true
}

/// Waits up to `timeout` for `pred` to hold, polling every 10 ms.
fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every process in the PID namespace whose init is `pid` (init included).
pub fn namespace_pids(pid: i32) -> Vec<i32> {
    let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() == Some(&ns) {
                out.push(p);
            }
        }
    }
    out
}

/// `KILL`, `SIGKILL`, `9` → 9.
pub fn parse_signal(s: &str) -> Result<i32> {
    let bad = || Error::Invalid(format!("invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n).ok_or_else(bad);
    }
    let up = s.to_ascii_uppercase();
    let n = match up.strip_prefix("SIG").unwrap_or(&up) {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(bad()),
    };
    Ok(n)
}
