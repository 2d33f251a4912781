//! The stat index of a build context: content hashes of its files, keyed
//! by what `stat` says, like git's index.

use std::cmp::Ordering as Order;
use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use image_store::build_roots::replace_unsynced;
use image_store::cache_dirs::BuildHints;
use image_store::Store;
use sha2::{Digest as _, Sha256};

use crate::context::tree_order;

/// Content hashes of context files, keyed by what `stat` says, like git's
/// index: a file whose size, mtime, ctime, inode and mode are unchanged is
/// not read again.
///
/// Racy entries (git's "racy clean" problem): a file changed again within
/// the same timestamp tick as the stat we recorded keeps an identical stat
/// but new bytes. Its ctime is then not clearly older than the moment we
/// hashed it, so such an entry is marked racy and hashed again next time
/// rather than trusted.
///
/// The index is one binary file (see [`StatIndex::encode`]), its entries
/// sorted in the order a context walk visits the paths. It is read whole
/// at start and kept as read: the entries are found in place, a walk's
/// next lookup is most often the entry after the last one (else a binary
/// search), so a build of 100k unchanged files neither allocates nor
/// hashes per entry. New or changed entries are kept apart and merged in
/// when the index is written back, which happens only when one changed.
/// It ends in a CRC-32 of what precedes it, so it is written without an
/// fsync: a file cut or torn by a crash fails the check and is rebuilt
/// (every file hashed again), and the rename leaves either the old or the
/// new index in place. Paths are the context's names as bytes, not a
/// display form.
///
/// Stages share one index from several threads: the lock is held only to
/// look up or record an entry, never while a file is hashed.
#[derive(Default)]
pub struct StatIndex {
    inner: OnceLock<Mutex<Inner>>,
    /// The index file, read and checked on a thread of its own while the
    /// build starts (10 MB for 100k files): taken at the first lookup.
    loading: Mutex<Option<std::thread::JoinHandle<Inner>>>,
    dirty: AtomicBool,
    path: Option<PathBuf>,
}

#[derive(Default)]
struct Inner {
    /// The index file as read (empty when absent or damaged).
    data: Vec<u8>,
    /// Where each entry of `data` starts, in [`tree_order`] of the paths.
    starts: Vec<usize>,
    /// The position after the last entry found in `data`: where a walk's
    /// next lookup most likely is.
    cursor: usize,
    /// Entries recorded by this build (new paths, or new stats), encoded
    /// one after another as in the file: a build of 100k new files keeps
    /// 100k of them, in 11 MB rather than the 19 MB of a map of boxed
    /// paths to entries.
    changed: Changed,
}

/// The entries a build recorded, found by path through a table of path
/// hashes; a path whose hash another path holds is found through
/// `overflow`.
struct Changed {
    bytes: Vec<u8>,
    hash: fn(&[u8]) -> u64,
    /// Path hash → where its latest entry starts in `bytes`.
    latest: HashMap<u64, usize>,
    overflow: HashMap<Box<[u8]>, usize>,
}

impl Default for Changed {
    fn default() -> Self {
        Changed {
            bytes: Vec::new(),
            hash: path_hash,
            latest: HashMap::new(),
            overflow: HashMap::new(),
        }
    }
}

fn path_hash(path: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    h.finish()
}

impl Changed {
    fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    fn find(&self, path: &[u8]) -> Option<usize> {
        if !self.overflow.is_empty() {
            if let Some(&at) = self.overflow.get(path) {
                return Some(at);
            }
        }
        let at = *self.latest.get(&(self.hash)(path))?;
        (entry_path(&self.bytes, at) == path).then_some(at)
    }

    fn get(&self, path: &[u8]) -> Option<StatEntry> {
        self.find(path).map(|at| decode_entry(&self.bytes, at))
    }

    fn insert(&mut self, path: &[u8], e: &StatEntry) {
        let at = self.bytes.len();
        put_entry(&mut self.bytes, path, e);
        match self.latest.entry((self.hash)(path)) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(at);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if entry_path(&self.bytes, *o.get()) == path {
                    o.insert(at);
                } else {
                    self.overflow.insert(path.into(), at);
                }
            }
        }
    }

    /// Where the latest entry of each recorded path starts, in
    /// [`tree_order`] of the paths.
    fn sorted(&self) -> Vec<usize> {
        let mut all: Vec<usize> = self
            .latest
            .values()
            .chain(self.overflow.values())
            .copied()
            .collect();
        all.sort_unstable_by(|&a, &b| {
            tree_order(entry_path(&self.bytes, a), entry_path(&self.bytes, b))
        });
        all
    }
}

/// The path of the entry starting at `s` of `d` (entries as in the file).
fn entry_path(d: &[u8], s: usize) -> &[u8] {
    let len = u32_at(d, s) as usize;
    &d[s + FIXED..s + FIXED + len]
}

fn decode_entry(d: &[u8], s: usize) -> StatEntry {
    StatEntry {
        stat: FileStat {
            size: u64_at(d, s + 4),
            mtime: u64_at(d, s + 12) as i64,
            mtime_ns: u64_at(d, s + 20) as i64,
            ctime: u64_at(d, s + 28) as i64,
            ctime_ns: u64_at(d, s + 36) as i64,
            ino: u64_at(d, s + 44),
            mode: u32_at(d, s + 52),
        },
        racy: d[s + 56] == 1,
        sha: d[s + 57..s + 89].try_into().expect("32 bytes"),
    }
}

/// Appends one entry as the file holds it.
fn put_entry(out: &mut Vec<u8>, path: &[u8], e: &StatEntry) {
    let s = &e.stat;
    out.extend_from_slice(&(path.len() as u32).to_le_bytes());
    out.extend_from_slice(&s.size.to_le_bytes());
    out.extend_from_slice(&s.mtime.to_le_bytes());
    out.extend_from_slice(&s.mtime_ns.to_le_bytes());
    out.extend_from_slice(&s.ctime.to_le_bytes());
    out.extend_from_slice(&s.ctime_ns.to_le_bytes());
    out.extend_from_slice(&s.ino.to_le_bytes());
    out.extend_from_slice(&s.mode.to_le_bytes());
    out.push(e.racy as u8);
    out.extend_from_slice(&e.sha);
    out.extend_from_slice(path);
}

/// What `lstat` says of a context file, as far as the index compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub mtime: i64,
    pub mtime_ns: i64,
    pub ctime: i64,
    pub ctime_ns: i64,
    pub ino: u64,
    pub mode: u32,
}

impl From<&fs::Metadata> for FileStat {
    fn from(md: &fs::Metadata) -> Self {
        FileStat {
            size: md.len(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec(),
            ctime: md.ctime(),
            ctime_ns: md.ctime_nsec(),
            ino: md.ino(),
            mode: md.mode(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StatEntry {
    stat: FileStat,
    /// The ctime was too close to the hashing time to trust the stat.
    racy: bool,
    sha: [u8; 32],
}

/// How much older than the moment of hashing a ctime must be for the
/// entry to be trusted: file timestamps come from a coarse clock (a jiffy,
/// 1 to 10 ms, behind the real time on Linux), so a same-tick change can
/// carry a ctime slightly older than the fine clock read before hashing.
/// A ctime in whole seconds (no nanoseconds: a filesystem that keeps
/// seconds, or two) needs [`RACY_MARGIN_COARSE_NS`]. The finer margin
/// matters to a build right after a checkout or a generated context:
/// with seconds, every build of the first two seconds hashed it all again.
const RACY_MARGIN_NS: i128 = 100_000_000;
const RACY_MARGIN_COARSE_NS: i128 = 2_000_000_000;

/// Whether a file whose stat is `stat`, hashed from `started` (ns since
/// the epoch), may have changed since in the same timestamp tick.
fn racy(stat: &FileStat, started: i128) -> bool {
    let margin = if stat.ctime_ns == 0 {
        RACY_MARGIN_COARSE_NS
    } else {
        RACY_MARGIN_NS
    };
    let ctime = i128::from(stat.ctime) * 1_000_000_000 + i128::from(stat.ctime_ns);
    ctime + margin >= started
}

const MAGIC: &[u8; 16] = b"kiln-statidx-v4\n";
/// The CRC-32 after the entries.
const CHECKSUM: usize = 4;
/// Path length, then size, mtime (s, ns), ctime (s, ns), ino, mode, racy, sha.
const FIXED: usize = 4 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 1 + 32;

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(d[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(d: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(d[at..at + 8].try_into().expect("8 bytes"))
}

impl Inner {
    /// The path of the entry starting at `s` (a checked entry of `data`).
    fn path_at(&self, s: usize) -> &[u8] {
        entry_path(&self.data, s)
    }

    fn entry_at(&self, s: usize) -> StatEntry {
        decode_entry(&self.data, s)
    }

    /// The entry as read from the file, if any: the one after the last
    /// found when the lookups come in walk order, else a binary search.
    fn read_entry(&mut self, rel: &[u8]) -> Option<StatEntry> {
        let i = match self.starts.get(self.cursor) {
            Some(&s) if self.path_at(s) == rel => self.cursor,
            _ => self
                .starts
                .binary_search_by(|&s| tree_order(self.path_at(s), rel))
                .ok()?,
        };
        self.cursor = i + 1;
        Some(self.entry_at(self.starts[i]))
    }

    fn get(&mut self, rel: &[u8]) -> Option<StatEntry> {
        if !self.changed.is_empty() {
            if let Some(e) = self.changed.get(rel) {
                return Some(e);
            }
        }
        self.read_entry(rel)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        let mut n = self.starts.len();
        for at in self.changed.sorted() {
            let k = entry_path(&self.changed.bytes, at);
            let listed = self
                .starts
                .binary_search_by(|&s| tree_order(self.path_at(s), k))
                .is_ok();
            n += usize::from(!listed);
        }
        n
    }
}

impl StatIndex {
    /// The index for one context directory.
    pub fn open(store: &Store, context: &Path) -> StatIndex {
        let id = hex::encode(Sha256::digest(context.as_os_str().as_encoded_bytes()));
        let dir = store.build_hints_dir(BuildHints::StatIndex);
        // The JSON, v2 and v3 indexes of earlier versions are no longer read.
        for old in ["json", "bin", "v3"] {
            let _ = fs::remove_file(dir.join(format!("{}.{old}", &id[..32])));
        }
        let path = dir.join(format!("{}.v4", &id[..32]));
        let at = path.clone();
        match std::thread::Builder::new()
            .name("stat-index".into())
            .spawn(move || Self::load(&at))
        {
            Ok(loading) => StatIndex {
                loading: Mutex::new(Some(loading)),
                path: Some(path),
                ..Default::default()
            },
            Err(_) => StatIndex::open_at(path),
        }
    }

    /// The index kept in the file `path` (empty if absent or unreadable).
    pub fn open_at(path: PathBuf) -> StatIndex {
        StatIndex {
            inner: OnceLock::from(Mutex::new(Self::load(&path))),
            path: Some(path),
            ..Default::default()
        }
    }

    fn load(path: &Path) -> Inner {
        fs::read(path)
            .ok()
            .and_then(|data| {
                let starts = Self::decode(&data)?;
                Some(Inner {
                    data,
                    starts,
                    ..Default::default()
                })
            })
            .unwrap_or_default()
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .get_or_init(|| {
                let loading = self
                    .loading
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                // A reader that failed leaves an empty index: files are hashed.
                Mutex::new(loading.and_then(|l| l.join().ok()).unwrap_or_default())
            })
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// sha256 of the file at `abs` (named `rel` in the context), in hex.
    pub fn hash(&self, rel: &[u8], abs: &Path, md: &fs::Metadata) -> std::io::Result<String> {
        self.digest(rel, abs, &FileStat::from(md)).map(hex::encode)
    }

    /// As [`StatIndex::hash`], with the stat given apart.
    #[cfg(test)]
    fn hash_stat(&self, rel: &[u8], abs: &Path, stat: &FileStat) -> std::io::Result<String> {
        self.digest(rel, abs, stat).map(hex::encode)
    }

    /// The raw sha256 of the file at `abs` (named `rel` in the context):
    /// the recorded one while its stat is unchanged and settled, else
    /// read (and recorded).
    pub fn digest(&self, rel: &[u8], abs: &Path, stat: &FileStat) -> std::io::Result<[u8; 32]> {
        self.digest_read(rel, abs, stat, None)
    }

    /// [`StatIndex::digest`] with the file maybe read already, right after
    /// the same stat, by the walk ([`Hashed`]).
    pub fn digest_read(
        &self,
        rel: &[u8],
        abs: &Path,
        stat: &FileStat,
        read: Option<Hashed>,
    ) -> std::io::Result<[u8; 32]> {
        let old = self.inner().get(rel);
        if let Some(e) = old {
            if !e.racy && e.stat == *stat {
                return Ok(e.sha);
            }
        }
        let Hashed { sha, started } = match read {
            Some(h) => h,
            None => Hashed::of(abs)?,
        };
        let entry = StatEntry {
            stat: *stat,
            racy: racy(stat, started),
            sha,
        };
        if old != Some(entry) {
            self.inner().changed.insert(rel, &entry);
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(sha)
    }

    /// Whether the index records no file (the context was never built
    /// from this store, or its index was lost): then every file walked is
    /// read and hashed.
    pub fn is_empty(&self) -> bool {
        let inner = self.inner();
        inner.starts.is_empty() && inner.changed.is_empty()
    }

    /// Writes the index back if an entry changed (best effort: a lost
    /// index only costs hashing again).
    pub fn save(&self) {
        if !self.dirty.load(Ordering::Relaxed) {
            return;
        }
        if let Some(p) = &self.path {
            if let Some(d) = p.parent() {
                let _ = fs::create_dir_all(d);
            }
            let data = Self::encode(&self.inner());
            let _ = replace_unsynced(p, &data);
        }
    }

    /// `MAGIC`, then per entry, in [`tree_order`] of the paths: path length
    /// (u32), the fixed fields (all little-endian), then the path bytes;
    /// last the CRC-32 of all that. The entries read are copied as they
    /// are, merged with those this build recorded.
    fn encode(inner: &Inner) -> Vec<u8> {
        let changed = &inner.changed.bytes;
        let mut out = Vec::with_capacity(inner.data.len() + changed.len() + MAGIC.len() + 4);
        out.extend_from_slice(MAGIC);
        let copy = |out: &mut Vec<u8>, d: &[u8], s: usize| {
            let len = u32_at(d, s) as usize;
            out.extend_from_slice(&d[s..s + FIXED + len]);
        };
        let mut new = inner.changed.sorted().into_iter().peekable();
        for &s in &inner.starts {
            let path = inner.path_at(s);
            while let Some(c) =
                new.next_if(|&c| tree_order(entry_path(changed, c), path) == Order::Less)
            {
                copy(&mut out, changed, c);
            }
            match new.next_if(|&c| entry_path(changed, c) == path) {
                Some(c) => copy(&mut out, changed, c),
                None => copy(&mut out, &inner.data, s),
            }
        }
        for c in new {
            copy(&mut out, changed, c);
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Where each entry starts; `None` for anything but a well-formed
    /// index, its entries in order, whose checksum holds.
    fn decode(data: &[u8]) -> Option<Vec<usize>> {
        let body_len = data.len().checked_sub(CHECKSUM)?;
        let (body, crc) = data.split_at(body_len);
        if crc32fast::hash(body).to_le_bytes() != crc || !body.starts_with(MAGIC) {
            return None;
        }
        let mut starts = Vec::with_capacity(body.len() / (FIXED + 24));
        let mut at = MAGIC.len();
        let mut last: Option<&[u8]> = None;
        while at < body.len() {
            if body.len() - at < FIXED {
                return None;
            }
            let len = u32_at(body, at) as usize;
            if body[at + 56] > 1 || body.len() - at - FIXED < len {
                return None;
            }
            let path = &body[at + FIXED..at + FIXED + len];
            if last.is_some_and(|l| tree_order(l, path) != Order::Less) {
                return None;
            }
            last = Some(path);
            starts.push(at);
            at += FIXED + len;
        }
        Some(starts)
    }
}

/// A file's sha256, and when its reading started (nanoseconds since the
/// epoch): an entry is racy when the file's ctime is that close to it.
#[derive(Debug, Clone, Copy)]
pub struct Hashed {
    pub sha: [u8; 32],
    pub started: i128,
}

impl Hashed {
    pub fn of(p: &Path) -> std::io::Result<Hashed> {
        let started = now_nanos();
        Hashed::of_file(fs::File::open(p)?, started)
    }

    /// The file `f`, opened at `started`.
    pub fn of_file(f: fs::File, started: i128) -> std::io::Result<Hashed> {
        Ok(Hashed {
            sha: hash_open(f)?,
            started,
        })
    }
}

/// Now, in nanoseconds since the epoch.
pub fn now_nanos() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(i128::MAX, |d| d.as_nanos() as i128)
}

/// The hex sha256 of a file the stat index does not cover (a followed link).
pub fn hash_file(p: &Path) -> std::io::Result<String> {
    hash_file_raw(p).map(hex::encode)
}

fn hash_file_raw(p: &Path) -> std::io::Result<[u8; 32]> {
    hash_open(fs::File::open(p)?)
}

fn hash_open(mut f: fs::File) -> std::io::Result<[u8; 32]> {
    thread_local! {
        // One buffer per thread, zeroed once: a fresh array per file was
        // a 64 KiB memset each (6.5 GB of them for the first build of a
        // 100k-file context), and a heap buffer per file an mmap.
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; 64 * 1024]);
    }
    let mut h = Sha256::new();
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(h.finalize().into())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_whose_hashes_collide_keep_their_own_latest_entries() {
        let mut c = Changed {
            hash: |_| 7,
            ..Default::default()
        };
        let entry = |size: u64| StatEntry {
            stat: FileStat {
                size,
                mtime: 1,
                mtime_ns: 2,
                ctime: 3,
                ctime_ns: 4,
                ino: 5,
                mode: 0o100644,
            },
            racy: false,
            sha: [size as u8; 32],
        };
        c.insert(b"b", &entry(1));
        c.insert(b"a", &entry(2));
        c.insert(b"a", &entry(3));
        c.insert(b"b", &entry(4));
        assert_eq!(c.get(b"a"), Some(entry(3)));
        assert_eq!(c.get(b"b"), Some(entry(4)));
        assert_eq!(c.get(b"c"), None);
        let order: Vec<&[u8]> = c
            .sorted()
            .into_iter()
            .map(|at| entry_path(&c.bytes, at))
            .collect();
        assert_eq!(order, [b"a".as_slice(), b"b".as_slice()]);
    }

    fn now_secs() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    }

    fn stat_with_ctime(ctime: i64) -> FileStat {
        FileStat {
            size: 4,
            mtime: 1_700_000_000,
            mtime_ns: 0,
            ctime,
            ctime_ns: 0,
            ino: 42,
            mode: 0o100644,
        }
    }

    fn sha_of(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    /// A file rewritten in the same timestamp tick keeps its whole stat
    /// (size, mtime, ctime, inode): the entry recorded when the ctime was
    /// that fresh must not be trusted, in this build or the next.
    #[test]
    fn racy_clean_entry_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let at = dir.path().join("index.bin");
        let stat = stat_with_ctime(now_secs());
        fs::write(&file, b"aaaa").unwrap();
        let idx = StatIndex::open_at(at.clone());
        assert_eq!(idx.hash_stat(b"f", &file, &stat).unwrap(), sha_of(b"aaaa"));
        fs::write(&file, b"bbbb").unwrap();
        assert_eq!(idx.hash_stat(b"f", &file, &stat).unwrap(), sha_of(b"bbbb"));
        idx.save();
        fs::write(&file, b"cccc").unwrap();
        let again = StatIndex::open_at(at);
        assert_eq!(
            again.hash_stat(b"f", &file, &stat).unwrap(),
            sha_of(b"cccc")
        );
    }

    /// A sub-second ctime is settled 100 ms after it; one in whole
    /// seconds only 2 s after.
    #[test]
    fn the_racy_margin_follows_the_timestamps_grain() {
        let s = 1_800_000_000i64;
        let at = |secs: i64, ns: i64| i128::from(secs) * 1_000_000_000 + i128::from(ns);
        let fine = FileStat {
            ctime_ns: 500_000_000,
            ..stat_with_ctime(s)
        };
        assert!(racy(&fine, at(s, 550_000_000)));
        assert!(racy(&fine, at(s, 600_000_000)));
        assert!(!racy(&fine, at(s, 600_000_001)));
        assert!(!racy(&fine, at(s + 1, 0)));
        let coarse = stat_with_ctime(s);
        assert!(racy(&coarse, at(s + 1, 500_000_000)));
        assert!(racy(&coarse, at(s + 2, 0)));
        assert!(!racy(&coarse, at(s + 2, 1)));
    }

    /// An old, unchanged stat is trusted across builds (the file is not
    /// read); any change of the stat makes it read again.
    #[test]
    fn settled_entry_is_reused_until_its_stat_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let at = dir.path().join("index.bin");
        let stat = stat_with_ctime(now_secs() - 3600);
        fs::write(&file, b"aaaa").unwrap();
        let idx = StatIndex::open_at(at.clone());
        assert_eq!(idx.hash_stat(b"f", &file, &stat).unwrap(), sha_of(b"aaaa"));
        idx.save();
        fs::write(&file, b"bbbb").unwrap();
        let again = StatIndex::open_at(at.clone());
        // Same stat: the recorded digest, proving the index was used.
        assert_eq!(
            again.hash_stat(b"f", &file, &stat).unwrap(),
            sha_of(b"aaaa")
        );
        for changed in [
            FileStat { size: 5, ..stat },
            FileStat {
                mtime_ns: 1,
                ..stat
            },
            FileStat {
                ctime: stat.ctime + 1,
                ..stat
            },
            FileStat { ino: 43, ..stat },
            FileStat {
                mode: 0o100755,
                ..stat
            },
        ] {
            let fresh = StatIndex::open_at(at.clone());
            assert_eq!(
                fresh.hash_stat(b"f", &file, &changed).unwrap(),
                sha_of(b"bbbb")
            );
        }
    }

    #[test]
    fn damaged_index_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        let at = dir.path().join("index.bin");
        fs::write(&file, b"aaaa").unwrap();
        let stat = stat_with_ctime(now_secs() - 3600);
        let idx = StatIndex::open_at(at.clone());
        idx.hash_stat(b"f", &file, &stat).unwrap();
        idx.save();
        let data = fs::read(&at).unwrap();
        assert!(StatIndex::decode(&data).is_some_and(|m| m.len() == 1));
        fs::write(&at, &data[..data.len() - 1]).unwrap();
        fs::write(&file, b"bbbb").unwrap();
        let again = StatIndex::open_at(at.clone());
        assert_eq!(
            again.hash_stat(b"f", &file, &stat).unwrap(),
            sha_of(b"bbbb")
        );
        // A well-formed index whose bytes changed (a torn write of a file
        // saved without fsync, a flipped bit in a recorded digest): the
        // checksum fails and the file is read again, not the digest trusted.
        let mut flipped = data.clone();
        let sha_at = MAGIC.len() + FIXED - 32;
        flipped[sha_at] ^= 1;
        assert!(StatIndex::decode(&flipped).is_none());
        fs::write(&at, &flipped).unwrap();
        fs::write(&file, b"cccc").unwrap();
        let again = StatIndex::open_at(at.clone());
        assert_eq!(
            again.hash_stat(b"f", &file, &stat).unwrap(),
            sha_of(b"cccc")
        );
        // Zeroes where the data was (what a crash can leave of an unsynced
        // file): refused too.
        fs::write(&at, vec![0u8; data.len()]).unwrap();
        assert_eq!(StatIndex::open_at(at).inner().len(), 0);
    }

    /// Names are bytes: two names that only a display form would merge
    /// (an invalid byte and its escaped spelling) keep their own digests.
    #[test]
    fn names_are_raw_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"aaaa").unwrap();
        fs::write(&b, b"bbbb").unwrap();
        let stat = stat_with_ctime(now_secs() - 3600);
        let at = dir.path().join("index.bin");
        let idx = StatIndex::open_at(at.clone());
        idx.hash_stat(b"n\\xff", &a, &stat).unwrap();
        idx.hash_stat(b"n\xff", &b, &stat).unwrap();
        idx.save();
        let again = StatIndex::open_at(at);
        assert_eq!(
            again.hash_stat(b"n\\xff", &a, &stat).unwrap(),
            sha_of(b"aaaa")
        );
        assert_eq!(
            again.hash_stat(b"n\xff", &b, &stat).unwrap(),
            sha_of(b"bbbb")
        );
    }

    /// Entries are kept in walk order: lookups in that order, out of it,
    /// of new names and of changed stats all find the right digest, in
    /// this build and the next; an index whose entries are out of order
    /// is refused.
    #[test]
    fn sorted_entries_found_in_any_order_and_merged_on_save() {
        let dir = tempfile::tempdir().unwrap();
        let at = dir.path().join("index.bin");
        let stat = stat_with_ctime(now_secs() - 3600);
        let names: Vec<String> = ["a", "b/x", "b/x/deep", "b/y", "b-c", "c/z"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let file_of = |n: &str| dir.path().join(n.replace('/', "_"));
        for n in &names {
            fs::write(file_of(n), n.as_bytes()).unwrap();
        }
        let idx = StatIndex::open_at(at.clone());
        // Recorded out of walk order.
        for n in names.iter().rev() {
            idx.hash_stat(n.as_bytes(), &file_of(n), &stat).unwrap();
        }
        idx.save();
        let data = fs::read(&at).unwrap();
        let starts = StatIndex::decode(&data).unwrap();
        assert_eq!(starts.len(), names.len());
        // The files change; the index still answers for the old stats.
        for n in &names {
            fs::write(file_of(n), b"changed").unwrap();
        }
        let again = StatIndex::open_at(at.clone());
        for order in [vec![0, 1, 2, 3, 4, 5], vec![5, 3, 0, 4, 1, 2]] {
            for i in order {
                let n = &names[i];
                assert_eq!(
                    again.hash_stat(n.as_bytes(), &file_of(n), &stat).unwrap(),
                    sha_of(n.as_bytes()),
                    "{n}"
                );
            }
        }
        // A new name between the others, and a new stat of an old one.
        fs::write(file_of("b/x/e"), b"new").unwrap();
        let newer = FileStat { size: 7, ..stat };
        assert_eq!(
            again.hash_stat(b"b/x/e", &file_of("b/x/e"), &stat).unwrap(),
            sha_of(b"new")
        );
        assert_eq!(
            again.hash_stat(b"b/y", &file_of("b/y"), &newer).unwrap(),
            sha_of(b"changed")
        );
        again.save();
        let third = StatIndex::open_at(at.clone());
        assert_eq!(third.inner().len(), names.len() + 1);
        assert_eq!(
            third.hash_stat(b"b/x/e", &file_of("b/x/e"), &stat).unwrap(),
            sha_of(b"new")
        );
        assert_eq!(
            third.hash_stat(b"b/y", &file_of("b/y"), &newer).unwrap(),
            sha_of(b"changed")
        );
        assert_eq!(
            third.hash_stat(b"a", &file_of("a"), &stat).unwrap(),
            sha_of(b"a")
        );
        // Two entries swapped: refused (the lookups rely on the order).
        let data = fs::read(&at).unwrap();
        let starts = StatIndex::decode(&data).unwrap();
        let (s0, s1, s2) = (starts[0], starts[1], starts[2]);
        let mut swapped = data[..s0].to_vec();
        swapped.extend_from_slice(&data[s1..s2]);
        swapped.extend_from_slice(&data[s0..s1]);
        swapped.extend_from_slice(&data[s2..data.len() - CHECKSUM]);
        let crc = crc32fast::hash(&swapped);
        swapped.extend_from_slice(&crc.to_le_bytes());
        assert!(StatIndex::decode(&swapped).is_none());
    }
}
