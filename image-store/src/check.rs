//! `kiln system check [--repair]`: the store's consistency, verified under
//! the collector lock (so no writer is half-way): `index.json` parses,
//! every blob an image references is there and hashes to its digest
//! (streamed), unpacked layers and their short links are whole, build cache
//! and compressed-layer records point at blobs that exist, and no killed
//! process left temp state. With `repair`, what is dangling or corrupt is
//! removed. Container records and cgroups are the containers crate's
//! (`containers::check`), which runs this under the same lock.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Result, StoreError};
use crate::model::{media, Descriptor, ImageConfig, Index, Manifest};
use crate::store::Store;

/// One thing found wrong.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What kind of object: `image`, `blob`, `layer`, `cache`, `container`, `temp`, `index`.
    pub kind: &'static str,
    /// Which one (a name, digest or path).
    pub object: String,
    pub message: String,
    /// With `repair`: whether it was repaired.
    pub repaired: bool,
    /// What the repair does, in words (`removed` for most problems).
    pub action: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.message)
    }
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Images, blobs verified and bytes hashed, for the summary.
    pub images: usize,
    pub blobs: usize,
    pub bytes: u64,
    /// Blobs nothing references (not a problem: `image prune` or a repair
    /// removes them) and their size.
    pub unreferenced: (usize, u64),
    /// Every blob the check looked at (whether it was sound or not), so a
    /// further check does not report an image that is already reported.
    pub examined: BTreeSet<Digest>,
}

impl CheckReport {
    /// Problems that are still there (all of them without `repair`).
    pub fn remaining(&self) -> usize {
        self.problems.iter().filter(|p| !p.repaired).count()
    }
}

/// Why a referenced blob is not usable.
#[derive(Debug, Clone)]
enum BlobFault {
    Missing,
    Corrupt(String),
}

impl Store {
    /// Checks the store; with `repair` removes index entries whose blobs are
    /// missing or corrupt, corrupt blobs, stale temps, broken unpacked
    /// layers, dangling cache records and records-less container dirs, then
    /// collects garbage.
    pub fn check(&self, repair: bool) -> Result<CheckReport> {
        let _gc = self.collector_lock()?;
        self.check_locked(repair)
    }

    /// [`Store::check`] for a caller that holds the collector lock and
    /// checks more beside it (the containers crate's records and cgroups).
    pub fn check_locked(&self, repair: bool) -> Result<CheckReport> {
        let mut rep = CheckReport::default();
        let problem = |rep: &mut CheckReport, kind, object: String, message: String| {
            rep.problems.push(Problem {
                kind,
                object,
                message,
                repaired: false,
                action: "removed",
            });
            rep.problems.len() - 1
        };

        // Temps of killed processes.
        for t in self.stale_temps(true) {
            let i = problem(
                &mut rep,
                "temp",
                t.path.display().to_string(),
                format!(
                    "{} left by a process that is gone (stale, removable)",
                    t.what
                ),
            );
            if repair {
                rep.problems[i].repaired = if t.what == "build scratch directory" {
                    crate::fsutil::remove_tree(&t.path).is_ok()
                } else {
                    crate::fsutil::remove_if_stale(&t.path).unwrap_or(false)
                };
            }
        }
        // The marks of writers that died only said to look (see
        // writer_marks): looked, they go, and are no problem themselves.
        if repair {
            let marks = crate::writer_marks::marks_dir(&self.kiln_dir());
            crate::writer_marks::remove_dead(&crate::writer_marks::dead(&marks));
        }

        // index.json and everything it reaches.
        let index = match self.read_index() {
            Ok(i) => Some(i),
            Err(e) => {
                problem(
                    &mut rep,
                    "index",
                    self.index_path().display().to_string(),
                    format!("cannot be read: {e} (not repairable: restore it or remove the store)"),
                );
                None
            }
        };
        let mut verified: BTreeMap<Digest, Option<BlobFault>> = BTreeMap::new();
        let mut live: BTreeSet<Digest> = BTreeSet::new();
        let mut bad_entries: BTreeSet<Digest> = BTreeSet::new();
        let mut corrupt: BTreeSet<Digest> = BTreeSet::new();
        if let Some(index) = &index {
            let mut seen = BTreeSet::new();
            for d in &index.manifests {
                let name = d
                    .ref_name()
                    .map_or_else(|| d.digest.to_string(), str::to_string);
                if !seen.insert((d.digest.clone(), name.clone())) {
                    continue;
                }
                let mut faults = Vec::new();
                self.check_tree(d, &mut verified, &mut live, &mut rep, &mut faults, 0);
                if d.media_type == media::OCI_MANIFEST || d.media_type == media::DOCKER_MANIFEST {
                    rep.images += 1;
                }
                for (digest, what, fault) in faults {
                    let msg = match &fault {
                        BlobFault::Missing => format!("{what} {digest} is missing"),
                        BlobFault::Corrupt(r) => format!("{what} {digest} is corrupt: {r}"),
                    };
                    if let BlobFault::Corrupt(_) = fault {
                        corrupt.insert(digest);
                    }
                    let i = problem(&mut rep, "image", name.clone(), msg);
                    rep.problems[i].repaired = repair;
                    bad_entries.insert(d.digest.clone());
                }
            }
        }
        if repair && !bad_entries.is_empty() {
            self.update_index(|index| {
                index.manifests.retain(|d| !bad_entries.contains(&d.digest));
                Ok(())
            })?;
            self.remove_blobs(&corrupt)?;
        }

        self.check_layers(repair, &mut rep);
        self.check_roots(repair, &mut rep);
        rep.examined = verified.keys().cloned().collect();

        // Unreferenced blobs are garbage, not damage.
        let mut roots_live = live.clone();
        roots_live.extend(self.pinned_by_roots(&live)?);
        for d in self.list_blobs()? {
            if !roots_live.contains(&d) {
                rep.unreferenced.0 += 1;
                rep.unreferenced.1 += fs::metadata(self.blob_path(&d)).map_or(0, |m| m.len());
            }
        }
        if repair && index.is_some() {
            self.collect_garbage_locked()?;
        }
        Ok(rep)
    }

    /// Verifies `d`'s blob and, for manifests and indexes, what they
    /// reference; appends `(digest, what, fault)` for each unusable blob.
    fn check_tree(
        &self,
        d: &Descriptor,
        verified: &mut BTreeMap<Digest, Option<BlobFault>>,
        live: &mut BTreeSet<Digest>,
        rep: &mut CheckReport,
        faults: &mut Vec<(Digest, &'static str, BlobFault)>,
        depth: usize,
    ) {
        live.insert(d.digest.clone());
        let what = match d.media_type.as_str() {
            media::OCI_MANIFEST | media::DOCKER_MANIFEST => "manifest",
            media::OCI_INDEX | media::DOCKER_LIST => "index",
            _ => "blob",
        };
        if let Some(f) = self.verify_cached(&d.digest, Some(d.size), verified, rep) {
            faults.push((d.digest.clone(), what, f));
            return;
        }
        let parse_err = |e: StoreError| BlobFault::Corrupt(format!("does not parse: {e}"));
        match what {
            "manifest" => {
                let m: Manifest = match self.read_json(&d.digest) {
                    Ok(m) => m,
                    Err(e) => return faults.push((d.digest.clone(), what, parse_err(e))),
                };
                live.insert(m.config.digest.clone());
                match self.verify_cached(&m.config.digest, Some(m.config.size), verified, rep) {
                    Some(f) => faults.push((m.config.digest.clone(), "config", f)),
                    None => {
                        if let Err(e) = self.read_json::<ImageConfig>(&m.config.digest) {
                            faults.push((m.config.digest.clone(), "config", parse_err(e)));
                        }
                    }
                }
                for l in &m.layers {
                    live.insert(l.digest.clone());
                    if let Some(f) = self.verify_cached(&l.digest, Some(l.size), verified, rep) {
                        faults.push((l.digest.clone(), "layer", f));
                    }
                }
            }
            "index" if depth < 8 => {
                let i: Index = match self.read_json(&d.digest) {
                    Ok(i) => i,
                    Err(e) => return faults.push((d.digest.clone(), what, parse_err(e))),
                };
                for c in &i.manifests {
                    self.check_tree(c, verified, live, rep, faults, depth + 1);
                }
            }
            _ => {}
        }
    }

    fn verify_cached(
        &self,
        digest: &Digest,
        size: Option<u64>,
        verified: &mut BTreeMap<Digest, Option<BlobFault>>,
        rep: &mut CheckReport,
    ) -> Option<BlobFault> {
        if let Some(r) = verified.get(digest) {
            return r.clone();
        }
        let r = match self.verify_blob(digest, size) {
            Ok(n) => {
                rep.blobs += 1;
                rep.bytes += n;
                None
            }
            Err(f) => Some(f),
        };
        verified.insert(digest.clone(), r.clone());
        r
    }

    /// Hashes a blob as a stream; its size and digest must match.
    fn verify_blob(&self, digest: &Digest, size: Option<u64>) -> Result<u64, BlobFault> {
        let mut f = match self.open_blob(digest) {
            Ok(f) => f,
            Err(StoreError::MissingBlob(_)) => return Err(BlobFault::Missing),
            Err(e) => return Err(BlobFault::Corrupt(e.to_string())),
        };
        let mut w = HashingWriter::new(io::sink());
        io::copy(&mut f, &mut w).map_err(|e| BlobFault::Corrupt(format!("reading: {e}")))?;
        let (_, got, n) = w.finish();
        if got != *digest {
            return Err(BlobFault::Corrupt(format!("content hashes to {got}")));
        }
        if let Some(s) = size {
            if s != n {
                return Err(BlobFault::Corrupt(format!(
                    "{n} bytes, the descriptor says {s}"
                )));
            }
        }
        Ok(n)
    }

    /// `kiln/layers/<diff-id hex>` must be directories (a layer is renamed
    /// into place only when whole) and short links must resolve.
    fn check_layers(&self, repair: bool, rep: &mut CheckReport) {
        let dir = self.layers_dir();
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if Digest::from_hex(name).is_err() {
                continue;
            }
            let p = e.path();
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    // A delta is usable only above its base, whole.
                    if self.installed(&p).is_some() {
                        continue;
                    }
                    let base = crate::unpacked::layer_base(&p).map(|b| b.short().to_string());
                    let repaired = repair && self.remove_layer_dir(&p).is_ok();
                    rep.problems.push(Problem {
                        kind: "layer",
                        object: p.display().to_string(),
                        message: format!(
                            "is a delta over the unpacked layer {}, which is gone or not whole",
                            base.unwrap_or_default()
                        ),
                        repaired,
                        action: "removed (unpacked again when used)",
                    });
                }
                _ => {
                    let repaired = repair && fs::remove_file(&p).is_ok();
                    rep.problems.push(Problem {
                        kind: "layer",
                        object: p.display().to_string(),
                        message: "is not an unpacked layer directory".into(),
                        repaired,
                        action: "removed",
                    });
                }
            }
        }
        if let Ok(links) = fs::read_dir(dir.join("l")) {
            for l in links.flatten() {
                if fs::metadata(l.path()).is_err() {
                    let repaired = repair && fs::remove_file(l.path()).is_ok();
                    rep.problems.push(Problem {
                        kind: "layer",
                        object: l.path().display().to_string(),
                        message: "short link to a layer that is gone".into(),
                        repaired,
                        action: "removed",
                    });
                }
            }
        }
    }

    /// Build cache records (`roots/cache-*.json`) must parse and their layer
    /// blob exist; compressed-layer roots must list blobs that exist.
    fn check_roots(&self, repair: bool, rep: &mut CheckReport) {
        let dir = self.kiln_dir().join("roots");
        let Ok(entries) = fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if name.starts_with(crate::fsutil::TEMP_PREFIX) {
                continue;
            }
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            let fault = if name.starts_with("cache-") && name.ends_with(".json") {
                match serde_json::from_str::<serde_json::Value>(&text) {
                    Err(e) => Some(format!("does not parse: {e}")),
                    Ok(v) => v
                        .pointer("/layer/digest")
                        .and_then(|d| d.as_str())
                        .and_then(|d| d.parse::<Digest>().ok())
                        .filter(|d| !self.has_blob(d))
                        .map(|d| format!("refers to layer {d}, which is missing")),
                }
            } else if let Some(hex) = name.strip_prefix("compressed-") {
                text.lines()
                    .filter_map(|l| l.trim().parse::<Digest>().ok())
                    .find(|d| !self.has_blob(d))
                    .map(|d| format!("compressed form {d} of layer sha256:{hex} is missing"))
            } else {
                None
            };
            if let Some(message) = fault {
                let mut repaired = false;
                if repair {
                    repaired = fs::remove_file(&p).is_ok();
                    if let Some(hex) = name.strip_prefix("compressed-") {
                        for f in ["gzip", "zstd"] {
                            let _ = fs::remove_file(
                                self.kiln_dir().join("compressed").join(f).join(hex),
                            );
                        }
                    }
                }
                rep.problems.push(Problem {
                    kind: "cache",
                    object: p.display().to_string(),
                    message,
                    repaired,
                    action: "removed",
                });
            }
        }
    }
}
