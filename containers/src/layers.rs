//! The layer stack a container or build step sees: unpacked layer
//! directories in overlay form, base first, and optionally the
//! container's own upper directory on top. [`LayerStack::stat`] answers
//! "what does the merged filesystem show at this path" without mounting
//! anything, honouring whiteouts (0:0 character devices) and opaque
//! directories (`trusted.overlay.opaque`) as overlayfs does, and symlinks
//! on the way as the container would: inside the stack, never out of it
//! (an image's `etc -> /etc` is not the host's /etc; [`runner::inroot`]).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use runner::inroot::LayerCache;
use runner::inroot::Root;

/// Layer directories, base first, plus an optional upper directory.
#[derive(Debug, Default)]
pub struct LayerStack {
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    /// The layers opened for lookups, with the directories they were
    /// opened for: a build step looks up several paths in one stack of
    /// up to 127 layers, and opening each layer once is enough.
    opened: Mutex<Option<(Vec<PathBuf>, Arc<Root>)>>,
    /// Where the lower layers were opened before, when they never change
    /// (a build's): the stack opens only those it is the first to use.
    cache: Option<Arc<LayerCache>>,
}

impl Clone for LayerStack {
    fn clone(&self) -> LayerStack {
        LayerStack {
            lowers: self.lowers.clone(),
            upper: self.upper.clone(),
            opened: Mutex::default(),
            cache: self.cache.clone(),
        }
    }
}

impl LayerStack {
    pub fn new(lowers: Vec<PathBuf>) -> LayerStack {
        LayerStack {
            lowers,
            upper: None,
            opened: Mutex::default(),
            cache: None,
        }
    }

    /// A stack of layers that never change while `cache` lives, looked
    /// into through it ([`LayerCache`]).
    pub fn cached(lowers: Vec<PathBuf>, cache: Arc<LayerCache>) -> LayerStack {
        LayerStack {
            cache: Some(cache),
            ..LayerStack::new(lowers)
        }
    }

    /// Every directory of the stack, base first (the upper last).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.lowers.iter().chain(&self.upper).cloned().collect()
    }

    /// The stack opened for lookups (once for the directories it has).
    fn root(&self) -> Option<Arc<Root>> {
        let dirs = self.dirs();
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, root)) = opened.as_ref() {
            if *d == dirs {
                return Some(root.clone());
            }
        }
        // An upper directory changes: such a stack is opened afresh.
        let root = match (&self.cache, &self.upper) {
            (Some(cache), None) => Root::layers_cached(&dirs, cache),
            _ => Root::layers(&dirs),
        };
        let root = Arc::new(root.ok()?);
        *opened = Some((dirs, root.clone()));
        Some(root)
    }

    /// Metadata of `rel` as the merged filesystem shows it (see [`stat`]).
    pub fn stat(&self, rel: &str) -> Option<fs::Metadata> {
        self.root()?.symlink_metadata(Path::new(rel)).ok()
    }

    /// Does the merged filesystem have `rel`?
    pub fn exists(&self, rel: &str) -> bool {
        self.stat(rel).is_some()
    }

    /// Where `rel` is, or would be made, as the container sees it: the
    /// existing part with its symlinks resolved inside the stack, the
    /// missing rest as written ([`Root::resolve`]). `None` when the path
    /// loops or goes through a file.
    pub fn resolve(&self, rel: &str) -> Option<String> {
        let p = self.root()?.resolve(Path::new(rel)).ok()?;
        Some(p.to_string_lossy().into_owned())
    }

    /// [`LayerStack::resolve`], and whether the merged filesystem has what
    /// it names (`exists` of the result, without a second lookup).
    pub fn resolve_found(&self, rel: &str) -> Option<(String, bool)> {
        let (p, found) = self.root()?.resolve_found(Path::new(rel)).ok()?;
        Some((p.to_string_lossy().into_owned(), found))
    }

    /// The target of the symlink `rel` as the merged filesystem shows it.
    pub fn read_link(&self, rel: &str) -> Option<PathBuf> {
        let root = self.root()?;
        root.lookup(Path::new(rel), false).ok()?.read_link().ok()
    }

    /// The content of the regular file `rel` as the merged filesystem
    /// shows it, every symlink followed inside the stack as the container
    /// would (at most 4 MiB: passwd and group files).
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let root = self.root()?;
        let found = root.lookup(Path::new(rel), true).ok()?;
        if !found.metadata().ok()?.is_file() {
            return None;
        }
        let mut out = Vec::new();
        found
            .open()
            .ok()?
            .take(4 << 20)
            .read_to_end(&mut out)
            .ok()?;
        Some(out)
    }
}

/// Metadata of `rel` (relative; a leading `/` is ignored) as the overlay of
/// `dirs` (base first) shows it: the topmost layer that has it decides; a
/// whiteout there, a whited-out parent, or an opaque parent directory in a
/// layer above hides it. Symlinks on the way are followed inside the stack
/// (never out of it: [`runner::inroot`]); the last component is not (this
/// is `lstat`).
pub fn stat(dirs: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    let root = Root::layers(dirs).ok()?;
    root.symlink_metadata(Path::new(rel)).ok()
}

/// Overlay's whiteout: a character device with device number 0:0.
pub fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn root() -> bool {
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if !root {
            eprintln!("skipping: whiteouts and trusted xattrs need root");
        }
        root
    }

    /// A layer directory `name` under `dir` with `paths` (a trailing `/`
    /// makes a directory, else an empty file).
    pub fn layer(dir: &Path, name: &str, paths: &[&str]) -> PathBuf {
        let l = dir.join(name);
        fs::create_dir_all(&l).unwrap();
        for p in paths {
            let full = l.join(p);
            if p.ends_with('/') {
                fs::create_dir_all(&full).unwrap();
            } else {
                fs::create_dir_all(full.parent().unwrap()).unwrap();
                fs::write(&full, "").unwrap();
            }
        }
        l
    }

    /// Overlay's whiteout for `rel` in `layer`.
    pub fn whiteout(layer: &Path, rel: &str) {
        let p = layer.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn stat_follows_the_topmost_layer() {
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &["f", "d/x"]);
        let b = layer(t.path(), "b", &["d/y", "g/"]);
        let stack = LayerStack::new(vec![a, b]);
        assert!(stack.stat("/f").unwrap().is_file());
        assert!(stack.exists("d/x") && stack.exists("d/y"));
        assert!(stack.stat("g").unwrap().is_dir());
        assert!(!stack.exists("nope"));
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let a = layer(t.path(), "a", &["f", "d/x", "o/old", "w/deep/file"]);
        let b = layer(t.path(), "b", &["o/new"]);
        whiteout(&b, "f");
        whiteout(&b, "w");
        rustix::fs::setxattr(
            b.join("o"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
        let mut stack = LayerStack::new(vec![a, b]);
        assert!(!stack.exists("f"));
        assert!(!stack.exists("w/deep/file"));
        assert!(!stack.exists("o/old"));
        assert!(stack.exists("o/new") && stack.exists("d/x"));
        // The upper directory is the topmost layer.
        let up = layer(t.path(), "up", &["f"]);
        whiteout(&up, "d");
        stack.upper = Some(up);
        assert!(stack.exists("f"));
        assert!(!stack.exists("d/x"));
    }

    /// An image's `etc -> /etc` (or a `../..` climb) is its own /etc, not
    /// the host's: the host's /etc/passwd must never be read through it.
    #[test]
    fn links_never_leave_the_stack() {
        assert!(Path::new("/etc/passwd").is_file(), "the host has a passwd");
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "base", &["bin/"]);
        let top = layer(t.path(), "top", &[]);
        std::os::unix::fs::symlink("/etc", top.join("etc")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../../etc", top.join("up")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("pw")).unwrap();
        let stack = LayerStack::new(vec![base, top]);
        for p in ["etc/passwd", "/up/passwd", "pw", "up/../etc/passwd"] {
            assert!(stack.read(p).is_none(), "{p}");
            assert!(stack.stat(p).is_none() || p == "pw", "{p}");
        }
        assert!(!stack.exists("etc/hosts"));
        assert!(stack.stat("pw").unwrap().file_type().is_symlink());
        assert_eq!(stack.read_link("pw").unwrap(), Path::new("/etc/passwd"));
    }

    /// Links inside the image resolve as the container sees them, across
    /// layers: /etc/passwd -> /usr/lib/passwd, and a linked /etc.
    #[test]
    fn links_inside_the_stack_are_followed() {
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "base", &["usr/lib/passwd", "usr/etc/group"]);
        fs::write(base.join("usr/lib/passwd"), "app:x:1:1::/:/bin/sh\n").unwrap();
        fs::write(base.join("usr/etc/group"), "app:x:1:\n").unwrap();
        let top = layer(t.path(), "top", &["etc/"]);
        std::os::unix::fs::symlink("/usr/lib/passwd", top.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("usr/etc", top.join("etc2")).unwrap();
        let stack = LayerStack::new(vec![base, top]);
        assert_eq!(stack.read("etc/passwd").unwrap(), b"app:x:1:1::/:/bin/sh\n");
        assert_eq!(stack.read("/etc2/group").unwrap(), b"app:x:1:\n");
        assert!(stack.stat("etc2/group").unwrap().is_file());
        assert!(stack.stat("etc/passwd").unwrap().file_type().is_symlink());
    }
}
