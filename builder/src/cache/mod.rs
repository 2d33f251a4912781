//! The build cache: a record per step key, and a stat index of the context
//! so unchanged files are not re-read to compute COPY keys.
//!
//! Records are the store's build roots ([`image_store::build_roots`]): the
//! garbage collector keeps a cached layer as long as its record names it.
//! Steps may also hit in caches imported from a registry (`remote`), whose
//! layers are fetched only when needed; `export` writes one.

pub mod commits;
pub mod export;
pub mod inline;
pub mod remote;
pub mod stat_index;
pub mod uploader;

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use image_store::build_roots::BuildRoots;
use image_store::cache_dirs::BuildHints;
use image_store::{Descriptor, Digest, Store};
use sha2::{Digest as _, Sha256};

use crate::error::BuildError;

/// What a step produced.
pub use image_store::build_roots::StepRecord as Record;
pub use stat_index::{hash_file, FileStat, StatIndex};

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
    /// RUN layers and their records being made durable.
    pub commits: commits::Commits,
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
            commits: commits::Commits::new(store.build_roots()),
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
    /// needs them). Layers this build made whose blobs are still being
    /// committed count as there (their unpacked copies are).
    pub fn ensure(&self, store: &Store, layers: &[Descriptor]) -> Result<(), BuildError> {
        self.commits.check()?;
        for l in layers {
            if !store.has_blob(&l.digest) && !self.commits.is_pending(&l.digest) {
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

    /// Records a step (also with `--no-cache`, so the next build can hit):
    /// now, or once its layer's blob is durable ([`commits`]).
    pub fn put(&self, key: &str, rec: &Record) -> std::io::Result<()> {
        if self.commits.record(key, rec) {
            return Ok(());
        }
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
    /// Written off the step's path ([`commits::Commits::hint`]).
    pub fn put_probe(&self, probe: &str, inputs: &[(String, String)]) {
        if let Ok(data) = serde_json::to_vec(inputs) {
            self.commits.hint(self.probe_path(probe), data);
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
        let data = format!("{alias} {key}\n").into_bytes();
        self.commits.hint(self.content_alias_path(alias), data);
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
        let data = layer.hex().as_bytes().to_vec();
        self.commits.hint(self.previous_layer_path(probe), data);
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
