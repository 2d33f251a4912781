//! Layers from directories: the changes a container made (an overlayfs
//! upper directory) become a layer tar with OCI whiteouts, entries sorted
//! and times optionally clamped, so equal inputs give equal digests.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, Mode, OFlags};

use crate::layer::{LayerError, TarStats};

#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions {
    /// `SOURCE_DATE_EPOCH`: no entry is newer than this.
    pub clamp_mtime: Option<u64>,
    /// Read overlayfs whiteouts (0/0 char devices, opaque xattrs) and write
    /// them as `.wh.` entries. Off for a plain directory.
    pub overlay_whiteouts: bool,
}

/// Writes `dir`'s contents as a tar stream, sorted by name.
pub fn write_tar_from_dir<W: Write>(
    dir: &Path,
    out: W,
    opts: DiffOptions,
) -> Result<TarStats, LayerError> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut stats = TarStats::default();
    let mut links: HashMap<(u64, u64), std::path::PathBuf> = HashMap::new();
    // The directory itself is the host's path (a store directory or a
    // mounted view); below it, nothing is looked up by path: a running
    // container (`commit --pause=false`, `export`) may swap any of its
    // files or directories for a link to the host's while it is read.
    let root = rfs::open(dir, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
        .map_err(io::Error::from)?;
    add_dir(&mut b, &root, Path::new(""), opts, &mut stats, &mut links)?;
    b.into_inner()?.flush()?;
    Ok(stats)
}

fn add_dir<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &OwnedFd,
    rel: &Path,
    opts: DiffOptions,
    stats: &mut TarStats,
    links: &mut HashMap<(u64, u64), std::path::PathBuf>,
) -> Result<(), LayerError> {
    let mut names: Vec<OsString> = Vec::new();
    for e in rfs::Dir::read_from(dir).map_err(io::Error::from)? {
        let n = e.map_err(io::Error::from)?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            names.push(OsString::from_vec(n));
        }
    }
    names.sort();
    for name in names {
        let relp = rel.join(&name);
        // A file the container named `.wh..` or `.wh...` would read as a
        // whiteout of `.` or `..`: refused here as on every other way in.
        crate::layer::classify_name(relp.as_os_str().as_bytes())?;
        let md = metadata_at(dir, &name)?;
        let ft = md.file_type();
        if opts.overlay_whiteouts && ft.is_char_device() && md.rdev() == 0 {
            let mut wh = std::ffi::OsString::from(".wh.");
            wh.push(&name);
            let mut h = header(&md, tar::EntryType::Regular, opts);
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, rel.join(wh), io::empty())?;
            stats.entries += 1;
            continue;
        }
        if ft.is_dir() {
            let mut h = header(&md, tar::EntryType::Directory, opts);
            h.set_size(0);
            let mut dname = relp.clone().into_os_string();
            dname.push("/");
            b.append_data(&mut h, Path::new(&dname), io::empty())?;
            stats.entries += 1;
            let child =
                rfs::openat(dir, &name, DIR_FLAGS, Mode::empty()).map_err(io::Error::from)?;
            if opts.overlay_whiteouts && is_opaque(&child) {
                let mut h = header(&md, tar::EntryType::Regular, opts);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_data(&mut h, relp.join(".wh..wh..opq"), io::empty())?;
                stats.entries += 1;
            }
            add_dir(b, &child, &relp, opts, stats, links)?;
        } else if ft.is_symlink() {
            let target = rfs::readlinkat(dir, &name, Vec::new()).map_err(io::Error::from)?;
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            let mut h = header(&md, tar::EntryType::Symlink, opts);
            h.set_size(0);
            b.append_link(&mut h, &relp, &target)?;
            stats.entries += 1;
        } else if ft.is_file() {
            let key = (md.dev(), md.ino());
            if md.nlink() > 1 {
                if let Some(first) = links.get(&key) {
                    let mut h = header(&md, tar::EntryType::Link, opts);
                    h.set_size(0);
                    b.append_link(&mut h, &relp, first)?;
                    stats.entries += 1;
                    continue;
                }
                links.insert(key, relp.clone());
            }
            let mut h = header(&md, tar::EntryType::Regular, opts);
            h.set_size(md.len());
            let f = open_same(dir, &name, &md)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", relp.display())))?;
            b.append_data(&mut h, &relp, f)?;
            stats.entries += 1;
            stats.bytes += md.len();
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                continue; // sockets do not belong in images
            };
            let mut h = header(&md, kind, opts);
            h.set_size(0);
            let dev = md.rdev();
            h.set_device_major(rustix::fs::major(dev))?;
            h.set_device_minor(rustix::fs::minor(dev))?;
            b.append_data(&mut h, &relp, io::empty())?;
            stats.entries += 1;
        }
    }
    Ok(())
}

fn header(md: &fs::Metadata, kind: tar::EntryType, opts: DiffOptions) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid() as u64);
    h.set_gid(md.gid() as u64);
    let mtime = md.mtime().max(0) as u64;
    h.set_mtime(opts.clamp_mtime.map_or(mtime, |c| mtime.min(c)));
    h
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rfs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// `lstat` of `name` in `dir`.
fn metadata_at(dir: &OwnedFd, name: &OsStr) -> io::Result<fs::Metadata> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    File::from(fd).metadata()
}

/// Opens the regular file `name` of `dir` that was measured as `md`,
/// without following a link, and only if it is still that file: a running
/// container may swap it for a link to a host file in between.
fn open_same(dir: &OwnedFd, name: &OsStr, md: &fs::Metadata) -> io::Result<File> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let f = File::from(rfs::openat(dir, name, flags, Mode::empty())?);
    let now = f.metadata()?;
    if (now.dev(), now.ino()) != (md.dev(), md.ino()) || !now.is_file() {
        return Err(io::Error::other("replaced while it was read"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unpack::{unpack, UnpackOptions, Whiteouts};

    #[test]
    fn round_trips_through_unpack() {
        let src = tempfile::tempdir().unwrap();
        fs::create_dir_all(src.path().join("a/b")).unwrap();
        fs::write(src.path().join("a/b/f"), b"data").unwrap();
        fs::hard_link(src.path().join("a/b/f"), src.path().join("a/h")).unwrap();
        std::os::unix::fs::symlink("b/f", src.path().join("a/s")).unwrap();
        let mut tar1 = Vec::new();
        write_tar_from_dir(src.path(), &mut tar1, DiffOptions::default()).unwrap();
        let dst = tempfile::tempdir().unwrap();
        let opts = UnpackOptions {
            whiteouts: Whiteouts::Overlay,
            ..Default::default()
        };
        unpack(&tar1[..], dst.path(), opts).unwrap();
        assert_eq!(fs::read(dst.path().join("a/h")).unwrap(), b"data");
        assert_eq!(
            fs::read_link(dst.path().join("a/s")).unwrap(),
            Path::new("b/f")
        );
        let mut tar2 = Vec::new();
        write_tar_from_dir(dst.path(), &mut tar2, DiffOptions::default()).unwrap();
        assert_eq!(tar1, tar2, "same tree, same bytes");
    }

    #[test]
    fn overlay_whiteouts_become_wh_entries() {
        let src = tempfile::tempdir().unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.path().join("gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let mut t = Vec::new();
        let opts = DiffOptions {
            overlay_whiteouts: true,
            clamp_mtime: Some(0),
        };
        write_tar_from_dir(src.path(), &mut t, opts).unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let e: Vec<String> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(e, [".wh.gone"]);
    }

    #[test]
    fn files_that_would_read_as_bad_whiteouts_are_refused() {
        // A container can create `.wh...`; committed as is it would be a
        // whiteout of `..` in the new layer.
        for name in [".wh...", ".wh..", ".wh."] {
            let src = tempfile::tempdir().unwrap();
            fs::create_dir(src.path().join("d")).unwrap();
            fs::write(src.path().join("d").join(name), b"").unwrap();
            let err = write_tar_from_dir(src.path(), io::sink(), DiffOptions::default())
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(&format!("d/{name}")) && err.contains("whiteout"),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn non_utf8_whiteouts_keep_their_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let src = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"g\xff");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            src.path().join(name),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::empty(),
            0,
        )
        .unwrap();
        let mut t = Vec::new();
        let opts = DiffOptions {
            overlay_whiteouts: true,
            clamp_mtime: Some(0),
        };
        write_tar_from_dir(src.path(), &mut t, opts).unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let names: Vec<Vec<u8>> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        assert_eq!(names, [b".wh.g\xff".to_vec()]);
    }

    /// The file `lstat` saw is replaced by a link to a host file before it
    /// is opened: the host file is never read.
    #[test]
    fn a_file_swapped_for_a_link_is_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let (f, host) = (t.path().join("f"), t.path().join("host"));
        fs::write(&f, "mine").unwrap();
        fs::write(&host, "host").unwrap();
        let md = fs::symlink_metadata(&f).unwrap();
        let dir = rfs::open(t.path(), DIR_FLAGS, Mode::empty()).unwrap();
        let open = || open_same(&dir, OsStr::new("f"), &md);
        assert!(open().is_ok());
        // Kept, so its inode number is not reused below.
        fs::rename(&f, t.path().join("kept")).unwrap();
        std::os::unix::fs::symlink(&host, &f).unwrap();
        assert!(open().is_err());
        // Another file in its place is not the one measured either.
        fs::remove_file(&f).unwrap();
        fs::write(&f, "other, longer").unwrap();
        assert!(open().is_err());
    }
}
