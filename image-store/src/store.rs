//! The OCI image layout at the store root (`oci-layout`, `index.json`,
//! `blobs/sha256/…`) plus kiln's own folder `kiln/` beside it (locks, temp
//! files, unpacked layers). Other tools (skopeo, umoci) read the layout as is.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::ingest::Added;
use crate::lock::{self, LockGuard};
use crate::model::{media, Descriptor, Index};
use crate::piped::PipedWriter;

pub const KILN_DIR: &str = "kiln";

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    /// Cleans up what the layers above leave beside the store (the
    /// containers crate: cgroups of killed runners), with the stale temps.
    pub(crate) janitor: Option<fn(&Store)>,
}

impl Store {
    /// Opens the store at `root`, creating an empty layout if there is none.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store> {
        // Absolute from here on: overlay mounts need absolute lower/upper
        // paths, and a detached container's monitor runs in another cwd.
        let root = root.into();
        let root = std::path::absolute(&root).map_err(StoreError::io(&root))?;
        let store = Store {
            root,
            janitor: None,
        };
        if let Some(parent) = store.root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(StoreError::io(parent))?;
        }
        // Private to the owner, as docker keeps /var/lib/docker: unpacked
        // layers hold setuid files and device nodes another user must not
        // reach (CVE-2021-41091).
        for d in [
            store.root.clone(),
            store.root.join("blobs"),
            store.root.join("blobs/sha256"),
            store.kiln_dir(),
            store.kiln_dir().join("tmp"),
            store.kiln_dir().join("locks"),
        ] {
            private_dir(&d).map_err(StoreError::io(&d))?;
        }
        crate::writer_marks::track(
            &store.root,
            &crate::writer_marks::marks_dir(&store.kiln_dir()),
        );
        let layout = store.root.join("oci-layout");
        if !layout.exists() {
            let body = format!(
                "{{\"imageLayoutVersion\":\"{}\"}}",
                media::OCI_LAYOUT_VERSION
            );
            fsutil::write_atomic(&layout, body.as_bytes()).map_err(StoreError::io(&layout))?;
        }
        let index = store.index_path();
        if !index.exists() {
            let _g = store.lock_index()?;
            if !index.exists() {
                store.write_index(&Index::default())?;
            }
        }
        Ok(store)
    }

    /// Narrows the modes of a store made before directories were private
    /// (0755) to 0700. Best effort: a directory we do not own is left alone.
    pub(crate) fn tighten_modes(&self) {
        use std::os::unix::fs::PermissionsExt;
        let kiln = self.kiln_dir();
        for d in [
            self.root.clone(),
            kiln.clone(),
            kiln.join("layers"),
            kiln.join("containers"),
            kiln.join("build"),
            kiln.join("tmp"),
        ] {
            if let Ok(m) = fs::symlink_metadata(&d) {
                if m.is_dir() && m.permissions().mode() & 0o077 != 0 {
                    let _ = fs::set_permissions(&d, fs::Permissions::from_mode(0o700));
                }
            }
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn kiln_dir(&self) -> PathBuf {
        self.root.join(KILN_DIR)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.kiln_dir().join("tmp")
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).exists()
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => StoreError::MissingBlob(digest.clone()),
            _ => StoreError::Io { path: p, source: e },
        })
    }

    /// Reads a small blob (manifest, config) whole and checks its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .map_err(StoreError::io(self.blob_path(digest)))?;
        if Digest::of_bytes(&data) != *digest {
            return Err(StoreError::CorruptBlob {
                digest: digest.clone(),
                reason: "content does not match its digest".into(),
            });
        }
        Ok(data)
    }

    pub fn read_json<T: DeserializeOwned>(&self, digest: &Digest) -> Result<T> {
        let data = self.read_blob(digest)?;
        serde_json::from_slice(&data).map_err(|source| StoreError::Json {
            path: self.blob_path(digest),
            source,
        })
    }

    /// Stores a small blob given whole; returns its descriptor.
    pub fn write_blob(&self, media_type: &str, data: &[u8]) -> Result<Descriptor> {
        let mut w = self.blob_writer()?;
        w.write_all(data).map_err(StoreError::io(self.tmp_dir()))?;
        let (digest, size) = w.commit(None)?;
        Ok(Descriptor::new(media_type, digest, size))
    }

    /// A streaming writer for a new blob; nothing appears in `blobs/` until
    /// [`BlobWriter::commit`] has checked, synced and renamed it.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        let dir = self.tmp_dir();
        let (path, file) = fsutil::tempfile_in(&dir).map_err(StoreError::io(&dir))?;
        Ok(BlobWriter {
            store: self.clone(),
            inner: Some(PipedWriter::new(file)),
            tmp: Some(path),
            added: None,
        })
    }

    pub(crate) fn read_index(&self) -> Result<Index> {
        let p = self.index_path();
        let data = fs::read(&p).map_err(StoreError::io(&p))?;
        serde_json::from_slice(&data).map_err(|source| StoreError::Json { path: p, source })
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        let p = self.index_path();
        let data = serde_json::to_vec(index).expect("serializing plain data cannot fail");
        fsutil::write_atomic(&p, &data).map_err(StoreError::io(&p))
    }

    fn lock_path(&self, name: &str) -> PathBuf {
        self.kiln_dir().join("locks").join(name)
    }

    /// An exclusive lock on `kiln/locks/<name>.lock`, for state kept beside
    /// the images (container names, volumes, networks): each has a lock of
    /// its own, so a long image write does not delay `kiln run`.
    pub fn exclusive_lock(&self, name: &str) -> Result<LockGuard> {
        let p = self.lock_path(&format!("{name}.lock"));
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).map_err(StoreError::io(d))?;
        }
        lock::exclusive(&p).map_err(StoreError::io(p))
    }

    fn lock_index(&self) -> Result<LockGuard> {
        let p = self.lock_path("index.lock");
        lock::exclusive(&p).map_err(StoreError::io(p))
    }

    /// Held by writers while they add blobs and reference them. Writers of
    /// images take it through [`Store::ingest`], which also rolls back.
    pub(crate) fn writer_lock(&self) -> Result<LockGuard> {
        self.shared_gc_lock()
    }

    /// Held by readers that resolve names and then read blobs, so that no
    /// collector deletes what they found meanwhile (the same shared lock as
    /// writers: only the collector excludes it).
    pub fn reader_lock(&self) -> Result<LockGuard> {
        self.shared_gc_lock()
    }

    /// The shared gc lock. The first one a process takes also removes what
    /// killed processes left behind, when no other process holds the lock
    /// (so it costs one non-blocking lock attempt and the listing of the
    /// writer marks, once: the store's directories only after a writer
    /// died, see [`crate::writer_marks`]) and tightens the store's modes.
    fn shared_gc_lock(&self) -> Result<LockGuard> {
        use std::sync::atomic::{AtomicBool, Ordering};
        static CLEANED: AtomicBool = AtomicBool::new(false);
        let p = self.lock_path("gc.lock");
        if !CLEANED.swap(true, Ordering::Relaxed) {
            if let Some(_gc) = lock::try_exclusive(&p).map_err(StoreError::io(&p))? {
                self.tighten_modes();
                self.clean_stale_temps_locked(false);
            }
        }
        lock::shared(&p).map_err(StoreError::io(p))
    }

    /// Held by the collector while it deletes unreferenced blobs.
    pub fn collector_lock(&self) -> Result<LockGuard> {
        let p = self.lock_path("gc.lock");
        lock::exclusive(&p).map_err(StoreError::io(p))
    }

    /// The collector lock if nobody holds the gc lock now.
    pub(crate) fn try_collector_lock(&self) -> Result<Option<LockGuard>> {
        let p = self.lock_path("gc.lock");
        lock::try_exclusive(&p).map_err(StoreError::io(p))
    }

    /// Read-modify-write of `index.json` under the exclusive index lock.
    /// When `f` fails nothing is written; when it changed nothing (a
    /// rebuild that names the same image again) neither: the durable
    /// write is two fsyncs.
    pub(crate) fn update_index<T>(&self, f: impl FnOnce(&mut Index) -> Result<T>) -> Result<T> {
        let _g = self.lock_index()?;
        let p = self.index_path();
        let data = fs::read(&p).map_err(StoreError::io(&p))?;
        let mut index: Index =
            serde_json::from_slice(&data).map_err(|source| StoreError::Json { path: p, source })?;
        let out = f(&mut index)?;
        let new = serde_json::to_vec(&index).expect("serializing plain data cannot fail");
        if new != data {
            let p = self.index_path();
            fsutil::write_atomic(&p, &new).map_err(StoreError::io(&p))?;
        }
        Ok(out)
    }

    /// Deletes the blob files in `digests`; missing ones are ignored. (A
    /// failed write need not: an uncommitted [`crate::Ingest`] removes what
    /// it added.)
    pub(crate) fn remove_blobs<'a>(
        &self,
        digests: impl IntoIterator<Item = &'a Digest>,
    ) -> Result<u64> {
        let mut freed = 0;
        for d in digests {
            let p = self.blob_path(d);
            match fs::symlink_metadata(&p) {
                Ok(m) => {
                    fs::remove_file(&p).map_err(StoreError::io(&p))?;
                    freed += m.len();
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StoreError::Io { path: p, source: e }),
            }
        }
        Ok(freed)
    }

    /// All blob digests present on disk.
    pub(crate) fn list_blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(StoreError::io(&dir))? {
            let e = e.map_err(StoreError::io(&dir))?;
            if let Some(name) = e.file_name().to_str() {
                if let Ok(d) = Digest::from_hex(name) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

/// Creates directory `d` with mode 0700 unless it exists.
pub(crate) fn private_dir(d: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match fs::DirBuilder::new().mode(0o700).create(d) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// A blob being written: hashed as it is written, renamed into place on
/// commit, deleted if dropped uncommitted.
pub struct BlobWriter {
    store: Store,
    inner: Option<PipedWriter>,
    /// Until [`BlobWriter::finish`] hands it to the [`PendingBlob`].
    tmp: Option<fsutil::TempPath>,
    /// The transaction that records this blob if it is new.
    added: Option<Added>,
}

impl BlobWriter {
    pub(crate) fn recording(mut self, added: Added) -> Self {
        self.added = Some(added);
        self
    }

    pub fn written(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.written())
    }

    /// Syncs the blob and moves it to `blobs/sha256/<digest>`. With
    /// `expected`, a mismatch fails and nothing is stored.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        self.commit_reporting(expected).map(|(d, n, _)| (d, n))
    }

    /// Like [`BlobWriter::commit`], also saying whether the blob is new to
    /// the store (false when an identical blob was already there).
    pub fn commit_reporting(self, expected: Option<&Digest>) -> Result<(Digest, u64, bool)> {
        let pending = self.finish()?;
        if let Some(exp) = expected {
            if *exp != pending.digest {
                return Err(StoreError::CorruptBlob {
                    digest: exp.clone(),
                    reason: format!("content hashes to {}", pending.digest),
                });
            }
        }
        let (digest, size) = (pending.digest.clone(), pending.size);
        let new = commit_pending(vec![pending])?;
        Ok((digest, size, new == 1))
    }

    /// Writes out what is buffered and hashes it, but neither syncs nor
    /// names it: the blob is whole in its temp file, and nothing may refer
    /// to it until [`commit_pending`] made it durable. For a writer that
    /// needs the digest now and the fsyncs later, off its own path (a
    /// build's RUN layers).
    pub fn finish(mut self) -> Result<PendingBlob> {
        let w = self.inner.take().expect("finish is called once");
        let tmp = self.tmp.take().expect("finish is called once");
        let (file, digest, size) = w.finish().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            StoreError::io(&tmp)(e)
        })?;
        Ok(PendingBlob {
            store: self.store.clone(),
            file: Some(file),
            tmp,
            digest,
            size,
            added: self.added.take(),
        })
    }
}

/// A blob written and hashed in its temp file (still locked, so no cleaner
/// takes it), not yet synced nor in `blobs/`: see [`BlobWriter::finish`].
/// Dropped uncommitted, the temp file goes.
pub struct PendingBlob {
    store: Store,
    file: Option<File>,
    tmp: fsutil::TempPath,
    digest: Digest,
    size: u64,
    added: Option<Added>,
}

impl PendingBlob {
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    pub fn size(&self) -> u64 {
        self.size
    }
}

impl std::fmt::Debug for PendingBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PendingBlob({}, {} bytes)", self.digest, self.size)
    }
}

impl Drop for PendingBlob {
    fn drop(&mut self) {
        // Uncommitted, or committed onto an existing blob: the temp goes.
        // (Once renamed, the temp name is gone and this does nothing.)
        if self.file.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Makes `blobs` durable and names them `blobs/sha256/<digest>`: each file
/// synced, then renamed, then one sync of the blob directory for all of
/// them (a blob already in the store is left as it is and its copy
/// dropped). Returns how many were new. On an error, the blobs renamed
/// before it stay (unreferenced, as after a crash), the rest are dropped.
pub fn commit_pending(blobs: Vec<PendingBlob>) -> Result<usize> {
    let mut dir = None;
    let mut new = 0;
    for mut b in blobs {
        let dest = b.store.blob_path(&b.digest);
        if dest.exists() {
            continue;
        }
        let file = b.file.as_ref().expect("only commit_pending takes the file");
        file.sync_all().map_err(StoreError::io(&*b.tmp))?;
        // Renamed while still open, so it stays locked as a live temp.
        fs::rename(&*b.tmp, &dest).map_err(StoreError::io(&dest))?;
        b.file = None;
        // Recorded before anything else can fail, so a rollback finds it.
        if let Some(added) = &b.added {
            added.record(b.digest.clone());
        }
        new += 1;
        dir = dest.parent().map(Path::to_path_buf);
    }
    if let Some(dir) = dir {
        fsutil::sync_dir(&dir).map_err(StoreError::io(&dir))?;
    }
    Ok(new)
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.as_mut().expect("not committed").write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.as_mut().expect("not committed").write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.as_mut().expect("not committed").flush()
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Uncommitted (and not handed on to a pending blob): the temp goes.
        if let Some(tmp) = &self.tmp {
            let _ = fs::remove_file(tmp);
        }
    }
}
