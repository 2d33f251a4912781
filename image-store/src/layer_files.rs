//! What an unpack wrote for each path of a layer
//! (`kiln/layer-files/<diff-id hex>`): for a regular file its size, mode,
//! owner, mtime and the sha256 of its bytes; for a symlink the same of its
//! target; for a directory its mode, owner and mtime; for anything else
//! only that it is there. A later
//! unpack of a layer made by the same build step (an edit of one file of
//! a large context) either links the files whose facts are equal from the
//! earlier layer's directory instead of creating and writing each again
//! ([`crate::unpack::Reuse::open`]), or writes only what differs, as a
//! delta over it ([`crate::unpack::Reuse::delta`]): that one needs every
//! path of the earlier layer listed, to know the new one removes none.
//!
//! A path with facts has an inode of its own in its layer: paths that
//! are hard links of each other, or that the layer names twice, are
//! listed without facts, so linking never joins two paths of a new layer
//! that its tar keeps apart. Unpacked layers are read-only lowers:
//! nothing writes into a linked inode afterwards.
//!
//! A delta's record ([`crate::unpack::Reuse::delta`]) holds only what
//! its directory does, and names its base: read, it is the base's record
//! with those paths replaced.
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

/// Files up to this size are read whole and hashed as they are unpacked,
/// and may be linked from an earlier layer; larger ones are hashed as
/// they are written.
pub const RECORD_MAX: u64 = 16 * 1024;

/// Records of the first form (small files only) are not read: they do not
/// list every path.
const MAGIC: &[u8; 16] = b"kiln-layerfiles2";
/// A delta's record: the base's diff ID (hex) follows.
const DELTA_MAGIC: &[u8; 16] = b"kiln-layerfdelta";
/// A file's size, mtime (u64), mode, uid, gid (u32), sha256.
const FIXED: usize = 8 + 8 + 4 + 4 + 4 + 32;
/// A directory's mtime (u64), mode, uid, gid (u32).
const DIR_FIXED: usize = 8 + 4 + 4 + 4;
/// The kind byte before each entry's fields.
const KIND_PRESENT: u8 = 0;
const KIND_FILE: u8 = 1;
const KIND_DIR: u8 = 2;
const KIND_SYMLINK: u8 = 3;

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

/// A directory as the unpack left it (its extended attributes, if the
/// tar gave any, are not facts: such a directory is listed without).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirFacts {
    pub mtime: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// What is known of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fact {
    File(FileFacts),
    /// A symlink: the size and sha256 are its target's.
    Symlink(FileFacts),
    Dir(DirFacts),
    /// There, and nothing more (a device node or fifo, a file with
    /// extended attributes, a hard link, a path named twice).
    Present,
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

/// The facts of a layer's paths, by path (relative, as bytes).
#[derive(Debug, Default)]
pub struct LayerFiles {
    files: HashMap<Box<[u8]>, Fact>,
}

impl LayerFiles {
    pub fn with_capacity(n: usize) -> LayerFiles {
        LayerFiles {
            files: HashMap::with_capacity(n),
        }
    }

    /// The facts recorded for the regular file `path`, if it may be
    /// linked from.
    pub fn get(&self, path: &[u8]) -> Option<&FileFacts> {
        match self.files.get(path) {
            Some(Fact::File(f)) => Some(f),
            _ => None,
        }
    }

    /// The facts recorded for the symlink `path`.
    pub fn symlink(&self, path: &[u8]) -> Option<&FileFacts> {
        match self.files.get(path) {
            Some(Fact::Symlink(f)) => Some(f),
            _ => None,
        }
    }

    /// The facts recorded for the directory `path`.
    pub fn dir(&self, path: &[u8]) -> Option<&DirFacts> {
        match self.files.get(path) {
            Some(Fact::Dir(d)) => Some(d),
            _ => None,
        }
    }

    /// What is known of `path`, if the layer has it.
    pub(crate) fn fact(&self, path: &[u8]) -> Option<&Fact> {
        self.files.get(path)
    }

    /// Records a file the unpack wrote (or linked) at `path`.
    pub fn insert(&mut self, path: &[u8], facts: FileFacts) {
        self.put(path, Fact::File(facts));
    }

    /// Records a symlink the unpack made at `path`.
    pub fn insert_symlink(&mut self, path: &[u8], facts: FileFacts) {
        self.put(path, Fact::Symlink(facts));
    }

    /// Records a directory the unpack made at `path`.
    pub fn insert_dir(&mut self, path: &[u8], facts: DirFacts) {
        self.put(path, Fact::Dir(facts));
    }

    fn put(&mut self, path: &[u8], fact: Fact) {
        // One hash of the path: most are new.
        match self.files.entry(path.into()) {
            // A path written twice in one layer keeps no facts.
            Entry::Occupied(mut slot) => *slot.get_mut() = Fact::Present,
            Entry::Vacant(v) => {
                v.insert(fact);
            }
        }
    }

    /// Lists `path` without facts: nothing the unpack records facts of
    /// (see [`Fact::Present`]), a hard link of another path, or a path
    /// replaced in the same layer.
    pub fn exclude(&mut self, path: &[u8]) {
        self.files.insert(path.into(), Fact::Present);
    }

    /// Paths listed, with facts or without.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// `path`'s facts from `over`, for every path it lists.
    fn apply(&mut self, over: LayerFiles) {
        self.files.extend(over.files);
    }

    /// `MAGIC`, per path its length (u32), its kind (u8), the fixed
    /// fields of that kind (little-endian) and the path, then the CRC-32
    /// of all that.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_over(None)
    }

    /// [`LayerFiles::encode`], or with `base` a delta's record: the
    /// `DELTA_MAGIC` and the base's diff ID in hex first.
    fn encode_over(&self, base: Option<&Digest>) -> Vec<u8> {
        let mut out = Vec::with_capacity(MAGIC.len() + self.files.len() * (5 + FIXED + 32) + 4);
        match base {
            None => out.extend_from_slice(MAGIC),
            Some(b) => {
                out.extend_from_slice(DELTA_MAGIC);
                out.extend_from_slice(b.hex().as_bytes());
            }
        }
        for (path, fact) in &self.files {
            out.extend_from_slice(&(path.len() as u32).to_le_bytes());
            match fact {
                Fact::Present => out.push(KIND_PRESENT),
                Fact::File(f) | Fact::Symlink(f) => {
                    let file = matches!(fact, Fact::File(_));
                    out.push(if file { KIND_FILE } else { KIND_SYMLINK });
                    out.extend_from_slice(&f.size.to_le_bytes());
                    out.extend_from_slice(&f.mtime.to_le_bytes());
                    out.extend_from_slice(&f.mode.to_le_bytes());
                    out.extend_from_slice(&f.uid.to_le_bytes());
                    out.extend_from_slice(&f.gid.to_le_bytes());
                    out.extend_from_slice(&f.sha);
                }
                Fact::Dir(d) => {
                    out.push(KIND_DIR);
                    out.extend_from_slice(&d.mtime.to_le_bytes());
                    out.extend_from_slice(&d.mode.to_le_bytes());
                    out.extend_from_slice(&d.uid.to_le_bytes());
                    out.extend_from_slice(&d.gid.to_le_bytes());
                }
            }
            out.extend_from_slice(path);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for anything but a whole, well-formed record (of a layer
    /// that is not a delta).
    pub fn decode(data: &[u8]) -> Option<LayerFiles> {
        match Self::decode_any(data)? {
            (None, files) => Some(files),
            (Some(_), _) => None,
        }
    }

    /// A whole, well-formed record, and the base it is a delta over.
    fn decode_any(data: &[u8]) -> Option<(Option<Digest>, LayerFiles)> {
        let (body, crc) = data.split_at_checked(data.len().checked_sub(4)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let (base, mut rest) = match body.strip_prefix(DELTA_MAGIC.as_slice()) {
            Some(r) => {
                let (hex, rest) = r.split_at_checked(64)?;
                let hex = std::str::from_utf8(hex).ok()?;
                (Some(Digest::from_hex(hex).ok()?), rest)
            }
            None => (None, body.strip_prefix(MAGIC.as_slice())?),
        };
        let mut files = HashMap::with_capacity(rest.len() / (5 + FIXED + 16));
        let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
        let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
        while !rest.is_empty() {
            if rest.len() < 5 {
                return None;
            }
            let len = u32_(&rest[..4]) as usize;
            let kind = rest[4];
            rest = &rest[5..];
            let fixed = match kind {
                KIND_PRESENT => 0,
                KIND_FILE | KIND_SYMLINK => FIXED,
                KIND_DIR => DIR_FIXED,
                _ => return None,
            };
            if rest.len() < fixed {
                return None;
            }
            let (f, tail) = rest.split_at(fixed);
            let file = || FileFacts {
                size: u64_(&f[0..8]),
                mtime: u64_(&f[8..16]),
                mode: u32_(&f[16..20]),
                uid: u32_(&f[20..24]),
                gid: u32_(&f[24..28]),
                sha: f[28..60].try_into().expect("32 bytes"),
            };
            let fact = match kind {
                KIND_FILE => Fact::File(file()),
                KIND_SYMLINK => Fact::Symlink(file()),
                KIND_DIR => Fact::Dir(DirFacts {
                    mtime: u64_(&f[0..8]),
                    mode: u32_(&f[8..12]),
                    uid: u32_(&f[12..16]),
                    gid: u32_(&f[16..20]),
                }),
                _ => Fact::Present,
            };
            if tail.len() < len || len == 0 {
                return None;
            }
            files.insert(tail[..len].into(), fact);
            rest = &tail[len..];
        }
        Some((base, LayerFiles { files }))
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

    /// The file facts of the unpacked layer `diff_id`, if recorded and
    /// whole (a delta's with its base's).
    pub fn layer_files(&self, diff_id: &Digest) -> Option<LayerFiles> {
        let data = fs::read(self.layer_files_path(diff_id)).ok()?;
        match LayerFiles::decode_any(&data)? {
            (None, files) => Some(files),
            (Some(base), over) => {
                let mut files = LayerFiles::decode(&fs::read(self.layer_files_path(&base)).ok()?)?;
                files.apply(over);
                Some(files)
            }
        }
    }

    /// Records the file facts of the unpacked layer `diff_id` (best
    /// effort: see the module comment); with `base`, those of a delta's
    /// own directory.
    pub(crate) fn put_layer_files(
        &self,
        diff_id: &Digest,
        files: &LayerFiles,
        base: Option<&Digest>,
    ) {
        if files.is_empty() && base.is_none() {
            return;
        }
        let dir = self.layer_files_dir();
        if crate::store::private_dir(&dir).is_err() {
            return;
        }
        let data = files.encode_over(base);
        let _ = crate::build_roots::replace_unsynced(&self.layer_files_path(diff_id), &data);
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
        let dir = DirFacts {
            mtime: 5,
            mode: 0o2755,
            uid: 1,
            gid: 2,
        };
        lf.insert_dir(b"a", dir);
        lf.exclude(b"a/fifo");
        lf.insert_symlink(b"a/symlink", facts(6));
        assert_eq!(lf.len(), 7);
        let data = lf.encode();
        let back = LayerFiles::decode(&data).unwrap();
        assert_eq!(back.get(b"a/b"), Some(&facts(1)));
        assert_eq!(back.get(b"a/c"), Some(&facts(2)));
        assert_eq!(back.get(b"twice"), None);
        assert_eq!(back.get(b"linked"), None);
        assert_eq!(back.dir(b"a"), Some(&dir));
        assert_eq!(back.get(b"a"), None);
        // Listed without facts, yet listed: a delta needs every path.
        for p in [&b"twice"[..], b"linked", b"a/fifo"] {
            assert_eq!(
                back.fact(p),
                Some(&Fact::Present),
                "{}",
                String::from_utf8_lossy(p)
            );
        }
        assert!(back.fact(b"a/other").is_none());
        assert_eq!(back.symlink(b"a/symlink"), Some(&facts(6)));
        assert_eq!(back.get(b"a/symlink"), None);
        assert_eq!(back.len(), 7);
        // Any changed byte, a cut, or zeroes: refused.
        for i in 0..data.len() {
            let mut bad = data.clone();
            bad[i] ^= 0x40;
            assert!(LayerFiles::decode(&bad).is_none(), "byte {i}");
        }
        assert!(LayerFiles::decode(&data[..data.len() - 1]).is_none());
        assert!(LayerFiles::decode(&vec![0; data.len()]).is_none());
    }

    /// A delta's record is read as its base's with its own paths replaced
    /// or added; without the base's record there is none.
    #[test]
    fn a_deltas_record_is_its_bases_with_its_own_paths() {
        let top = tempfile::tempdir().unwrap();
        let store = Store::open(top.path().join("store")).unwrap();
        let (base, delta) = (Digest::of_bytes(b"base"), Digest::of_bytes(b"delta"));
        let mut over = LayerFiles::default();
        over.insert(b"a/c", facts(9));
        over.insert(b"a/new", facts(8));
        store.put_layer_files(&delta, &over, Some(&base));
        assert!(store.layer_files(&delta).is_none(), "no base record yet");
        let mut whole = LayerFiles::default();
        whole.insert(b"a/b", facts(1));
        whole.insert(b"a/c", facts(2));
        store.put_layer_files(&base, &whole, None);
        let got = store.layer_files(&delta).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got.get(b"a/b"), Some(&facts(1)));
        assert_eq!(got.get(b"a/c"), Some(&facts(9)));
        assert_eq!(got.get(b"a/new"), Some(&facts(8)));
        // Never a delta over a delta: a record naming a delta's is refused.
        let top_id = Digest::of_bytes(b"top");
        store.put_layer_files(&top_id, &over, Some(&delta));
        assert!(store.layer_files(&top_id).is_none());
    }
}
