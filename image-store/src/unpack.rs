//! Applying a layer tar to a directory without ever writing outside it.
//!
//! `tar`'s own `unpack` follows symlinks planted by earlier entries and
//! trusts names; here every parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative)
//! resolve inside the target as they would in a chroot, and each entry is
//! created with `*at` calls relative to that parent.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
};

use crate::layer::{clean_path, LayerError};

/// What a whiteout entry (`.wh.NAME`, `.wh..wh..opq`) turns into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Overlayfs form, for a layer unpacked as a lower directory: a 0/0
    /// character device, and the `trusted.overlay.opaque` xattr.
    Overlay,
    /// Applied: the named files are deleted from the target, as when layers
    /// are flattened into one tree.
    Delete,
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
    /// Set owners from the tar (needs root or a user namespace).
    pub same_owner: bool,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            whiteouts: Whiteouts::Overlay,
            same_owner: rustix::process::geteuid().is_root(),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct UnpackStats {
    pub entries: u64,
    /// Device nodes that could not be created (no CAP_MKNOD).
    pub skipped_devices: u64,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

fn io_err(entry: &str, what: &str) -> impl FnOnce(rustix::io::Errno) -> LayerError {
    let what = what.to_string();
    let entry = entry.to_string();
    move |e| LayerError::BadEntry {
        entry,
        reason: format!("{what}: {}", io::Error::from(e)),
    }
}

/// Unpacks an uncompressed layer tar into `dest` (which must exist).
pub fn unpack<R: Read>(
    input: R,
    dest: &Path,
    opts: UnpackOptions,
) -> Result<UnpackStats, LayerError> {
    let root = rfs::open(
        dest,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io::Error::from)?;
    let mut archive = tar::Archive::new(input);
    let mut stats = UnpackStats::default();
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();

    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(rel) = clean_path(&raw)? else {
            continue;
        };
        let name = rel
            .file_name()
            .expect("clean paths end in a name")
            .to_owned();
        let name_str = name.to_string_lossy().into_owned();
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let parent = ensure_dir(&root, &parent_rel, &raw)?;

        if name_str == OPAQUE {
            match opts.whiteouts {
                Whiteouts::Overlay => rfs::fsetxattr(
                    &parent,
                    "trusted.overlay.opaque",
                    b"y",
                    rfs::XattrFlags::empty(),
                )
                .map_err(io_err(&raw, "marking the directory opaque"))?,
                Whiteouts::Delete => clear_dir_except(&parent, &parent_rel, &created, &raw)?,
            }
            continue;
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            match opts.whiteouts {
                Whiteouts::Overlay => {
                    remove_existing(&parent, hidden, &raw)?;
                    rfs::mknodat(&parent, hidden, FileType::CharacterDevice, Mode::empty(), 0)
                        .map_err(io_err(&raw, "creating a whiteout"))?;
                }
                Whiteouts::Delete => remove_existing(&parent, hidden, &raw)?,
            }
            continue;
        }

        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode()? & 0o7777);
        let kind = header.entry_type();
        let existing = rfs::statat(&parent, &name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_some() && !(kind.is_dir() && existing_is_dir) {
            remove_existing(&parent, &name_str, &raw)?;
        }
        let mut file_fd: Option<OwnedFd> = None;
        match kind {
            tar::EntryType::Directory => {
                if !existing_is_dir {
                    rfs::mkdirat(&parent, &name, mode).map_err(io_err(&raw, "mkdir"))?;
                }
                dir_times.push((rel.clone(), header.mtime().unwrap_or(0)));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rfs::openat(
                    &parent,
                    &name,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(io_err(&raw, "create"))?;
                let mut f = File::from(fd);
                io::copy(&mut entry, &mut f)?;
                file_fd = Some(f.into());
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                rfs::symlinkat(target.as_slice(), &parent, &name)
                    .map_err(io_err(&raw, "symlink"))?;
            }
            tar::EntryType::Link => {
                let target_raw =
                    String::from_utf8_lossy(&entry.link_name_bytes().unwrap_or_default())
                        .into_owned();
                let target = clean_path(&target_raw)?.ok_or_else(|| LayerError::BadEntry {
                    entry: raw.clone(),
                    reason: "hard link to the root directory".into(),
                })?;
                let tparent = ensure_dir(&root, target.parent().unwrap_or(Path::new("")), &raw)?;
                let tname = target.file_name().expect("clean paths end in a name");
                rfs::linkat(&tparent, tname, &parent, &name, AtFlags::empty())
                    .map_err(io_err(&raw, "hard link"))?;
                // A hard link shares the target's inode and metadata.
                created.insert(rel);
                stats.entries += 1;
                continue;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (ft, dev) = match kind {
                    tar::EntryType::Char => (FileType::CharacterDevice, device(&header)),
                    tar::EntryType::Block => (FileType::BlockDevice, device(&header)),
                    _ => (FileType::Fifo, 0),
                };
                match rfs::mknodat(&parent, &name, ft, mode, dev) {
                    Ok(()) => {}
                    Err(rustix::io::Errno::PERM) if ft != FileType::Fifo => {
                        stats.skipped_devices += 1;
                        continue;
                    }
                    Err(e) => return Err(io_err(&raw, "mknod")(e)),
                }
            }
            other => {
                return Err(LayerError::BadEntry {
                    entry: raw,
                    reason: format!("unsupported tar entry type {other:?}"),
                })
            }
        }

        if opts.same_owner {
            let uid = header.uid()? as u32;
            let gid = header.gid()? as u32;
            let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
            rfs::chownat(&parent, &name, Some(u), Some(g), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(io_err(&raw, "chown"))?;
        }
        if kind != tar::EntryType::Symlink {
            // After chown, which clears set-id bits.
            match &file_fd {
                Some(fd) => rfs::fchmod(fd, mode),
                None => rfs::chmodat(&parent, &name, mode, AtFlags::empty()),
            }
            .map_err(io_err(&raw, "chmod"))?;
        }
        if let Some(exts) = entry.pax_extensions()? {
            for ext in exts.flatten() {
                let Some(key) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) else {
                    continue;
                };
                if let Some(fd) = &file_fd {
                    // Best effort, as docker: some filesystems refuse xattrs.
                    let _ = rfs::fsetxattr(fd, key, ext.value_bytes(), rfs::XattrFlags::empty());
                }
            }
        }
        if !kind.is_dir() {
            let t = mtime(&header);
            let r = match &file_fd {
                Some(fd) => rfs::futimens(fd, &t),
                None => rfs::utimensat(&parent, &name, &t, AtFlags::SYMLINK_NOFOLLOW),
            };
            r.map_err(io_err(&raw, "set times"))?;
        }
        created.insert(rel);
        stats.entries += 1;
    }

    // Directory times last: creating their children changed them.
    for (rel, secs) in dir_times.into_iter().rev() {
        let t = Timestamps {
            last_access: Timespec {
                tv_sec: secs as i64,
                tv_nsec: 0,
            },
            last_modification: Timespec {
                tv_sec: secs as i64,
                tv_nsec: 0,
            },
        };
        let _ = rfs::utimensat(&root, &rel, &t, AtFlags::SYMLINK_NOFOLLOW);
    }
    Ok(stats)
}

fn device(h: &tar::Header) -> u64 {
    let major = h.device_major().ok().flatten().unwrap_or(0);
    let minor = h.device_minor().ok().flatten().unwrap_or(0);
    rustix::fs::makedev(major, minor)
}

fn mtime(h: &tar::Header) -> Timestamps {
    let secs = h.mtime().unwrap_or(0) as i64;
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Opens `rel` (a directory inside the root), creating missing components.
/// `RESOLVE_IN_ROOT` keeps every symlink and `..` inside the root.
fn ensure_dir(root: &OwnedFd, rel: &Path, entry: &str) -> Result<OwnedFd, LayerError> {
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let target = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    match rfs::openat2(root, target, flags, Mode::empty(), resolve) {
        Ok(fd) => Ok(fd),
        Err(rustix::io::Errno::NOENT) => {
            let parent = ensure_dir(root, rel.parent().unwrap_or(Path::new("")), entry)?;
            let name = rel.file_name().expect("non-empty path has a name");
            match rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_err(entry, "creating a parent directory")(e)),
            }
            rfs::openat2(root, target, flags, Mode::empty(), resolve)
                .map_err(io_err(entry, "opening its parent directory"))
        }
        Err(e) => Err(io_err(entry, "opening its parent directory")(e)),
    }
}

/// Removes `name` in `parent` (recursively for a directory) without
/// following a symlink at `name`.
fn remove_existing(parent: &OwnedFd, name: &str, entry: &str) -> Result<(), LayerError> {
    let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(entry, "stat")(e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        // The /proc link names the parent we already opened safely; the last
        // component is a real directory, not a symlink, so nothing outside.
        let p = proc_path(parent).join(name);
        std::fs::remove_dir_all(&p).map_err(|e| LayerError::BadEntry {
            entry: entry.to_string(),
            reason: format!("removing {name}: {e}"),
        })
    } else {
        rfs::unlinkat(parent, name, AtFlags::empty()).map_err(io_err(entry, "unlink"))
    }
}

/// Deletes every child of the directory not created by this layer (an
/// opaque whiteout applied onto a tree).
fn clear_dir_except(
    dir: &OwnedFd,
    dir_rel: &Path,
    created: &HashSet<PathBuf>,
    entry: &str,
) -> Result<(), LayerError> {
    let listing = std::fs::read_dir(proc_path(dir)).map_err(|e| LayerError::BadEntry {
        entry: entry.to_string(),
        reason: format!("listing its directory: {e}"),
    })?;
    for child in listing {
        let child = child?;
        let name = child.file_name();
        if !created.contains(&dir_rel.join(&name)) {
            remove_existing(dir, &name.to_string_lossy(), entry)?;
        }
    }
    Ok(())
}

fn proc_path(fd: &OwnedFd) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd()))
}
