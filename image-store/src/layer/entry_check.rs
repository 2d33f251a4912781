//! The rules every layer entry meets (names, types, path lengths, hard
//! links, total size), checked one entry at a time as a tar streams by.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::names::{classify_name, clean_path_bytes, show_name, show_type, EntryName, OPAQUE};
use super::LayerError;

/// Linux's limits on a path and on one name in it.
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

/// One entry that passed [`EntryCheck::check`].
#[derive(Debug)]
pub struct CheckedEntry {
    pub name: EntryName,
    pub kind: tar::EntryType,
    /// The name as shown in messages.
    pub shown: String,
    /// A hard link's target, cleaned.
    pub link_target: Option<PathBuf>,
}

/// The rules every layer entry meets, applied when a layer enters the
/// store (import, load, pull, commit) and again when one is unpacked:
/// names stay inside the root, whiteouts name a file, entry types are
/// ones a filesystem has, hard links point at earlier entries (when
/// `strict_links`), and the files add up to no more than the size limit.
pub struct EntryCheck {
    /// Every path this layer made so far, and whether it is a node that
    /// cannot hold children (a file, device or fifo).
    seen: std::collections::HashMap<PathBuf, bool>,
    strict_links: bool,
    data: u64,
    limit: u64,
}

impl EntryCheck {
    pub fn new(limit: u64, strict_links: bool) -> Self {
        EntryCheck {
            seen: Default::default(),
            strict_links,
            data: 0,
            limit,
        }
    }

    /// `Ok(None)`: the entry carries nothing (the root, a global header,
    /// aufs bookkeeping) and is skipped.
    pub fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
    ) -> Result<Option<CheckedEntry>, LayerError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader) {
            return Ok(None);
        }
        let raw = entry.path_bytes();
        let shown = show_name(&raw);
        let Some(name) = classify_name(&raw)? else {
            return Ok(None);
        };
        if !matches!(
            kind,
            T::Regular
                | T::Continuous
                | T::GNUSparse
                | T::Directory
                | T::Symlink
                | T::Link
                | T::Char
                | T::Block
                | T::Fifo
        ) {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("unsupported tar entry type {}", show_type(kind)),
            });
        }
        let (dir, full) = match &name {
            EntryName::Path(p) => (p.parent().unwrap_or(Path::new("")), p.clone()),
            EntryName::Whiteout { dir, hidden } => (dir.as_path(), dir.join(hidden)),
            EntryName::Opaque { dir } => (dir.as_path(), dir.join(OsStr::from_bytes(OPAQUE))),
        };
        // What no filesystem takes is refused here, naming the entry,
        // rather than failing half-way through an unpack.
        if full.as_os_str().len() >= PATH_MAX {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("the path is longer than {} bytes", PATH_MAX - 1),
            });
        }
        if full.iter().any(|c| c.len() > NAME_MAX) {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("a name in the path is longer than {NAME_MAX} bytes"),
            });
        }
        if let Some(file) = dir
            .ancestors()
            .find(|a| self.seen.get(*a).copied().unwrap_or(false))
        {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!(
                    "it is inside \"{}\", which this layer made a file, not a directory",
                    show_name(file.as_os_str().as_bytes())
                ),
            });
        }
        if let EntryName::Whiteout { .. } = &name {
            self.seen.remove(&full);
        }
        let mut link_target = None;
        if let EntryName::Path(path) = &name {
            if kind == T::Link {
                let target_raw = entry.link_name_bytes().unwrap_or_default();
                let target = match classify_name(&target_raw)? {
                    Some(EntryName::Path(p)) => p,
                    None if clean_path_bytes(&target_raw)?.is_none() => {
                        return Err(LayerError::BadEntry {
                            entry: shown,
                            reason: "hard link to the root directory".into(),
                        })
                    }
                    _ => {
                        return Err(LayerError::BadEntry {
                            entry: shown,
                            reason: format!(
                                "hard link to the whiteout \"{}\"",
                                show_name(&target_raw)
                            ),
                        })
                    }
                };
                if self.strict_links && !self.seen.contains_key(&target) {
                    return Err(LayerError::DanglingHardlink {
                        entry: shown,
                        target: show_name(&target_raw),
                    });
                }
                link_target = Some(target);
            }
            if matches!(kind, T::Regular | T::Continuous | T::GNUSparse) {
                // For a sparse file this is its expanded size.
                self.data = self.data.saturating_add(entry.size());
                if self.data > self.limit {
                    return Err(LayerError::TooLarge { limit: self.limit });
                }
            }
            self.seen
                .insert(path.clone(), !matches!(kind, T::Directory | T::Symlink));
        }
        Ok(Some(CheckedEntry {
            name,
            kind,
            shown,
            link_target,
        }))
    }
}
