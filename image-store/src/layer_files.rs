//! What an unpack wrote for each small regular file of a layer
//! (`kiln/layer-files/<diff-id hex>`): its size, mode, owner, mtime and
//! the sha256 of its bytes. A later unpack of a layer made by the same
//! build step (an edit of one file of a large context) links the files
//! whose facts are equal from the earlier layer's directory instead of
//! creating and writing each again ([`crate::unpack::Reuse`]).
//!
//! Each recorded path has an inode of its own in its layer: paths that
//! are hard links of each other, or that the layer names twice, are left
//! out, so linking never joins two paths of a new layer that its tar keeps
//! apart. Unpacked layers are read-only lowers: nothing writes into a
//! linked inode afterwards.
//!
//! The file is a hint: written without an fsync, it ends in a CRC-32 of
//! what precedes it, and one that fails the check (a crash tore it) is
//! ignored, which only costs writing the files again.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fs;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::digest::Digest;
use crate::store::Store;

/// Files up to this size are read whole and hashed as they are unpacked
/// (a larger file costs more to hash than to write).
pub const RECORD_MAX: u64 = 16 * 1024;

const MAGIC: &[u8; 16] = b"kiln-layerfiles1";
/// size, mtime (u64), mode, uid, gid (u32), sha256.
const FIXED: usize = 8 + 8 + 4 + 4 + 4 + 32;

/// A regular file as the unpack left it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileFacts {
    pub size: u64,
    pub mtime: u64,
    /// Permission bits (with set-id and sticky bits).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub sha: [u8; 32],
}

/// The sha256 of small files' data that the writer of a layer tar vouches
/// for, by where the data starts in the stream: a build's COPY checked
/// the bytes it took from the step's previous layer against the digest
/// its key holds, and the unpack beside it ([`crate::unpacking`]) records
/// that digest instead of hashing the same bytes again (one pass less
/// over an edited layer). Only the writer in the same process vouches;
/// an entry without a vouch, or one the writer vouched for too late, is
/// hashed as before.
#[derive(Debug, Default)]
pub struct Vouched {
    /// (data offset, size, sha256), offsets rising.
    queue: Mutex<VecDeque<(u64, u64, [u8; 32])>>,
}

impl Vouched {
    /// The data of `size` bytes at `offset` of the stream has this sha256.
    /// Called in stream order.
    pub fn vouch(&self, offset: u64, size: u64, sha: [u8; 32]) {
        self.lock().push_back((offset, size, sha));
    }

    /// The digest vouched for the data at `offset`, if any; vouches for
    /// earlier offsets (entries the unpack has passed) are dropped.
    pub fn take(&self, offset: u64, size: u64) -> Option<[u8; 32]> {
        let mut q = self.lock();
        while let Some(&(at, n, sha)) = q.front() {
            if at > offset {
                return None;
            }
            q.pop_front();
            if at == offset {
                return (n == size).then_some(sha);
            }
        }
        None
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(u64, u64, [u8; 32])>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The facts of a layer's files, by path (relative, as bytes).
#[derive(Debug, Default)]
pub struct LayerFiles {
    /// `None`: the path may not be linked from (see the module comment).
    files: HashMap<Box<[u8]>, Option<FileFacts>>,
}

impl LayerFiles {
    pub fn with_capacity(n: usize) -> LayerFiles {
        LayerFiles {
            files: HashMap::with_capacity(n),
        }
    }

    /// The facts recorded for `path`, if it may be linked from.
    pub fn get(&self, path: &[u8]) -> Option<&FileFacts> {
        self.files.get(path).and_then(Option::as_ref)
    }

    /// Records a file the unpack wrote (or linked) at `path`.
    pub fn insert(&mut self, path: &[u8], facts: FileFacts) {
        // One hash of the path: most are new.
        match self.files.entry(path.into()) {
            // A path written twice in one layer stays unusable.
            Entry::Occupied(mut slot) => *slot.get_mut() = None,
            Entry::Vacant(v) => {
                v.insert(Some(facts));
            }
        }
    }

    /// Marks `path` as not to be linked from: it is a hard link of another
    /// path, or was replaced in the same layer.
    pub fn exclude(&mut self, path: &[u8]) {
        self.files.insert(path.into(), None);
    }

    pub fn len(&self) -> usize {
        self.files.values().filter(|f| f.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `MAGIC`, per usable entry the path length (u32), the fixed fields
    /// (little-endian) and the path, then the CRC-32 of all that.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.files.len() * (4 + FIXED + 32) + 4);
        out.extend_from_slice(MAGIC);
        for (path, f) in &self.files {
            let Some(f) = f else { continue };
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            out.extend_from_slice(&f.size.to_le_bytes());
            out.extend_from_slice(&f.mtime.to_le_bytes());
            out.extend_from_slice(&f.mode.to_le_bytes());
            out.extend_from_slice(&f.uid.to_le_bytes());
            out.extend_from_slice(&f.gid.to_le_bytes());
            out.extend_from_slice(&f.sha);
            out.extend_from_slice(path);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for anything but a whole, well-formed record.
    pub fn decode(data: &[u8]) -> Option<LayerFiles> {
        let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let mut rest = body.strip_prefix(MAGIC.as_slice())?;
        let mut files = HashMap::with_capacity(rest.len() / (4 + FIXED + 16));
        let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        while !rest.is_empty() {
            if rest.len() < 4 + FIXED {
                return None;
            }
            let len = u32_(&rest[..4]) as usize;
            let f = &rest[4..4 + FIXED];
            let facts = FileFacts {
                size: u64_(&f[0..8]),
                mtime: u64_(&f[8..16]),
                mode: u32_(&f[16..20]),
                uid: u32_(&f[20..24]),
                gid: u32_(&f[24..28]),
                sha: f[28..60].try_into().expect("32 bytes"),
            };
            let tail = &rest[4 + FIXED..];
            if tail.len() < len || len == 0 {
                return None;
            }
            files.insert(tail[..len].into(), Some(facts));
            rest = &tail[len..];
        }
        Some(LayerFiles { files })
    }
}

impl Store {
    /// Where the file facts of unpacked layers are kept.
    pub fn layer_files_dir(&self) -> PathBuf {
        self.kiln_dir().join("layer-files")
    }

    fn layer_files_path(&self, diff_id: &Digest) -> PathBuf {
        self.layer_files_dir().join(diff_id.hex())
    }

    /// The file facts of the unpacked layer `diff_id`, if recorded and whole.
    pub fn layer_files(&self, diff_id: &Digest) -> Option<LayerFiles> {
        let data = fs::read(self.layer_files_path(diff_id)).ok()?;
        LayerFiles::decode(&data)
    }

    /// Records the file facts of the unpacked layer `diff_id` (best
    /// effort: see the module comment).
    pub(crate) fn put_layer_files(&self, diff_id: &Digest, files: &LayerFiles) {
        if files.is_empty() {
            return;
        }
        let dir = self.layer_files_dir();
        if crate::store::private_dir(&dir).is_err() {
            return;
        }
        let _ =
            crate::build_roots::replace_unsynced(&self.layer_files_path(diff_id), &files.encode());
    }

    /// Forgets the facts of layers not in `keep` (the collector's sweep).
    pub(crate) fn remove_unused_layer_files(&self, keep: &dyn Fn(&Digest) -> bool) {
        let Ok(entries) = fs::read_dir(self.layer_files_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(d) = name.to_str().and_then(|n| Digest::from_hex(n).ok()) else {
                continue;
            };
            if !keep(&d) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(n: u8) -> FileFacts {
        FileFacts {
            size: 4,
            mtime: 1_700_000_000,
            mode: 0o644,
            uid: 0,
            gid: 0,
            sha: [n; 32],
        }
    }

    #[test]
    fn round_trip_and_damage() {
        let mut lf = LayerFiles::default();
        lf.insert(b"a/b", facts(1));
        lf.insert(b"a/c", facts(2));
        lf.insert(b"twice", facts(3));
        lf.insert(b"twice", facts(3));
        lf.insert(b"linked", facts(4));
        lf.exclude(b"linked");
        assert_eq!(lf.len(), 2);
        let data = lf.encode();
        let back = LayerFiles::decode(&data).unwrap();
        assert_eq!(back.get(b"a/b"), Some(&facts(1)));
        assert_eq!(back.get(b"a/c"), Some(&facts(2)));
        assert_eq!(back.get(b"twice"), None);
        assert_eq!(back.get(b"linked"), None);
        // Any changed byte, a cut, or zeroes: refused.
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x40;
            assert!(LayerFiles::decode(&bad).is_none(), "byte {i}");
        }
        assert!(LayerFiles::decode(&data[..data.len() - 1]).is_none());
        assert!(LayerFiles::decode(&vec![0; data.len()]).is_none());
    }
}
