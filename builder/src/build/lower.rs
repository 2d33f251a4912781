//! A read-only look at the image a step builds on, through its unpacked
//! (overlay-form) layer directories: what exists, and with which metadata.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;

/// Layer directories, base first.
#[derive(Debug, Clone, Default)]
pub struct Lowers {
    pub dirs: Vec<PathBuf>,
}

impl Lowers {
    /// Metadata of `rel` as the merged filesystem shows it: the topmost
    /// layer that has it decides; a whiteout there means it is gone.
    pub fn stat(&self, rel: &str) -> Option<fs::Metadata> {
        let rel = rel.trim_start_matches('/');
        for d in self.dirs.iter().rev() {
            // A parent whited out or made opaque in this layer hides
            // everything below from older layers.
            if hidden_in(d, rel) {
                return None;
            }
            if let Ok(m) = fs::symlink_metadata(d.join(rel)) {
                if m.file_type().is_char_device() && m.rdev() == 0 {
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
}

fn hidden_in(layer: &std::path::Path, rel: &str) -> bool {
    let mut p = layer.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        p.push(part);
        if let Ok(m) = fs::symlink_metadata(&p) {
            if m.file_type().is_char_device() && m.rdev() == 0 {
                return true;
            }
        }
    }
    false
}

fn opaque_parent(layer: &std::path::Path, rel: &str) -> bool {
    let parent = std::path::Path::new(rel)
        .parent()
        .unwrap_or(std::path::Path::new(""));
    let mut buf = [0u8; 2];
    let dir = layer.join(parent);
    matches!(
        rustix::fs::lgetxattr(&dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}
