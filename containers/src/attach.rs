//! `kiln attach`: the live output of a detached container, from where its
//! log stands now until the container stops, stdout and stderr kept apart
//! (read from the log its monitor writes, [`crate::logfile`]); signals
//! the attached kiln receives go on to the container (docker's
//! `--sig-proxy`); the container's exit code comes back.
//!
//! Detached containers have neither a terminal nor an open standard
//! input (`run -d -i/-t` is refused), so there is no input to attach.

use std::io::Write;
use std::time::{Duration, Instant};

use image_store::Store;

use crate::error::{Error, Result};
use crate::logfile::{self, LogOptions};
use crate::records::Containers;
use crate::run::LOG_FILE;

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
    if sig_proxy {
        proxy_signals(store.clone(), c.id.clone());
    }
    let opts = LogOptions {
        follow: true,
        tail: Some(0),
        ..Default::default()
    };
    // Until the monitor recorded the end (it does so after the last
    // output is in the log).
    let mut live = || {
        containers
            .load(&c.id)
            .is_ok_and(|c| c.is_running() || c.is_ending())
    };
    logfile::print(&path, &opts, &mut live, out, err)?;
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
