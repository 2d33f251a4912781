//! Terminal mode: the host terminal goes raw, bytes are copied between it and
//! the container's pty, and window size changes follow the host.

use crate::error::{ExitStatus, RunError};
use crate::process::{drain_signals, signalfd, try_reap, Child, ExitWatch, SignalBlock};
use crate::sys;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Puts a terminal fd in raw mode; restores the saved settings on drop.
/// Also what `kiln attach` puts the caller's terminal in.
pub struct RawMode {
    fd: i32,
    saved: libc::termios,
}

impl RawMode {
    /// None when `fd` is not a terminal.
    pub fn enter(fd: i32) -> Option<RawMode> {
        // SAFETY: termios is plain data; tcgetattr fails on non-terminals.
        unsafe {
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(fd, &mut t) != 0 {
                return None;
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(RawMode { fd, saved })
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restoring settings saved in enter().
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

fn copy_winsize(master: i32) {
    for fd in [0, 1, 2] {
        // SAFETY: winsize is plain data.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: ioctls with a valid winsize pointer.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            unsafe { libc::ioctl(master, libc::TIOCSWINSZ, &ws) };
            return;
        }
    }
}

/// Copies what is readable now; returns false on EOF or error.
fn pump(from: i32, to: i32) -> bool {
    let mut buf = [0u8; 8192];
    // SAFETY: reading into a local buffer.
    let n = unsafe { libc::read(from, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        return n < 0 && crate::sys::errno() == libc::EAGAIN;
    }
    crate::sys::write_all(to, &buf[..n as usize]).is_ok()
}

fn set_nonblocking(fd: i32) {
    // SAFETY: fcntl flag changes on a valid fd.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
}

pub(crate) fn wait_with_pty(
    child: &mut Child,
    block: &SignalBlock,
    master: OwnedFd,
    (input, output): (i32, i32),
) -> Result<ExitStatus, RunError> {
    let sfd = signalfd(block)?;
    let m = master.as_raw_fd();
    set_nonblocking(m);
    copy_winsize(m);
    let _raw = RawMode::enter(input);
    let mut stdin_open = true;
    let mut master_open = true;
    let winch = move || copy_winsize(m);
    let exit = ExitWatch::new(child.pid);
    loop {
        if let Some(st) = try_reap(child) {
            // Flush what the program wrote just before it exited.
            while master_open && pump(m, output) {
                if sys::poll(&mut [sys::pollin(m)], 0) <= 0 {
                    break;
                }
            }
            return Ok(st);
        }
        let mut pfds = [
            sys::pollin(sfd.as_raw_fd()),
            sys::pollin(if master_open { m } else { -1 }),
            sys::pollin(if stdin_open { input } else { -1 }),
            sys::pollin(exit.raw()),
        ];
        let rc = sys::poll(&mut pfds, exit.timeout());
        if rc < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            return Err(RunError::io("poll", io::Error::last_os_error()));
        }
        if pfds[0].revents != 0 {
            drain_signals(sfd.as_raw_fd(), child.pid, Some(&winch));
        }
        if pfds[1].revents != 0 && !pump(m, output) {
            // EIO once the last slave fd closes: keep waiting for the exit.
            master_open = false;
        }
        if pfds[2].revents != 0 && !pump(input, m) {
            stdin_open = false;
        }
    }
}
