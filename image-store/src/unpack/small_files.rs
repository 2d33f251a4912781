//! The small regular files of a recording unpack
//! ([`super::unpack_recording`]), made on a thread of their own while the
//! tar is read on. In a 100k-file layer, creating or linking each file
//! (the kernel's path lookups and directory inserts) is half the unpack,
//! and reading, checking and hashing the entries the other half: apart,
//! they overlap.
//!
//! Each file's bytes are in memory (at most [`RECORD_MAX`]), its parent
//! directory is open already, and nothing else the unpack does touches
//! its path before [`SmallFiles::sync`]: the unpack syncs before any
//! entry that could (one naming a path again, a whiteout, a hard link, a
//! removal) and before it sets directory times. Between two syncs no
//! path comes twice, so the files are distinct and the order they are
//! made in does not change the tree: the batches go to [`WORKERS`]
//! threads in turn. One thread was the longest of a first build's
//! pipeline (100k files: 1.2 s of CPU, with the machine's second core
//! idle a third of the time); two share the kernel's work, in different
//! directories mostly (a batch is 256 files).
//!
//! [`RECORD_MAX`]: crate::layer_files::RECORD_MAX

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode};

use super::{create_file, io_err, open_in_root, split_rel, times};
use crate::layer::{show_name, LayerError};
use crate::layer_files::FileFacts;

/// Files handed over at a time, the most bytes they hold, and batches
/// in flight: a few MB at most wait.
const BATCH: usize = 256;
const BATCH_BYTES: usize = 1 << 20;
const IN_FLIGHT: usize = 4;
/// Threads making files, at most (fewer on a machine with fewer cores).
const WORKERS: usize = 2;

/// A small regular file to make: written from `data`, or linked from the
/// earlier layer when `link` (its facts matched the record) and the inode
/// there still is what they say.
pub(super) struct SmallFile {
    /// The directory it goes in, opened inside the root.
    pub parent: Arc<OwnedFd>,
    /// Its cleaned path in the layer.
    pub rel: PathBuf,
    /// The tar's name for it, for messages.
    pub raw: Vec<u8>,
    pub link: bool,
    pub facts: FileFacts,
    pub data: Vec<u8>,
    /// The permission bits, and whether the create gives them exactly
    /// (else a chmod follows).
    pub mode: Mode,
    pub mode_at_create: bool,
    /// Owner to set, when the create does not give it.
    pub chown: Option<(u32, u32)>,
}

enum Msg {
    Files(Vec<SmallFile>),
    /// Answered once every file sent before is made: the first error.
    Sync(SyncSender<Option<LayerError>>),
}

struct Worker {
    tx: SyncSender<Msg>,
    handle: JoinHandle<Result<(), LayerError>>,
}

/// Makes [`SmallFile`]s on threads started as batches come (or here,
/// when no thread can be started).
pub(super) struct SmallFiles {
    /// Each thread links from a copy of its own (the last file's
    /// directory is kept open in it).
    src: Option<LinkSource>,
    batch: Vec<SmallFile>,
    bytes: usize,
    workers: Vec<Worker>,
    /// How many threads to start, and the batches sent so far (batch
    /// `i` goes to thread `i % workers`).
    max_workers: usize,
    sent: usize,
    /// Set when the unpack gives up: queued files are not made.
    stop: Arc<AtomicBool>,
    /// No thread: files are made as they come.
    inline: bool,
    /// Files were handed over since the last sync.
    unsynced: bool,
}

impl SmallFiles {
    pub fn new(src: Option<LinkSource>) -> SmallFiles {
        SmallFiles {
            src,
            batch: Vec::new(),
            bytes: 0,
            workers: Vec::new(),
            max_workers: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .clamp(1, WORKERS),
            sent: 0,
            stop: Arc::new(AtomicBool::new(false)),
            inline: false,
            unsynced: false,
        }
    }

    pub fn push(&mut self, f: SmallFile) -> Result<(), LayerError> {
        if self.inline {
            return make(f, self.src.as_mut());
        }
        self.unsynced = true;
        self.bytes += f.data.len();
        self.batch.push(f);
        if self.batch.len() >= BATCH || self.bytes >= BATCH_BYTES {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), LayerError> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        self.bytes = 0;
        if self.workers.len() < self.max_workers && !self.inline {
            self.start_worker();
        }
        if self.workers.is_empty() {
            self.inline = true;
            return batch
                .into_iter()
                .try_for_each(|f| make(f, self.src.as_mut()));
        }
        let w = &self.workers[self.sent % self.workers.len()];
        self.sent += 1;
        if w.tx.send(Msg::Files(batch)).is_err() {
            return self.join();
        }
        Ok(())
    }

    /// One more thread. A thread that cannot be started leaves the
    /// batches to those there are (none: files are made here).
    fn start_worker(&mut self) {
        let src = match self.workers.len() + 1 < self.max_workers {
            true => self.src.as_ref().and_then(LinkSource::try_clone),
            false => self.src.take(),
        };
        let (tx, rx) = mpsc::sync_channel(IN_FLIGHT);
        let stop = self.stop.clone();
        match std::thread::Builder::new()
            .name("layer-files".into())
            .spawn(move || work(rx, src, &stop))
        {
            Ok(handle) => self.workers.push(Worker { tx, handle }),
            Err(_) => self.max_workers = self.workers.len(),
        }
    }

    /// Waits until every file handed over is made.
    pub fn sync(&mut self) -> Result<(), LayerError> {
        if !std::mem::take(&mut self.unsynced) {
            return Ok(());
        }
        self.send()?;
        let mut replies = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let (tx, rx) = mpsc::sync_channel(1);
            if w.tx.send(Msg::Sync(tx)).is_err() {
                return self.join();
            }
            replies.push(rx);
        }
        for rx in replies {
            match rx.recv() {
                Ok(None) => {}
                Ok(Some(e)) => return Err(e),
                Err(_) => return self.join(),
            }
        }
        Ok(())
    }

    /// Makes the files still queued, and ends the threads.
    pub fn finish(mut self) -> Result<(), LayerError> {
        self.send()?;
        self.join()
    }

    /// Ends the threads: the first error of any.
    fn join(&mut self) -> Result<(), LayerError> {
        let mut first = Ok(());
        for Worker { tx, handle } in self.workers.drain(..) {
            drop(tx);
            let r = handle.join().unwrap_or_else(|_| {
                Err(LayerError::Io(io::Error::other(
                    "the thread making the layer's files panicked",
                )))
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

impl Drop for SmallFiles {
    /// The unpack failed: the thread ends before its directory is removed.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join();
    }
}

fn work(
    rx: Receiver<Msg>,
    mut src: Option<LinkSource>,
    stop: &AtomicBool,
) -> Result<(), LayerError> {
    let mut err = None;
    for msg in rx {
        match msg {
            Msg::Files(files) => {
                for f in files {
                    if err.is_none() && !stop.load(Ordering::Relaxed) {
                        err = make(f, src.as_mut()).err();
                    }
                }
            }
            Msg::Sync(reply) => {
                let _ = reply.send(err.take());
            }
        }
    }
    err.map_or(Ok(()), Err)
}

/// Links `f` from the earlier layer, or creates and writes it: what the
/// serial unpack does for a regular file (create, owner, mode, times).
fn make(f: SmallFile, src: Option<&mut LinkSource>) -> Result<(), LayerError> {
    let (parent_rel, name) = split_rel(f.rel.as_os_str().as_bytes());
    let name = OsStr::from_bytes(name);
    if f.link && src.is_some_and(|s| s.link(parent_rel, name, &f.facts, &f.parent)) {
        return Ok(());
    }
    let fd = create_file(
        &f.parent,
        name,
        f.mode_at_create.then_some(f.mode),
        &f.raw,
        || Ok(()),
    )?;
    let mut file = File::from(fd);
    file.write_all(&f.data).map_err(|e| LayerError::BadEntry {
        entry: show_name(&f.raw),
        reason: format!("write: {e}"),
    })?;
    if let Some((uid, gid)) = f.chown {
        let (u, g) = (rfs::Uid::from_raw(uid), rfs::Gid::from_raw(gid));
        rfs::fchown(&file, Some(u), Some(g)).map_err(io_err(&f.raw, "chown"))?;
    }
    // After chown, which clears set-id bits.
    if !f.mode_at_create {
        rfs::fchmod(&file, f.mode).map_err(io_err(&f.raw, "chmod"))?;
    }
    rfs::futimens(&file, &times(f.facts.mtime)).map_err(io_err(&f.raw, "set times"))
}

/// The unpacked layer files are linked from, and the directory of the
/// last file linked (inside it).
pub(super) struct LinkSource {
    root: OwnedFd,
    parent: Option<(Vec<u8>, Option<OwnedFd>)>,
}

impl LinkSource {
    pub fn new(root: OwnedFd) -> LinkSource {
        LinkSource { root, parent: None }
    }

    /// The same source for another thread (`None`: that thread writes
    /// the files instead of linking them).
    fn try_clone(&self) -> Option<LinkSource> {
        self.root.try_clone().ok().map(LinkSource::new)
    }

    /// Links `name` of directory `parent_rel` into `dest` when the inode
    /// there is a regular file with the `facts`' size, mode, owner and
    /// mtime; false when it is not or the link fails (the caller writes
    /// the file instead).
    fn link(&mut self, parent_rel: &[u8], name: &OsStr, facts: &FileFacts, dest: &OwnedFd) -> bool {
        if self.parent.as_ref().is_none_or(|(r, _)| r != parent_rel) {
            let fd = open_in_root(&self.root, Path::new(OsStr::from_bytes(parent_rel))).ok();
            self.parent = Some((parent_rel.to_vec(), fd));
        }
        let Some(src) = self.parent.as_ref().and_then(|(_, fd)| fd.as_ref()) else {
            return false;
        };
        // The recorded facts stand for the content; the inode must still
        // be what they say before it becomes part of the new layer (the
        // unpacked layer is not synced: after a crash a file of it may be
        // empty).
        let Ok(st) = rfs::statat(src, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let same = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_size as u64 == facts.size
            && st.st_mode & 0o7777 == facts.mode
            && (st.st_uid, st.st_gid) == (facts.uid, facts.gid)
            && st.st_mtime as u64 == facts.mtime
            && st.st_mtime_nsec == 0;
        same && rfs::linkat(src, name, dest, name, AtFlags::empty()).is_ok()
    }
}
