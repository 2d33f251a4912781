//! Durable file writes: temp file in the same directory, fsync, rename,
//! fsync of the directory. Every file kiln writes goes through here.
//!
//! Temp files and directories are named `.tmp-…` and their writer holds an
//! exclusive `flock` on them while it owns them, so another process can tell
//! a live writer's temp from a killed one's: the kernel drops a dead
//! process's locks ([`remove_if_stale`]). A SIGINT or SIGTERM removes this
//! process's temps before it exits ([`exit_cleanly_on_signals`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let (tmp, mut file) = tempfile_in(dir)?;
    file.write_all(data)?;
    file.sync_all()?;
    // The file (and its lock) stays open until it has its final name.
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })?;
    drop(file);
    sync_dir(dir)
}

/// The path of a temp this process owns. Dropping it only forgets it for
/// signal cleanup; the owner renames or removes the file itself.
#[derive(Debug)]
pub struct TempPath {
    path: PathBuf,
}

impl std::ops::Deref for TempPath {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempPath {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl From<&TempPath> for PathBuf {
    fn from(t: &TempPath) -> PathBuf {
        t.path.clone()
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        live_temps().remove(&self.path);
    }
}

/// Temps of this process, removed on SIGINT/SIGTERM; the value says
/// whether it is a directory. The cleanup holds the lock until it exits,
/// so no temp is created after it ran.
fn live_temps() -> std::sync::MutexGuard<'static, BTreeMap<PathBuf, bool>> {
    static LIVE: Mutex<BTreeMap<PathBuf, bool>> = Mutex::new(BTreeMap::new());
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Creates a uniquely named empty file in `dir`, locked by this process
/// for as long as the returned file is open.
pub fn tempfile_in(dir: &Path) -> io::Result<(TempPath, File)> {
    crate::writer_marks::mark_for(dir)?;
    tempfile_unmarked(dir)
}

/// Creates a uniquely named empty directory in `dir`; `tag` ends its name
/// (to tell what it is for when one is left behind). The returned handle
/// holds the lock that marks it as owned.
pub fn tempdir_in(dir: &Path, tag: &str) -> io::Result<(TempPath, File)> {
    create_unique(dir, tag, true, |p| {
        fs::create_dir(p)?;
        File::open(p)
    })
}

/// `.tmp-<pid>-<n>-<nanos><tag>` names, unique across threads and
/// processes: `create` must fail with AlreadyExists on a taken name.
fn create_unique(
    dir: &Path,
    tag: &str,
    is_dir: bool,
    create: impl Fn(&Path) -> io::Result<File>,
) -> io::Result<(TempPath, File)> {
    crate::writer_marks::mark_for(dir)?;
    create_unique_unmarked(dir, tag, is_dir, create)
}

/// A locked empty file in `dir` named as a temp, without a writer mark:
/// for the mark itself.
pub(crate) fn tempfile_unmarked(dir: &Path) -> io::Result<(TempPath, File)> {
    create_unique_unmarked(dir, "", false, |p| {
        fs::OpenOptions::new().write(true).create_new(true).open(p)
    })
}

fn create_unique_unmarked(
    dir: &Path,
    tag: &str,
    is_dir: bool,
    create: impl Fn(&Path) -> io::Result<File>,
) -> io::Result<(TempPath, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(format!(
            "{TEMP_PREFIX}{}-{n}-{nanos:x}{tag}",
            std::process::id()
        ));
        let mut live = live_temps();
        let file = match create(&p) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        // A cleaner may have seen the name before the lock was taken and
        // removed it: then it is unlinked (no links left) and we start over.
        file.lock()?;
        if file.metadata()?.nlink() == 0 {
            continue;
        }
        live.insert(p.clone(), is_dir);
        return Ok((TempPath { path: p }, file));
    }
}

/// What temp names start with.
pub const TEMP_PREFIX: &str = ".tmp-";

/// Whether `path` (a `.tmp-…` file or directory, or a lock file) is left
/// over: no live process holds a lock on it.
pub fn is_stale(path: &Path) -> io::Result<bool> {
    Ok(lock_if_stale(path)?.is_some())
}

/// `fs::remove_dir_all` that also removes directories their owner may
/// not enter: the kernel makes an overlay mount's `work/work` mode 000, and
/// an unprivileged user (rootless kiln) cannot list or empty it. On
/// "permission denied" every directory below `path` is made `u+rwx` (no
/// symlink is followed) and the removal is tried again.
pub fn remove_tree(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            open_dirs(path);
            fs::remove_dir_all(path)
        }
        res => res,
    }
}

/// Gives the owner rwx on `dir` and every directory below it, as far as it
/// may; what it cannot change is left to the removal to report.
fn open_dirs(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(md) = fs::symlink_metadata(dir) else {
        return;
    };
    if !md.is_dir() {
        return;
    }
    let mode = md.permissions().mode();
    if mode & 0o700 != 0o700 {
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(mode | 0o700));
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                open_dirs(&e.path());
            }
        }
    }
}

/// Removes `path` if [`is_stale`]. Returns whether it was removed.
pub fn remove_if_stale(path: &Path) -> io::Result<bool> {
    let Some(held) = lock_if_stale(path)? else {
        return Ok(false);
    };
    let res = if held.is_dir() {
        remove_tree(path)
    } else {
        fs::remove_file(path)
    };
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Takes the lock on `path` if nobody holds it, and returns what it is
/// while the lock is held (the lock goes when the file closes, after the
/// caller removed it by name).
fn lock_if_stale(path: &Path) -> io::Result<Option<LockedMeta>> {
    use std::os::unix::fs::OpenOptionsExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() {
        return Ok(Some(LockedMeta { meta, _file: None }));
    }
    let file = match fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(None),
        Err(fs::TryLockError::Error(e)) => return Err(e),
    }
    // Still the same object under that name (not renamed away meanwhile)?
    let held = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {}
        _ => return Ok(None),
    }
    Ok(Some(LockedMeta {
        meta: held,
        _file: Some(file),
    }))
}

struct LockedMeta {
    meta: fs::Metadata,
    _file: Option<File>,
}

impl LockedMeta {
    fn is_dir(&self) -> bool {
        self.meta.is_dir()
    }
}

/// Makes SIGINT and SIGTERM remove this process's temp files and
/// directories, then exit with 130 or 143 as a shell reports them. For
/// commands that run no container (the runner forwards these signals).
/// Call before any other thread is started.
pub fn exit_cleanly_on_signals() {
    // SAFETY: sigset manipulation on a local; the mask is inherited by the
    // threads started later (Command resets it in children).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait on a valid set with the signals blocked.
            while unsafe { libc::sigwait(&set, &mut sig) } != 0 {}
            let live = live_temps();
            for (p, is_dir) in live.iter() {
                let _ = if *is_dir {
                    remove_tree(p)
                } else {
                    fs::remove_file(p)
                };
            }
            let _ = io::stderr().flush();
            // SAFETY: ends the process without running other threads' code.
            unsafe { libc::_exit(128 + sig) };
        });
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_is_stale_only_once_its_owner_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let (path, file) = tempfile_in(dir.path()).unwrap();
        assert!(path
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with(TEMP_PREFIX));
        assert!(!is_stale(&path).unwrap(), "held by its writer");
        assert!(!remove_if_stale(&path).unwrap());
        assert!(path.exists());
        // As if the writer died: its lock goes with its file.
        drop(file);
        assert!(is_stale(&path).unwrap());
        assert!(remove_if_stale(&path).unwrap());
        assert!(!path.exists());

        let (d, handle) = tempdir_in(dir.path(), "-x").unwrap();
        fs::write(d.join("f"), b"x").unwrap();
        assert!(!remove_if_stale(&d).unwrap());
        drop(handle);
        assert!(remove_if_stale(&d).unwrap());
        assert!(!d.exists());
    }
}
