//! The layer stack a container or build step sees: unpacked layer
//! directories in overlay form, base first, and optionally the
//! container's own upper directory on top. [`LayerStack::stat`] answers
//! "what does the merged filesystem show at this path" without mounting
//! anything, honouring whiteouts (0:0 character devices) and opaque
//! directories (`trusted.overlay.opaque`) as overlayfs does.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Layer directories, base first, plus an optional upper directory.
#[derive(Debug, Clone, Default)]
pub struct LayerStack {
    pub lowers: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
}

impl LayerStack {
    pub fn new(lowers: Vec<PathBuf>) -> LayerStack {
        LayerStack {
            lowers,
            upper: None,
        }
    }

    /// Every directory of the stack, base first (the upper last).
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.lowers.iter().chain(&self.upper).cloned().collect()
    }

    /// Metadata of `rel` as the merged filesystem shows it (see [`stat`]).
    pub fn stat(&self, rel: &str) -> Option<fs::Metadata> {
        match &self.upper {
            None => stat(&self.lowers, rel),
            Some(_) => stat(&self.dirs(), rel),
        }
    }

    /// Does the merged filesystem have `rel`?
    pub fn exists(&self, rel: &str) -> bool {
        self.stat(rel).is_some()
    }

    /// The content of the regular file `rel` as the merged filesystem
    /// shows it (at most 4 MiB: passwd and group files).
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        use std::io::Read;
        let m = self.stat(rel)?;
        if !m.is_file() {
            return None;
        }
        let rel = rel.trim_start_matches('/');
        for d in self.dirs().iter().rev() {
            if let Ok(f) = fs::File::open(d.join(rel)) {
                let mut out = Vec::new();
                f.take(4 << 20).read_to_end(&mut out).ok()?;
                return Some(out);
            }
        }
        None
    }
}

/// Metadata of `rel` (relative; a leading `/` is ignored) as the overlay of
/// `dirs` (base first) shows it: the topmost layer that has it decides; a
/// whiteout there, a whited-out parent, or an opaque parent directory in a
/// layer above hides it.
pub fn stat(dirs: &[PathBuf], rel: &str) -> Option<fs::Metadata> {
    let rel = rel.trim_start_matches('/');
    for d in dirs.iter().rev() {
        // A parent whited out or made opaque in this layer hides
        // everything below from older layers.
        if hidden_in(d, rel) {
            return None;
        }
        if let Ok(m) = fs::symlink_metadata(d.join(rel)) {
            if is_whiteout(&m) {
                return None;
            }
            return Some(m);
        }
        if opaque_parent(d, rel) {
            return None;
        }
    }
    None
}

/// Overlay's whiteout: a character device with device number 0:0.
pub fn is_whiteout(m: &fs::Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

fn hidden_in(layer: &Path, rel: &str) -> bool {
    let mut p = layer.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        p.push(part);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if is_whiteout(&m) {
                return true;
            }
        }
    }
    false
}

fn opaque_parent(layer: &Path, rel: &str) -> bool {
    let parent = Path::new(rel).parent().unwrap_or(Path::new(""));
    let mut buf = [0u8; 2];
    let dir = layer.join(parent);
    matches!(
        rustix::fs::lgetxattr(&dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
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
}
