//! The build cache: a record per step key, and a stat index of the context
//! so unchanged files are not re-read to compute COPY keys.
//!
//! Records are the store's build roots ([`image_store::build_roots`]): the
//! garbage collector keeps a cached layer as long as its record names it.
//! Steps may also hit in caches imported from a registry (`remote`), whose
//! layers are fetched only when needed; `export` writes one.

pub mod export;
pub mod inline;
pub mod remote;
pub mod uploader;

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use image_store::build_roots::{replace_unsynced, BuildRoots};
use image_store::cache_dirs::BuildHints;
use image_store::{Descriptor, Digest, Store};
use sha2::{Digest as _, Sha256};

use crate::error::BuildError;

/// What a step produced.
pub use image_store::build_roots::StepRecord as Record;

/// Builds a step key from its parts.
#[derive(Clone)]
pub struct KeyHasher(Sha256);

impl KeyHasher {
    pub fn new(parent: &str) -> Self {
        let mut h = Sha256::new();
        h.update(b"kiln-cache-v1\0");
        h.update(parent.as_bytes());
        h.update(b"\0");
        KeyHasher(h)
    }
    pub fn part(&mut self, label: &str, data: &[u8]) -> &mut Self {
        self.0.update(label.as_bytes());
        self.0.update((data.len() as u64).to_le_bytes());
        self.0.update(data);
        self
    }
    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

pub struct Cache {
    roots: BuildRoots,
    probes: PathBuf,
    enabled: bool,
    /// Caches read for `--cache-from`.
    pub imported: remote::Imported,
    /// Every step this build looked up, in order (for `--cache-to`).
    used: Mutex<Vec<Used>>,
    /// `COPY --from` aliases of this build: (instruction + source key) →
    /// the step's content key.
    aliases: Mutex<Vec<(String, String)>>,
    /// Per `--cache-to`: layers sent while the build runs (`mode=max`).
    pub uploaders: Vec<Option<uploader::Uploader>>,
}

/// A step of this build: its key, its parent's and what it made.
#[derive(Debug, Clone)]
pub struct Used {
    pub key: String,
    pub parent: String,
    pub rec: Record,
    /// The record came from an imported cache (no local record yet).
    pub imported: bool,
}

impl Cache {
    pub fn new(store: &Store, enabled: bool) -> Cache {
        Cache {
            roots: store.build_roots(),
            probes: store.build_hints_dir(BuildHints::Probes),
            enabled,
            imported: Default::default(),
            used: Mutex::new(Vec::new()),
            aliases: Mutex::new(Vec::new()),
            uploaders: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Notes a step of this build.
    pub fn note(&self, used: Used) {
        if let (false, Some(l)) = (used.imported, &used.rec.layer) {
            for u in self.uploaders.iter().flatten() {
                u.send(&l.digest);
            }
        }
        self.used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(used);
    }

    /// Notes that `COPY --from` alias `alias` led to step `key`.
    pub fn note_alias(&self, alias: &str, key: &str) {
        self.aliases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((alias.to_string(), key.to_string()));
    }

    /// The aliases of this build so far.
    pub fn aliases(&self) -> Vec<(String, String)> {
        self.aliases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The step an imported cache says alias `alias` leads to.
    pub fn alias(&self, alias: &str) -> Option<String> {
        if !self.enabled {
            return None;
        }
        self.imported.alias(alias).map(str::to_string)
    }

    /// The steps of this build so far.
    pub fn used(&self) -> Vec<Used> {
        self.used.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// A step found only in an imported cache: its record, whose layer
    /// may not be in the store yet ([`Cache::ensure`] fetches it).
    pub fn get_imported(&self, key: &str) -> Option<Record> {
        if !self.enabled {
            return None;
        }
        let e = self.imported.entry(key)?;
        Some(Record {
            created: e.created.clone(),
            layer: e.layer.as_ref().map(|l| l.local()),
        })
    }

    /// Fetches the layers among `layers` the store lacks from the
    /// imported caches (a step is about to read them, or the image
    /// needs them).
    pub fn ensure(&self, store: &Store, layers: &[Descriptor]) -> Result<(), BuildError> {
        for l in layers {
            if !store.has_blob(&l.digest) {
                self.imported.fetch(store, &l.digest)?;
            }
        }
        Ok(())
    }

    /// Writes local records for imported steps whose layers are now in
    /// the store, so the next build here hits without the registry.
    pub fn keep_fetched(&self, store: &Store) {
        for u in self.used() {
            let here = u
                .rec
                .layer
                .as_ref()
                .is_none_or(|l| store.has_blob(&l.digest));
            if u.imported && here {
                let _ = self.put(&u.key, &u.rec);
            }
        }
    }

    /// Where the records are (for error messages).
    pub fn dir(&self) -> &Path {
        self.roots.dir()
    }

    /// A usable record: its layer blob must still be in the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<Record> {
        if !self.enabled {
            return None;
        }
        let rec = self.roots.get(key)?;
        match &rec.layer {
            Some(l) if !store.has_blob(&l.digest) => None,
            _ => Some(rec),
        }
    }

    /// Records a step (also with `--no-cache`, so the next build can hit).
    pub fn put(&self, key: &str, rec: &Record) -> std::io::Result<()> {
        self.roots.put(key, rec)
    }
}

impl Cache {
    fn probe_path(&self, probe: &str) -> PathBuf {
        self.probes.join(format!("{}.json", &probe[..32]))
    }

    /// The inputs a step with this parent and text read last time.
    pub fn probe(&self, probe: &str) -> Option<Vec<(String, String)>> {
        let data = fs::read(self.probe_path(probe)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Best effort: a lost probe only makes a miss less well explained.
    pub fn put_probe(&self, probe: &str, inputs: &[(String, String)]) {
        let p = self.probe_path(probe);
        if let Some(d) = p.parent() {
            let _ = fs::create_dir_all(d);
        }
        if let Ok(data) = serde_json::to_vec(inputs) {
            let _ = replace_unsynced(&p, &data);
        }
    }
}

impl Cache {
    fn content_alias_path(&self, alias: &str) -> PathBuf {
        self.probes.join(format!("{}.from", &alias[..32]))
    }

    /// The key a `COPY --from` step got last time with the same key parts
    /// before its sources (parent, instruction) and the same source
    /// layers: the same files, so the same key, found without mounting
    /// the source and hashing what it copies (a warm build's second stage
    /// read 1,900 files for it).
    pub fn content_alias(&self, alias: &str) -> Option<String> {
        let data = fs::read_to_string(self.content_alias_path(alias)).ok()?;
        let (full, key) = data.trim().split_once(' ')?;
        (full == alias && key.len() == 64 && key.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| key.to_string())
    }

    /// Best effort, as the probe: a lost or torn alias only costs hashing
    /// the sources again (the full alias is kept, so a torn one misses).
    pub fn put_content_alias(&self, alias: &str, key: &str) {
        let p = self.content_alias_path(alias);
        if let Some(d) = p.parent() {
            let _ = fs::create_dir_all(d);
        }
        let _ = replace_unsynced(&p, format!("{alias} {key}\n").as_bytes());
    }
}

impl Cache {
    fn previous_layer_path(&self, probe: &str) -> PathBuf {
        self.probes.join(format!("{}.layer", &probe[..32]))
    }

    /// The layer a step with this parent and text made last time: an
    /// edit's new layer is unpacked by linking the unchanged files from it.
    pub fn previous_layer(&self, probe: &str) -> Option<Digest> {
        let data = fs::read(self.previous_layer_path(probe)).ok()?;
        Digest::from_hex(std::str::from_utf8(&data).ok()?.trim()).ok()
    }

    /// Best effort, as the probe: a lost hint only means writing every
    /// file of the next edit's layer.
    pub fn put_previous_layer(&self, probe: &str, layer: &Digest) {
        let p = self.previous_layer_path(probe);
        if let Some(d) = p.parent() {
            let _ = fs::create_dir_all(d);
        }
        let _ = replace_unsynced(&p, layer.hex().as_bytes());
    }
}

/// What `builder prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    /// Step records deleted.
    pub records: usize,
    /// Cache mounts deleted (only with `all`).
    pub mounts: usize,
    /// Bytes of blobs freed (layers only the cache kept).
    pub freed: u64,
}

/// Which records `builder prune` removes: all of them, or those of steps
/// first run before `until`, and/or the oldest until the layers the rest
/// pin fit in `keep_storage` bytes.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also empty the `RUN --mount=type=cache` mounts.
    pub all: bool,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    pub keep_storage: Option<u64>,
}

/// Forgets the build cache: every step record (so their layers go unless an
/// image uses them), the miss explanations and the context stat indexes;
/// with `until`/`keep_storage`, only the records they select (oldest
/// first) and nothing else. With `all`, also the contents of
/// `RUN --mount=type=cache` mounts. Runs under the store's collector lock,
/// so no build is mid-way.
pub fn prune(store: &Store, opts: &PruneOptions) -> Result<Pruned, crate::error::BuildError> {
    let _gc = store.collector_lock()?;
    let roots = store.build_roots();
    let mut out = Pruned::default();
    if opts.until.is_none() && opts.keep_storage.is_none() {
        out.records = roots.remove_all()?;
        store.remove_build_hints()?;
    } else {
        for key in selected(roots.records(), opts) {
            roots.remove(&key)?;
            out.records += 1;
        }
    }
    if opts.all {
        out.mounts = store.remove_cache_mounts()?;
    }
    out.freed = store.collect_garbage_locked()?;
    Ok(out)
}

/// The keys of the records `opts` selects: those older than `until`, then
/// the oldest of the rest while the layers they pin (each counted once)
/// exceed `keep_storage`.
fn selected(
    mut recs: Vec<image_store::build_roots::RecordFile>,
    opts: &PruneOptions,
) -> Vec<String> {
    let time = |r: &image_store::build_roots::RecordFile| {
        chrono::DateTime::parse_from_rfc3339(&r.record.created)
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok()
    };
    // One build's steps share its time: the order their records were
    // written in breaks the tie.
    let written = |r: &image_store::build_roots::RecordFile| {
        fs::metadata(&r.path).and_then(|m| m.modified()).ok()
    };
    recs.sort_by_key(|r| (time(r), written(r)));
    let (mut doomed, mut kept): (Vec<_>, Vec<_>) = recs
        .into_iter()
        .partition(|r| opts.until.is_some_and(|u| time(r).is_none_or(|t| t < u)));
    if let Some(keep) = opts.keep_storage {
        let mut pins: std::collections::HashMap<Digest, (u64, usize)> = Default::default();
        for r in &kept {
            if let Some(l) = &r.record.layer {
                pins.entry(l.digest.clone()).or_insert((l.size, 0)).1 += 1;
            }
        }
        let mut total: u64 = pins.values().map(|(s, _)| s).sum();
        let mut rest = kept.into_iter();
        kept = Vec::new();
        for r in rest.by_ref() {
            if total <= keep {
                kept.push(r);
                break;
            }
            if let Some(l) = &r.record.layer {
                let e = pins.get_mut(&l.digest).expect("counted above");
                e.1 -= 1;
                if e.1 == 0 {
                    total -= e.0;
                }
            }
            doomed.push(r);
        }
        kept.extend(rest);
    }
    doomed.into_iter().map(|r| r.key).collect()
}

/// docker's `--keep-storage` sizes (go-units' RAMInBytes): a number with
/// an optional b, k, m, g, t or p unit (kb/kib and so on alike), in
/// powers of 1024.
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// The first input that differs between two runs of a step, in words.
pub fn changed_input(old: &[(String, String)], new: &[(String, String)]) -> Option<String> {
    let before: HashMap<&str, &str> = old.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let after: HashMap<&str, &str> = new.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (k, v) in new {
        match before.get(k.as_str()) {
            None => return Some(format!("{k} is new")),
            Some(o) if o != v => return Some(format!("{k} changed")),
            _ => {}
        }
    }
    old.iter()
        .find(|(k, _)| !after.contains_key(k.as_str()))
        .map(|(k, _)| format!("{k} is gone"))
}

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
/// The index is one binary file (see [`StatIndex::encode`]), read whole at
/// start and written back only when an entry changed. It ends in a CRC-32
/// of what precedes it, so it is written without an fsync: a file cut or
/// torn by a crash fails the check and is rebuilt (every file hashed
/// again), and the rename leaves either the old or the new index in place.
/// Paths are the context's names as bytes, not a display form.
///
/// Stages share one index from several threads: the lock is held only to
/// look up or record an entry, never while a file is hashed.
#[derive(Default)]
pub struct StatIndex {
    entries: Mutex<HashMap<Box<[u8]>, StatEntry>>,
    dirty: AtomicBool,
    path: Option<PathBuf>,
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

#[derive(Clone, Copy, PartialEq, Eq)]
struct StatEntry {
    stat: FileStat,
    /// The ctime was too close to the hashing time to trust the stat.
    racy: bool,
    sha: [u8; 32],
}

/// How much younger than the moment of hashing a ctime must be for the
/// entry to be trusted: file timestamps come from a coarse clock (a jiffy
/// behind the real time on Linux, whole seconds or two on some
/// filesystems), so a same-tick change can carry a ctime slightly older
/// than the fine clock read before hashing.
const RACY_MARGIN_SECS: i64 = 2;

const MAGIC: &[u8; 16] = b"kiln-statidx-v3\n";
/// The CRC-32 after the entries.
const CHECKSUM: usize = 4;
/// Path length, then size, mtime (s, ns), ctime (s, ns), ino, mode, racy, sha.
const FIXED: usize = 4 + 8 + 8 + 8 + 8 + 8 + 8 + 4 + 1 + 32;

impl StatIndex {
    /// The index for one context directory.
    pub fn open(store: &Store, context: &Path) -> StatIndex {
        let id = hex::encode(Sha256::digest(context.as_os_str().as_encoded_bytes()));
        let dir = store.build_hints_dir(BuildHints::StatIndex);
        // The JSON and v2 indexes of earlier versions are no longer read.
        let _ = fs::remove_file(dir.join(format!("{}.json", &id[..32])));
        let _ = fs::remove_file(dir.join(format!("{}.bin", &id[..32])));
        StatIndex::open_at(dir.join(format!("{}.v3", &id[..32])))
    }

    /// The index kept in the file `path` (empty if absent or unreadable).
    pub fn open_at(path: PathBuf) -> StatIndex {
        let entries = fs::read(&path)
            .ok()
            .and_then(|d| Self::decode(&d))
            .unwrap_or_default();
        StatIndex {
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
            path: Some(path),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, StatEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
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
        let old = self.entries().get(rel).copied();
        if let Some(e) = old {
            if !e.racy && e.stat == *stat {
                return Ok(e.sha);
            }
        }
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(i64::MAX, |d| d.as_secs() as i64);
        let sha = hash_file_raw(abs)?;
        let entry = StatEntry {
            stat: *stat,
            racy: stat.ctime.saturating_add(RACY_MARGIN_SECS) >= started,
            sha,
        };
        if old != Some(entry) {
            self.entries().insert(rel.into(), entry);
            self.dirty.store(true, Ordering::Relaxed);
        }
        Ok(sha)
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
            let data = Self::encode(&self.entries());
            let _ = replace_unsynced(p, &data);
        }
    }

    /// `MAGIC`, then per entry: path length (u32), the fixed fields (all
    /// little-endian), then the path bytes; last the CRC-32 of all that.
    fn encode(entries: &HashMap<Box<[u8]>, StatEntry>) -> Vec<u8> {
        let bytes: usize = entries.keys().map(|k| FIXED + k.len()).sum();
        let mut out = Vec::with_capacity(MAGIC.len() + bytes + CHECKSUM);
        out.extend_from_slice(MAGIC);
        for (path, e) in entries {
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
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// `None` for anything but a well-formed index whose checksum holds.
    fn decode(data: &[u8]) -> Option<HashMap<Box<[u8]>, StatEntry>> {
        let (body, crc) = data.split_at_checked(data.len().checked_sub(CHECKSUM)?)?;
        if crc32fast::hash(body).to_le_bytes() != crc {
            return None;
        }
        let mut rest = body.strip_prefix(MAGIC.as_slice())?;
        let mut out = HashMap::with_capacity(rest.len() / (FIXED + 16));
        while !rest.is_empty() {
            if rest.len() < FIXED {
                return None;
            }
            let (fixed, tail) = rest.split_at(FIXED);
            let mut at = 0;
            let mut take = |n: usize| {
                let s = &fixed[at..at + n];
                at += n;
                s
            };
            let u32_ = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("4 bytes"));
            let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().expect("8 bytes"));
            let len = u32_(take(4)) as usize;
            let stat = FileStat {
                size: u64_(take(8)),
                mtime: u64_(take(8)) as i64,
                mtime_ns: u64_(take(8)) as i64,
                ctime: u64_(take(8)) as i64,
                ctime_ns: u64_(take(8)) as i64,
                ino: u64_(take(8)),
                mode: u32_(take(4)),
            };
            let racy = match take(1)[0] {
                0 => false,
                1 => true,
                _ => return None,
            };
            let sha: [u8; 32] = take(32).try_into().expect("32 bytes");
            if tail.len() < len {
                return None;
            }
            let (path, tail) = tail.split_at(len);
            out.insert(path.into(), StatEntry { stat, racy, sha });
            rest = tail;
        }
        Some(out)
    }
}

/// The hex sha256 of a file the stat index does not cover (a followed link).
pub fn hash_file(p: &Path) -> std::io::Result<String> {
    hash_file_raw(p).map(hex::encode)
}

fn hash_file_raw(p: &Path) -> std::io::Result<[u8; 32]> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// The image ID as a parent key.
pub fn image_key(id: &Digest) -> String {
    id.to_string()
}

impl KeyHasher {
    /// Finishes a copy-free one-shot key (for short ids).
    pub fn clone_finish(&mut self) -> String {
        hex::encode(self.0.clone().finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(StatIndex::open_at(at).entries().is_empty());
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
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    #[test]
    fn sizes_as_go_units_ram_in_bytes() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("10kB"), Some(10240));
        assert_eq!(parse_size("1.5m"), Some(1_572_864));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("5x"), None);
    }
}
