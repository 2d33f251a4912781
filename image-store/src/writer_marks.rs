//! Writer marks: which processes may have left temp state in a store.
//!
//! The first lock a process takes cleans what killed processes left
//! ([`crate::temps`]). Finding their `.tmp-…` names meant listing every
//! directory temps are made in, `layers/`, `roots/`, `cache-probes/`, …,
//! whose entries grow with the store: with 30,000 cache probes
//! `kiln run --rm --network none busybox true` took 17.6 ms instead of
//! 7.0 ms, on every command. So each process that makes a temp in a store
//! first holds a mark there: an empty file under `kiln/locks/writers/`,
//! locked (`flock`) for the rest of its life and removed when it ends
//! cleanly (one of its temps, [`fsutil`]'s: SIGINT and SIGTERM remove it
//! with the others). A mark nobody holds is a process that died, maybe with temps
//! left: only then are the store's directories listed, and the mark goes
//! after them. `prune` and `system check` list them always.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::fsutil::{self, TempPath};

struct Tracked {
    /// The store's root: temps under it are the store's.
    root: PathBuf,
    marks: PathBuf,
    /// This process's mark, once it made a temp there.
    mine: Option<(TempPath, File)>,
}

fn tracked() -> MutexGuard<'static, Vec<Tracked>> {
    static TRACKED: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());
    TRACKED.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where the marks of the store at `root` (with its `kiln` directory
/// `kiln`) are.
pub(crate) fn marks_dir(kiln: &Path) -> PathBuf {
    kiln.join("locks").join("writers")
}

/// Makes temps under `root` take a mark in `marks` first.
pub(crate) fn track(root: &Path, marks: &Path) {
    let mut t = tracked();
    if !t.iter().any(|s| s.root == root) {
        t.push(Tracked {
            root: root.to_path_buf(),
            marks: marks.to_path_buf(),
            mine: None,
        });
    }
}

/// Before a temp is made in `dir`: this process's mark in the store
/// `dir` is in, if it has none yet.
pub(crate) fn mark_for(dir: &Path) -> io::Result<()> {
    let mut t = tracked();
    for s in t
        .iter_mut()
        .filter(|s| s.mine.is_none() && dir.starts_with(&s.root))
    {
        s.mine = Some(new_mark(&s.marks)?);
    }
    Ok(())
}

fn new_mark(marks: &Path) -> io::Result<(TempPath, File)> {
    fs::create_dir_all(marks)?;
    fsutil::tempfile_unmarked(marks)
}

/// Removes this process's marks: for its clean end, when it has no temp
/// left. (One that is killed leaves its mark to the next cleaner.)
pub fn release() {
    for s in tracked().iter_mut() {
        if let Some((p, f)) = s.mine.take() {
            let _ = fs::remove_file(&*p);
            drop(f);
        }
    }
}

/// Removes the marks of writers that died, once their temps were looked
/// for (a mark a process took since is held, and stays).
pub(crate) fn remove_dead(dead: &[PathBuf]) {
    for m in dead {
        let _ = fsutil::remove_if_stale(m);
    }
}

/// The marks in `marks` that no live process holds.
pub(crate) fn dead(marks: &Path) -> Vec<PathBuf> {
    fs::read_dir(marks)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| fsutil::is_stale(p).unwrap_or(false))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_is_taken_once_per_store_and_released() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let marks = marks_dir(&root.join("kiln"));
        track(&root, &marks);
        track(&root, &marks);
        // A directory outside the store takes no mark.
        mark_for(dir.path()).unwrap();
        assert!(!marks.exists());
        mark_for(&root.join("kiln/layers")).unwrap();
        mark_for(&root.join("kiln/roots")).unwrap();
        let names: Vec<_> = fs::read_dir(&marks).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        // Held by this process: not dead.
        assert!(dead(&marks).is_empty());
        release();
        assert_eq!(fs::read_dir(&marks).unwrap().count(), 0);
        // An unheld one (a killed process's) is dead.
        fs::write(marks.join("1-2-3"), b"").unwrap();
        assert_eq!(dead(&marks), vec![marks.join("1-2-3")]);
    }
}
