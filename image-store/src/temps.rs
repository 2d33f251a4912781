//! Leftovers of killed processes: `.tmp-…` files and directories no live
//! process holds a lock on (a blob being downloaded, a layer being
//! unpacked, a JSON file being replaced), unpack lock files, and build
//! scratch directories. The first lock a process takes removes them when
//! a writer died (its mark is left, [`crate::writer_marks`]); `prune` and
//! `system check --repair` always look.

use std::fs;
use std::path::PathBuf;

use crate::fsutil::{self, TEMP_PREFIX};
use crate::store::Store;

/// One piece of stale temp state.
#[derive(Debug, Clone)]
pub struct StaleTemp {
    pub path: PathBuf,
    /// What it was, in words.
    pub what: &'static str,
}

impl Store {
    /// The directories where temps are made beside their final names.
    fn temp_homes(&self) -> Vec<PathBuf> {
        let kiln = self.kiln_dir();
        let mut dirs = vec![
            self.root().to_path_buf(),
            self.tmp_dir(),
            self.layers_dir(),
            kiln.join("roots"),
            kiln.join("stat-index"),
            kiln.join("cache-probes"),
            self.layer_files_dir(),
        ];
        // Container directories (the containers crate's records).
        if let Ok(entries) = fs::read_dir(kiln.join("containers")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
        dirs
    }

    /// Stale temp state. With `collector` (the caller holds the collector
    /// lock, so no writer is running) build scratch directories count too.
    pub(crate) fn stale_temps(&self, collector: bool) -> Vec<StaleTemp> {
        let mut out = Vec::new();
        // Every command lists these (the first lock it takes): compared
        // once per directory, not once per entry of a store's many layers.
        let (layers, tmp) = (self.layers_dir(), self.tmp_dir());
        for dir in self.temp_homes() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            let (in_layers, in_tmp) = (dir == layers, dir == tmp);
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.as_encoded_bytes();
                let what = if name.starts_with(TEMP_PREFIX.as_bytes()) {
                    if in_layers {
                        "partly unpacked layer"
                    } else if in_tmp {
                        "partial download or import"
                    } else {
                        "partly written file"
                    }
                } else if in_layers && name.starts_with(b".lock-") {
                    "unpack lock file"
                } else {
                    continue;
                };
                let path = e.path();
                if fsutil::is_stale(&path).unwrap_or(false) {
                    out.push(StaleTemp { path, what });
                }
            }
        }
        if collector {
            out.extend(self.stale_build_scratch());
        }
        out
    }

    /// Build scratch directories: all stale for the collector (no build
    /// runs while it holds its lock).
    fn stale_build_scratch(&self) -> Vec<StaleTemp> {
        fs::read_dir(self.build_scratch_root())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| StaleTemp {
                path: e.path(),
                what: "build scratch directory",
            })
            .collect()
    }

    /// Removes stale temp state; returns what went. The caller holds the
    /// collector lock. Unless `always`, the store's directories are listed
    /// only when a writer died: its mark is left (the listing grows with
    /// the store, the marks with the processes running). Build scratch
    /// directories are listed either way (one per running build).
    pub(crate) fn clean_stale_temps_locked(&self, always: bool) -> Vec<StaleTemp> {
        let marks = crate::writer_marks::marks_dir(&self.kiln_dir());
        let dead = crate::writer_marks::dead(&marks);
        let temps = match always || !dead.is_empty() {
            true => self.stale_temps(true),
            false => self.stale_build_scratch(),
        };
        let mut removed = Vec::new();
        for t in temps {
            let gone = if t.what == "build scratch directory" {
                fsutil::remove_tree(&t.path).is_ok()
            } else {
                fsutil::remove_if_stale(&t.path).unwrap_or(false)
            };
            if gone {
                removed.push(t);
            }
        }
        // Last: a cleaner killed before this leaves them to the next one.
        crate::writer_marks::remove_dead(&dead);
        if let Some(janitor) = self.janitor {
            janitor(self);
        }
        removed
    }

    /// Has `janitor` run whenever stale temps are cleaned (the first lock a
    /// process takes, `prune`, `system check --repair`): the layers above
    /// the store clean up after their killed processes there (the
    /// containers crate removes their cgroups).
    pub fn with_janitor(mut self, janitor: fn(&Store)) -> Store {
        self.janitor = Some(janitor);
        self
    }
}
