//! The rules every layer entry meets (names, types, path lengths, hard
//! links, total size), checked one entry at a time as a tar streams by.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
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
    /// The name as the tar has it ([`CheckedEntry::shown`] shows it).
    pub raw: Vec<u8>,
    /// A hard link's target, cleaned.
    pub link_target: Option<PathBuf>,
    /// An earlier entry of the layer made the same path, and no whiteout
    /// removed it since.
    pub again: bool,
}

impl CheckedEntry {
    /// The name as shown in messages, made when one is (not for each
    /// entry).
    pub fn shown(&self) -> String {
        show_name(&self.raw)
    }
}

/// The rules every layer entry meets, applied when a layer enters the
/// store (import, load, pull, commit) and again when one is unpacked:
/// names stay inside the root, whiteouts name a file, entry types are
/// ones a filesystem has, hard links point at earlier entries (when
/// `strict_links`), and the files add up to no more than the size limit.
pub struct EntryCheck {
    /// Every path this layer made so far, and whether it is a node that
    /// cannot hold children (a file, device or fifo). Keyed by the cleaned
    /// path's bytes: hashing a `Path` walks its components.
    seen: HashMap<Box<[u8]>, bool>,
    /// The directory of the last entry that passed, none of whose
    /// ancestors is a file: a run of entries in one directory looks them
    /// up once. Only that entry was added since, and it is not above its
    /// own directory.
    dir_ok: Option<Vec<u8>>,
    strict_links: bool,
    data: u64,
    limit: u64,
}

impl EntryCheck {
    pub fn new(limit: u64, strict_links: bool) -> Self {
        EntryCheck {
            seen: Default::default(),
            dir_ok: None,
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
        let shown = || show_name(&raw);
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
                entry: shown(),
                reason: format!("unsupported tar entry type {}", show_type(kind)),
            });
        }
        let joined;
        let (dir, full): (&Path, &Path) = match &name {
            EntryName::Path(p) => (p.parent().unwrap_or(Path::new("")), p.as_path()),
            EntryName::Whiteout { dir, hidden } => {
                joined = dir.join(hidden);
                (dir, &joined)
            }
            EntryName::Opaque { dir } => {
                joined = dir.join(OsStr::from_bytes(OPAQUE));
                (dir, &joined)
            }
        };
        let (dir, full) = (dir.as_os_str().as_bytes(), full.as_os_str().as_bytes());
        // What no filesystem takes is refused here, naming the entry,
        // rather than failing half-way through an unpack.
        if full.len() >= PATH_MAX {
            return Err(LayerError::BadEntry {
                entry: shown(),
                reason: format!("the path is longer than {} bytes", PATH_MAX - 1),
            });
        }
        if full.split(|&b| b == b'/').any(|c| c.len() > NAME_MAX) {
            return Err(LayerError::BadEntry {
                entry: shown(),
                reason: format!("a name in the path is longer than {NAME_MAX} bytes"),
            });
        }
        if self.dir_ok.as_deref() != Some(dir) {
            if let Some(file) = ancestors(dir).find(|a| self.seen.get(*a).copied().unwrap_or(false))
            {
                return Err(LayerError::BadEntry {
                    entry: shown(),
                    reason: format!(
                        "it is inside \"{}\", which this layer made a file, not a directory",
                        show_name(file)
                    ),
                });
            }
        }
        if let EntryName::Whiteout { .. } = &name {
            self.seen.remove(full);
        }
        let mut link_target = None;
        let mut again = false;
        if let EntryName::Path(path) = &name {
            if kind == T::Link {
                let target_raw = entry.link_name_bytes().unwrap_or_default();
                let target = match classify_name(&target_raw)? {
                    Some(EntryName::Path(p)) => p,
                    None if clean_path_bytes(&target_raw)?.is_none() => {
                        return Err(LayerError::BadEntry {
                            entry: shown(),
                            reason: "hard link to the root directory".into(),
                        })
                    }
                    _ => {
                        return Err(LayerError::BadEntry {
                            entry: shown(),
                            reason: format!(
                                "hard link to the whiteout \"{}\"",
                                show_name(&target_raw)
                            ),
                        })
                    }
                };
                if self.strict_links && !self.seen.contains_key(target.as_os_str().as_bytes()) {
                    return Err(LayerError::DanglingHardlink {
                        entry: shown(),
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
            let leaf = !matches!(kind, T::Directory | T::Symlink);
            let path = path.as_os_str().as_bytes();
            match self.seen.entry(path.into()) {
                Entry::Occupied(mut o) => {
                    *o.get_mut() = leaf;
                    again = true;
                }
                Entry::Vacant(v) => {
                    v.insert(leaf);
                }
            }
        }
        if self.dir_ok.as_deref() != Some(dir) {
            let d = self.dir_ok.get_or_insert_with(Vec::new);
            d.clear();
            d.extend_from_slice(dir);
        }
        Ok(Some(CheckedEntry {
            name,
            kind,
            raw: raw.into_owned(),
            link_target,
            again,
        }))
    }

    /// Whether an entry so far made `path` (cleaned, relative), and no
    /// whiteout removed it since.
    pub fn made(&self, path: &[u8]) -> bool {
        self.seen.contains_key(path)
    }
}

/// `dir` (cleaned, relative) and each directory above it, not the root.
fn ancestors(dir: &[u8]) -> impl Iterator<Item = &[u8]> {
    let cuts = dir
        .iter()
        .enumerate()
        .rev()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| i);
    std::iter::once(dir.len())
        .chain(cuts)
        .map(move |i| &dir[..i])
        .filter(|a| !a.is_empty())
}
