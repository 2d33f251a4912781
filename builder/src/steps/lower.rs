//! A read-only look at the image a step builds on, through its unpacked
//! (overlay-form) layer directories: what exists, and with which metadata.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use containers::layers::{LayerCache, LayerStack};

/// Layer directories, base first.
#[derive(Debug, Clone, Default)]
pub struct Lowers {
    pub dirs: Vec<PathBuf>,
    /// The build's opened layers (stored layers never change while it
    /// runs): a step looks into its stack without opening every layer
    /// again.
    pub opened: Arc<LayerCache>,
}

impl Lowers {
    /// The layers as a stack to look into.
    pub fn stack(&self) -> LayerStack {
        LayerStack::cached(self.dirs.clone(), self.opened.clone())
    }

    /// Metadata of `rel` as the merged filesystem shows it: the topmost
    /// layer that has it decides; a whiteout there means it is gone
    /// ([`containers::layers::stat`]).
    pub fn stat(&self, rel: &str) -> Option<fs::Metadata> {
        self.stack().stat(rel)
    }
}

impl Lowers {
    /// WORKDIR's `mkdir -p`: the directories of the absolute `path` that do
    /// not exist yet, outermost first, as relative paths. Symlinks on the
    /// way are followed inside the image (an absolute target is taken from
    /// its root), as BuildKit's MkdirAll does; a non-directory on the way is
    /// an error.
    pub fn missing_dirs(&self, path: &str) -> Result<Vec<String>, String> {
        let mut todo = components_reversed(path);
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            let rel = cur.join("/");
            match self.stat(&rel) {
                None => {
                    // Everything from here on is new.
                    let mut out = vec![rel];
                    while let Some(c) = todo.pop() {
                        if c == ".." {
                            return Err("a path that goes up through a new directory".into());
                        }
                        cur.push(c);
                        out.push(cur.join("/"));
                    }
                    return Ok(out);
                }
                Some(m) if m.is_dir() => {}
                Some(m) if m.file_type().is_symlink() => {
                    hops += 1;
                    if hops > 40 {
                        return Err("too many levels of symbolic links".into());
                    }
                    self.splice_link(&rel, &mut cur, &mut todo);
                }
                Some(_) => return Err(format!("/{rel} is not a directory")),
            }
        }
        Ok(Vec::new())
    }

    /// `path` (absolute) with the symlinks of its existing components
    /// followed inside the image, as BuildKit resolves a COPY destination
    /// (continuity's RootPath): `/link/f` with `/link -> /real/dir` is
    /// `/real/dir/f`. Components from the first missing one on are kept.
    pub fn resolve(&self, path: &str) -> String {
        let mut todo = components_reversed(path);
        let mut cur: Vec<String> = Vec::new();
        let mut hops = 0;
        let mut missing = false;
        while let Some(c) = todo.pop() {
            if c == ".." {
                cur.pop();
                continue;
            }
            cur.push(c);
            if missing {
                continue;
            }
            let rel = cur.join("/");
            match self.stat(&rel) {
                None => missing = true,
                Some(m) if m.file_type().is_symlink() && hops < 40 => {
                    hops += 1;
                    self.splice_link(&rel, &mut cur, &mut todo);
                }
                Some(_) => {}
            }
        }
        format!("/{}", cur.join("/"))
    }

    /// Replaces the symlink `rel`, the last of `cur`, by its target: an
    /// absolute target restarts from the image's root, and the target's
    /// components are walked next.
    fn splice_link(&self, rel: &str, cur: &mut Vec<String>, todo: &mut Vec<String>) {
        let target = self.read_link(rel).unwrap_or_default();
        cur.pop();
        if target.starts_with('/') {
            cur.clear();
        }
        todo.extend(components_reversed(&target));
    }

    /// The content of the regular file `rel` as the merged filesystem
    /// shows it (at most 4 MiB: passwd and group files).
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        self.stack().read(rel)
    }

    /// The target of the symlink `rel` as the merged filesystem shows it.
    fn read_link(&self, rel: &str) -> Option<String> {
        let stack = self.stack();
        Some(stack.read_link(rel)?.to_string_lossy().into_owned())
    }
}

/// The components of `path` (without empty ones and `.`), last first: a
/// stack to walk from the root.
fn components_reversed(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .rev()
        .map(str::to_string)
        .collect()
}
