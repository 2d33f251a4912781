//! A layer a build step writes again is often byte for byte the blob the
//! same step wrote last time: `--no-cache`, or a change of input that
//! leaves what is copied as it was. [`Rewrite`] compares the stream with
//! that blob while the two agree and writes nothing meanwhile: no temp
//! file, no hashing, no unpack (the old blob's unpacked directory serves).
//! At the first byte that differs it makes the real writer, replays the
//! agreed prefix into it from the old blob and passes everything on from
//! there. A changed layer then costs a compare and a second read of the
//! prefix it shares (from the page cache); an unchanged one of 1,800 files
//! no longer costs writing, hashing and unpacking 18 MB only to find the
//! blob and its unpacked copy already there.
//!
//! The old blob is the store's own, named by the digest of its bytes and
//! kept by the build's gc lock; a stream equal to its bytes has that
//! digest, as a new blob that hashes to a stored one is dropped for the
//! stored copy ([`crate::store::commit_pending`]). The blob is read
//! through one descriptor, for the compare and the replay alike, so what
//! is replayed is what was compared.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};

use crate::digest::Digest;
use crate::error::Result;
use crate::store::Store;

/// Bytes the old blob is read in at a time.
const READ_BUF: usize = 1 << 20;

/// A writer that holds back its stream while it equals a stored blob.
pub struct Rewrite<W> {
    old: Option<Old>,
    state: State<W>,
}

struct Old {
    r: BufReader<File>,
    digest: Digest,
    size: u64,
    /// Bytes of the stream so far, all equal to the blob's first bytes.
    agreed: u64,
}

type Make<W> = Box<dyn FnOnce() -> Result<W>>;

enum State<W> {
    /// The stream equals the old blob so far; the writer is not made yet.
    Agreeing(Make<W>),
    Writing(W),
    /// Making the writer, or the replay into it, failed: every write
    /// fails after that.
    Failed,
}

/// What a [`Rewrite`] ends in.
pub enum Rewritten<W> {
    /// The stream was the old blob, to the last byte: its digest and size.
    Same(Digest, u64),
    /// The writer that has the whole stream, to be committed.
    New(W),
}

impl Store {
    /// A writer for a layer tar the step that wrote the blob `previous`
    /// writes again; `make` makes the real writer, at the first byte that
    /// differs (at once when there is no previous blob or it cannot be
    /// opened).
    pub fn rewrite<W: Write>(
        &self,
        previous: Option<&Digest>,
        make: impl FnOnce() -> Result<W> + 'static,
    ) -> Result<Rewrite<W>> {
        let old = previous.and_then(|d| {
            let f = File::open(self.blob_path(d)).ok()?;
            let size = f.metadata().ok()?.len();
            Some(Old {
                r: BufReader::with_capacity(READ_BUF, f),
                digest: d.clone(),
                size,
                agreed: 0,
            })
        });
        let state = match old {
            Some(_) => State::Agreeing(Box::new(make)),
            None => State::Writing(make()?),
        };
        Ok(Rewrite { old, state })
    }
}

impl<W: Write> Rewrite<W> {
    /// The stream's end: the old blob when no byte differed and none is
    /// missing, else the writer with the whole stream.
    pub fn finish(mut self) -> io::Result<Rewritten<W>> {
        if let (State::Agreeing(_), Some(old)) = (&self.state, &mut self.old) {
            if old.agreed == old.size && old.r.fill_buf()?.is_empty() {
                return Ok(Rewritten::Same(old.digest.clone(), old.size));
            }
            // A stream shorter than the old blob.
            self.diverge()?;
        }
        match self.state {
            State::Writing(w) => Ok(Rewritten::New(w)),
            State::Agreeing(_) | State::Failed => Err(failed()),
        }
    }

    /// Whether `data` is what the old blob holds next; the blob is read
    /// past it either way (only [`Self::diverge`] reads it after a no).
    fn agrees(&mut self, data: &[u8]) -> bool {
        let Some(old) = self.old.as_mut() else {
            return false;
        };
        let mut rest = data;
        while !rest.is_empty() {
            let buf = match old.r.fill_buf() {
                Ok(b) if !b.is_empty() => b,
                // The blob ends, or cannot be read on: the stream differs.
                _ => return false,
            };
            let n = buf.len().min(rest.len());
            if buf[..n] != rest[..n] {
                return false;
            }
            old.r.consume(n);
            rest = &rest[n..];
        }
        old.agreed += data.len() as u64;
        true
    }

    /// Makes the writer and gives it the agreed prefix, from the old blob.
    fn diverge(&mut self) -> io::Result<()> {
        let State::Agreeing(make) = std::mem::replace(&mut self.state, State::Failed) else {
            return Ok(());
        };
        let mut w = make().map_err(|e| io::Error::other(e.to_string()))?;
        if let Some(old) = self.old.as_mut() {
            old.r.seek(SeekFrom::Start(0))?;
            let mut left = old.agreed;
            while left > 0 {
                let buf = old.r.fill_buf()?;
                if buf.is_empty() {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("blob {} shrank while it was read", old.digest),
                    ));
                }
                let n = buf.len().min(left as usize);
                w.write_all(&buf[..n])?;
                old.r.consume(n);
                left -= n as u64;
            }
        }
        self.old = None;
        self.state = State::Writing(w);
        Ok(())
    }
}

fn failed() -> io::Error {
    io::Error::other("the layer writer failed before")
}

impl<W: Write> Write for Rewrite<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if matches!(self.state, State::Agreeing(_)) {
            if self.agrees(data) {
                return Ok(data.len());
            }
            self.diverge()?;
        }
        match &mut self.state {
            State::Writing(w) => w.write(data),
            State::Agreeing(_) | State::Failed => Err(failed()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Writing(w) => w.flush(),
            State::Agreeing(_) => Ok(()),
            State::Failed => Err(failed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A store holding `old` as a blob, and its digest.
    fn store_with(old: &[u8]) -> (tempfile::TempDir, Store, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(old).unwrap();
        let (d, _) = w.commit(None).unwrap();
        (dir, store, d)
    }

    /// Writes `new` through a rewrite of `old`, in pieces of `piece`
    /// bytes; the bytes the real writer got, or `None` when none was made.
    fn rewrite(old: &[u8], new: &[u8], piece: usize) -> (Option<Vec<u8>>, bool) {
        let (_dir, store, d) = store_with(old);
        let made = Rc::new(RefCell::new(false));
        let m = made.clone();
        let mut w = store
            .rewrite(Some(&d), move || {
                *m.borrow_mut() = true;
                Ok(Vec::new())
            })
            .unwrap();
        for p in new.chunks(piece) {
            w.write_all(p).unwrap();
        }
        let out = match w.finish().unwrap() {
            Rewritten::Same(digest, size) => {
                assert_eq!((digest, size), (d, old.len() as u64));
                None
            }
            Rewritten::New(v) => Some(v),
        };
        let made = *made.borrow();
        (out, made)
    }

    #[test]
    fn the_same_stream_writes_nothing() {
        let old: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for piece in [1, 512, 4096, 1 << 20, 5 << 20] {
            assert_eq!(rewrite(&old, &old, piece), (None, false), "{piece}");
        }
    }

    /// Whatever differs, and wherever: the writer gets the whole new
    /// stream, the agreed prefix replayed from the old blob.
    #[test]
    fn a_changed_stream_is_written_whole() {
        let old: Vec<u8> = (0..2_500_000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for at in [0, 1, 511, 1 << 20, (1 << 20) + 3, old.len() - 1] {
            let mut c = old.clone();
            c[at] ^= 1;
            cases.push(c);
        }
        cases.push(old[..old.len() - 1].to_vec()); // shorter
        cases.push(old[..1 << 20].to_vec()); // a prefix at a read boundary
        cases.push(Vec::new());
        let mut longer = old.clone();
        longer.push(0);
        cases.push(longer);
        for new in &cases {
            for piece in [1000, 1 << 20, 3 << 20] {
                let (out, made) = rewrite(&old, new, piece);
                assert!(made);
                assert!(
                    out.as_deref() == Some(new.as_slice()),
                    "{} {piece}",
                    new.len()
                );
            }
        }
    }

    #[test]
    fn without_an_old_blob_the_writer_is_made_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let missing = Digest::of_bytes(b"never stored");
        for previous in [None, Some(&missing)] {
            let mut w = store.rewrite(previous, || Ok(Vec::new())).unwrap();
            assert!(matches!(w.state, State::Writing(_)));
            w.write_all(b"data").unwrap();
            assert!(matches!(w.finish().unwrap(), Rewritten::New(v) if v == b"data"));
        }
    }
}
