//! Directories builds keep in the store besides their step records:
//! - `kiln/cache-mounts/<name>`: the contents of `RUN --mount=type=cache`,
//!   kept from build to build ([`CacheMount`]);
//! - `kiln/build/<pid>`: one build process's scratch space (RUN upper
//!   directories, downloads, views), removed when the build ends
//!   ([`BuildScratch`]) or, after a crash, by the stale-temp sweep;
//! - `kiln/cache-probes/` and `kiln/stat-index/`: the builder's own hints
//!   (why a step missed; context file hashes), safe to lose.
//!
//! None of these keeps a blob alive, so the collector never reads them.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};
use crate::store::Store;

/// A `RUN --mount=type=cache` directory.
#[derive(Debug)]
pub struct CacheMount {
    path: PathBuf,
}

impl CacheMount {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the directory's owner and mode (BuildKit sets them at every
    /// use from the mount's uid, gid and mode).
    pub fn set_owner(&self, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
        std::os::unix::fs::chown(&self.path, Some(uid), Some(gid))?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(mode & 0o7777))
    }
}

/// One build's scratch directory; removed (with what is in it) on drop.
#[derive(Debug)]
pub struct BuildScratch {
    path: PathBuf,
}

impl BuildScratch {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for BuildScratch {
    fn drop(&mut self) {
        let _ = crate::fsutil::remove_tree(&self.path);
    }
}

/// The builder's hint directories (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildHints {
    /// Why a step missed the cache: the inputs it read last time.
    Probes,
    /// Hashes of context files, keyed by their stat.
    StatIndex,
}

impl Store {
    fn cache_mounts_dir(&self) -> PathBuf {
        self.kiln_dir().join("cache-mounts")
    }

    /// The cache mount `name` (a hex hash of the mount's id), made if new.
    pub fn cache_mount(&self, name: &str) -> Result<CacheMount> {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::io(self.cache_mounts_dir())(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid cache mount name {name:?}"),
            )));
        }
        let path = self.cache_mounts_dir().join(name);
        fs::create_dir_all(&path).map_err(StoreError::io(&path))?;
        Ok(CacheMount { path })
    }

    /// Deletes every cache mount; returns how many there were. The caller
    /// holds the collector lock (no build is using one).
    pub fn remove_cache_mounts(&self) -> Result<usize> {
        let dir = self.cache_mounts_dir();
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        remove_dir_if_any(&dir)?;
        Ok(n)
    }

    /// The scratch directory of build process `pid` (not made yet).
    pub fn build_scratch(&self, pid: u32) -> BuildScratch {
        BuildScratch {
            path: self.build_scratch_root().join(pid.to_string()),
        }
    }

    /// Where builds' scratch directories are; any found with no build
    /// running (under the collector lock) was left by a crash.
    pub(crate) fn build_scratch_root(&self) -> PathBuf {
        self.kiln_dir().join("build")
    }

    /// One of the builder's hint directories.
    pub fn build_hints_dir(&self, which: BuildHints) -> PathBuf {
        self.kiln_dir().join(match which {
            BuildHints::Probes => "cache-probes",
            BuildHints::StatIndex => "stat-index",
        })
    }

    /// Forgets every build hint. The caller holds the collector lock.
    pub fn remove_build_hints(&self) -> Result<()> {
        for which in [BuildHints::Probes, BuildHints::StatIndex] {
            remove_dir_if_any(&self.build_hints_dir(which))?;
        }
        Ok(())
    }
}

fn remove_dir_if_any(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(dir)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_mount_names_are_hex_and_stay_inside_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(store.cache_mount("../../etc").is_err());
        let m = store.cache_mount("0123abcd").unwrap();
        assert!(m.path().is_dir());
        assert!(m.path().starts_with(store.kiln_dir()));
        assert_eq!(store.remove_cache_mounts().unwrap(), 1);
        assert!(!m.path().exists());
    }

    #[test]
    fn build_scratch_goes_with_its_handle() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let s = store.build_scratch(42);
        fs::create_dir_all(s.path().join("run-0-1/upper")).unwrap();
        let p = s.path().to_path_buf();
        drop(s);
        assert!(!p.exists());
    }
}
