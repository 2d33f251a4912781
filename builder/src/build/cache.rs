//! The build cache: a record per step key, and a stat index of the context
//! so unchanged files are not re-read to compute COPY keys.
//!
//! Records live in `ROOT/kiln/roots/` (one file per key), which is also
//! where the store's garbage collector finds the blobs it must keep: a
//! cached layer stays as long as its record does.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use image_store::{Descriptor, Digest, Store};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// When the step first ran: reused on hits so a cached build gives the
    /// same image ID.
    pub created: String,
    #[serde(default)]
    pub layer: Option<Descriptor>,
}

/// Builds a step key from its parts.
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
    dir: PathBuf,
    enabled: bool,
}

impl Cache {
    pub fn new(store: &Store, enabled: bool) -> Cache {
        Cache {
            dir: store.kiln_dir().join("roots"),
            enabled,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("cache-{key}.json"))
    }

    /// A usable record: its layer blob must still be in the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<Record> {
        if !self.enabled {
            return None;
        }
        let data = fs::read(self.path(key)).ok()?;
        let rec: Record = serde_json::from_slice(&data).ok()?;
        match &rec.layer {
            Some(l) if !store.has_blob(&l.digest) => None,
            _ => Some(rec),
        }
    }

    /// Records a step (also with `--no-cache`, so the next build can hit).
    /// A record that names a layer is written durably (it keeps the blob
    /// alive); one without (a metadata step) only atomically: losing it in
    /// a crash costs a cache miss, and an fsync per ENV line made a long
    /// Dockerfile take minutes.
    pub fn put(&self, key: &str, rec: &Record) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let data = serde_json::to_vec(rec).expect("plain data serializes");
        if rec.layer.is_some() {
            image_store::write_atomic(&self.path(key), &data)
        } else {
            replace_file(&self.path(key), &data)
        }
    }
}

impl Cache {
    fn probe_path(&self, probe: &str) -> PathBuf {
        self.dir
            .parent()
            .unwrap_or(&self.dir)
            .join("cache-probes")
            .join(format!("{}.json", &probe[..32]))
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
            let _ = replace_file(&p, &data);
        }
    }
}

/// Writes `data` to `path` through a temp file and a rename (readers see
/// the old or the new content, never a part), without syncing: for records
/// whose loss is harmless. The temp name is the store's `.tmp-` form, so
/// one left by a crash is swept like the others.
fn replace_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".tmp-{}-{}-cache",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    // The name is this process's own: one left by a dead process with the
    // same pid may be overwritten.
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(data)
        .and_then(|_| fs::rename(&tmp, path))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
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

/// Forgets the build cache: every step record (so their layers go unless an
/// image uses them), the miss explanations and the context stat indexes;
/// with `all`, also the contents of `RUN --mount=type=cache` mounts.
/// Runs under the store's collector lock, so no build is mid-way.
pub fn prune(store: &Store, all: bool) -> Result<Pruned, crate::build::BuildError> {
    use crate::build::BuildError;
    let _gc = store.collector_lock()?;
    let kiln = store.kiln_dir();
    let mut out = Pruned::default();
    let roots = kiln.join("roots");
    if let Ok(entries) = fs::read_dir(&roots) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("cache-") && name.ends_with(".json") {
                fs::remove_file(e.path()).map_err(|err| BuildError::Io(e.path(), err))?;
                out.records += 1;
            }
        }
    }
    let mut dirs = vec![kiln.join("cache-probes"), kiln.join("stat-index")];
    let mounts = kiln.join("cache-mounts");
    if all {
        out.mounts = fs::read_dir(&mounts).map(|d| d.count()).unwrap_or(0);
        dirs.push(mounts);
    }
    for d in dirs {
        match fs::remove_dir_all(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BuildError::Io(d, e)),
        }
    }
    out.freed = store.collect_garbage_locked()?;
    Ok(out)
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
/// Stages share one index from several threads: the lock is held only to
/// look up or record an entry, never while a file is hashed.
#[derive(Default)]
pub struct StatIndex {
    entries: Mutex<HashMap<String, StatEntry>>,
    dirty: AtomicBool,
    path: Option<PathBuf>,
}

#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
struct StatEntry {
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    ino: u64,
    mode: u32,
    sha: String,
}

impl StatIndex {
    /// The index for one context directory.
    pub fn open(store: &Store, context: &Path) -> StatIndex {
        let id = hex::encode(Sha256::digest(context.as_os_str().as_encoded_bytes()));
        let path = store
            .kiln_dir()
            .join("stat-index")
            .join(format!("{}.json", &id[..32]));
        let entries: HashMap<String, StatEntry> = fs::read(&path)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .unwrap_or_default();
        StatIndex {
            entries: Mutex::new(entries),
            dirty: AtomicBool::new(false),
            path: Some(path),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, StatEntry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// sha256 of the file at `abs` (named `rel` in the context).
    pub fn hash(&self, rel: &str, abs: &Path, md: &fs::Metadata) -> std::io::Result<String> {
        let now = StatEntry {
            size: md.len(),
            mtime: md.mtime(),
            mtime_ns: md.mtime_nsec(),
            ctime: md.ctime(),
            ctime_ns: md.ctime_nsec(),
            ino: md.ino(),
            mode: md.mode(),
            sha: String::new(),
        };
        if let Some(e) = self.entries().get(rel) {
            let same = StatEntry {
                sha: String::new(),
                ..e.clone()
            } == now;
            if same {
                return Ok(e.sha.clone());
            }
        }
        let sha = hash_file(abs)?;
        self.entries().insert(
            rel.to_string(),
            StatEntry {
                sha: sha.clone(),
                ..now
            },
        );
        self.dirty.store(true, Ordering::Relaxed);
        Ok(sha)
    }

    pub fn save(&self) {
        if !self.dirty.load(Ordering::Relaxed) {
            return;
        }
        if let Some(p) = &self.path {
            if let Some(d) = p.parent() {
                let _ = fs::create_dir_all(d);
            }
            if let Ok(data) = serde_json::to_vec(&*self.entries()) {
                let _ = image_store::write_atomic(p, &data);
            }
        }
    }
}

pub fn hash_file(p: &Path) -> std::io::Result<String> {
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
    Ok(hex::encode(h.finalize()))
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
