//! The layer COPY, ADD and WORKDIR write: planned tar entries, written
//! straight from their sources (no copy into a rootfs first), and local
//! archives ADD extracts.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::copy_plan::join_os;
use super::copy_reuse::{LoadRecord, PreviousLayer};

use crate::error::BuildError;
use image_store::layer_files::Vouched;

/// One tar entry of the layer to be.
#[derive(Debug)]
pub struct Planned {
    /// Path inside the image, relative, no leading slash; bytes as the
    /// source named them (context names need not be UTF-8).
    pub dest: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

#[derive(Debug)]
pub enum Kind {
    Dir,
    File {
        src: PathBuf,
        size: u64,
        /// The sha256 of its bytes, when the plan read it (a context
        /// file's, through the stat index): the previous layer's copy of
        /// the file is taken when its bytes have this hash.
        sha: Option<[u8; 32]>,
    },
    Inline(Vec<u8>),
    Symlink(PathBuf),
    /// A hard link to a file planned earlier in the same step (BuildKit
    /// keeps the links between the files it copies).
    HardLink(PathBuf),
    /// A local archive ADD extracts under `dest`.
    Archive(PathBuf),
}

/// A local file ADD extracts: a tar, plain or gzip, bzip2, xz or zstd
/// compressed.
pub(super) fn is_archive(p: &Path) -> bool {
    let Ok(f) = File::open(p) else { return false };
    let Ok(mut r) = image_store::layer::decompressed(f) else {
        return false;
    };
    let mut head = [0u8; 512];
    if io::Read::read_exact(&mut r, &mut head).is_err() {
        return false;
    }
    tar::Header::from_byte_slice(&head).cksum().ok()
        == Some(
            head.iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32u32
                    } else {
                        *b as u32
                    }
                })
                .sum(),
        )
}

/// Bytes a larger file is read in at a time.
const READ_BUF: usize = 1 << 20;
/// Files up to this size are read ahead of the tar writer.
const PREFETCH_MAX: u64 = 16 * 1024;
/// Threads that read them; files in a batch (handed over at once: one
/// wake-up per batch, not per file); batches each reader may hold ready.
const READERS: usize = 2;
const BATCH: usize = 64;
const AHEAD: usize = 2;

/// A small file the readers read ahead: its source, planned size and hash.
fn prefetched(e: &Planned) -> Option<(&Path, u64, Option<&[u8; 32]>)> {
    match &e.kind {
        Kind::File { src, size, sha } if *size <= PREFETCH_MAX => Some((src, *size, sha.as_ref())),
        _ => None,
    }
}

/// A small file's data, and whether it was checked against the plan's
/// sha256 (taken from the previous layer), so the unpack may record that
/// digest without hashing the bytes again.
type Fetched = (Vec<u8>, bool);
type Batch = std::vec::IntoIter<io::Result<Fetched>>;

/// The small files of a layer, read in order by [`READERS`] threads in
/// batches (batch `j` by reader `j % READERS`): opening, reading and
/// closing a file is most of what a layer of many small files costs, and
/// it is system calls the threads make side by side while the tar is
/// written and hashed. Memory stays bounded (`READERS * (AHEAD + 1)`
/// batches of small files).
///
/// With the step's previous layer, one reader goes through it in step
/// with the entries ([`PreviousLayer`]) and reads only the files whose
/// bytes it does not hold.
struct Prefetch {
    readers: Vec<std::sync::mpsc::Receiver<Batch>>,
    batch: Batch,
    /// Batches taken so far.
    taken: usize,
}

impl Prefetch {
    fn none() -> Prefetch {
        Prefetch {
            readers: Vec::new(),
            batch: Vec::new().into_iter(),
            taken: 0,
        }
    }

    fn start<'scope, 'env>(
        scope: &'scope std::thread::Scope<'scope, 'env>,
        entries: &'env [Planned],
        previous: Option<PreviousLayer>,
    ) -> Prefetch {
        let small = entries.iter().filter(|e| prefetched(e).is_some()).count();
        if small < 2 * BATCH {
            return Prefetch::none();
        }
        let readers = match previous {
            Some(mut prev) => {
                let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD * READERS);
                scope.spawn(move || {
                    let mut batch = Vec::with_capacity(BATCH);
                    for e in entries {
                        let Some((src, size, sha)) = prefetched(e) else {
                            continue;
                        };
                        let old =
                            sha.and_then(|sha| prev.take(e.dest.as_os_str().as_bytes(), size, sha));
                        batch.push(match old {
                            Some(data) => Ok((data, true)),
                            None => read_exact_size(src, size).map(|d| (d, false)),
                        });
                        if batch.len() == BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                            if tx.send(full.into_iter()).is_err() {
                                return; // the writer stopped
                            }
                        }
                    }
                    let _ = tx.send(batch.into_iter());
                });
                vec![rx]
            }
            None => (0..READERS)
                .map(|r| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
                    scope.spawn(move || {
                        let files: Vec<(&Path, u64)> = entries
                            .iter()
                            .filter_map(prefetched)
                            .map(|(src, size, _)| (src, size))
                            .collect();
                        for chunk in files.chunks(BATCH).skip(r).step_by(READERS) {
                            let batch: Vec<_> = chunk
                                .iter()
                                .map(|(src, size)| read_exact_size(src, *size).map(|d| (d, false)))
                                .collect();
                            if tx.send(batch.into_iter()).is_err() {
                                return; // the writer stopped
                            }
                        }
                    });
                    rx
                })
                .collect(),
        };
        Prefetch {
            readers,
            ..Prefetch::none()
        }
    }

    /// The data of the next small file (in the order of the entries).
    fn next(&mut self, src: &Path, size: u64) -> io::Result<Fetched> {
        if self.readers.is_empty() {
            return read_exact_size(src, size).map(|d| (d, false));
        }
        loop {
            if let Some(r) = self.batch.next() {
                return r;
            }
            let reader = &self.readers[self.taken % self.readers.len()];
            self.taken += 1;
            self.batch = reader
                .recv()
                .map_err(|_| io::Error::other("a file reader stopped"))?;
        }
    }
}

/// A file's first `size` bytes, as [`Exact`] gives them.
fn read_exact_size(src: &Path, size: u64) -> io::Result<Vec<u8>> {
    let mut data = Vec::with_capacity(size as usize);
    Exact::new(File::open(src)?, size).read_to_end(&mut data)?;
    Ok(data)
}

/// A writer that counts the bytes written through it (the tar builder
/// writes each entry whole, so after one its count is the entry's end).
struct Counted<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let k = self.inner.write(buf)?;
        self.n += k as u64;
        Ok(k)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the planned entries as a tar stream; `clamp` caps mtimes.
/// `previous` is the layer tar the same step wrote last time, with the
/// store's record of its files (see [`PreviousLayer`]), if any.
/// `vouched`: where the sha256 of each file taken from it (checked against
/// the plan's) is given, by the offset of its data in `out`, for the
/// unpack of the stream.
pub fn write_layer<W: Write>(
    entries: &[Planned],
    out: W,
    clamp: Option<u64>,
    previous: Option<(&Path, LoadRecord)>,
    vouched: Option<&Vouched>,
) -> Result<(), BuildError> {
    // Only files the plan hashed can be taken from it (a stage's files
    // are read as before, on all readers).
    let hashed = entries
        .iter()
        .any(|e| matches!(e.kind, Kind::File { sha: Some(_), .. }));
    let previous = previous
        .filter(|_| hashed)
        .and_then(|(p, files)| PreviousLayer::open(p, PREFETCH_MAX, files));
    std::thread::scope(|scope| {
        let mut pre = Prefetch::start(scope, entries, previous);
        write_entries(entries, out, clamp, &mut pre, vouched)
    })
}

fn write_entries<W: Write>(
    entries: &[Planned],
    out: W,
    clamp: Option<u64>,
    pre: &mut Prefetch,
    vouched: Option<&Vouched>,
) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(Counted { inner: out, n: 0 });
    let io_err = |p: &Path, e: io::Error| BuildError::Io(p.to_path_buf(), e);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(clamp.map_or(e.mtime, |c| e.mtime.min(c)));
        let res = match &e.kind {
            // The root itself is no entry of a layer (an absolute "/"
            // name is not even a valid one): `ADD rootfs.tar /` on scratch.
            Kind::Dir if e.dest.as_os_str().is_empty() => continue,
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                let mut name = e.dest.clone().into_os_string();
                name.push("/");
                b.append_data(&mut h, name, io::empty())
            }
            Kind::File { src, size, .. } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                if let Some((_, _, sha)) = prefetched(e) {
                    let (data, checked) = pre.next(src, *size).map_err(|er| io_err(src, er))?;
                    let res = b.append_data(&mut h, &e.dest, data.as_slice());
                    if let (Ok(()), Some(v), Some(sha), true) = (&res, vouched, sha, checked) {
                        // The data ends the entry, padded to a block.
                        let at = b.get_ref().n - size.next_multiple_of(512);
                        v.vouch(at, *size, *sha);
                    }
                    res
                } else {
                    // Read in large pieces (io::copy reads a plain reader
                    // 8 KiB at a time).
                    let f = File::open(src).map_err(|er| io_err(src, er))?;
                    let r = io::BufReader::with_capacity(READ_BUF, Exact::new(f, *size));
                    b.append_data(&mut h, &e.dest, r)
                }
            }
            Kind::Inline(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &e.dest, data.as_slice())
            }
            Kind::HardLink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, &e.dest, t)
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &e.dest, t)
            }
            Kind::Archive(src) => {
                extract_into(&mut b, src, &e.dest, clamp)?;
                Ok(())
            }
        };
        res.map_err(|er| BuildError::Io(e.dest.clone(), er))?;
    }
    b.into_inner()
        .and_then(|mut w| w.inner.flush())
        .map_err(|e| BuildError::Io(PathBuf::from("layer"), e))?;
    Ok(())
}

/// A file's data as planned: exactly `size` bytes. A file that grew since
/// it was planned is cut at its header's size (and the read to EOF is
/// saved); one that shrank is an error, not a tar whose data is short.
struct Exact<R> {
    inner: io::Take<R>,
}

impl<R: Read> Exact<R> {
    fn new(r: R, size: u64) -> Self {
        Exact {
            inner: r.take(size),
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was copied",
            ));
        }
        Ok(n)
    }
}

/// ADD of a local archive: its entries, re-rooted under the destination
/// directory (the archive's own path is not kept). Each entry passes the
/// store's check for layer entries first, so a build never makes a layer
/// the store would refuse on import (a whiteout of `..`, say).
fn extract_into<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    dir: &Path,
    clamp: Option<u64>,
) -> Result<(), BuildError> {
    use image_store::layer::{max_layer_size, EntryCheck, EntryName, OPAQUE, WHITEOUT_PREFIX};
    let bad =
        |e: &dyn std::fmt::Display| BuildError::Invalid(format!("ADD {}: {e}", src.display()));
    let dir = dir
        .to_str()
        .ok_or_else(|| bad(&"the destination is not UTF-8"))?;
    let limit = max_layer_size().map_err(|e| bad(&e))?;
    let mut check = EntryCheck::new(limit, true);
    let f = File::open(src).map_err(|e| BuildError::Io(src.to_path_buf(), e))?;
    let plain = image_store::layer::decompressed(f).map_err(|e| bad(&e))?;
    let mut a = tar::Archive::new(plain);
    for entry in a.entries().map_err(|e| bad(&e))? {
        let mut entry = entry.map_err(|e| bad(&e))?;
        let Some(c) = check.check(&entry).map_err(|e| bad(&e))? else {
            continue;
        };
        let rel = match &c.name {
            EntryName::Path(p) => p.clone(),
            EntryName::Whiteout { dir, hidden } => {
                let mut n = OsString::from(OsStr::from_bytes(WHITEOUT_PREFIX));
                n.push(hidden);
                dir.join(n)
            }
            EntryName::Opaque { dir } => dir.join(OsStr::from_bytes(OPAQUE)),
        };
        let name = join_os(dir, &rel);
        let mut h = entry.header().clone();
        if let Some(c) = clamp {
            let m = h.mtime().unwrap_or(0);
            h.set_mtime(m.min(c));
        }
        let shown = &c.shown();
        let fail = |e: io::Error| bad(&format!("tar entry \"{shown}\": {e}"));
        match c.kind {
            tar::EntryType::Link => {
                let target = c.link_target.as_deref().unwrap_or(Path::new(""));
                b.append_link(&mut h, &name, join_os(dir, target))
                    .map_err(fail)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                b.append_link(&mut h, &name, Path::new(OsStr::from_bytes(&target)))
                    .map_err(fail)?;
            }
            tar::EntryType::Directory => {
                let mut n = name.into_os_string();
                n.push("/");
                b.append_data(&mut h, n, io::empty()).map_err(fail)?;
            }
            _ => {
                b.append_data(&mut h, &name, &mut entry).map_err(fail)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest as _, Sha256};

    /// Files read ahead on the reader threads give the very bytes the
    /// writer gives reading each file itself, big and small mixed.
    #[test]
    fn read_ahead_gives_the_same_tar() {
        let dir = tempfile::tempdir().unwrap();
        let mut entries = Vec::new();
        for i in 0..300u32 {
            let src = dir.path().join(format!("f{i}"));
            let size = if i % 97 == 5 {
                40_000
            } else {
                (i * 13 % 2000) as usize
            };
            let data: Vec<u8> = (0..size).map(|b| (b as u32 * 31 + i) as u8).collect();
            std::fs::write(&src, &data).unwrap();
            entries.push(Planned {
                dest: PathBuf::from(format!("d/f{i}")),
                kind: Kind::File {
                    src,
                    size: size as u64,
                    sha: None,
                },
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_700_000_000,
            });
        }
        let mut ahead = Vec::new();
        write_layer(&entries, &mut ahead, None, None, None).unwrap();
        let mut inline = Vec::new();
        let mut none = Prefetch::none();
        write_entries(&entries, &mut inline, None, &mut none, None).unwrap();
        assert!(ahead == inline);
        // A file that shrank after planning is an error either way.
        std::fs::write(dir.path().join("f7"), b"x").unwrap();
        let err = write_layer(&entries, &mut Vec::new(), None, None, None).unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }

    /// Small files of a context in walk order, each with the sha256 the
    /// plan gives it.
    fn context_entries(dir: &Path, n: u32) -> Vec<Planned> {
        use sha2::Digest as _;
        let mut entries = vec![Planned {
            dest: PathBuf::from("ctx"),
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }];
        for i in 0..n {
            let src = dir.join(format!("f{i:03}"));
            let data = std::fs::read(&src).unwrap();
            entries.push(Planned {
                dest: PathBuf::from(format!("ctx/f{i:03}")),
                kind: Kind::File {
                    src,
                    size: data.len() as u64,
                    sha: Some(sha2::Sha256::digest(&data).into()),
                },
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_700_000_000,
            });
        }
        entries
    }

    /// A layer written with the step's previous layer at hand is the one
    /// reading every file gives: unchanged files come from the old tar
    /// (even when the file is gone since), edited ones from the disk.
    #[test]
    fn previous_layer_gives_the_same_tar() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir(&src).unwrap();
        for i in 0..300u32 {
            let data = format!("file {i} {}\n", "x".repeat((i * 7 % 300) as usize));
            std::fs::write(src.join(format!("f{i:03}")), data).unwrap();
        }
        let old = context_entries(&src, 300);
        let old_tar = dir.path().join("old.tar");
        let mut w = File::create(&old_tar).unwrap();
        write_layer(&old, &mut w, None, None, None).unwrap();
        drop(w);

        // Edits: other bytes of the same size, and another size.
        std::fs::write(src.join("f100"), "file 100 changed!").unwrap();
        let same_size = format!("FILE 200 {}\n", "y".repeat(200));
        assert_eq!(
            same_size.len() as u64,
            src.join("f200").metadata().unwrap().len()
        );
        std::fs::write(src.join("f200"), same_size).unwrap();
        let mut new = context_entries(&src, 300);
        let mut expected = Vec::new();
        write_layer(&new, &mut expected, None, None, None).unwrap();
        let mut reused = Vec::new();
        let vouched = Vouched::default();
        write_layer(
            &new,
            &mut reused,
            None,
            Some((&old_tar, Box::new(|| None))),
            Some(&vouched),
        )
        .unwrap();
        assert!(reused == expected);
        // Each file taken from the old tar is vouched for where its data
        // is in the new one; the edited files, read from disk, are not.
        let mut entries = tar::Archive::new(reused.as_slice());
        let (mut vouches, mut edited) = (0, 0);
        for e in entries.entries().unwrap() {
            let e = e.unwrap();
            if e.header().entry_type() != tar::EntryType::Regular {
                continue;
            }
            let (at, size) = (e.raw_file_position(), e.size());
            let name = e.path().unwrap().display().to_string();
            match vouched.take(at, size) {
                Some(sha) => {
                    let data = &reused[at as usize..(at + size) as usize];
                    assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(data)), "{name}");
                    vouches += 1;
                }
                None => {
                    assert!(name.ends_with("f100") || name.ends_with("f200"), "{name}");
                    edited += 1;
                }
            }
        }
        assert_eq!((vouches, edited), (298, 2));

        // An unchanged file that is gone: its bytes come from the old tar.
        let f010 = std::fs::read(src.join("f010")).unwrap();
        std::fs::remove_file(src.join("f010")).unwrap();
        let mut again = Vec::new();
        write_layer(
            &new,
            &mut again,
            None,
            Some((&old_tar, Box::new(|| None))),
            None,
        )
        .unwrap();
        assert!(again == expected);
        assert!(write_layer(&new, &mut Vec::new(), None, None, None).is_err());
        std::fs::write(src.join("f010"), &f010).unwrap();

        // A plan hash the old bytes do not have: the file is read.
        if let Kind::File { sha, .. } = &mut new[11].kind {
            *sha = Some([0; 32]);
        }
        std::fs::remove_file(src.join("f010")).unwrap();
        assert!(write_layer(
            &new,
            &mut Vec::new(),
            None,
            Some((&old_tar, Box::new(|| None))),
            None
        )
        .is_err());
    }

    #[test]
    fn file_data_is_exactly_the_planned_size() {
        let mut out = Vec::new();
        Exact::new(&b"grown since"[..], 5)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"grown");
        let err = Exact::new(&b"shr"[..], 5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
