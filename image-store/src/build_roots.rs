//! Roots: the files under `kiln/roots/` that keep blobs alive without an
//! image naming them. Each kind has its own typed format, and garbage
//! collection parses them ([`Store::pinned_by_roots`]) rather than
//! searching their text for digests:
//! - `cache-<key>.json`: a build step's record ([`StepRecord`]), written and
//!   read through the [`BuildRoots`] handle; it pins the step's layer;
//! - `compressed-<diffid hex>`: the compressed forms of a layer, one digest
//!   a line (written by `compressed.rs`).
//!
//! Temp files (`.tmp-…`) are not roots: the collector runs under the
//! collector lock, so no writer is half-way through one, and a temp left
//! by a killed writer is garbage. A record that does not parse pins
//! nothing (`system check` reports it): a record naming a layer is written
//! durably, so a crash never leaves it half-written.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::model::Descriptor;
use crate::store::Store;

const STEP_PREFIX: &str = "cache-";
const STEP_SUFFIX: &str = ".json";

/// What a cached build step produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// When the step first ran: reused on hits so a cached build gives the
    /// same image ID.
    pub created: String,
    /// The step's layer (none for a step that only changes the config).
    #[serde(default)]
    pub layer: Option<Descriptor>,
}

impl StepRecord {
    /// The blobs this record keeps alive.
    pub fn pinned(&self) -> impl Iterator<Item = &Digest> {
        self.layer.iter().map(|l| &l.digest)
    }
}

/// A step record and where it is.
#[derive(Debug, Clone)]
pub struct RecordFile {
    pub key: String,
    pub path: PathBuf,
    pub record: StepRecord,
}

/// The build cache's step records: one file per step key.
#[derive(Debug, Clone)]
pub struct BuildRoots {
    dir: PathBuf,
}

impl Store {
    /// The handle through which builds record their steps.
    pub fn build_roots(&self) -> BuildRoots {
        BuildRoots {
            dir: self.kiln_dir().join("roots"),
        }
    }

    /// Every blob a root keeps alive, read from the roots' own formats.
    /// `live`: what images keep alive. A compressed form pins its blobs
    /// only while its uncompressed layer lives (an image's, or a step
    /// record's): once that is collected, so are they. Pinning them for
    /// good kept every pushed layer's gzip copy after `system prune -a`.
    pub(crate) fn pinned_by_roots(
        &self,
        live: &std::collections::BTreeSet<Digest>,
    ) -> Result<Vec<Digest>> {
        let dir = self.build_roots().dir;
        let mut out = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(StoreError::io(&dir)(e)),
        };
        let mut compressed = Vec::new();
        for e in entries {
            let e = e.map_err(StoreError::io(&dir))?;
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with(STEP_PREFIX) && name.ends_with(STEP_SUFFIX) {
                let p = e.path();
                let data = fs::read(&p).map_err(StoreError::io(&p))?;
                if let Ok(rec) = serde_json::from_slice::<StepRecord>(&data) {
                    out.extend(rec.pinned().cloned());
                }
            } else if let Some(hex) = name.strip_prefix(crate::compressed::ROOT_PREFIX) {
                let Ok(diff_id) = Digest::from_hex(hex) else {
                    continue;
                };
                compressed.push((diff_id, e.path()));
            }
        }
        let records: std::collections::BTreeSet<Digest> = out.iter().cloned().collect();
        for (diff_id, p) in compressed {
            if !live.contains(&diff_id) && !records.contains(&diff_id) {
                continue;
            }
            let text = fs::read_to_string(&p).map_err(StoreError::io(&p))?;
            out.extend(text.lines().filter_map(|l| l.trim().parse::<Digest>().ok()));
        }
        Ok(out)
    }
}

impl BuildRoots {
    /// The directory the records live in (for error messages).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of step `key` (a hex hash; anything else names no file).
    fn path(&self, key: &str) -> Option<PathBuf> {
        let hex = !key.is_empty() && key.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| self.dir.join(format!("{STEP_PREFIX}{key}{STEP_SUFFIX}")))
    }

    /// The record of step `key`, if there is one that parses.
    pub fn get(&self, key: &str) -> Option<StepRecord> {
        let data = fs::read(self.path(key)?).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Records step `key`. A record that pins a layer is written durably
    /// (it keeps the blob alive); one without (a metadata step) only
    /// atomically: losing it in a crash costs a cache miss, and an fsync
    /// per ENV line made a long Dockerfile take minutes.
    pub fn put(&self, key: &str, rec: &StepRecord) -> io::Result<()> {
        let path = self.path(key).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid step key {key:?}"),
            )
        })?;
        fs::create_dir_all(&self.dir)?;
        let data = serde_json::to_vec(rec).expect("plain data serializes");
        if rec.layer.is_some() {
            fsutil::write_atomic(&path, &data)
        } else {
            replace_unsynced(&path, &data)
        }
    }

    /// Records several steps durably, as [`BuildRoots::put`] records one
    /// that pins a layer, with one sync of the directory for all of them.
    /// The caller made their layers' blobs durable first.
    pub fn put_durable(&self, recs: &[(String, StepRecord)]) -> io::Result<()> {
        if recs.is_empty() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)?;
        for (key, rec) in recs {
            let path = self.path(key).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("invalid step key {key:?}"),
                )
            })?;
            let data = serde_json::to_vec(rec).expect("plain data serializes");
            let (tmp, mut file) = fsutil::tempfile_in(&self.dir)?;
            file.write_all(&data)
                .and_then(|()| file.sync_all())
                .and_then(|()| fs::rename(&tmp, &path))
                .inspect_err(|_| {
                    let _ = fs::remove_file(&tmp);
                })?;
        }
        fsutil::sync_dir(&self.dir)
    }

    /// Every step record that parses, with its file.
    pub fn records(&self) -> Vec<RecordFile> {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Some(key) = name
                .strip_prefix(STEP_PREFIX)
                .and_then(|n| n.strip_suffix(STEP_SUFFIX))
            else {
                continue;
            };
            if let Some(record) = self.get(key) {
                out.push(RecordFile {
                    key: key.to_string(),
                    path: e.path(),
                    record,
                });
            }
        }
        out
    }

    /// Deletes the record of step `key`. The caller holds the collector
    /// lock.
    pub fn remove(&self, key: &str) -> Result<()> {
        let Some(p) = self.path(key) else {
            return Ok(());
        };
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(&p)(e)),
            _ => Ok(()),
        }
    }

    /// Deletes every step record; returns how many went. The caller holds
    /// the collector lock.
    pub fn remove_all(&self) -> Result<usize> {
        let mut n = 0;
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STEP_PREFIX) && name.ends_with(STEP_SUFFIX) {
                let p = e.path();
                fs::remove_file(&p).map_err(StoreError::io(&p))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Writes `data` to `path` through a temp file and a rename (readers see
/// the old or the new content, never a part), without syncing: for records
/// whose loss is harmless. The temp name is the store's `.tmp-` form, so
/// one left by a crash is swept like the others.
pub fn replace_unsynced(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        "{}{}-{}-cache",
        fsutil::TEMP_PREFIX,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::media;

    fn digest(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    /// The collector keeps what step records and compressed lists name,
    /// read from their formats: text that merely contains a digest (a
    /// stray file, a record's other fields) keeps nothing.
    #[test]
    fn roots_pin_what_their_format_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let roots = store.build_roots();
        let layer = Descriptor::new(media::OCI_LAYER, digest('a'), 3);
        roots
            .put(
                &"1".repeat(64),
                &StepRecord {
                    created: format!("made after {}", digest('b')),
                    layer: Some(layer.clone()),
                },
            )
            .unwrap();
        roots
            .put(
                &"2".repeat(64),
                &StepRecord {
                    created: "now".into(),
                    layer: None,
                },
            )
            .unwrap();
        assert_eq!(roots.get(&"1".repeat(64)).unwrap().layer, Some(layer));
        fs::write(
            roots.dir().join(format!("compressed-{}", "c".repeat(64))),
            format!("{}\n", digest('d')),
        )
        .unwrap();
        fs::write(roots.dir().join("notes.txt"), digest('e').to_string()).unwrap();
        fs::write(
            roots.dir().join(format!("cache-{}.json", "3".repeat(64))),
            format!("{{\"damaged {}", digest('f')),
        )
        .unwrap();
        // The compressed root's layer (c…) is live: an image has it.
        let live = [Digest::from_hex(&"c".repeat(64)).unwrap()].into();
        let mut pinned = store.pinned_by_roots(&live).unwrap();
        pinned.sort();
        assert_eq!(pinned, vec![digest('a'), digest('d')]);
        // Without it, its compressed forms are not kept.
        let mut pinned = store.pinned_by_roots(&Default::default()).unwrap();
        pinned.sort();
        assert_eq!(pinned, vec![digest('a')]);
        assert_eq!(roots.remove_all().unwrap(), 3);
        assert!(store.pinned_by_roots(&live).unwrap() == vec![digest('d')]);
    }

    #[test]
    fn a_key_that_is_not_hex_names_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rec = StepRecord {
            created: "now".into(),
            layer: None,
        };
        assert!(store.build_roots().put("../escape", &rec).is_err());
        assert!(store.build_roots().get("../escape").is_none());
    }
}
