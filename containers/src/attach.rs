//! `kiln attach`: the live output of a detached container, from where its
//! log stands now until the container stops, stdout and stderr kept apart
//! (read from the log its monitor writes, [`crate::logfile`]); signals
//! the attached kiln receives go on to the container (docker's
//! `--sig-proxy`); the container's exit code comes back.
//!
//! A container run with `-d -i` reads a FIFO in its directory
//! ([`STDIN_FIFO`], held open by its monitor); `attach` copies its own
//! standard input there. With `-t` the container's pty is the runner's
//! in the monitor, its output logged as it comes; `attach` puts the
//! caller's terminal in raw mode, and Ctrl-P Ctrl-Q detaches (docker's
//! keys). The pty starts at 80x24; attach sends its terminal's size, at
//! start and on each SIGWINCH, through a second FIFO ([`RESIZE_FIFO`])
//! that the monitor's [`Resizer`] applies to the pty.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image_store::Store;

use crate::error::{Error, Result};
use crate::logfile::{self, LogOptions};
use crate::records::Containers;
use crate::run::LOG_FILE;

/// The standard input of a `-d -i` container, in its directory.
pub const STDIN_FIFO: &str = "stdin.fifo";

/// Window sizes for a `-t` container's pty, as `ROWS COLS` lines.
pub const RESIZE_FIFO: &str = "resize.fifo";

/// docker's detach keys: Ctrl-P, Ctrl-Q.
const DETACH: [u8; 2] = [0x10, 0x11];

fn fifo(dir: &Path, name: &str) -> Result<fs::File> {
    let p = dir.join(name);
    if !p.exists() {
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(&p)(e.into()))?;
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&p)
        .map_err(Error::io(&p))
}

/// Opens a FIFO to write into, failing (not hanging) when nobody reads it.
fn fifo_writer(p: &Path) -> Result<fs::File> {
    let w = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(p)
        .map_err(Error::io(p))?;
    rustix::fs::fcntl_setfl(&w, rustix::fs::OFlags::empty()).map_err(|e| Error::io(p)(e.into()))?;
    Ok(w)
}

/// A pty and the last size asked for it: a size that comes between runs
/// (or before the first run's pty is known) is set when it is.
#[derive(Default)]
struct PtySlot {
    pty: Option<std::os::fd::OwnedFd>,
    size: Option<(u16, u16)>,
}

impl PtySlot {
    fn apply(&self) {
        if let (Some(m), Some((rows, cols))) = (&self.pty, self.size) {
            let _ = set_pty_size(m, rows, cols);
        }
    }
}

/// Sets a pty's window size (`rows` × `cols`); the process on it gets
/// SIGWINCH.
pub fn set_pty_size(pty: &impl std::os::fd::AsRawFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ with a valid winsize on the caller's descriptor.
    match unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// The monitor's side of [`RESIZE_FIFO`]: a thread that sets each size
/// read on the pty of the current run.
pub struct Resizer {
    slot: Arc<std::sync::Mutex<PtySlot>>,
}

impl Resizer {
    /// Makes the FIFO and starts the thread (for the monitor's life; it
    /// blocks every signal, which are the container's to receive).
    pub fn start(dir: &Path) -> Result<Resizer> {
        use std::io::BufRead as _;
        let f = fifo(dir, RESIZE_FIFO)?;
        let slot: Arc<std::sync::Mutex<PtySlot>> = Arc::default();
        let shared = Arc::clone(&slot);
        // SAFETY: sigset manipulation on locals; masks of this thread.
        let old = unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            let mut old: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
            old
        };
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(f).lines() {
                let Ok(line) = line else { return };
                let mut it = line.split_whitespace().map(|n| n.parse::<u16>());
                let (Some(Ok(rows)), Some(Ok(cols))) = (it.next(), it.next()) else {
                    continue;
                };
                let mut guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                guard.size = Some((rows, cols));
                guard.apply();
            }
        });
        // SAFETY: restoring this thread's mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        Ok(Resizer { slot })
    }

    /// The pty of the run now going (None between runs); a size asked for
    /// before it was known (a client resizes right after its start) is set.
    pub fn set(&self, pty: Option<std::os::fd::OwnedFd>) {
        let mut guard = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        guard.pty = pty;
        guard.apply();
    }
}

/// Sends a new window size to the pty of running container `name` (run
/// with `-t`), through its monitor's [`RESIZE_FIFO`]: the Engine API's
/// resize, a terminal's SIGWINCH for `kiln attach`.
pub fn resize(store: &Store, name: &str, rows: u16, cols: u16) -> Result<()> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    if !c.is_running() {
        return Err(Error::Invalid(format!(
            "container {} is not running",
            c.name
        )));
    }
    let p = containers.container_dir(&c.id).join(RESIZE_FIFO);
    if !p.exists() {
        return Err(Error::Invalid(format!(
            "container {} has no terminal to resize (it was not run with a tty)",
            c.name
        )));
    }
    let mut w = fifo_writer(&p)?;
    writeln!(w, "{rows} {cols}").map_err(Error::io(&p))
}

/// Makes (if need be) and opens the FIFO of a `-d -i` container's
/// standard input, for reading and writing: the monitor's handle keeps
/// the container from ever reading end of file. A client that writes
/// into it (the Engine API's attach, before the container starts) opens
/// it this way too, so that what it writes before the monitor opens it
/// is kept.
pub fn open_stdin(dir: &Path) -> Result<fs::File> {
    fifo(dir, STDIN_FIFO)
}

/// The FIFO of a container's standard input for writing only, for a
/// client's input: fails (does not wait) when nobody reads it, and a
/// write fails once nobody does any more (its monitor has gone).
pub fn stdin_writer(dir: &Path) -> Result<fs::File> {
    fifo_writer(&dir.join(STDIN_FIFO))
}

/// The FIFO of a container's standard input for reading only (docker's
/// `StdinOnce`): the container reads end of file once every writer (the
/// one attached client) has closed it.
pub fn open_stdin_once(dir: &Path) -> Result<fs::File> {
    let p = dir.join(STDIN_FIFO);
    if !p.exists() {
        rustix::fs::mkfifoat(rustix::fs::CWD, &p, rustix::fs::Mode::from_raw_mode(0o600))
            .map_err(|e| Error::io(&p)(e.into()))?;
    }
    // Not blocking in open when nobody writes yet; reads block again.
    let r = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(&p)
        .map_err(Error::io(&p))?;
    rustix::fs::fcntl_setfl(&r, rustix::fs::OFlags::empty())
        .map_err(|e| Error::io(&p)(e.into()))?;
    Ok(r)
}

/// Whether the container in `dir` runs on a pty (`-t`): its output is one
/// stream, its input a terminal's keys.
pub fn has_terminal(dir: &Path) -> bool {
    fs::read(dir.join(crate::run::SPEC_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .is_some_and(|s| s["process"]["terminal"] == true)
}

/// The signals passed on to the container while attached.
const PROXIED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Streams container `name`'s output until it stops; returns its exit code
/// (0 when an `--rm` container is gone before it could be read).
pub fn attach(
    store: &Store,
    name: &str,
    sig_proxy: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    if !c.is_running() {
        return Err(Error::Invalid(format!(
            "you cannot attach to a stopped container ({}), start it first",
            c.name
        )));
    }
    let path = containers.container_dir(&c.id).join(LOG_FILE);
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "container {} has no log to attach to (a foreground `run` or `start -a` shows its output itself)",
            c.name
        )));
    }
    let dir = containers.container_dir(&c.id);
    let terminal = has_terminal(&dir);
    // Keys typed into a terminal are the container's, Ctrl-C included.
    if sig_proxy && !terminal {
        proxy_signals(store.clone(), c.id.clone());
    }
    let detached = Arc::new(AtomicBool::new(false));
    let mut _raw = None;
    let mut input = None;
    let fifo = dir.join(STDIN_FIFO);
    if fifo.exists() {
        let w = fifo_writer(&fifo)?;
        if terminal {
            _raw = runner::RawMode::enter(0);
        }
        input = Some(w);
    }
    let resize = dir.join(RESIZE_FIFO);
    if terminal && resize.exists() && _raw.is_some() {
        follow_window_size(fifo_writer(&resize)?);
    }
    let opts = LogOptions {
        follow: true,
        tail: Some(0),
        parts: true,
        ..Default::default()
    };
    // Until the monitor recorded the end (it does so after the last
    // output is in the log), or the user detached.
    let mut live = || {
        // Input starts once the log is open where the output is to
        // start (print asks before its first read): no answer is missed.
        if let Some(w) = input.take() {
            let flag = Arc::clone(&detached);
            std::thread::spawn(move || relay_input(w, terminal, &flag));
        }
        !detached.load(Ordering::SeqCst)
            && containers
                .load(&c.id)
                .is_ok_and(|c| c.is_running() || c.is_ending())
    };
    logfile::print(&path, &opts, &mut live, out, err)?;
    if detached.load(Ordering::SeqCst) {
        return Ok(0);
    }
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match containers.load(&c.id) {
            Ok(now) if now.is_ending() && Instant::now() < end => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(now) => return Ok(now.exit_code.unwrap_or(0)),
            Err(_) => return Ok(0),
        }
    }
}

/// Blocks [`PROXIED`] in this thread (so in the threads it starts) and
/// passes each one the process receives on to container `id`, from a
/// thread that waits for them for the rest of the process's life.
fn proxy_signals(store: Store, id: String) {
    // SAFETY: sigset manipulation on locals; pthread_sigmask on this thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in PROXIED {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: sigwait on a valid set, writing into a local.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        let containers = Containers::new(&store);
        if let Ok(c) = containers.load(&id) {
            // One that stopped meanwhile takes no signal; attach ends anyway.
            let _ = crate::control::signal(&store, &c, sig);
        }
    });
}

/// Sends this terminal's size to the container's pty now and after each
/// SIGWINCH (blocked here, waited for by a thread of its own).
fn follow_window_size(mut to: fs::File) {
    let mut send = move || {
        // SAFETY: winsize is plain data filled by the ioctl.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ on our standard input, a terminal.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 {
            let _ = writeln!(to, "{} {}", ws.ws_row, ws.ws_col);
        }
    };
    // SAFETY: sigset manipulation on locals; the mask of this thread.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGWINCH);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    send();
    std::thread::spawn(move || loop {
        let mut sig = 0;
        // SAFETY: sigwait on a valid set, writing into a local.
        if unsafe { libc::sigwait(&set, &mut sig) } != 0 {
            return;
        }
        send();
    });
}

/// Copies standard input into the container's FIFO until end of file;
/// in a terminal, Ctrl-P Ctrl-Q sets `detached` instead.
fn relay_input(to: fs::File, terminal: bool, detached: &AtomicBool) {
    let mut stdin = std::io::stdin().lock();
    if relay(&mut stdin, to, terminal) {
        detached.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` into a container's standard input (`to`, its FIFO) until
/// end of file or a failed write; with `terminal`, until docker's detach
/// keys (Ctrl-P Ctrl-Q), which are not passed on: returns true then.
/// `kiln attach`'s input and the Engine API's attached clients'.
pub fn relay(from: &mut dyn std::io::Read, mut to: fs::File, terminal: bool) -> bool {
    let mut buf = [0u8; 4096];
    let mut held = false;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 1);
        for &b in &buf[..n] {
            if !terminal {
                out.push(b);
            } else if held && b == DETACH[1] {
                let _ = to.write_all(&out);
                return true;
            } else if b == DETACH[0] {
                if held {
                    out.push(b);
                }
                held = true;
            } else {
                if held {
                    out.push(DETACH[0]);
                    held = false;
                }
                out.push(b);
            }
        }
        if to.write_all(&out).is_err() {
            return false;
        }
    }
}
