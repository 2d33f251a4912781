//! Advisory file locks between kiln processes sharing one store.
//!
//! Two locks, always taken in this order to avoid deadlock:
//! - `gc`: shared by every writer for the whole time it adds blobs and
//!   references them; exclusive for the collector, so it never deletes a blob
//!   that a concurrent writer has written but not yet referenced.
//! - `index`: exclusive around each read-modify-write of `index.json`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Holds a lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        // A reader of a store it cannot write (read-only mount) still
        // locks: flock needs no write access.
        .or_else(|e| File::open(path).map_err(|_| e))
}

pub fn exclusive(path: &Path) -> io::Result<LockGuard> {
    let file = open(path)?;
    file.lock()?;
    Ok(LockGuard { file })
}

pub fn shared(path: &Path) -> io::Result<LockGuard> {
    let file = open(path)?;
    file.lock_shared()?;
    Ok(LockGuard { file })
}

/// The exclusive lock if nobody else holds it now, else `None`.
pub fn try_exclusive(path: &Path) -> io::Result<Option<LockGuard>> {
    let file = open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(LockGuard { file })),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
