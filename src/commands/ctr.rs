//! Helpers shared by `run`, the container commands, `commit` and `export`:
//! container IDs and names, cheap record writes, liveness of a container's
//! init, the processes of its PID namespace, and the overlay lowers.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use ::containers::{Container, State};
use anyhow::{bail, Context as _, Result};
use image_store::Store;

/// The container's log file (`-d`): stdout and stderr, interleaved.
pub const LOG_FILE: &str = "container.log";
/// The monitor's own pid (`-d`), so `rm -f` can wait for it.
pub const MONITOR_PID_FILE: &str = "monitor.pid";
/// The per-container layer above the image's (docker's "init layer"): empty
/// mount points the image lacks, so the runner does not create them in the
/// upper directory and `commit` does not pick them up.
pub const INIT_DIR: &str = "init";
/// The external runtime's path, for containers run with `--runtime`.
pub const RUNTIME_FILE: &str = "runtime";

/// 64 random hex digits.
pub fn new_id() -> Result<String> {
    let mut buf = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

const ADJECTIVES: [&str; 24] = [
    "admiring",
    "brave",
    "clever",
    "dazzling",
    "eager",
    "festive",
    "gallant",
    "happy",
    "jolly",
    "keen",
    "loving",
    "modest",
    "nifty",
    "optimistic",
    "peaceful",
    "quirky",
    "relaxed",
    "serene",
    "tender",
    "upbeat",
    "vibrant",
    "wizardly",
    "youthful",
    "zealous",
];
const NAMES: [&str; 24] = [
    "babbage", "curie", "darwin", "einstein", "fermi", "galileo", "hopper", "johnson", "kepler",
    "lovelace", "meitner", "newton", "noether", "pascal", "ritchie", "shannon", "tesla",
    "thompson", "turing", "volta", "wilson", "wozniak", "yalow", "zuse",
];

/// A docker-like random name derived from the ID's bytes.
pub fn random_name(id: &str, attempt: usize) -> String {
    let n = usize::from_str_radix(&id[..8], 16).unwrap_or(0);
    let a = ADJECTIVES[n % ADJECTIVES.len()];
    let b = NAMES[(n / ADJECTIVES.len()) % NAMES.len()];
    if attempt == 0 {
        format!("{a}_{b}")
    } else {
        format!("{a}_{b}{attempt}")
    }
}

/// An exclusive flock on `kiln/locks/containers.lock`, held while a name is
/// checked and a record created (separate from the store's writer lock so a
/// long import does not delay `kiln run`).
pub struct NameLock(#[allow(dead_code)] fs::File);

pub fn name_lock(store: &Store) -> Result<NameLock> {
    let p = store.kiln_dir().join("locks/containers.lock");
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    // SAFETY: flock on an open descriptor.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io::Error::last_os_error()).context("locking the container records");
    }
    Ok(NameLock(f))
}

/// Writes the record with a rename but no fsync: container records describe
/// processes that do not survive a reboot anyway, and `run --rm` must be fast.
pub fn save(store: &Store, c: &Container) -> Result<()> {
    let dir = ::containers::Containers::new(store).container_dir(&c.id);
    let p = dir.join("container.json");
    let tmp = dir.join(".container.json.tmp");
    let data = serde_json::to_vec_pretty(c).expect("serializing plain data cannot fail");
    let res = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&data))
        .and_then(|()| fs::rename(&tmp, &p));
    res.with_context(|| format!("writing {}", p.display()))
}

/// Creates the container's directory and record; fails if the name is taken.
/// With `name == None` a random free name is chosen.
pub fn create(store: &Store, c: &mut Container, name: Option<&str>) -> Result<PathBuf> {
    let _g = name_lock(store)?;
    let taken: Vec<String> = ::containers::Containers::new(store)
        .containers()?
        .into_iter()
        .map(|o| o.name)
        .collect();
    match name {
        Some(n) => {
            if taken.iter().any(|t| t == n) {
                bail!("the container name {n:?} is already in use");
            }
            c.name = n.to_string();
        }
        None => {
            c.name = (0..)
                .map(|i| random_name(&c.id, i))
                .find(|n| !taken.contains(n))
                .expect("an unbounded search finds a free name");
        }
    }
    let dir = ::containers::Containers::new(store).container_dir(&c.id);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    save(store, c)?;
    Ok(dir)
}

/// Is `pid` a live (not zombie) process?
pub fn alive(pid: i32) -> bool {
    ::containers::records::pid_alive(pid)
}

/// Is the container's init running right now?
pub fn is_running(c: &Container) -> bool {
    c.state == State::Running && c.pid.is_some_and(alive)
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

/// Waits up to `timeout` for `pred` to hold, polling every 10 ms.
pub fn wait_until(timeout: std::time::Duration, mut pred: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The container's lower directories, bottom first: the image's unpacked
/// layers plus the init layer when there is one.
pub fn lowers(store: &Store, c: &Container) -> Result<Vec<PathBuf>> {
    let image = store
        .resolve(&c.image_id.to_string())
        .with_context(|| format!("the image of container {}", &c.id[..12]))?;
    let mut lowers = store
        .unpacked_layers(&image)
        .with_context(|| format!("unpacking image {}", image.id().short()))?;
    let init = ::containers::Containers::new(store)
        .container_dir(&c.id)
        .join(INIT_DIR);
    if init.is_dir() {
        lowers.push(init);
    }
    Ok(lowers)
}

/// Does `rel` (relative, no leading `/`) exist in any of `lowers`?
/// Whiteouts are not considered: a path deleted by an upper layer counts as
/// present, which at worst leaves a mount point to the runner.
pub fn in_lowers(lowers: &[PathBuf], rel: &str) -> bool {
    lowers
        .iter()
        .rev()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

/// Creates `init/rel` as an empty file or directory (parents as dirs).
pub fn init_stub(init: &Path, rel: &str, dir: bool) -> Result<()> {
    let p = init.join(rel);
    let parent = p.parent().unwrap_or(init);
    fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let res = if dir {
        fs::create_dir_all(&p)
    } else {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map(drop)
    };
    res.with_context(|| format!("creating {}", p.display()))
}

/// The external OCI runtime a container runs under (`--runtime`), if any;
/// its recorded pid is then the runtime's `run` process, not the init.
pub fn external_runtime(store: &Store, c: &Container) -> Option<PathBuf> {
    fs::read_to_string(
        ::containers::Containers::new(store)
            .container_dir(&c.id)
            .join(RUNTIME_FILE),
    )
    .ok()
    .map(|s| PathBuf::from(s.trim()))
}

/// The container's init as seen from the host.
pub fn init_pid(store: &Store, c: &Container) -> Option<i32> {
    let pid = c.pid.filter(|_| is_running(c))?;
    let Some(rt) = external_runtime(store, c) else {
        return Some(pid);
    };
    let out = std::process::Command::new(rt)
        .args(["state", &c.id])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["pid"].as_i64().map(|p| p as i32).filter(|p| *p > 0)
}

/// Sends `sig` to the container's init (through `RUNTIME kill` for an
/// external runtime, whose `run` process would not pass SIGKILL on).
pub fn signal(store: &Store, c: &Container, sig: i32) -> Result<()> {
    let Some(pid) = c.pid.filter(|_| is_running(c)) else {
        bail!("container {} is not running", c.name);
    };
    if let Some(rt) = external_runtime(store, c) {
        let st = std::process::Command::new(&rt)
            .args(["kill", &c.id, &sig.to_string()])
            .status()
            .with_context(|| format!("running {}", rt.display()))?;
        if !st.success() {
            bail!("{} kill {} failed", rt.display(), c.id);
        }
        return Ok(());
    }
    runner::kill(pid, sig).with_context(|| format!("signalling container {}", c.name))
}

/// `KILL`, `SIGKILL`, `9` → 9.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal: {s}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    let n = match name {
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
        _ => bail!("invalid signal: {s}"),
    };
    Ok(n)
}

/// Finds a container, with kiln's error wording.
pub fn find(store: &Store, name: &str) -> Result<Container> {
    Ok(::containers::Containers::new(store).container(name)?)
}

/// Removes a container's directory whatever its state (after it stopped).
pub fn remove_dir(store: &Store, id: &str) -> Result<()> {
    match ::containers::Containers::new(store).remove_container(id) {
        Ok(()) => Ok(()),
        Err(::containers::Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
