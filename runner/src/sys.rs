//! Thin wrappers over the raw syscalls the container child needs.
//!
//! Everything here is callable between `clone` and `execve` in a child of a
//! possibly multi-threaded parent: no allocation, no locks, only syscalls and
//! stack buffers. Errors are plain errno values.

use libc::{c_char, c_int, c_ulong, c_void};
use std::ffi::CStr;

pub(crate) type Errno = c_int;

pub(crate) fn errno() -> Errno {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

fn check(rc: c_int) -> Result<c_int, Errno> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// `struct open_how` of openat2(2); declared here so the crate does not depend
/// on a libc version that exports it.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` relative to `root` as if `root` were `/`: symlinks and `..`
/// cannot leave it, so a hostile image cannot redirect a mount onto the host.
pub(crate) fn open_in_root(
    root: c_int,
    path: &CStr,
    flags: c_int,
    mode: u32,
) -> Result<c_int, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid pointers for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(rc as c_int)
}

/// A NUL-terminated path assembled on the stack.
pub(crate) struct PathBuf {
    buf: [u8; 4096],
    len: usize,
}

impl PathBuf {
    pub(crate) fn new() -> Self {
        PathBuf {
            buf: [0; 4096],
            len: 0,
        }
    }

    pub(crate) fn push_bytes(&mut self, bytes: &[u8]) -> Result<(), Errno> {
        if self.len + bytes.len() + 1 > self.buf.len() {
            return Err(libc::ENAMETOOLONG);
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.buf[self.len] = 0;
        Ok(())
    }

    pub(crate) fn push_num(&mut self, mut n: u64) -> Result<(), Errno> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let tmp = digits;
        self.push_bytes(&tmp[i..])
    }

    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }

    pub(crate) fn as_cstr(&self) -> &CStr {
        // SAFETY: buf[len] is always NUL and pushes never insert interior NULs
        // from CStr sources; a stray NUL would only shorten the string.
        unsafe { CStr::from_ptr(self.as_ptr()) }
    }
}

/// `/proc/self/fd/N`: the way to name an O_PATH fd to mount(2).
pub(crate) fn fd_path(fd: c_int) -> PathBuf {
    let mut p = PathBuf::new();
    // Cannot overflow: fixed prefix plus at most 10 digits.
    let _ = p.push_bytes(b"/proc/self/fd/");
    let _ = p.push_num(fd as u64);
    p
}

pub(crate) fn mount(
    source: *const c_char,
    target: *const c_char,
    fstype: *const c_char,
    flags: c_ulong,
    data: *const c_char,
) -> Result<(), Errno> {
    // SAFETY: callers pass NUL-terminated strings or null.
    check(unsafe { libc::mount(source, target, fstype, flags, data as *const c_void) }).map(|_| ())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;

/// Makes the mount at `path` and every mount below it read-only
/// (mount_setattr(2) with AT_RECURSIVE; a remount only reaches the top one).
pub(crate) fn make_readonly_recursive(path: &CStr) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid path and attr for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc as c_int).map(|_| ())
}

pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> Result<(), Errno> {
    // SAFETY: plain syscall with two C strings.
    let rc = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check(rc as c_int).map(|_| ())
}

pub(crate) fn close(fd: c_int) {
    // SAFETY: closing an fd we own.
    unsafe { libc::close(fd) };
}

pub(crate) fn write_all(fd: c_int, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        // SAFETY: data is a valid slice.
        let n = unsafe { libc::write(fd, data.as_ptr() as *const c_void, data.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
pub(crate) fn read_full(fd: c_int, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: writing into the unfilled tail of buf.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr() as *mut c_void, buf.len() - got) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

pub(crate) fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs as capset(2) requires for v3.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) };
    check(rc as c_int).map(|_| ())
}

/// Sends one fd over a unix socket with SCM_RIGHTS.
pub(crate) fn send_fd(sock: c_int, fd: c_int) -> Result<(), Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut c_void,
        iov_len: 1,
    };
    // Space for one cmsghdr carrying one int, 8-byte aligned.
    let mut cbuf = [0u64; 4];
    // SAFETY: msghdr is plain data; fields set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<c_int>() as u32) } as usize;
    // SAFETY: the control buffer is large enough for one header plus an int.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<c_int>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut c_int, fd);
    }
    // SAFETY: msg is fully initialised.
    let rc = unsafe { libc::sendmsg(sock, &msg, 0) };
    check(rc as c_int).map(|_| ())
}

/// Receives one fd sent by [`send_fd`]; `Ok(None)` on EOF.
pub(crate) fn recv_fd(sock: c_int) -> Result<Option<c_int>, Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr() as *mut c_void,
        iov_len: 1,
    };
    let mut cbuf = [0u64; 4];
    // SAFETY: see send_fd.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr() as *mut c_void;
    msg.msg_controllen = std::mem::size_of_val(&cbuf);
    loop {
        // SAFETY: msg is fully initialised.
        let rc = unsafe { libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if rc < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(errno());
        }
        if rc == 0 {
            return Ok(None);
        }
        break;
    }
    // SAFETY: reading the header the kernel filled in.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(libc::EPROTO);
        }
        Ok(Some(std::ptr::read_unaligned(
            libc::CMSG_DATA(cmsg) as *const c_int
        )))
    }
}

// The id changes below are raw syscalls on purpose. glibc's wrappers, in a
// process that has threads, change the ids of every thread: they take a
// lock and signal each thread the parent had. A child cloned from such a
// process has none of those threads, so the wrapper waits for ever (seen
// with a build running two stages beside a progress thread).

/// setresuid(2) for the calling thread only: -1 and errno on failure.
///
/// # Safety
/// A plain syscall; the caller must be the container child.
pub(crate) unsafe fn setresuid(uid: libc::uid_t) -> libc::c_long {
    libc::syscall(libc::SYS_setresuid, uid, uid, uid)
}

/// setresgid(2) for the calling thread only.
///
/// # Safety
/// As for [`setresuid`].
pub(crate) unsafe fn setresgid(gid: libc::gid_t) -> libc::c_long {
    libc::syscall(libc::SYS_setresgid, gid, gid, gid)
}

/// setgroups(2) for the calling thread only.
///
/// # Safety
/// As for [`setresuid`].
pub(crate) unsafe fn setgroups(groups: &[libc::gid_t]) -> libc::c_long {
    libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr())
}

/// A pollfd waiting for input on `fd` (-1: ignored by poll).
pub(crate) fn pollin(fd: c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// poll(2) on `fds`: the count of ready fds, or -1 with errno set.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: c_int) -> c_int {
    // SAFETY: the slice is a valid array of pollfds for its length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) }
}
