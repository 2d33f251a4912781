//! Writing files under a directory that something else controls (a
//! container's upper directory, a volume a container writes to), without
//! ever leaving it: every step is relative to an open directory
//! descriptor and refuses symlinks (`O_NOFOLLOW`), so a symlink the
//! container made cannot send a write to the host's files, even if it
//! appears after kiln looked. In an overlay upper directory a whiteout in
//! the way is removed, and a directory made in its place is marked opaque
//! so that what the lower layers had there stays deleted.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
    Fifo,
}

/// Owner, mode, time and extended attributes, as they are kept.
#[derive(Debug, Clone)]
pub struct Attrs {
    /// Permission bits with setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Default for Attrs {
    fn default() -> Attrs {
        Attrs {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: (0, 0),
            xattrs: Vec::new(),
        }
    }
}

impl Attrs {
    /// The attributes of `path` (not followed), whose metadata is `m`;
    /// overlay's own attributes left out.
    pub fn of(path: &Path, m: &fs::Metadata) -> Attrs {
        Attrs {
            mode: m.mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            mtime: (m.mtime(), m.mtime_nsec()),
            xattrs: xattrs(path),
        }
    }

    /// The kind of the entry at `path` with metadata `m`, or `None` for
    /// what is never copied (devices, sockets).
    pub fn kind(path: &Path, m: &fs::Metadata) -> io::Result<Option<Kind>> {
        use std::os::unix::fs::FileTypeExt;
        let t = m.file_type();
        Ok(if t.is_dir() {
            Some(Kind::Dir)
        } else if t.is_file() {
            Some(Kind::File)
        } else if t.is_symlink() {
            Some(Kind::Symlink(fs::read_link(path)?))
        } else if t.is_fifo() {
            Some(Kind::Fifo)
        } else {
            None
        })
    }
}

fn xattrs(path: &Path) -> Vec<(OsString, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let Ok(n) = rfs::llistxattr(path, &mut names) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if name.starts_with(b"trusted.overlay.") {
            continue;
        }
        let mut val = vec![0u8; 64 << 10];
        if let Ok(len) = rfs::lgetxattr(path, OsStr::from_bytes(name), &mut val) {
            val.truncate(len);
            out.push((OsStr::from_bytes(name).to_os_string(), val));
        }
    }
    out
}

/// A directory written into with descriptors only.
#[derive(Debug)]
pub struct RootWriter {
    root: OwnedFd,
    overlay: bool,
    /// Files with several links copied so far: (device, inode) → their
    /// directory and name, so that later links to them are links again.
    links: std::cell::RefCell<std::collections::HashMap<(u64, u64), (OwnedFd, OsString)>>,
}

/// At most this many multiply-linked files are remembered (one open
/// directory each); beyond, further links are copies.
const MAX_LINKS: usize = 512;

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// A single path component, nothing that could leave its directory.
fn check_name(name: &OsStr) -> io::Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid file name {name:?}"),
        ));
    }
    Ok(())
}

fn is_whiteout(st: &rfs::Stat) -> bool {
    rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::CharacterDevice && st.st_rdev == 0
}

/// chown fails without the privilege to give files away: the files are
/// then the caller's, as with `cp` without `-p`.
fn ignore_eperm(r: rustix::io::Result<()>) -> io::Result<()> {
    match r {
        Err(rustix::io::Errno::PERM) => Ok(()),
        r => Ok(r?),
    }
}

fn times(a: &Attrs) -> Timestamps {
    let t = Timespec {
        tv_sec: a.mtime.0,
        tv_nsec: a.mtime.1,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl RootWriter {
    /// Writes under `root`; `overlay` when it is an overlay upper
    /// directory (whiteouts in the way are replaced).
    pub fn open(root: &Path, overlay: bool) -> io::Result<RootWriter> {
        let root = rfs::open(
            root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootWriter {
            root,
            overlay,
            links: Default::default(),
        })
    }

    pub fn root(&self) -> &OwnedFd {
        &self.root
    }

    /// The directory `comps` below `from` (the root when `None`), opened
    /// without following symlinks; missing ones are made with the
    /// attributes `like(i)` gives for the `i`th component.
    pub fn dir(
        &self,
        from: Option<&OwnedFd>,
        comps: &[OsString],
        like: &dyn Fn(usize) -> Option<Attrs>,
    ) -> io::Result<OwnedFd> {
        let mut fd = rfs::openat(from.unwrap_or(&self.root), ".", dir_flags(), Mode::empty())?;
        for (i, c) in comps.iter().enumerate() {
            check_name(c)?;
            match rfs::openat(&fd, c.as_os_str(), dir_flags(), Mode::empty()) {
                Ok(next) => fd = next,
                Err(rustix::io::Errno::NOENT) => {
                    let attrs = like(i).unwrap_or_default();
                    fd = self
                        .put(&fd, c, &Kind::Dir, &attrs, None)?
                        .expect("a directory is returned open");
                    // Made now: its time is set with its attributes.
                    let _ = rfs::futimens(&fd, &times(&attrs));
                }
                Err(e) => {
                    let st = rfs::statat(&fd, c.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                    if !(self.overlay && is_whiteout(&st)) {
                        return Err(io::Error::new(
                            io::Error::from(e).kind(),
                            format!("{}: not a directory", c.to_string_lossy()),
                        ));
                    }
                    let attrs = like(i).unwrap_or_default();
                    fd = self
                        .put(&fd, c, &Kind::Dir, &attrs, None)?
                        .expect("a directory is returned open");
                }
            }
        }
        Ok(fd)
    }

    /// Creates `name` in `dir` as `kind` with `attrs` (a file's content
    /// read from `content`), replacing a non-directory there. A directory
    /// already there is kept (and given `attrs`); it is returned open, so
    /// that its entries can be written (set its time after them with
    /// [`RootWriter::finish_dir`]).
    pub fn put(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        kind: &Kind,
        attrs: &Attrs,
        content: Option<&mut dyn Read>,
    ) -> io::Result<Option<OwnedFd>> {
        check_name(name)?;
        let mut opaque = false;
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                if *kind != Kind::Dir {
                    return Err(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        format!("cannot overwrite directory {:?} with a non-directory", name),
                    ));
                }
                let fd = rfs::openat(dir, name, dir_flags(), Mode::empty())?;
                self.set_attrs(&fd, attrs)?;
                return Ok(Some(fd));
            }
            Ok(st) => {
                opaque = self.overlay && is_whiteout(&st) && *kind == Kind::Dir;
                rfs::unlinkat(dir, name, AtFlags::empty())?;
            }
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        match kind {
            Kind::File => {
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut f = fs::File::from(fd);
                if let Some(r) = content {
                    io::copy(r, &mut f)?;
                }
                let fd = OwnedFd::from(f);
                self.set_attrs(&fd, attrs)?;
                rfs::futimens(&fd, &times(attrs))?;
                Ok(None)
            }
            Kind::Dir => {
                rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
                let fd = rfs::openat(dir, name, dir_flags(), Mode::empty())?;
                if opaque {
                    rfs::fsetxattr(&fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())?;
                }
                self.set_attrs(&fd, attrs)?;
                Ok(Some(fd))
            }
            Kind::Symlink(target) => {
                rfs::symlinkat(target.as_os_str(), dir, name)?;
                self.own_at(dir, name, attrs)?;
                rfs::utimensat(dir, name, &times(attrs), AtFlags::SYMLINK_NOFOLLOW)?;
                Ok(None)
            }
            Kind::Fifo => {
                rfs::mknodat(
                    dir,
                    name,
                    rfs::FileType::Fifo,
                    Mode::from_raw_mode(attrs.mode & 0o777),
                    0,
                )?;
                // Opened without blocking for a writer, to set its
                // attributes through a descriptor.
                let fd = rfs::openat(
                    dir,
                    name,
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.set_attrs(&fd, attrs)?;
                rfs::futimens(&fd, &times(attrs))?;
                Ok(None)
            }
        }
    }

    /// Sets a directory's time once its entries are written.
    pub fn finish_dir(&self, fd: &OwnedFd, attrs: &Attrs) -> io::Result<()> {
        Ok(rfs::futimens(fd, &times(attrs))?)
    }

    fn set_attrs(&self, fd: &OwnedFd, a: &Attrs) -> io::Result<()> {
        ignore_eperm(rfs::fchown(
            fd.as_fd(),
            Some(Uid::from_raw(a.uid)),
            Some(Gid::from_raw(a.gid)),
        ))?;
        // After chown, which clears setuid and setgid.
        rfs::fchmod(fd, Mode::from_raw_mode(a.mode & 0o7777))?;
        for (k, v) in &a.xattrs {
            // Best effort, as `cp -a`: a filesystem without user or
            // security attributes still gets the files.
            let _ = rfs::fsetxattr(fd, k.as_os_str(), v, XattrFlags::empty());
        }
        Ok(())
    }

    fn own_at(&self, dir: &OwnedFd, name: &OsStr, a: &Attrs) -> io::Result<()> {
        ignore_eperm(rfs::chownat(
            dir,
            name,
            Some(Uid::from_raw(a.uid)),
            Some(Gid::from_raw(a.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        ))
    }

    /// Copies the non-directory `src` (metadata `m`) as `name` in `dir`;
    /// a second link to a file already copied becomes a link to the copy.
    fn copy_entry(
        &self,
        dir: &OwnedFd,
        name: &OsStr,
        src: &Path,
        m: &fs::Metadata,
    ) -> io::Result<()> {
        let Some(kind) = Attrs::kind(src, m)? else {
            return Ok(());
        };
        let key = (m.dev(), m.ino());
        let linked = kind == Kind::File && m.nlink() > 1;
        if linked {
            if let Some((d, n)) = self.links.borrow().get(&key) {
                self.unlink_non_dir(dir, name)?;
                rfs::linkat(d, n.as_os_str(), dir, name, AtFlags::empty())?;
                return Ok(());
            }
        }
        let attrs = Attrs::of(src, m);
        let mut file = match kind {
            Kind::File => Some(fs::File::open(src)?),
            _ => None,
        };
        self.put(
            dir,
            name,
            &kind,
            &attrs,
            file.as_mut().map(|f| f as &mut dyn Read),
        )?;
        let mut links = self.links.borrow_mut();
        if linked && links.len() < MAX_LINKS {
            let d = rfs::openat(dir, ".", dir_flags(), Mode::empty())?;
            links.insert(key, (d, name.to_os_string()));
        }
        Ok(())
    }

    /// Removes a non-directory `name` from `dir` (a link is made there).
    fn unlink_non_dir(&self, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
        check_name(name)?;
        match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if rfs::FileType::from_raw_mode(st.st_mode) == rfs::FileType::Directory => {
                Err(io::Error::new(
                    io::ErrorKind::IsADirectory,
                    format!("cannot overwrite directory {name:?} with a non-directory"),
                ))
            }
            Ok(_) => Ok(rfs::unlinkat(dir, name, AtFlags::empty())?),
            Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Copies the host entry `src` (not followed; a directory with all it
    /// holds) as `name` in `dir`. Devices and sockets are skipped.
    pub fn copy_host(&self, dir: &OwnedFd, name: &OsStr, src: &Path) -> io::Result<()> {
        let m = fs::symlink_metadata(src)?;
        if !m.is_dir() {
            return self.copy_entry(dir, name, src, &m);
        }
        let attrs = Attrs::of(src, &m);
        let sub = self.put(dir, name, &Kind::Dir, &attrs, None)?;
        if let Some(sub) = sub {
            let mut names: Vec<OsString> = fs::read_dir(src)?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()?;
            names.sort();
            for n in names {
                self.copy_host(&sub, &n, &src.join(&n))?;
            }
            self.finish_dir(&sub, &attrs)?;
        }
        Ok(())
    }

    /// Copies the entry `found` of the merged view `m` as `name` in `dir`.
    pub fn copy_merged(
        &self,
        m: &crate::merged::Merged,
        dir: &OwnedFd,
        name: &OsStr,
        found: &crate::merged::Found,
    ) -> io::Result<()> {
        use crate::merged::Node;
        match &found.node {
            Node::Dir(dirs) => {
                let attrs = Attrs::of(&dirs[0], &found.meta);
                let sub = self
                    .put(dir, name, &Kind::Dir, &attrs, None)?
                    .expect("a directory is returned open");
                self.copy_merged_children(m, &sub, dirs)?;
                self.finish_dir(&sub, &attrs)
            }
            Node::Other(p) => self.copy_entry(dir, name, p, &found.meta),
        }
    }

    /// Copies the entries of the merged directory `dirs` into `dir`.
    pub fn copy_merged_children(
        &self,
        m: &crate::merged::Merged,
        dir: &OwnedFd,
        dirs: &[PathBuf],
    ) -> io::Result<()> {
        for (n, f) in m.read_dir(dirs)? {
            self.copy_merged(m, dir, &n, &f)?;
        }
        Ok(())
    }

    /// Extracts the tar stream `r` into `dir`: entries relative to it
    /// (a leading `/` dropped, `..` refused), parents made as needed.
    pub fn extract_tar(&self, dir: &OwnedFd, r: &mut dyn Read) -> io::Result<()> {
        let mut ar = tar::Archive::new(r);
        let mut dirs: Vec<(OwnedFd, Attrs)> = Vec::new();
        for e in ar.entries()? {
            let mut e = e?;
            let path = e.path_bytes().into_owned();
            let mut comps: Vec<OsString> = Vec::new();
            for c in path
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty() && *c != b".")
            {
                if c == b".." {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "tar entry {:?} leaves the destination",
                            String::from_utf8_lossy(&path)
                        ),
                    ));
                }
                comps.push(OsStr::from_bytes(c).to_os_string());
            }
            let Some(name) = comps.pop() else { continue };
            let h = e.header();
            let attrs = Attrs {
                mode: h.mode()? & 0o7777,
                uid: h.uid()? as u32,
                gid: h.gid()? as u32,
                mtime: (h.mtime()? as i64, 0),
                xattrs: Vec::new(),
            };
            let kind = match h.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
                tar::EntryType::Directory => Kind::Dir,
                tar::EntryType::Symlink => Kind::Symlink(
                    e.link_name()?
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "a symlink without a target")
                        })?
                        .into_owned(),
                ),
                tar::EntryType::Fifo => Kind::Fifo,
                tar::EntryType::Link => {
                    // A link to an entry extracted before, by its path in
                    // the archive (checked as the entries' own paths are).
                    let target = e
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let mut tcomps: Vec<OsString> = Vec::new();
                    for c in target
                        .split(|b| *b == b'/')
                        .filter(|c| !c.is_empty() && *c != b".")
                    {
                        if c == b".." {
                            return Err(io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "tar entry {:?}: link target leaves the destination",
                                    String::from_utf8_lossy(&path)
                                ),
                            ));
                        }
                        tcomps.push(OsStr::from_bytes(c).to_os_string());
                    }
                    let Some(tname) = tcomps.pop() else { continue };
                    let tdir = self.dir(Some(dir), &tcomps, &|_| None)?;
                    let parent = self.dir(Some(dir), &comps, &|_| None)?;
                    self.unlink_non_dir(&parent, &name)?;
                    rfs::linkat(
                        &tdir,
                        tname.as_os_str(),
                        &parent,
                        name.as_os_str(),
                        AtFlags::empty(),
                    )?;
                    continue;
                }
                // PAX and GNU headers are read by the tar crate; devices
                // are not copied.
                _ => continue,
            };
            let parent = self.dir(Some(dir), &comps, &|_| None)?;
            let content: Option<&mut dyn Read> = match kind {
                Kind::File => Some(&mut e),
                _ => None,
            };
            if let Some(fd) = self.put(&parent, &name, &kind, &attrs, content)? {
                dirs.push((fd, attrs));
            }
        }
        // Directory times last, their entries written.
        for (fd, a) in dirs.iter().rev() {
            self.finish_dir(fd, a)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A symlink planted where a directory is expected is not followed.
    #[test]
    fn symlinks_in_the_way_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        let outside = t.path().join("outside");
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("ln")).unwrap();
        let w = RootWriter::open(&root, false).unwrap();
        let err = w.dir(None, &["ln".into()], &|_| None).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        // A file put over the symlink replaces the link, not its target.
        let mut data: &[u8] = b"x";
        w.put(
            w.root(),
            OsStr::new("ln"),
            &Kind::File,
            &Attrs::default(),
            Some(&mut data),
        )
        .unwrap();
        assert!(fs::symlink_metadata(root.join("ln")).unwrap().is_file());
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    }

    /// A merged tree's copy keeps owners, modes and extended attributes,
    /// leaves overlay's own attributes behind, and honours whiteouts.
    #[test]
    fn merged_copies_keep_attributes() {
        use crate::layers::tests::{layer, root, whiteout};
        use crate::merged::{Merged, Node};
        use std::os::unix::fs::PermissionsExt;
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &["v/f", "v/gone", "v/d/"]);
        let b = layer(t.path(), "b", &["v/"]);
        whiteout(&b, "v/gone");
        let f = a.join("v/f");
        std::os::unix::fs::chown(&f, Some(7), Some(8)).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o4750)).unwrap();
        if rfs::setxattr(&f, "user.kiln", b"1", XattrFlags::empty()).is_err() {
            eprintln!("skipping: no user xattrs on this filesystem");
            return;
        }
        rfs::setxattr(
            a.join("v/d"),
            "trusted.overlay.opaque",
            b"y",
            XattrFlags::empty(),
        )
        .unwrap();
        let m = Merged::new(&[a, b]);
        let Node::Dir(dirs) = m.lookup("v").unwrap().node else {
            panic!()
        };
        let out = t.path().join("out");
        fs::create_dir(&out).unwrap();
        let w = RootWriter::open(&out, false).unwrap();
        w.copy_merged_children(&m, w.root(), &dirs).unwrap();
        let md = fs::symlink_metadata(out.join("f")).unwrap();
        assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (7, 8, 0o4750));
        let mut buf = [0u8; 4];
        assert_eq!(
            rfs::lgetxattr(out.join("f"), "user.kiln", &mut buf).unwrap(),
            1
        );
        assert!(rfs::lgetxattr(out.join("d"), "trusted.overlay.opaque", &mut buf).is_err());
        assert!(!out.join("gone").exists());
    }

    /// Files with several links stay linked in the copy, from a tree and
    /// from a tar.
    #[test]
    fn hard_links_are_kept() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a"), "x").unwrap();
        fs::hard_link(src.join("a"), src.join("sub/b")).unwrap();
        let dst = t.path().join("dst");
        fs::create_dir(&dst).unwrap();
        let w = RootWriter::open(&dst, false).unwrap();
        w.copy_host(w.root(), OsStr::new("tree"), &src).unwrap();
        let ino = |p: &str| fs::metadata(dst.join(p)).unwrap().ino();
        assert_eq!(ino("tree/a"), ino("tree/sub/b"));

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "f", &b"y"[..]).unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_mode(0o644);
        l.set_uid(0);
        l.set_gid(0);
        l.set_mtime(0);
        b.append_link(&mut l, "d/g", "f").unwrap();
        let data = b.into_inner().unwrap();
        let x = t.path().join("x");
        fs::create_dir(&x).unwrap();
        let w = RootWriter::open(&x, false).unwrap();
        w.extract_tar(w.root(), &mut &data[..]).unwrap();
        let ino = |p: &str| fs::metadata(x.join(p)).unwrap().ino();
        assert_eq!(ino("f"), ino("d/g"));
    }

    /// In an upper directory, a directory made where a whiteout was is
    /// opaque: the lower layers' old content stays deleted.
    #[test]
    fn a_directory_over_a_whiteout_is_opaque() {
        use crate::layers::tests::{root, whiteout};
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let upper = t.path().join("upper");
        fs::create_dir(&upper).unwrap();
        whiteout(&upper, "gone");
        let w = RootWriter::open(&upper, true).unwrap();
        let fd = w
            .dir(None, &["gone".into(), "sub".into()], &|_| None)
            .unwrap();
        drop(fd);
        let mut buf = [0u8; 2];
        let n = rfs::lgetxattr(upper.join("gone"), "trusted.overlay.opaque", &mut buf).unwrap();
        assert_eq!(&buf[..n], b"y");
        assert!(upper.join("gone/sub").is_dir());
        // Outside an upper directory a whiteout is just a device: refused.
        whiteout(&upper, "dev");
        let plain = RootWriter::open(&upper, false).unwrap();
        assert!(plain.dir(None, &["dev".into()], &|_| None).is_err());
    }
}
