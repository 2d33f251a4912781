//! RUN layers made durable off the steps' path. A RUN step writes and
//! hashes its layer blob into a temp file, renames its upper directory into
//! the store's unpacked layers and goes on: the next step mounts that
//! directory and needs neither the blob nor the record. This thread then
//! syncs and names the blob, and only after that writes the step's cache
//! record, so no record ever names a blob a crash could lose. Jobs are
//! taken in batches: all blobs of a batch are synced and renamed, the blob
//! directory synced once, then the records written.
//!
//! The build waits for it ([`Commits::wait`]) before anything else refers
//! to those blobs: the image's config and manifest at the end of a build.
//! A failure stops it (later jobs are dropped, their temps removed, no
//! record written) and is the build's error at the next step or at the end.
//!
//! It also removes the steps' scratch directories (bundle, overlay work
//! directory: a dozen directory operations a step need not wait for), and
//! writes the cache's best-effort hints (a step's probe, the layer a COPY
//! made last time: a file and a rename each, which nothing in this build
//! waits for).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use image_store::build_roots::BuildRoots;
use image_store::store::{commit_pending, PendingBlob};
use image_store::{Digest, StoreError};

use super::Record;
use crate::error::BuildError;

enum Job {
    Blob(PendingBlob),
    Record {
        key: String,
        rec: Box<Record>,
    },
    /// A step's scratch directory, whatever else fails (a build's
    /// scratch root goes after [`Commits::drain`]; if the process dies
    /// first, the store's stale-temp cleanup removes it).
    Remove(std::path::PathBuf),
    /// A best-effort hint file ([`super::Cache::put_probe`]): written
    /// unsynced, an error ignored.
    Hint(std::path::PathBuf, Vec<u8>),
}

#[derive(Default)]
struct Queue {
    jobs: Vec<Job>,
    /// The blobs queued or being committed, by digest (a count: two steps
    /// may make the same layer).
    pending: HashMap<Digest, usize>,
    /// The thread holds a batch.
    busy: bool,
    closed: bool,
    failure: Failure,
}

#[derive(Default)]
enum Failure {
    #[default]
    None,
    /// The first error, until a step or the end of the build reports it.
    Unreported(StoreError),
    Reported,
}

struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The committer of one build; [`Commits::disabled`] commits in the
/// caller's thread instead (builds whose layers are uploaded as they are
/// made: the uploaders read the blobs at once).
pub struct Commits {
    shared: Arc<Shared>,
    roots: BuildRoots,
    enabled: bool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Commits {
    pub fn new(roots: BuildRoots) -> Commits {
        Commits::with(roots, true)
    }

    pub fn disabled(roots: BuildRoots) -> Commits {
        Commits::with(roots, false)
    }

    fn with(roots: BuildRoots, enabled: bool) -> Commits {
        Commits {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                changed: Condvar::new(),
            }),
            roots,
            enabled,
            thread: Mutex::new(None),
        }
    }

    /// Makes `blob` durable, here or on the thread.
    pub fn blob(&self, blob: PendingBlob) -> Result<(), BuildError> {
        if !self.enabled || !self.started() {
            commit_pending(vec![blob])?;
            return Ok(());
        }
        self.check()?;
        let mut q = self.shared.lock();
        *q.pending.entry(blob.digest().clone()).or_default() += 1;
        q.jobs.push(Job::Blob(blob));
        drop(q);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Queues the record of `key` (one that pins a layer) for the thread,
    /// which writes it after every blob queued before it, so after its
    /// layer's; false when the caller writes it itself (no thread, or a
    /// record without a layer). After a failure every record is dropped.
    pub fn record(&self, key: &str, rec: &Record) -> bool {
        if !self.enabled || rec.layer.is_none() || !self.started() {
            return false;
        }
        let mut q = self.shared.lock();
        if matches!(q.failure, Failure::None) {
            q.jobs.push(Job::Record {
                key: key.to_string(),
                rec: Box::new(rec.clone()),
            });
        }
        drop(q);
        self.shared.changed.notify_all();
        true
    }

    /// Removes the directory `dir` (a step's scratch) on the thread, or
    /// here when there is none.
    pub fn remove(&self, dir: std::path::PathBuf) {
        if !self.enabled || !self.started() {
            let _ = image_store::fsutil::remove_tree(&dir);
            return;
        }
        self.shared.lock().jobs.push(Job::Remove(dir));
        self.shared.changed.notify_all();
    }

    /// Writes the hint file `path` (best effort) on the thread, or here
    /// when there is none.
    pub fn hint(&self, path: std::path::PathBuf, data: Vec<u8>) {
        if !self.enabled || !self.started() {
            write_hint(&path, &data);
            return;
        }
        self.shared.lock().jobs.push(Job::Hint(path, data));
        self.shared.changed.notify_all();
    }

    /// Is the blob `digest` queued or being committed?
    pub fn is_pending(&self, digest: &Digest) -> bool {
        self.shared.lock().pending.contains_key(digest)
    }

    /// The thread's failure, if it had one (once as itself, then as a
    /// line saying an earlier one stopped the build).
    pub fn check(&self) -> Result<(), BuildError> {
        report(&mut self.shared.lock())
    }

    /// Waits until every queued blob and record is durable (or the thread
    /// failed: its error).
    pub fn wait(&self) -> Result<(), BuildError> {
        report(&mut self.drained())
    }

    /// Waits until the thread has done every queued job (a failure stays
    /// for [`Commits::check`] or [`Commits::wait`] to report).
    pub fn drain(&self) {
        drop(self.drained());
    }

    fn drained(&self) -> MutexGuard<'_, Queue> {
        let mut q = self.shared.lock();
        while !q.jobs.is_empty() || q.busy {
            q = self
                .shared
                .changed
                .wait(q)
                .unwrap_or_else(|p| p.into_inner());
        }
        q
    }

    /// The thread runs (started now if need be); false if it cannot be.
    fn started(&self) -> bool {
        let mut t = self.thread.lock().unwrap_or_else(|p| p.into_inner());
        if t.is_none() {
            let shared = self.shared.clone();
            let roots = self.roots.clone();
            *t = std::thread::Builder::new()
                .name("layer-commits".into())
                .spawn(move || work(&shared, &roots))
                .ok();
        }
        t.is_some()
    }
}

/// A hint file, replaced whole (unsynced: a lost one only costs a less
/// well explained miss or a slower edit); its directory made if need be.
fn write_hint(path: &std::path::Path, data: &[u8]) {
    if let Some(d) = path.parent() {
        let _ = std::fs::create_dir_all(d);
    }
    let _ = image_store::build_roots::replace_unsynced(path, data);
}

fn report(q: &mut Queue) -> Result<(), BuildError> {
    match std::mem::replace(&mut q.failure, Failure::Reported) {
        Failure::None => {
            q.failure = Failure::None;
            Ok(())
        }
        Failure::Unreported(e) => Err(BuildError::Store(e)),
        Failure::Reported => Err(BuildError::Invalid(
            "stopped: an earlier RUN step's layer could not be stored".into(),
        )),
    }
}

fn work(shared: &Shared, roots: &BuildRoots) {
    loop {
        let mut q = shared.lock();
        while q.jobs.is_empty() && !q.closed {
            q = shared.changed.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        if q.jobs.is_empty() {
            return;
        }
        let jobs = std::mem::take(&mut q.jobs);
        q.busy = true;
        drop(q);
        run_batch(shared, roots, jobs);
    }
}

/// Commits a batch: its blobs first (one directory sync), then its
/// records; marks the batch done.
fn run_batch(shared: &Shared, roots: &BuildRoots, jobs: Vec<Job>) {
    let failed = !matches!(shared.lock().failure, Failure::None);
    let mut blobs = Vec::new();
    let mut records = Vec::new();
    let mut digests = Vec::new();
    let mut scratch = Vec::new();
    let mut hints = Vec::new();
    for j in jobs {
        match j {
            Job::Blob(b) => {
                digests.push(b.digest().clone());
                blobs.push(b);
            }
            Job::Record { key, rec } => records.push((key, *rec)),
            Job::Remove(dir) => scratch.push(dir),
            Job::Hint(path, data) => hints.push((path, data)),
        }
    }
    let result = if failed {
        // Dropped: their temps go, no record is written.
        drop(blobs);
        Ok(())
    } else {
        commit_pending(blobs).and_then(|_| {
            roots
                .put_durable(&records)
                .map_err(StoreError::io(roots.dir()))
        })
    };
    for dir in scratch {
        let _ = image_store::fsutil::remove_tree(&dir);
    }
    // Hints whatever failed: they name no blob.
    for (path, data) in hints {
        write_hint(&path, &data);
    }
    let mut q = shared.lock();
    for d in digests {
        if let Some(n) = q.pending.get_mut(&d) {
            *n -= 1;
            if *n == 0 {
                q.pending.remove(&d);
            }
        }
    }
    if let (Err(e), Failure::None) = (result, &q.failure) {
        q.failure = Failure::Unreported(e);
    }
    q.busy = false;
    drop(q);
    shared.changed.notify_all();
}

impl Drop for Commits {
    /// Lets the thread finish what is queued (the steps that ran keep
    /// their records, as when each step committed its own), then ends it.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        let t = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }
}
