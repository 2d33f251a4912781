//! A layer stack read as the merged filesystem, without mounting anything,
//! and paths resolved inside it: for filling a volume from the image
//! ([`crate::volumes`]) and for `kiln cp` ([`crate::copy`]).
//!
//! Unlike [`crate::layers::stat`], which joins a whole relative path onto
//! each layer (so a symlink in the middle of it is followed on the host),
//! this walks one component at a time: a directory is the list of real
//! host directories that make it up (topmost first, cut at an opaque one
//! or at a layer where the name is not a directory), and only names
//! directly inside those are looked at. Symlinks are resolved by
//! [`Merged::resolve`] against the container's root, never the host's.
//! (The lead may unify this with the `secpaths` fix of `layers.rs`.)

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::layers::is_whiteout;

/// How many symlinks one resolution may follow (Linux's limit).
const MAX_LINKS: usize = 40;

/// One entry of the merged view.
#[derive(Debug, Clone)]
pub enum Node {
    /// A directory: the host directories that make it up, topmost first.
    Dir(Vec<PathBuf>),
    /// Anything else: the host path of the topmost layer's entry.
    Other(PathBuf),
}

/// An entry and its metadata (the topmost layer's).
#[derive(Debug, Clone)]
pub struct Found {
    pub node: Node,
    pub meta: fs::Metadata,
}

/// The layer directories of a stack, topmost first.
#[derive(Debug, Clone)]
pub struct Merged {
    top_first: Vec<PathBuf>,
}

fn is_opaque(dir: &std::path::Path) -> bool {
    let mut buf = [0u8; 2];
    matches!(
        rustix::fs::lgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

impl Merged {
    /// `layers` base first, as [`crate::export::layers`] gives them.
    pub fn new(layers: &[PathBuf]) -> Merged {
        Merged {
            top_first: layers.iter().rev().cloned().collect(),
        }
    }

    /// The root directory.
    pub fn root(&self) -> Found {
        let meta = self
            .top_first
            .iter()
            .find_map(|d| fs::symlink_metadata(d).ok())
            .or_else(|| fs::symlink_metadata("/").ok())
            .expect("/ exists");
        Found {
            node: Node::Dir(self.top_first.clone()),
            meta,
        }
    }

    /// The entry `name` of the merged directory made of `dirs`.
    pub fn child(&self, dirs: &[PathBuf], name: &OsStr) -> Option<Found> {
        let mut found: Vec<PathBuf> = Vec::new();
        let mut meta = None;
        for d in dirs {
            let p = d.join(name);
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            if is_whiteout(&m) {
                break;
            }
            if !m.is_dir() {
                if found.is_empty() {
                    return Some(Found {
                        node: Node::Other(p),
                        meta: m,
                    });
                }
                // A non-directory under a directory of a layer above is
                // hidden, and so is everything below it.
                break;
            }
            let opaque = is_opaque(&p);
            meta.get_or_insert(m);
            found.push(p);
            if opaque {
                break;
            }
        }
        Some(Found {
            node: Node::Dir(found),
            meta: meta?,
        })
    }

    /// The entries of the merged directory made of `dirs`, by name.
    pub fn read_dir(&self, dirs: &[PathBuf]) -> io::Result<Vec<(OsString, Found)>> {
        let mut names = std::collections::BTreeSet::new();
        for d in dirs {
            for e in fs::read_dir(d)? {
                names.insert(e?.file_name());
            }
        }
        Ok(names
            .into_iter()
            .filter_map(|n| self.child(dirs, &n).map(|f| (n, f)))
            .collect())
    }

    /// The entry at the clean relative path `rel` (no `.`/`..`), no
    /// symlink followed: every component but the last must be a directory.
    pub fn lookup(&self, rel: &str) -> Option<Found> {
        let mut cur = self.root();
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            let Node::Dir(dirs) = &cur.node else {
                return None;
            };
            cur = self.child(dirs, OsStr::new(c))?;
        }
        Some(cur)
    }

    /// Resolves `path` inside the merged root as the kernel would inside
    /// the container: `..` stops at the root, symlinks (absolute ones
    /// relative to the root) are followed, the last component only when
    /// `follow_last`. Returns the clean path (components only, no
    /// symlinks but perhaps the last) and the entry, or `None` when only
    /// the last component is missing. Any other missing component or a
    /// non-directory in the middle is an error.
    pub fn resolve(
        &self,
        path: &str,
        follow_last: bool,
    ) -> io::Result<(Vec<OsString>, Option<Found>)> {
        let mut todo: std::collections::VecDeque<OsString> = split(path.as_bytes());
        let mut comps: Vec<OsString> = Vec::new();
        let mut stack: Vec<Found> = vec![self.root()];
        let mut links = 0;
        while let Some(c) = todo.pop_front() {
            if c == ".." {
                if comps.pop().is_some() {
                    stack.pop();
                }
                continue;
            }
            let last = todo.is_empty();
            let Node::Dir(dirs) = &stack.last().expect("the root stays").node else {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            };
            let Some(found) = self.child(dirs, &c) else {
                if last {
                    comps.push(c);
                    return Ok((comps, None));
                }
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            };
            if found.meta.file_type().is_symlink() && (!last || follow_last) {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::from_raw_os_error(libc::ELOOP));
                }
                let Node::Other(p) = &found.node else {
                    unreachable!("a symlink is not a directory")
                };
                let target = fs::read_link(p)?;
                let bytes = target.as_os_str().as_bytes();
                if bytes.starts_with(b"/") {
                    comps.clear();
                    stack.truncate(1);
                }
                let mut more = split(bytes);
                more.extend(todo);
                todo = more;
                continue;
            }
            comps.push(c);
            if !last && !matches!(found.node, Node::Dir(_)) {
                return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
            }
            stack.push(found);
        }
        let found = stack.pop().expect("the root stays");
        Ok((comps, Some(found)))
    }
}

/// The components of a path, `.` and empty ones dropped.
fn split(p: &[u8]) -> std::collections::VecDeque<OsString> {
    p.split(|b| *b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| OsStr::from_bytes(c).to_os_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::tests::layer;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &["etc/passwd", "data/x"]);
        symlink("/etc", a.join("ln")).unwrap();
        symlink("../../../../etc", a.join("data/up")).unwrap();
        let m = Merged::new(&[a]);
        let (comps, f) = m.resolve("/ln/passwd", false).unwrap();
        assert_eq!(comps, ["etc", "passwd"]);
        assert!(f.unwrap().meta.is_file());
        let (comps, f) = m.resolve("data/up/new", false).unwrap();
        assert_eq!(comps, ["etc", "new"]);
        assert!(f.is_none());
        let (comps, f) = m.resolve("/ln", false).unwrap();
        assert_eq!(comps, ["ln"]);
        assert!(f.unwrap().meta.file_type().is_symlink());
        assert!(m.resolve("/nope/x", false).is_err());
    }

    /// A symlink in a lower layer, under a directory of the same name in
    /// a higher one, is not followed (the layer stack's `stat` joins the
    /// whole path onto each layer and would).
    #[test]
    fn a_lower_symlink_under_an_upper_directory_is_hidden() {
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &[]);
        symlink("/etc", a.join("d")).unwrap();
        let b = layer(t.path(), "b", &["d/own"]);
        let m = Merged::new(&[a, b]);
        assert!(m.lookup("d/passwd").is_none());
        let names: Vec<_> = match m.lookup("d").unwrap().node {
            Node::Dir(d) => m
                .read_dir(&d)
                .unwrap()
                .into_iter()
                .map(|(n, _)| n)
                .collect(),
            _ => panic!(),
        };
        assert_eq!(names, ["own"]);
    }
}
