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
use std::io::{Read as _, Write};
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

/// The monitor's side of [`RESIZE_FIFO`]: a thread that sets each size
/// read on the pty of the current run.
pub struct Resizer {
    pty: Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>>,
}

impl Resizer {
    /// Makes the FIFO and starts the thread (for the monitor's life; it
    /// blocks every signal, which are the container's to receive).
    pub fn start(dir: &Path) -> Result<Resizer> {
        use std::io::BufRead as _;
        let f = fifo(dir, RESIZE_FIFO)?;
        let pty: Arc<std::sync::Mutex<Option<std::os::fd::OwnedFd>>> = Arc::default();
        let shared = Arc::clone(&pty);
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
                let guard = shared.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(m) = guard.as_ref() {
                    use std::os::fd::AsRawFd as _;
                    let ws = libc::winsize {
                        ws_row: rows,
                        ws_col: cols,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ with a valid winsize on our pty copy.
                    unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                }
            }
        });
        // SAFETY: restoring this thread's mask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        Ok(Resizer { pty })
    }

    /// The pty of the run now going (None between runs).
    pub fn set(&self, pty: Option<std::os::fd::OwnedFd>) {
        *self.pty.lock().unwrap_or_else(|p| p.into_inner()) = pty;
    }
}

/// Makes (if need be) and opens the FIFO of a `-d -i` container's
/// standard input, for reading and writing: the monitor's handle keeps
/// the container from ever reading end of file.
pub fn open_stdin(dir: &Path) -> Result<fs::File> {
    fifo(dir, STDIN_FIFO)
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
    let terminal = fs::read(dir.join(crate::run::SPEC_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
        .is_some_and(|s| s["process"]["terminal"] == true);
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
fn relay_input(mut to: fs::File, terminal: bool, detached: &AtomicBool) {
    let mut stdin = std::io::stdin().lock();
    let mut buf = [0u8; 4096];
    let mut held = false;
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut out = Vec::with_capacity(n + 1);
        for &b in &buf[..n] {
            if !terminal {
                out.push(b);
            } else if held && b == DETACH[1] {
                detached.store(true, Ordering::SeqCst);
                let _ = to.write_all(&out);
                return;
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
            return;
        }
    }
}
