//! Paths inside a container's root, looked up from the host side the way
//! the container itself would see them. Every symlink (absolute or
//! relative, in any component) is followed inside the root, `..` stops at
//! the root, and at most [`MAX_HOPS`] links are followed, as openat2's
//! `RESOLVE_IN_ROOT` does. Joining an image's path onto a host directory
//! and handing it to the host's own lookup would follow an image's
//! `etc -> /etc` to the host's /etc; here every step opens one name
//! relative to a directory fd with `O_NOFOLLOW`, so nothing an image (or a
//! running container) controls is ever resolved by the host.
//!
//! The root is either one plain directory ([`Root::dir`]) or a stack of
//! overlay-form layer directories ([`Root::layers`]), merged as overlayfs
//! merges them: the topmost layer that has a name decides, a whiteout (a
//! 0:0 character device) deletes it, directories merge down to the first
//! layer where the name is not a directory, and an opaque directory
//! (`trusted.overlay.opaque=y`) hides the layers beneath it.
//!
//! Layers that never change (a build's stored layers) can be opened once
//! for many roots ([`LayerCache`]): each RUN step of a build looks the same
//! names (`etc`, `etc/passwd`, mount points) up in a stack one layer taller
//! than the step before, and would otherwise open and stat every layer
//! again.
//!
//! This lives in the runner, the lowest crate that looks into a rootfs, so
//! the container and build crates (which depend on it) share one resolver.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Linux's bound on symlinks followed in one lookup (`MAXSYMLINKS`).
pub const MAX_HOPS: usize = 40;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOCTTY)
    .union(OFlags::NONBLOCK);

/// A container's root as the host can look into it.
#[derive(Debug)]
pub struct Root {
    /// Directories of the layers, topmost first (one for a plain dir).
    layers: Vec<Arc<Dir>>,
    /// Whiteouts and opaque directories mean something.
    overlay: bool,
    /// How many of `layers` the root directory merges: down to the first
    /// opaque one (found once, not at every lookup).
    merged: usize,
    /// Top-level directories already merged, by name: looking up
    /// `etc/passwd` then `etc/group` in 100 layers merges `etc` once.
    top: Mutex<Vec<(OsString, Level)>>,
}

/// A merged directory: its directory in each layer that contributes,
/// topmost first.
type Level = Arc<Vec<Arc<Dir>>>;

/// A directory of a layer; in a layer that never changes, with what its
/// names were found to be ([`LayerCache`]).
#[derive(Debug)]
struct Dir {
    fd: OwnedFd,
    memo: Option<Memo>,
}

#[derive(Debug)]
struct Memo {
    names: Mutex<HashMap<OsString, Named>>,
    budget: Arc<Budget>,
}

/// What one name of a directory is, as [`Root::entry`] needs it.
#[derive(Debug, Clone)]
enum Named {
    Missing,
    /// Overlay's whiteout (a 0:0 character device).
    Whiteout,
    /// Not a directory (a symlink among them).
    Other,
    /// A directory, opened; and whether it is opaque.
    Dir(Arc<Dir>, bool),
}

impl Dir {
    fn plain(fd: OwnedFd) -> Arc<Dir> {
        Arc::new(Dir { fd, memo: None })
    }

    /// What `name` is here: remembered in a layer that never changes.
    fn named(&self, name: &OsStr, overlay: bool) -> io::Result<Named> {
        let Some(memo) = &self.memo else {
            return self.look(name, overlay, None);
        };
        let mut names = memo.names.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = names.get(name) {
            return Ok(n.clone());
        }
        let n = self.look(name, overlay, Some(&memo.budget))?;
        let keep = match &n {
            Named::Dir(d, _) => d.memo.is_some(),
            _ => memo.budget.take(&memo.budget.names, MEMO_NAMES),
        };
        if keep {
            names.insert(name.to_owned(), n.clone());
        }
        Ok(n)
    }

    fn look(&self, name: &OsStr, overlay: bool, budget: Option<&Arc<Budget>>) -> io::Result<Named> {
        let st = match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(Named::Missing),
            Err(e) => return Err(e.into()),
        };
        let ft = FileType::from_raw_mode(st.st_mode);
        if overlay && ft == FileType::CharacterDevice && st.st_rdev == 0 {
            return Ok(Named::Whiteout);
        }
        if ft != FileType::Directory {
            return Ok(Named::Other);
        }
        let fd = rustix::fs::openat(&self.fd, name, DIR_FLAGS, Mode::empty())?;
        let opaque = overlay && is_opaque(&fd);
        // A directory kept open for later lookups holds a descriptor for
        // the build: a bounded number of them.
        let memo = budget
            .filter(|b| b.take(&b.dirs, MEMO_DIRS))
            .map(|b| Memo::new(b.clone()));
        Ok(Named::Dir(Arc::new(Dir { fd, memo }), opaque))
    }
}

impl Memo {
    fn new(budget: Arc<Budget>) -> Memo {
        Memo {
            names: Mutex::default(),
            budget,
        }
    }
}

/// How many directories (each an open descriptor) and other names a
/// [`LayerCache`] keeps, across its layers.
const MEMO_DIRS: usize = 512;
const MEMO_NAMES: usize = 16384;

#[derive(Debug, Default)]
struct Budget {
    dirs: AtomicUsize,
    names: AtomicUsize,
}

impl Budget {
    /// Counts one more in `used` if it stays within `max`.
    fn take(&self, used: &AtomicUsize, max: usize) -> bool {
        used.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
    }
}

/// Layer directories opened once for every [`Root`] made from them with
/// [`Root::layers_cached`], with what lookups found in them. Only for
/// layers that never change while the cache lives (a build's stored
/// layers, which the build's hold on the store keeps): what a name was is
/// not looked at again. Bounded: past [`MEMO_DIRS`] directories a lookup
/// opens what it needs as an uncached one does.
#[derive(Debug, Default)]
pub struct LayerCache {
    layers: Mutex<HashMap<PathBuf, (Arc<Dir>, bool)>>,
    budget: Arc<Budget>,
}

impl LayerCache {
    pub fn new() -> LayerCache {
        LayerCache::default()
    }

    /// The layer directory `path` and whether it is opaque; `None` when
    /// it does not exist.
    fn layer(&self, path: &Path) -> io::Result<Option<(Arc<Dir>, bool)>> {
        let mut layers = self.layers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = layers.get(path) {
            return Ok(Some(l.clone()));
        }
        let fd = match open_root(path) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let opaque = is_opaque(&fd);
        if !self.budget.take(&self.budget.dirs, MEMO_DIRS) {
            return Ok(Some((Dir::plain(fd), opaque)));
        }
        let dir = Arc::new(Dir {
            fd,
            memo: Some(Memo::new(self.budget.clone())),
        });
        layers.insert(path.to_path_buf(), (dir.clone(), opaque));
        Ok(Some((dir, opaque)))
    }
}

/// One name the lookup found: where it is and in which layer.
#[derive(Debug)]
pub struct Found {
    /// The path inside the root with every symlink, `.` and `..` resolved
    /// (relative, no leading `/`; empty for the root itself). Its last
    /// component is a symlink only when the lookup did not follow it.
    pub path: PathBuf,
    /// The directory holding it, in the layer that shows it.
    parent: OwnedFd,
    name: OsString,
}

impl Found {
    /// `lstat` of what was found.
    pub fn metadata(&self) -> io::Result<Metadata> {
        let fd = rustix::fs::openat(
            &self.parent,
            &self.name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        File::from(fd).metadata()
    }

    /// Opens what was found for reading; a symlink (left unfollowed) fails.
    /// Non-blocking, so an image's FIFO cannot hang kiln (no effect on a
    /// regular file).
    pub fn open(&self) -> io::Result<File> {
        let fd = rustix::fs::openat(&self.parent, &self.name, READ_FLAGS, Mode::empty())?;
        Ok(File::from(fd))
    }

    /// The target of the symlink that was found (left unfollowed).
    pub fn read_link(&self) -> io::Result<PathBuf> {
        let t = rustix::fs::readlinkat(&self.parent, &self.name, Vec::new())?;
        Ok(PathBuf::from(OsString::from_vec(t.into_bytes())))
    }
}

/// What one name is in the merged directory `level`.
enum Entry {
    Missing,
    /// Not a directory (a symlink among them), shown by `level[i]`.
    Other(usize),
    /// A directory: its fd in each layer that contributes, topmost first.
    Dir(Level),
}

/// How many top-level directories a [`Root`] keeps merged for its next
/// lookups (`etc`, `usr`, ...): a bound, so a walk over a whole tree does
/// not keep a descriptor per directory and layer.
const KEPT_TOP_DIRS: usize = 8;

impl Root {
    /// One plain directory (a rootfs): nothing is a whiteout.
    pub fn dir(path: &Path) -> io::Result<Root> {
        Ok(Root {
            layers: vec![Dir::plain(open_root(path)?)],
            overlay: false,
            merged: 1,
            top: Mutex::default(),
        })
    }

    /// Overlay-form layer directories, base first (an upper directory goes
    /// last). Directories that do not exist (yet) are left out.
    pub fn layers(dirs: &[PathBuf]) -> io::Result<Root> {
        let mut layers = Vec::new();
        for d in dirs.iter().rev() {
            match open_root(d) {
                Ok(fd) => layers.push(Dir::plain(fd)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let merged = layers
            .iter()
            .position(|l| is_opaque(&l.fd))
            .map_or(layers.len(), |i| i + 1);
        Ok(Root {
            layers,
            overlay: true,
            merged,
            top: Mutex::default(),
        })
    }

    /// [`Root::layers`] of layers that never change, opened (and looked
    /// into) once for every root `cache` makes: a build step's stack
    /// opens only the layers the steps before it did not have.
    pub fn layers_cached(dirs: &[PathBuf], cache: &LayerCache) -> io::Result<Root> {
        let mut layers = Vec::new();
        let mut merged = None;
        for d in dirs.iter().rev() {
            if let Some((dir, opaque)) = cache.layer(d)? {
                layers.push(dir);
                if opaque && merged.is_none() {
                    merged = Some(layers.len());
                }
            }
        }
        let merged = merged.unwrap_or(layers.len());
        Ok(Root {
            layers,
            overlay: true,
            merged,
            top: Mutex::default(),
        })
    }

    /// Looks `path` up (absolute or relative: both start at the root).
    /// Symlinks in every component but the last are followed inside the
    /// root; the last is followed too when `follow_last` (as `stat` and
    /// `open` do; `lstat` does not). Errors are the kernel's: `NotFound`,
    /// `ENOTDIR` for a non-directory in the middle, `ELOOP` past
    /// [`MAX_HOPS`] links.
    pub fn lookup(&self, path: &Path, follow_last: bool) -> io::Result<Found> {
        self.walk(path, follow_last, None)
    }

    /// Where `path` is, or would be created, inside the root: its existing
    /// part with every symlink resolved, the missing rest appended as
    /// written (`..` there taken lexically), as securejoin does for a
    /// mount target. `/var/run/x` with `/var/run -> /run` is `run/x`.
    pub fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        self.resolve_found(path).map(|(p, _)| p)
    }

    /// [`Root::resolve`], and whether the resolved path exists: one walk
    /// where a resolve and an `lstat` of its result took two (a mount
    /// target looked up in every layer of a build step's stack).
    pub fn resolve_found(&self, path: &Path) -> io::Result<(PathBuf, bool)> {
        let mut missing = PathBuf::new();
        match self.walk(path, true, Some(&mut missing)) {
            Ok(f) => Ok((f.path, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && !missing.as_os_str().is_empty() => {
                Ok((missing, false))
            }
            Err(e) => Err(e),
        }
    }

    fn walk(
        &self,
        path: &Path,
        follow_last: bool,
        mut missing: Option<&mut PathBuf>,
    ) -> io::Result<Found> {
        let top = &self.layers.first().ok_or(Errno::NOENT)?.fd;
        let root_level = &self.layers[..self.merged];
        // The directory levels walked below the root (which is
        // `root_level`) and their names.
        let mut levels: Vec<Level> = Vec::new();
        let mut names: Vec<OsString> = Vec::new();
        let mut todo = components_reversed(path.as_os_str());
        let mut hops = 0;
        let mut last: Option<Found> = None;
        while let Some(c) = todo.pop() {
            last = None;
            if c.as_bytes() == b".." {
                levels.pop();
                names.pop();
                continue;
            }
            let level = levels.last().map_or(root_level, |l| l.as_slice());
            let found_in = |dir: &Dir, names: &[OsString], c: &OsStr| -> io::Result<Found> {
                let mut path: PathBuf = names.iter().collect();
                path.push(c);
                Ok(Found {
                    path,
                    parent: dir.fd.try_clone()?,
                    name: c.to_owned(),
                })
            };
            let entry = if levels.is_empty() {
                self.top_entry(root_level, &c)?
            } else {
                self.entry(level, &c)?
            };
            match entry {
                Entry::Missing => {
                    if let Some(out) = missing.as_deref_mut() {
                        let mut rest = names.clone();
                        rest.push(c);
                        while let Some(c) = todo.pop() {
                            match c.as_bytes() {
                                b".." => {
                                    rest.pop();
                                }
                                _ => rest.push(c),
                            }
                        }
                        *out = rest.iter().collect();
                        if out.as_os_str().is_empty() {
                            // Climbed back to the root, which exists.
                            return self.walk(Path::new(""), true, None);
                        }
                    }
                    return Err(Errno::NOENT.into());
                }
                Entry::Dir(fds) => {
                    if todo.is_empty() {
                        // The parent in the topmost layer that has it.
                        let i = self.first_with(level, &c)?;
                        last = Some(found_in(&level[i], &names, &c)?);
                    }
                    levels.push(fds);
                    names.push(c);
                }
                Entry::Other(i) => {
                    let st = rustix::fs::statat(&level[i].fd, &c, AtFlags::SYMLINK_NOFOLLOW)?;
                    let is_link = FileType::from_raw_mode(st.st_mode) == FileType::Symlink;
                    if !is_link || (todo.is_empty() && !follow_last) {
                        if !todo.is_empty() {
                            return Err(Errno::NOTDIR.into());
                        }
                        return found_in(&level[i], &names, &c);
                    }
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rustix::fs::readlinkat(&level[i].fd, &c, Vec::new())?;
                    let target = OsString::from_vec(target.into_bytes());
                    if target.is_empty() {
                        return Err(Errno::NOENT.into());
                    }
                    if target.as_bytes().starts_with(b"/") {
                        levels.clear();
                        names.clear();
                    }
                    todo.extend(components_reversed(&target));
                }
            }
        }
        if let Some(f) = last {
            return Ok(f);
        }
        // The path named a directory reached by `..` or a symlink, or the
        // root itself: look its last name up in the level above.
        match names.pop() {
            None => Ok(Found {
                path: PathBuf::new(),
                parent: top.try_clone()?,
                name: ".".into(),
            }),
            Some(c) => {
                levels.pop();
                let level = levels.last().map_or(root_level, |l| l.as_slice());
                let i = self.first_with(level, &c)?;
                let mut path: PathBuf = names.iter().collect();
                path.push(&c);
                Ok(Found {
                    path,
                    parent: level[i].fd.try_clone()?,
                    name: c,
                })
            }
        }
    }

    /// The topmost directory of `level` that has `name`.
    fn first_with(&self, level: &[Arc<Dir>], name: &OsStr) -> io::Result<usize> {
        for (i, dir) in level.iter().enumerate() {
            if dir.memo.is_some() {
                if !matches!(dir.named(name, self.overlay)?, Named::Missing) {
                    return Ok(i);
                }
                continue;
            }
            match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(_) => return Ok(i),
                Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::NOENT.into())
    }

    /// What `name` is in the merged directory `level`.
    fn entry(&self, level: &[Arc<Dir>], name: &OsStr) -> io::Result<Entry> {
        let mut dirs = Vec::new();
        for (i, dir) in level.iter().enumerate() {
            match dir.named(name, self.overlay)? {
                Named::Missing => continue,
                // A whiteout: deleted here, and in every layer below.
                Named::Whiteout => break,
                Named::Other if dirs.is_empty() => return Ok(Entry::Other(i)),
                // A non-directory beneath a directory is hidden by it.
                Named::Other => break,
                Named::Dir(child, opaque) => {
                    dirs.push(child);
                    if opaque {
                        break;
                    }
                }
            }
        }
        if dirs.is_empty() {
            return Ok(Entry::Missing);
        }
        Ok(Entry::Dir(Arc::new(dirs)))
    }

    /// [`Root::entry`] of a top-level name, merged once if a directory.
    fn top_entry(&self, level: &[Arc<Dir>], name: &OsStr) -> io::Result<Entry> {
        let mut top = self.top.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, fds)) = top.iter().find(|(n, _)| n == name) {
            return Ok(Entry::Dir(fds.clone()));
        }
        let e = self.entry(level, name)?;
        if let Entry::Dir(fds) = &e {
            if top.len() < KEPT_TOP_DIRS {
                top.push((name.to_owned(), fds.clone()));
            }
        }
        Ok(e)
    }

    /// `lstat`-like metadata of `path` (intermediate symlinks followed in
    /// the root, the last one not).
    pub fn symlink_metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.lookup(path, false)?.metadata()
    }

    /// Opens the file `path` for reading, following every symlink in the
    /// root.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        self.lookup(path, true)?.open()
    }
}

/// Opens the file `path` of the plain directory `root` for reading, with
/// every symlink followed inside `root`: openat2 with `RESOLVE_IN_ROOT`
/// where the kernel has it (Linux 5.6), else [`Root::dir`]'s walk.
pub fn open_in_root(root: &Path, path: &Path) -> io::Result<File> {
    let dir = open_root(root)?;
    let rel = relative(path.as_os_str());
    let rel: &OsStr = if rel.is_empty() {
        OsStr::new(".")
    } else {
        OsStr::from_bytes(rel)
    };
    match rustix::fs::openat2(
        &dir,
        rel,
        READ_FLAGS.difference(OFlags::NOFOLLOW),
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(File::from(fd)),
        // No openat2 (ENOSYS), or a seccomp filter that hides it (EPERM).
        Err(Errno::NOSYS) | Err(Errno::PERM) => Root::dir(root)?.open(path),
        Err(e) => Err(e.into()),
    }
}

fn open_root(path: &Path) -> io::Result<OwnedFd> {
    // The root itself is the host's path (a store directory), found the
    // host's way; only what is beneath it belongs to the image.
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

fn is_opaque(dir: &impl AsFd) -> bool {
    let mut buf = [0u8; 2];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn relative(path: &OsStr) -> &[u8] {
    let mut b = path.as_bytes();
    while let Some(rest) = b.strip_prefix(b"/") {
        b = rest;
    }
    b
}

/// The names of `path` without empty ones and `.`, last first: a stack to
/// walk from the root.
fn components_reversed(path: &OsStr) -> Vec<OsString> {
    path.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .rev()
        .map(|c| OsStr::from_bytes(c).to_owned())
        .collect()
}

#[cfg(test)]
mod tests;
