//! `kiln cp`: files between a container and the host (or a tar stream),
//! with docker's rules for the destination: an existing directory
//! receives the source under its own name (only its contents when the
//! source ends in `/.`), a missing path becomes the source's copy, a
//! directory never replaces a file, and a path ending in `/` must be a
//! directory.
//!
//! The container is read through its layers as the merged view shows it
//! ([`Merged`]: upper over init over the image's layers, whiteouts
//! honoured), with symlinks resolved inside its root, so this works for a
//! stopped container as well as a running one. What a running container
//! has mounted (volumes, binds, tmpfs) is not seen: the paths under its
//! mount points are those of its own filesystem. Writes go to the
//! container's upper directory through [`RootWriter`], which never
//! follows a symlink: a link the container made to `/etc` leads to the
//! container's `/etc`, never the host's.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use image_store::Store;

use crate::error::{Error, Result};
use crate::merged::{Found, Merged, Node};
use crate::records::Containers;
use crate::rootwrite::{Attrs, Kind, RootWriter};

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// Where the host side of a copy is.
pub enum HostEnd<'a> {
    Path(&'a Path),
    /// A tar stream (`-`).
    Tar,
}

/// Where a container path lives: the container's own files (its merged
/// view, written in its upper directory) or a volume or bind mounted
/// there (its source directory).
struct Side {
    m: Merged,
    /// Where writes go.
    root: PathBuf,
    /// `root` is an overlay upper directory.
    overlay: bool,
    /// The path inside `m`, with the caller's trailing `/` or `/.`.
    path: String,
    /// A read-only mount.
    readonly: bool,
}

/// The mount of `mounts` (volumes and binds) whose destination holds the
/// clean absolute path `p` (the deepest one), and the rest of `p`.
fn under_mount<'m>(
    mounts: &'m [crate::volumes::MountRecord],
    p: &str,
) -> Option<(&'m crate::volumes::MountRecord, String)> {
    mounts
        .iter()
        .filter(|m| m.kind != "tmpfs" && m.source.is_some())
        .filter_map(|m| {
            let rest = match p.strip_prefix(m.destination.as_str())? {
                "" => "/",
                r if r.starts_with('/') => r,
                _ => return None,
            };
            Some((m, rest.to_string()))
        })
        .max_by_key(|(m, _)| m.destination.len())
}

/// Finds where `path` of container `name` lives: a path in one of its
/// volumes or binds (by its words, or once the container's symlinks are
/// resolved) is read and written there, as docker does; the rest in the
/// container's layers.
fn locate(store: &Store, name: &str, path: &str, follow_last: bool) -> Result<Side> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let layers = crate::export::layers(store, &c)?;
    let upper = containers.container_dir(&c.id).join("upper");
    let m = Merged::new(&layers);
    let suffix = if contents_only(path) {
        "/."
    } else if path.ends_with('/') {
        "/"
    } else {
        ""
    };
    let mut mounted = under_mount(&c.mounts, &crate::options::clean_abs(path));
    if mounted.is_none() {
        if let Ok((comps, _)) = m.resolve(path, follow_last) {
            let p: Vec<String> = comps
                .iter()
                .map(|c| c.to_string_lossy().into_owned())
                .collect();
            mounted = under_mount(&c.mounts, &format!("/{}", p.join("/")));
        }
    }
    Ok(match mounted {
        Some((mr, rest)) => {
            let src = mr.source.clone().expect("filtered on a source");
            Side {
                m: Merged::new(std::slice::from_ref(&src)),
                root: src,
                overlay: false,
                path: format!("{}{suffix}", rest.trim_end_matches('/')),
                readonly: mr.readonly,
            }
        }
        None => Side {
            m,
            root: upper,
            overlay: true,
            path: path.to_string(),
            readonly: false,
        },
    })
}

/// Does `path` ask for a directory's contents (`dir/.`)?
fn contents_only(path: &str) -> bool {
    path.ends_with("/.") || path == "."
}

fn io_err(what: String) -> impl FnOnce(io::Error) -> Error {
    move |e| invalid(format!("{what}: {e}"))
}

/// What a path of a container is (docker's `ContainerPathStat`).
#[derive(Debug, Clone)]
pub struct PathStat {
    /// The last component (`/` for the root).
    pub name: String,
    pub meta: fs::Metadata,
    /// A symlink's target, else empty.
    pub link_target: String,
}

/// Stats `path` of container `name` as `copy_out` would find it (in its
/// layers, or in the volume or bind mounted there), following the last
/// component only when the path ends in `/`.
pub fn stat(store: &Store, name: &str, path: &str) -> Result<PathStat> {
    let follow_last = path.ends_with('/') || contents_only(path);
    let side = locate(store, name, path, follow_last)?;
    let not_found = || {
        invalid(format!(
            "could not find the file {path} in container {name}"
        ))
    };
    let (comps, found) = side
        .m
        .resolve(&side.path, follow_last)
        .map_err(|_| not_found())?;
    let found = found.ok_or_else(not_found)?;
    let link_target = match &found.node {
        Node::Other(p) if found.meta.file_type().is_symlink() => fs::read_link(p)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let last = comps.last().map(|c| c.to_string_lossy().into_owned());
    let user_last = Path::new(&crate::options::clean_abs(path))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    Ok(PathStat {
        name: last.or(user_last).unwrap_or_else(|| "/".into()),
        meta: found.meta,
        link_target,
    })
}

/// `kiln cp CONTAINER:PATH DEST`: copies what `path` is in container
/// `name` to the host path or as a tar to `out`. The last component of
/// `path` is followed when it is a symlink only with `follow` (`-L`) or a
/// trailing `/`.
pub fn copy_out(
    store: &Store,
    name: &str,
    path: &str,
    follow: bool,
    dest: HostEnd,
    out: &mut dyn Write,
) -> Result<()> {
    let follow_last = follow || path.ends_with('/') || contents_only(path);
    let side = locate(store, name, path, follow_last)?;
    let m = side.m;
    let inner = side.path.as_str();
    let not_found = || {
        invalid(format!(
            "could not find the file {path} in container {name}"
        ))
    };
    let (comps, found) = m.resolve(inner, follow_last).map_err(|_| not_found())?;
    let found = found.ok_or_else(not_found)?;
    let is_dir = matches!(found.node, Node::Dir(_));
    if (path.ends_with('/') || contents_only(path)) && !is_dir {
        return Err(invalid(format!(
            "{path} in container {name} is not a directory"
        )));
    }
    // The root has no name: its contents are copied. (A volume's root is
    // named by its mount point.)
    let user_last = Path::new(&crate::options::clean_abs(path))
        .file_name()
        .map(OsStr::to_os_string);
    let only = contents_only(path) || (comps.is_empty() && user_last.is_none());
    let src_name = comps.last().cloned().or(user_last).unwrap_or_default();
    match dest {
        HostEnd::Tar => {
            let mut b = tar::Builder::new(&mut *out);
            let res = match (&found.node, only) {
                (Node::Dir(dirs), true) => m.read_dir(dirs).and_then(|kids| {
                    kids.iter()
                        .try_for_each(|(n, f)| tar_entry(&m, &mut b, Path::new(n), f))
                }),
                _ => tar_entry(&m, &mut b, Path::new(&src_name), &found),
            };
            res.and_then(|()| b.into_inner()?.flush())
                .map_err(Error::Output)
        }
        HostEnd::Path(dest) => {
            let dest_s = dest.as_os_str().as_bytes();
            let meta = fs::metadata(dest).ok();
            let (dir, name) = match &meta {
                Some(d) if d.is_dir() => {
                    if only {
                        let w = RootWriter::open(dest, false)
                            .map_err(io_err(dest.display().to_string()))?;
                        let Node::Dir(dirs) = &found.node else {
                            unreachable!("only directories have contents")
                        };
                        return w
                            .copy_merged_children(&m, w.root(), dirs)
                            .map_err(io_err(format!("copying to {}", dest.display())));
                    }
                    (dest.to_path_buf(), src_name)
                }
                Some(_) if is_dir => {
                    return Err(invalid(format!(
                        "cannot copy directory {path} to {}: it is a file",
                        dest.display()
                    )))
                }
                _ => {
                    if dest_s.ends_with(b"/") && meta.is_none() && !is_dir {
                        return Err(invalid(format!(
                            "destination directory {} does not exist",
                            dest.display()
                        )));
                    }
                    let parent = match dest.parent() {
                        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                        _ => PathBuf::from("."),
                    };
                    let name = dest.file_name().map(OsStr::to_os_string).ok_or_else(|| {
                        invalid(format!("invalid destination {}", dest.display()))
                    })?;
                    (parent, name)
                }
            };
            let w = RootWriter::open(&dir, false).map_err(io_err(dir.display().to_string()))?;
            if only {
                // A missing destination becomes the directory, with the
                // source's contents.
                let Node::Dir(dirs) = &found.node else {
                    unreachable!("only directories have contents")
                };
                let attrs = Attrs::of(&dirs[0], &found.meta);
                let sub = w
                    .put(w.root(), &name, &Kind::Dir, &attrs, None)
                    .and_then(|s| {
                        let s = s.expect("a directory is returned open");
                        w.copy_merged_children(&m, &s, dirs)?;
                        w.finish_dir(&s, &attrs)
                    });
                return sub.map_err(io_err(format!("copying to {}", dest.display())));
            }
            w.copy_merged(&m, w.root(), &name, &found)
                .map_err(io_err(format!("copying to {}", dest.display())))
        }
    }
}

/// Appends the merged entry `f` as `rel` (and all it holds) to `b`.
fn tar_entry<W: Write>(
    m: &Merged,
    b: &mut tar::Builder<W>,
    rel: &Path,
    f: &Found,
) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_metadata_in_mode(&f.meta, tar::HeaderMode::Complete);
    match &f.node {
        Node::Dir(dirs) => {
            h.set_size(0);
            b.append_data(&mut h, rel, io::empty())?;
            for (n, kid) in m.read_dir(dirs)? {
                tar_entry(m, b, &rel.join(n), &kid)?;
            }
            Ok(())
        }
        Node::Other(p) => {
            let t = f.meta.file_type();
            if t.is_symlink() {
                h.set_size(0);
                let target = fs::read_link(p)?;
                b.append_link(&mut h, rel, target)
            } else if t.is_file() {
                let file = fs::File::open(p)?;
                b.append_data(&mut h, rel, file.take(f.meta.len()))
            } else {
                // FIFOs as such; devices and sockets are not copied.
                use std::os::unix::fs::FileTypeExt;
                if t.is_fifo() {
                    h.set_size(0);
                    b.append_data(&mut h, rel, io::empty())?;
                }
                Ok(())
            }
        }
    }
}

/// `kiln cp SRC CONTAINER:PATH`: copies the host's `src` (or a tar from
/// `input`, extracted into the directory `path`) into container `name`.
pub fn copy_in(
    store: &Store,
    name: &str,
    path: &str,
    src: HostEnd,
    follow: bool,
    input: &mut dyn Read,
) -> Result<()> {
    let side = locate(store, name, path, true)?;
    if side.readonly {
        return Err(invalid(format!(
            "{path} in container {name} is on a read-only volume"
        )));
    }
    let (m, upper) = (side.m, side.root);
    fs::create_dir_all(&upper).map_err(Error::io(&upper))?;
    let (comps, found) = m
        .resolve(&side.path, true)
        .map_err(|e| invalid(format!("{path} in container {name}: {e}")))?;
    let found_dir = matches!(
        found,
        Some(Found {
            node: Node::Dir(_),
            ..
        })
    );
    let w = RootWriter::open(&upper, side.overlay).map_err(Error::io(&upper))?;
    // Directories made in the upper one take the merged view's attributes.
    let like = |i: usize| -> Option<Attrs> {
        let rel: Vec<&str> = comps[..=i]
            .iter()
            .map(|c| c.to_str().unwrap_or(""))
            .collect();
        let f = m.lookup(&rel.join("/"))?;
        match &f.node {
            Node::Dir(d) => Some(Attrs::of(&d[0], &f.meta)),
            Node::Other(_) => None,
        }
    };
    let fail = |e: io::Error| invalid(format!("copying to {path} in container {name}: {e}"));
    let src = match src {
        HostEnd::Tar => {
            if !found_dir {
                return Err(invalid(format!(
                    "{path} in container {name} is not a directory (a tar is extracted into one)"
                )));
            }
            let dir = w.dir(None, &comps, &like).map_err(fail)?;
            return w.extract_tar(&dir, input).map_err(fail);
        }
        HostEnd::Path(p) => p,
    };
    let src_s = src.as_os_str().as_bytes();
    let only = src_s.ends_with(b"/.") || src_s == b".";
    let src_meta = match follow {
        true => fs::metadata(src),
        false => fs::symlink_metadata(src),
    }
    .map_err(|e| invalid(format!("{}: {e}", src.display())))?;
    let src_path = match follow {
        true => fs::canonicalize(src).map_err(|e| invalid(format!("{}: {e}", src.display())))?,
        false => src.to_path_buf(),
    };
    let src_name: OsString = src_path
        .file_name()
        .map(OsStr::to_os_string)
        .unwrap_or_else(|| OsString::from("."));
    if found_dir {
        let dir = w.dir(None, &comps, &like).map_err(fail)?;
        if only && src_meta.is_dir() {
            return copy_children(&w, &dir, &src_path).map_err(fail);
        }
        return w.copy_host(&dir, &src_name, &src_path).map_err(fail);
    }
    if found.is_some() && src_meta.is_dir() {
        return Err(invalid(format!(
            "cannot copy directory {} to {path} in container {name}: it is a file",
            src.display()
        )));
    }
    if found.is_none() && path.ends_with('/') && !src_meta.is_dir() {
        return Err(invalid(format!(
            "destination directory {path} does not exist in container {name}"
        )));
    }
    let Some((last, parent)) = comps.split_last() else {
        return Err(invalid(format!(
            "cannot copy over the root of container {name}"
        )));
    };
    let dir = w.dir(None, parent, &like).map_err(fail)?;
    if only && src_meta.is_dir() {
        let attrs = Attrs::of(&src_path, &src_meta);
        let sub = w
            .put(&dir, last, &Kind::Dir, &attrs, None)
            .map_err(fail)?
            .expect("a directory is returned open");
        copy_children(&w, &sub, &src_path).map_err(fail)?;
        return w.finish_dir(&sub, &attrs).map_err(fail);
    }
    w.copy_host(&dir, last, &src_path).map_err(fail)
}

fn copy_children(w: &RootWriter, dir: &std::os::fd::OwnedFd, src: &Path) -> io::Result<()> {
    let mut names: Vec<OsString> = fs::read_dir(src)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        w.copy_host(dir, &n, &src.join(&n))?;
    }
    Ok(())
}

/// One line of `kiln diff`: `A` added, `C` changed, `D` deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: char,
    pub path: String,
}

/// `kiln diff`: the changes in container `name`'s upper directory against
/// what lies below it, by path; whiteouts are deletions.
pub fn diff(store: &Store, name: &str) -> Result<Vec<Change>> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    let mut layers = crate::export::layers(store, &c)?;
    let upper = containers.container_dir(&c.id).join("upper");
    if layers.last() == Some(&upper) {
        layers.pop();
    }
    let below = Merged::new(&layers);
    let mut out = Vec::new();
    if upper.is_dir() {
        walk_changes(&below, &upper, "", &mut out).map_err(Error::io(&upper))?;
    }
    // By path, as docker sorts them.
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 2];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

fn walk_changes(below: &Merged, dir: &Path, rel: &str, out: &mut Vec<Change>) -> io::Result<()> {
    let mut names: Vec<OsString> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        let p = dir.join(&n);
        let r = format!("{rel}/{}", n.to_string_lossy());
        let meta = fs::symlink_metadata(&p)?;
        if crate::layers::is_whiteout(&meta) {
            out.push(Change { kind: 'D', path: r });
            continue;
        }
        let existed = below.lookup(&r);
        out.push(Change {
            kind: if existed.is_some() { 'C' } else { 'A' },
            path: r.clone(),
        });
        if meta.is_dir() {
            walk_changes(below, &p, &r, out)?;
            // An opaque directory (the old one removed, a new one made)
            // hides all that was below: what it does not have again is
            // deleted.
            if let Some(Found {
                node: Node::Dir(dirs),
                ..
            }) = existed.filter(|_| is_opaque(&p))
            {
                for (n, _) in below.read_dir(&dirs)? {
                    if fs::symlink_metadata(p.join(&n)).is_err() {
                        out.push(Change {
                            kind: 'D',
                            path: format!("{r}/{}", n.to_string_lossy()),
                        });
                    }
                }
            }
        }
    }
    Ok(())
}
