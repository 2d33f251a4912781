//! What is done to a container after it was created: look at its state,
//! signal it, stop it, remove it, read its log. Each acts through the
//! container's runtime ([`crate::runtime`]).

use std::fs;
use std::io::{Read as _, Seek as _, Write};
use std::time::{Duration, Instant};

use image_store::Store;

use crate::error::{Error, Result};
use crate::logfile::{self, LogOptions};
use crate::records::{pid_alive, Container, Containers, State};
use crate::restart;
use crate::run::{LEGACY_LOG_FILE, LOG_FILE, MONITOR_PID_FILE};
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
        .filter(|c| shown(c, all))
        .collect())
}

/// Does `ps` (with `-a` when `all`) list `c`?
pub fn shown(c: &Container, all: bool) -> bool {
    all || c.is_running() || c.is_restarting() || c.is_ending()
}

/// The container's init as seen from the host, while it runs.
pub fn init_pid(store: &Store, c: &Container) -> Option<i32> {
    let dir = Containers::new(store).container_dir(&c.id);
    runtime::of_dir(&dir).init_pid(c)
}

/// Is the container running with its processes frozen (`kiln pause`)?
pub fn is_paused(store: &Store, c: &Container) -> bool {
    c.is_running() && init_pid(store, c).is_some_and(runner::is_paused)
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
    // A paused container's processes take no signal until thawed.
    if let Some(pid) = init_pid(store, c) {
        let _ = runner::freeze(pid, false);
    }
    runtime::of_dir(&dir).kill(c, sig).map_err(|e| match e {
        Error::Run(e) => Error::Invalid(format!("signalling container {}: {e}", c.name)),
        e => e,
    })
}

/// The container's stop signal: `--stop-signal`, else the image's
/// STOPSIGNAL, if either is set.
fn image_stop_signal(store: &Store, c: &Container) -> Result<Option<i32>> {
    if let Some(s) = &c.stop_signal {
        return parse_signal(s).map(Some);
    }
    store
        .resolve(&c.image_id.to_string())
        .ok()
        .and_then(|i| i.config.container_config().stop_signal)
        .map(|s| parse_signal(&s))
        .transpose()
}

/// `kiln kill`: signals the container `name`. A signal that stops it
/// (SIGKILL, the image's STOPSIGNAL, any signal when the image has none)
/// also ends its restart policy, as docker's; a restarting container is
/// then only kept from starting again.
pub fn kill(store: &Store, name: &str, sig: i32) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let stop_sig = image_stop_signal(store, &c)?;
    if c.is_running() || c.is_restarting() || c.is_ending() {
        if sig == libc::SIGKILL || stop_sig.is_none_or(|s| s == sig) {
            restart::request_stop(&containers.container_dir(&c.id))?;
        }
        if !c.is_running() {
            return Ok(());
        }
    }
    signal(store, &c, sig)
}

/// `kiln stop`: `sig` (else `--stop-signal`, the image's STOPSIGNAL,
/// SIGTERM), then SIGKILL after `timeout` (else `--stop-timeout`, else 10
/// seconds); ends the restart policy. A container that is neither running
/// nor restarting is left as is.
pub fn stop(store: &Store, name: &str, sig: Option<i32>, timeout: Option<Duration>) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let timeout = timeout.unwrap_or_else(|| {
        Duration::from_secs(
            c.stop_timeout
                .and_then(|t| u64::try_from(t).ok())
                .unwrap_or(10),
        )
    });
    // One whose run has just ended may be about to restart: the request
    // must reach its monitor too.
    if !c.is_running() && !c.is_restarting() && !c.is_ending() {
        return Ok(());
    }
    restart::request_stop(&containers.container_dir(&c.id))?;
    let sig = match sig {
        Some(s) => s,
        None => image_stop_signal(store, &c)?.unwrap_or(libc::SIGTERM),
    };
    // A restarting container's monitor sees the request and records it
    // exited; one caught starting again is signalled once it runs.
    let c = match settle_restart(&containers, &c) {
        Some(c) => c,
        None => return Ok(()),
    };
    if let Err(e) = signal(store, &c, sig) {
        // It may have exited meanwhile (a policy's short runs do).
        if containers.load(&c.id).is_ok_and(|now| now.is_running()) {
            return Err(e);
        }
    }
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

/// Waits while `c` is between runs: the running container to signal, or
/// None once it is no longer running (exited, removed, orphaned).
fn settle_restart(containers: &Containers, c: &Container) -> Option<Container> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = containers.load(&c.id).ok()?;
        if now.is_running() {
            return Some(now);
        }
        if !(now.is_restarting() || now.is_ending()) || Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `kiln rm`: removes the container `name`; a running one only with
/// `force` (SIGKILL first).
pub fn remove(store: &Store, name: &str, force: bool) -> Result<()> {
    let containers = Containers::new(store);
    let mut c = containers.container(name)?;
    // One whose run has just ended is recorded as exited or restarting in
    // a moment; which one decides what rm may do.
    let end = Instant::now() + Duration::from_secs(10);
    while c.is_ending() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
        c = containers.load(&c.id)?;
    }
    if c.is_restarting() {
        if !force {
            return Err(Error::Invalid(format!(
                "cannot remove container {name}: it is restarting (stop it first or use rm -f)"
            )));
        }
        restart::request_stop(&containers.container_dir(&c.id))?;
    }
    let c = match c.is_restarting() {
        true => settle_restart(&containers, &c).unwrap_or(c),
        false => c,
    };
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

/// `kiln rm [-v]`: [`remove`], then with `volumes` the container's
/// anonymous volumes.
pub fn remove_with_volumes(store: &Store, name: &str, force: bool, volumes: bool) -> Result<()> {
    let c = Containers::new(store).container(name)?;
    remove(store, name, force)?;
    if volumes {
        crate::volumes::Volumes::new(store).remove_anonymous(&c);
    }
    Ok(())
}

/// `kiln logs`: prints the container's log, its stdout lines on `out`
/// and its stderr lines on `err` ([`crate::logfile`]); with
/// `opts.follow`, until the container exits for good (it is neither
/// running nor waiting to be restarted).
pub fn logs(
    store: &Store,
    name: &str,
    opts: &LogOptions,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let dir = containers.container_dir(&c.id);
    let path = dir.join(LOG_FILE);
    let mut live = || {
        containers
            .load(&c.id)
            .is_ok_and(|c| c.is_running() || c.is_restarting())
    };
    if path.exists() {
        return logfile::print(&path, opts, &mut live, out, err);
    }
    let legacy = dir.join(LEGACY_LOG_FILE);
    if !legacy.exists() {
        return Err(Error::Invalid(format!(
            "container {name} has no log: only detached (-d) containers are logged"
        )));
    }
    if opts.needs_entries() {
        return Err(Error::Invalid(format!(
            "container {name} was logged by an older kiln, without streams or times: \
             only `kiln logs [-f]` can show it"
        )));
    }
    legacy_logs(&legacy, opts.follow, &mut live, out)
}

/// The whole output in one file, as kiln logged detached containers before
/// [`crate::logfile`].
fn legacy_logs(
    path: &std::path::Path,
    follow: bool,
    live: &mut dyn FnMut() -> bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut f = fs::File::open(path).map_err(Error::io(path))?;
    // Reading the log and writing the output fail apart: a closed output
    // is the caller's to report.
    std::io::copy(&mut f, out).map_err(Error::Output)?;
    if follow {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let running = live();
            let n = f.read(&mut buf).map_err(Error::io(path))?;
            if n > 0 {
                out.write_all(&buf[..n]).map_err(Error::Output)?;
                out.flush().map_err(Error::Output)?;
                continue;
            }
            if !running {
                break;
            }
            let pos = f.stream_position().map_err(Error::io(path))?;
            std::thread::sleep(Duration::from_millis(100));
            f.seek(std::io::SeekFrom::Start(pos))
                .map_err(Error::io(path))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A container whose run has just ended, recorded as running by a
    /// live monitor (this test process) that has yet to decide whether to
    /// restart it.
    fn ending(containers: &Containers) -> Container {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as i32;
        child.wait().unwrap();
        let c = Container {
            id: "e".repeat(64),
            name: "svc".into(),
            image_id: format!("sha256:{}", "0".repeat(64)).parse().unwrap(),
            image: "busybox".into(),
            command: vec!["true".into()],
            created: image_store::model::now(),
            state: State::Running,
            pid: Some(dead),
            exit_code: None,
            finished: None,
            auto_remove: false,
            owner: Some(std::process::id() as i32),
            mounts: vec![],
            restart_policy: restart::RestartPolicy::parse("always").unwrap(),
            restart_count: 0,
            started: None,
            runs: vec![],
            labels: Default::default(),
            healthcheck: None,
            stop_signal: None,
            stop_timeout: None,
            log_opts: Default::default(),
            entrypoint: None,
            cmd: None,
        };
        fs::create_dir_all(containers.container_dir(&c.id)).unwrap();
        containers.save(&c).unwrap();
        c
    }

    // CI saw `stop` return between a run's end and the monitor's restart:
    // the request must still reach the monitor, and stop wait for it.
    #[test]
    fn stop_between_runs_reaches_the_monitor() {
        let t = tempfile::tempdir().unwrap();
        let store = Store::open(t.path().join("store")).unwrap();
        let containers = Containers::new(&store);
        let c = ending(&containers);
        assert!(c.is_ending());
        let dir = containers.container_dir(&c.id);
        let monitor = {
            let (dir, mut c) = (dir.clone(), c.clone());
            std::thread::spawn(move || {
                // The monitor's decision, made once the request is in.
                assert!(wait_until(Duration::from_secs(5), || {
                    restart::stop_requested(&dir)
                }));
                c.state = State::Exited;
                let p = dir.join("container.json");
                fs::write(&p, serde_json::to_vec(&c).unwrap()).unwrap();
            })
        };
        stop(&store, "svc", None, Some(Duration::from_secs(1))).unwrap();
        monitor.join().unwrap();
        assert!(restart::stop_requested(&dir));
        assert_eq!(containers.load(&c.id).unwrap().state, State::Exited);
    }
}
