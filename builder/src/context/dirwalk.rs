//! The walk of the disk below a directory, in lexical order, depth first
//! (what walkdir's sorted walk gives), on std's `read_dir`: each name is
//! read once per directory, and each entry's metadata is a `statx`
//! relative to its open directory (walkdir stats every entry by its whole
//! path, and builds a path per entry).
//!
//! Those system calls are most of a no-change build of a large context,
//! so they run on worker threads ahead of the walk: when a directory's
//! entries are known, its subdirectories (and those of the directories
//! above it, nearest first) are read and stat'ed by the workers while
//! the walking thread plans what it was given. A large directory's
//! entries are stat'ed in chunks, on every worker at once. What the walk
//! yields, and in which order, does not change; a directory it skips
//! after all was only read in vain.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::num::NonZeroU64;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};

use rustix::fs::{Advice, Mode, OFlags};

use crate::cache::stat_index::Hashed;

/// One entry below the start directory.
pub(super) struct Child {
    /// Its path below the start, `/`-separated.
    pub(super) tail: Vec<u8>,
    /// From the directory entry's type (no stat).
    pub(super) is_dir: bool,
    entry: fs::DirEntry,
    /// `lstat` of the entry, once taken.
    stat: Option<io::Result<Metadata>>,
    /// Its content's sha256, read right after that stat (a walk that
    /// hashes ahead).
    hashed: Option<Hashed>,
    /// The listing of this directory, being read ahead by a worker.
    ahead: Option<mpsc::Receiver<Listing>>,
}

impl Child {
    /// `lstat` of the entry (symlinks are not followed).
    pub(super) fn metadata(&mut self) -> io::Result<Metadata> {
        match self.stat.take() {
            Some(s) => s,
            None => self.entry.metadata(),
        }
    }

    /// Takes the entry's `lstat`.
    fn stat(&mut self) {
        if self.stat.is_none() {
            self.stat = Some(self.entry.metadata());
        }
    }

    /// A small regular file, opened (when it was the time reading began)
    /// with the kernel asked to read it whole in the background.
    fn open_advised(&self) -> Option<(fs::File, i128)> {
        let md = self.stat.as_ref()?.as_ref().ok()?;
        if !md.is_file() || md.len() > HASH_AHEAD_MAX || self.hashed.is_some() {
            return None;
        }
        let started = crate::cache::stat_index::now_nanos();
        // Not blocking, not following: what took the file's place since
        // its stat (a FIFO with no writer, a link) is left to the caller.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOFOLLOW;
        let fd = rustix::fs::open(self.entry.path(), flags, Mode::empty()).ok()?;
        let f = fs::File::from(fd);
        if !f.metadata().is_ok_and(|m| m.is_file()) {
            return None;
        }
        let _ = rustix::fs::fadvise(&f, 0, NonZeroU64::new(md.len()), Advice::WillNeed);
        Some((f, started))
    }

    /// The file's sha256, when the walk read it (see [`HASH_AHEAD_MAX`]).
    pub(super) fn take_hashed(&mut self) -> Option<Hashed> {
        self.hashed.take()
    }

    pub(super) fn path(&self) -> PathBuf {
        self.entry.path()
    }
}

/// Stats `children`; with `hash`, then hashes their small regular files,
/// [`ADVISED`] at a time: all of a group opened and their reads queued
/// (`posix_fadvise` WILLNEED returns once they are), then read and hashed
/// in turn. Reading them one by one waits on the disk for each.
fn stat_all(children: &mut [Child], hash: bool) {
    children.iter_mut().for_each(Child::stat);
    if !hash {
        return;
    }
    for group in children.chunks_mut(ADVISED) {
        let opened: Vec<_> = group.iter().map(Child::open_advised).collect();
        for (c, o) in group.iter_mut().zip(opened) {
            if let Some((f, started)) = o {
                c.hashed = Hashed::of_file(f, started).ok();
            }
        }
    }
}

/// Files opened at once by [`stat_all`], per worker.
const ADVISED: usize = 32;
/// Entries stat'ed as one piece of work.
const CHUNK: usize = 128;
/// Directories read ahead of the walk at most: each holds its entries
/// until the walk reaches it.
const AHEAD: usize = 32;
/// Worker threads at most (they wait on the file system as much as they
/// compute).
const WORKERS: usize = 4;
/// The largest file a walk that hashes ahead hashes on its workers: the
/// files a first build would otherwise read and hash one by one on the
/// planning thread. On a disk, after its pages were dropped, the w8
/// context's 100,000 files took 2.8 s read one after the other and 0.7 s
/// read eight at a time; in the page cache, the workers share the
/// hashing. A larger file is read on the planning thread in large pieces,
/// and one the plan then excludes is not read in vain.
const HASH_AHEAD_MAX: u64 = 1 << 20;

/// A directory's entries in order, in chunks.
enum Chunk {
    Ready(Vec<Child>),
    Pending(mpsc::Receiver<Vec<Child>>),
}

impl Chunk {
    fn take(self) -> io::Result<Vec<Child>> {
        match self {
            Chunk::Ready(c) => Ok(c),
            Chunk::Pending(rx) => rx
                .recv()
                .map_err(|_| io::Error::other("a thread stating the context stopped")),
        }
    }
}

type Listing = io::Result<VecDeque<Chunk>>;

enum Job {
    Read {
        dir: PathBuf,
        prefix: Vec<u8>,
        reply: mpsc::Sender<Listing>,
    },
    Stat {
        children: Vec<Child>,
        reply: mpsc::Sender<Vec<Child>>,
    },
}

/// The work queue the workers share: chunks of a directory already
/// being read go first, directories read ahead after them.
#[derive(Default)]
struct Queue {
    state: Mutex<(VecDeque<Job>, bool)>,
    wake: Condvar,
}

impl Queue {
    fn push(&self, job: Job, urgent: bool) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if urgent {
            s.0.push_front(job);
        } else {
            s.0.push_back(job);
        }
        drop(s);
        self.wake.notify_one();
    }

    /// The next job; `None` once the walk is gone.
    fn pop(&self) -> Option<Job> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.1 {
                return None;
            }
            if let Some(j) = s.0.pop_front() {
                return Some(j);
            }
            s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.1 = true;
        s.0.clear();
        drop(s);
        self.wake.notify_all();
    }
}

struct Pool {
    queue: Arc<Queue>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Pool {
    /// `None` when no thread could be started: the walk then reads and
    /// stats everything itself.
    fn start(hash_ahead: bool) -> Option<Pool> {
        let n = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, WORKERS);
        let queue = Arc::new(Queue::default());
        let mut threads = Vec::with_capacity(n);
        for _ in 0..n {
            let q = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name("context-stat".into())
                .spawn(move || {
                    while let Some(job) = q.pop() {
                        match job {
                            Job::Read { dir, prefix, reply } => {
                                let _ =
                                    reply.send(listing(&dir, &prefix, hash_ahead, || Some(&*q)));
                            }
                            Job::Stat {
                                mut children,
                                reply,
                            } => {
                                stat_all(&mut children, hash_ahead);
                                let _ = reply.send(children);
                            }
                        }
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                Err(_) => break,
            }
        }
        if threads.is_empty() {
            return None;
        }
        Some(Pool { queue, threads })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.queue.close();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A directory's entries, sorted by name (siblings share the prefix, so
/// their tails compare as their names do), each stat'ed: the first chunk
/// by the calling thread, the others by the workers of `queue`.
fn listing<'q>(
    dir: &Path,
    prefix: &[u8],
    hash_ahead: bool,
    queue: impl FnOnce() -> Option<&'q Queue>,
) -> Listing {
    // Sorted before the stats fill each child in (a stat is most of its
    // size, and the sort moves children around).
    let mut named = Vec::new();
    for e in fs::read_dir(dir)? {
        let entry = e?;
        let is_dir = entry.file_type()?.is_dir();
        let name: OsString = entry.file_name();
        let tail = if prefix.is_empty() {
            name.into_vec()
        } else {
            super::join_rel(prefix, name.as_bytes())
        };
        named.push((tail, is_dir, entry));
    }
    named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut all = named.into_iter().map(|(tail, is_dir, entry)| Child {
        tail,
        is_dir,
        entry,
        stat: None,
        hashed: None,
        ahead: None,
    });
    let mut first: Vec<Child> = all.by_ref().take(CHUNK).collect();
    let mut chunks = VecDeque::new();
    // Only a directory larger than a chunk starts the workers.
    let queue = if all.len() > 0 { queue() } else { None };
    if let Some(q) = queue {
        let mut rest = Vec::new();
        loop {
            let chunk: Vec<Child> = all.by_ref().take(CHUNK).collect();
            if chunk.is_empty() {
                break;
            }
            let (reply, rx) = mpsc::channel();
            rest.push(Job::Stat {
                children: chunk,
                reply,
            });
            chunks.push_back(Chunk::Pending(rx));
        }
        // In order at the front of the queue: the walk needs them first.
        for job in rest.into_iter().rev() {
            q.push(job, true);
        }
    } else {
        first.extend(all);
    }
    stat_all(&mut first, hash_ahead);
    chunks.push_front(Chunk::Ready(first));
    Ok(chunks)
}

/// One directory being walked.
struct Level {
    dir: PathBuf,
    /// Its entries not yet yielded, the current chunk first.
    current: std::vec::IntoIter<Child>,
    rest: VecDeque<Chunk>,
    /// How many entries at the front of `current` were already looked at
    /// for reading ahead.
    looked: usize,
}

/// Whether a directory, by its tail, is worth reading ahead.
type Wanted<'a> = Box<dyn Fn(&[u8]) -> bool + 'a>;

pub(super) struct DirWalk<'a> {
    /// Started when there is first something to read ahead.
    pool: Option<Option<Pool>>,
    start: Option<PathBuf>,
    /// The directories being walked, deepest last.
    levels: Vec<Level>,
    /// The directory just yielded (with its listing when read ahead):
    /// entered on the next call unless skipped.
    descend: Option<(PathBuf, Vec<u8>, Option<mpsc::Receiver<Listing>>)>,
    max_depth: Option<usize>,
    /// Whether a directory (by its tail) is worth reading ahead: the
    /// walk's caller is not known to prune it.
    wanted: Wanted<'a>,
    /// Directories being read ahead, not yet entered or skipped.
    ahead: usize,
    /// Small files are hashed ahead too (see [`HASH_AHEAD_MAX`]).
    files_ahead: bool,
}

impl<'a> DirWalk<'a> {
    /// Entries below `start` down to `max_depth` (1: its children only).
    pub(super) fn new(
        start: PathBuf,
        max_depth: Option<usize>,
        wanted: impl Fn(&[u8]) -> bool + 'a,
    ) -> DirWalk<'a> {
        DirWalk {
            pool: None,
            start: Some(start),
            levels: Vec::new(),
            descend: None,
            max_depth,
            wanted: Box::new(wanted),
            ahead: 0,
            files_ahead: false,
        }
    }

    /// Hashes small files ahead of the walk, on its workers, for a caller
    /// that hashes every file (see [`HASH_AHEAD_MAX`]).
    pub(super) fn hashing_files_ahead(mut self, on: bool) -> DirWalk<'a> {
        self.files_ahead = on;
        self
    }

    /// Do not descend into the directory just yielded.
    pub(super) fn skip_current_dir(&mut self) {
        if let Some((_, _, Some(_))) = self.descend.take() {
            self.ahead -= 1;
        }
    }

    fn enter(
        &mut self,
        dir: PathBuf,
        tail: &[u8],
        ahead: Option<mpsc::Receiver<Listing>>,
    ) -> io::Result<()> {
        let mut chunks = match ahead {
            Some(rx) => {
                self.ahead -= 1;
                rx.recv()
                    .map_err(|_| io::Error::other("a thread reading the context stopped"))??
            }
            None => {
                let (pool, files_ahead) = (&mut self.pool, self.files_ahead);
                listing(&dir, tail, files_ahead, || {
                    pool.get_or_insert_with(|| Pool::start(files_ahead))
                        .as_ref()
                        .map(|p| &*p.queue)
                })?
            }
        };
        let first = match chunks.pop_front() {
            Some(c) => c.take()?,
            None => Vec::new(),
        };
        self.levels.push(Level {
            dir,
            current: first.into_iter(),
            rest: chunks,
            looked: 0,
        });
        self.read_ahead();
        Ok(())
    }

    /// Hands the workers the next directories the walk will enter, nearest
    /// first, up to [`AHEAD`] of them.
    fn read_ahead(&mut self) {
        let DirWalk {
            pool,
            levels,
            max_depth,
            wanted,
            ahead,
            files_ahead,
            ..
        } = self;
        for (i, level) in levels.iter_mut().enumerate().rev() {
            // The walk does not descend from this depth.
            if max_depth.is_some_and(|m| i + 1 >= m) {
                continue;
            }
            let rest = level.current.as_mut_slice();
            while level.looked < rest.len() {
                if *ahead >= AHEAD {
                    return;
                }
                let c = &mut rest[level.looked];
                level.looked += 1;
                if !c.is_dir || c.ahead.is_some() || !wanted(&c.tail) {
                    continue;
                }
                let Some(p) = pool.get_or_insert_with(|| Pool::start(*files_ahead)) else {
                    return;
                };
                let (reply, rx) = mpsc::channel();
                let job = Job::Read {
                    dir: c.path(),
                    prefix: c.tail.clone(),
                    reply,
                };
                p.queue.push(job, false);
                c.ahead = Some(rx);
                *ahead += 1;
            }
        }
    }
}

impl Iterator for DirWalk<'_> {
    /// An entry, or a directory that could not be read (its path).
    type Item = Result<Child, (PathBuf, io::Error)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(start) = self.start.take() {
            if let Err(e) = self.enter(start.clone(), b"", None) {
                return Some(Err((start, e)));
            }
        }
        if let Some((dir, tail, ahead)) = self.descend.take() {
            if let Err(e) = self.enter(dir.clone(), &tail, ahead) {
                return Some(Err((dir, e)));
            }
        }
        loop {
            let depth = self.levels.len();
            let top = self.levels.last_mut()?;
            if let Some(mut child) = top.current.next() {
                top.looked = top.looked.saturating_sub(1);
                let ahead = child.ahead.take();
                if child.is_dir && self.max_depth.is_none_or(|m| depth < m) {
                    self.descend = Some((child.path(), child.tail.clone(), ahead));
                } else if ahead.is_some() {
                    self.ahead -= 1;
                }
                return Some(Ok(child));
            }
            match top.rest.pop_front().map(Chunk::take) {
                Some(Ok(next)) => {
                    top.current = next.into_iter();
                    top.looked = 0;
                    self.read_ahead();
                }
                Some(Err(e)) => {
                    let dir = top.dir.clone();
                    self.levels.pop();
                    return Some(Err((dir, e)));
                }
                None => {
                    self.levels.pop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_depth_first_with_depth_limit_and_skips() {
        let d = tempfile::tempdir().unwrap();
        for p in ["b/y", "b/x/deep", "a", "c/z", "b-c"] {
            let p = d.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"").unwrap();
        }
        let all: Vec<String> = DirWalk::new(d.path().to_path_buf(), None, |_| true)
            .map(|c| String::from_utf8(c.unwrap().tail).unwrap())
            .collect();
        assert_eq!(all, ["a", "b", "b/x", "b/x/deep", "b/y", "b-c", "c", "c/z"]);
        let shallow: Vec<String> = DirWalk::new(d.path().to_path_buf(), Some(1), |_| true)
            .map(|c| String::from_utf8(c.unwrap().tail).unwrap())
            .collect();
        assert_eq!(shallow, ["a", "b", "b-c", "c"]);
        let mut w = DirWalk::new(d.path().to_path_buf(), None, |_| true);
        let mut seen = Vec::new();
        while let Some(c) = w.next() {
            let c = c.unwrap();
            if c.tail == b"b" {
                w.skip_current_dir();
            }
            seen.push(String::from_utf8(c.tail).unwrap());
        }
        assert_eq!(seen, ["a", "b", "b-c", "c", "c/z"]);
        assert!(DirWalk::new(d.path().join("missing"), None, |_| true)
            .next()
            .unwrap()
            .is_err());
    }

    /// What a walk without workers gives: the reference order.
    fn reference(dir: &Path, prefix: &str, out: &mut Vec<(String, u64)>) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for n in names {
            let tail = if prefix.is_empty() {
                n.clone()
            } else {
                format!("{prefix}/{n}")
            };
            let md = fs::symlink_metadata(dir.join(&n)).unwrap();
            out.push((tail.clone(), std::os::unix::fs::MetadataExt::ino(&md)));
            if md.is_dir() {
                reference(&dir.join(&n), &tail, out);
            }
        }
    }

    /// A walk that hashes ahead gives each small regular file the sha256
    /// of its content (on the workers, in chunks and in the first chunk of
    /// each directory alike), and nothing for directories, symlinks, a
    /// FIFO, larger files, or a walk that does not.
    #[test]
    fn hashing_ahead_gives_small_files_their_digests() {
        use sha2::{Digest as _, Sha256};
        let d = tempfile::tempdir().unwrap();
        for i in 0..(AHEAD + 3) {
            let sub = d.path().join(format!("d{i:03}"));
            fs::create_dir_all(&sub).unwrap();
            for j in 0..(CHUNK + ADVISED + 1) {
                fs::write(sub.join(format!("f{j:03}")), format!("{i} {j}")).unwrap();
            }
        }
        fs::write(d.path().join("empty"), b"").unwrap();
        let large = vec![7u8; HASH_AHEAD_MAX as usize + 1];
        fs::write(d.path().join("large"), &large).unwrap();
        std::os::unix::fs::symlink("d000/f000", d.path().join("link")).unwrap();
        // Opening a FIFO without a writer would wait forever.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            d.path().join("fifo"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let walk = |hash: bool| -> Vec<(String, Option<[u8; 32]>)> {
            DirWalk::new(d.path().to_path_buf(), None, |_| true)
                .hashing_files_ahead(hash)
                .map(|c| {
                    let mut c = c.unwrap();
                    let h = c.take_hashed().map(|h| h.sha);
                    (String::from_utf8(c.tail).unwrap(), h)
                })
                .collect()
        };
        let got = walk(true);
        assert_eq!(got.len(), (AHEAD + 3) * (CHUNK + ADVISED + 2) + 4);
        for (tail, sha) in &got {
            let p = d.path().join(tail);
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_file() && md.len() <= HASH_AHEAD_MAX {
                let want: [u8; 32] = Sha256::digest(fs::read(&p).unwrap()).into();
                assert_eq!(*sha, Some(want), "{tail}");
            } else {
                assert_eq!(*sha, None, "{tail}");
            }
        }
        assert!(walk(false).iter().all(|(_, sha)| sha.is_none()));
    }

    #[test]
    fn read_ahead_and_chunked_stats_keep_order_and_metadata() {
        let d = tempfile::tempdir().unwrap();
        // More directories than are read ahead, a directory of several
        // chunks, nesting, and empty directories.
        for i in 0..(AHEAD * 2 + 3) {
            let sub = d.path().join(format!("d{i:03}"));
            fs::create_dir_all(sub.join("inner/deeper")).unwrap();
            fs::write(sub.join("inner/deeper/f"), b"x").unwrap();
            fs::write(sub.join("a"), b"a").unwrap();
            if i % 7 == 0 {
                fs::create_dir(sub.join("empty")).unwrap();
            }
        }
        let big = d.path().join("d005/big");
        fs::create_dir(&big).unwrap();
        for i in 0..(CHUNK * 3 + 5) {
            fs::write(big.join(format!("f{i:04}")), b"").unwrap();
        }
        let mut want = Vec::new();
        reference(d.path(), "", &mut want);
        let got: Vec<(String, u64)> = DirWalk::new(d.path().to_path_buf(), None, |_| true)
            .map(|c| {
                let mut c = c.unwrap();
                let ino = std::os::unix::fs::MetadataExt::ino(&c.metadata().unwrap());
                (String::from_utf8(c.tail).unwrap(), ino)
            })
            .collect();
        assert_eq!(got, want);

        // Skipped directories, read ahead or not, and unwanted ones.
        let mut w = DirWalk::new(d.path().to_path_buf(), None, |t| t != b"d003");
        let mut seen = Vec::new();
        while let Some(c) = w.next() {
            let c = c.unwrap();
            if c.tail.ends_with(b"/inner") || c.tail == b"d004" {
                w.skip_current_dir();
            }
            seen.push(String::from_utf8(c.tail).unwrap());
        }
        let want: Vec<String> = want
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| !t.contains("/inner/") && !t.starts_with("d004/"))
            .collect();
        assert_eq!(seen, want);
        assert_eq!(w.ahead, 0);
    }
}
