//! Durable file writes: temp file in the same directory, fsync, rename,
//! fsync of the directory. Every file kiln writes goes through here.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(data)?;
    tmp.1.sync_all()?;
    fs::rename(&tmp.0, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp.0);
    })?;
    sync_dir(dir)
}

/// Creates a uniquely named empty file in `dir`.
pub fn tempfile_in(dir: &Path) -> io::Result<(std::path::PathBuf, File)> {
    create_unique(dir, "", |p| {
        fs::OpenOptions::new().write(true).create_new(true).open(p)
    })
}

/// Creates a uniquely named empty directory in `dir`; `tag` ends its name
/// (to tell what it is for when one is left behind).
pub fn tempdir_in(dir: &Path, tag: &str) -> io::Result<std::path::PathBuf> {
    create_unique(dir, tag, |p| fs::create_dir(p)).map(|(p, ())| p)
}

/// `.tmp-<pid>-<n>-<nanos><tag>` names, unique across threads and
/// processes: `create` must fail with AlreadyExists on a taken name.
fn create_unique<T>(
    dir: &Path,
    tag: &str,
    create: impl Fn(&Path) -> io::Result<T>,
) -> io::Result<(std::path::PathBuf, T)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = dir.join(format!(".tmp-{}-{n}-{nanos:x}{tag}", std::process::id()));
        match create(&p) {
            Ok(v) => return Ok((p, v)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
