//! The walk of the disk below a directory, in lexical order, depth first
//! (what walkdir's sorted walk gives), on std's `read_dir`: each name is
//! read once per directory, and each entry's metadata is a `statx`
//! relative to its open directory (walkdir stats every entry by its whole
//! path, and builds a path per entry). A directory's entries are stat'ed
//! in two halves at once, the second on a helper thread: the system calls
//! are most of a no-change build of a large context.

use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// One entry below the start directory.
pub(super) struct Child {
    /// Its path below the start, `/`-separated.
    pub(super) tail: Vec<u8>,
    /// From the directory entry's type (no stat).
    pub(super) is_dir: bool,
    entry: fs::DirEntry,
    /// `lstat` of the entry, once taken.
    stat: Option<io::Result<Metadata>>,
}

impl Child {
    /// `lstat` of the entry (symlinks are not followed).
    pub(super) fn metadata(&mut self) -> io::Result<Metadata> {
        match self.stat.take() {
            Some(s) => s,
            None => self.entry.metadata(),
        }
    }

    fn stat(&mut self) {
        if self.stat.is_none() {
            self.stat = Some(self.entry.metadata());
        }
    }

    pub(super) fn path(&self) -> PathBuf {
        self.entry.path()
    }
}

/// Directories with fewer entries are stat'ed on the walking thread alone.
const SPLIT_MIN: usize = 16;

/// The thread that stats the second half of each large directory.
struct Helper {
    jobs: Option<mpsc::Sender<Vec<Child>>>,
    done: mpsc::Receiver<Vec<Child>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Helper {
    fn start() -> Option<Helper> {
        let (jobs, rx) = mpsc::channel::<Vec<Child>>();
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("context-stat".into())
            .spawn(move || {
                for mut half in rx {
                    half.iter_mut().for_each(Child::stat);
                    if tx.send(half).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Helper {
            jobs: Some(jobs),
            done,
            thread: Some(thread),
        })
    }

    /// Stats every entry, half of them on the helper thread.
    fn stat_all(&self, children: &mut Vec<Child>) -> io::Result<()> {
        let back = children.split_off(children.len() / 2);
        let unsent = match &self.jobs {
            Some(j) => j.send(back).err().map(|mpsc::SendError(b)| b),
            None => Some(back),
        };
        children.iter_mut().for_each(Child::stat);
        if let Some(mut back) = unsent {
            back.iter_mut().for_each(Child::stat);
            children.extend(back);
            return Ok(());
        }
        let back = self
            .done
            .recv()
            .map_err(|_| io::Error::other("the thread stating the context stopped"))?;
        children.extend(back);
        Ok(())
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(super) struct DirWalk {
    /// Started at the first directory large enough to split.
    helper: Option<Option<Helper>>,
    start: Option<PathBuf>,
    /// The unvisited entries of each directory being walked, deepest last.
    levels: Vec<std::vec::IntoIter<Child>>,
    /// The directory just yielded: read on the next call unless skipped.
    descend: Option<(PathBuf, Vec<u8>)>,
    max_depth: Option<usize>,
}

impl DirWalk {
    /// Entries below `start` down to `max_depth` (1: its children only).
    pub(super) fn new(start: PathBuf, max_depth: Option<usize>) -> DirWalk {
        DirWalk {
            helper: None,
            start: Some(start),
            levels: Vec::new(),
            descend: None,
            max_depth,
        }
    }

    /// Do not descend into the directory just yielded.
    pub(super) fn skip_current_dir(&mut self) {
        self.descend = None;
    }

    /// A directory's entries, sorted by name (siblings share the prefix,
    /// so their tails compare as their names do), each stat'ed.
    fn read(&mut self, dir: &Path, prefix: &[u8]) -> io::Result<Vec<Child>> {
        // Sorted before the stats fill each child in (a stat is most of
        // its size, and the sort moves children around).
        let mut named = Vec::new();
        for e in fs::read_dir(dir)? {
            let entry = e?;
            let is_dir = entry.file_type()?.is_dir();
            let name: OsString = entry.file_name();
            let tail = if prefix.is_empty() {
                name.into_vec()
            } else {
                let name = name.into_vec();
                let mut t = Vec::with_capacity(prefix.len() + 1 + name.len());
                t.extend_from_slice(prefix);
                t.push(b'/');
                t.extend_from_slice(&name);
                t
            };
            named.push((tail, is_dir, entry));
        }
        named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out: Vec<Child> = named
            .into_iter()
            .map(|(tail, is_dir, entry)| Child {
                tail,
                is_dir,
                entry,
                stat: None,
            })
            .collect();
        if out.len() >= SPLIT_MIN {
            match self.helper.get_or_insert_with(Helper::start) {
                Some(h) => h.stat_all(&mut out)?,
                None => out.iter_mut().for_each(Child::stat),
            }
        } else {
            out.iter_mut().for_each(Child::stat);
        }
        Ok(out)
    }
}

impl Iterator for DirWalk {
    /// An entry, or a directory that could not be read (its path).
    type Item = Result<Child, (PathBuf, io::Error)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(start) = self.start.take() {
            match self.read(&start, b"") {
                Ok(children) => self.levels.push(children.into_iter()),
                Err(e) => return Some(Err((start, e))),
            }
        }
        if let Some((dir, tail)) = self.descend.take() {
            match self.read(&dir, &tail) {
                Ok(children) => self.levels.push(children.into_iter()),
                Err(e) => return Some(Err((dir, e))),
            }
        }
        loop {
            let depth = self.levels.len();
            let top = self.levels.last_mut()?;
            match top.next() {
                Some(child) => {
                    if child.is_dir && self.max_depth.is_none_or(|m| depth < m) {
                        self.descend = Some((child.path(), child.tail.clone()));
                    }
                    return Some(Ok(child));
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
        let all: Vec<String> = DirWalk::new(d.path().to_path_buf(), None)
            .map(|c| String::from_utf8(c.unwrap().tail).unwrap())
            .collect();
        assert_eq!(all, ["a", "b", "b/x", "b/x/deep", "b/y", "b-c", "c", "c/z"]);
        let shallow: Vec<String> = DirWalk::new(d.path().to_path_buf(), Some(1))
            .map(|c| String::from_utf8(c.unwrap().tail).unwrap())
            .collect();
        assert_eq!(shallow, ["a", "b", "b-c", "c"]);
        let mut w = DirWalk::new(d.path().to_path_buf(), None);
        let mut seen = Vec::new();
        while let Some(c) = w.next() {
            let c = c.unwrap();
            if c.tail == b"b" {
                w.skip_current_dir();
            }
            seen.push(String::from_utf8(c.tail).unwrap());
        }
        assert_eq!(seen, ["a", "b", "b-c", "c", "c/z"]);
        assert!(DirWalk::new(d.path().join("missing"), None)
            .next()
            .unwrap()
            .is_err());
    }
}
