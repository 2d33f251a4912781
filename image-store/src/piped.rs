//! The buffered, hashing file writer under [`crate::store::BlobWriter`].
//! Past its first buffer a blob's writes move to a thread of their own: the
//! sha256 of a large layer and the copy of its bytes into the page cache
//! then take a core each instead of one after the other (a 500 MB COPY
//! spent a third of its time in the writes). Memory stays bounded: at most
//! [`BUFFERS`] buffers of [`CHUNK`] bytes exist.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use crate::digest::{Digest, Hasher};

/// Bytes hashed and handed to the writer at a time.
pub const CHUNK: usize = 1 << 20;
/// Buffers in flight at most (the one being filled included).
pub const BUFFERS: usize = 4;

pub(crate) struct PipedWriter {
    buf: Vec<u8>,
    hasher: Hasher,
    /// The file, until the writer thread takes it.
    file: Option<File>,
    worker: Option<Worker>,
    buffers: usize,
}

struct Worker {
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    handle: Option<JoinHandle<io::Result<File>>>,
}

impl Worker {
    fn start(mut file: File) -> io::Result<Worker> {
        let (full, rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (tx, empty) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let handle = std::thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || {
                for mut buf in rx {
                    file.write_all(&buf)?;
                    buf.clear();
                    let _ = tx.send(buf);
                }
                Ok(file)
            })?;
        Ok(Worker {
            full: Some(full),
            empty,
            handle: Some(handle),
        })
    }

    /// Waits for the writes to end; the file, or the first write error.
    fn join(&mut self) -> io::Result<File> {
        self.full = None;
        match self.handle.take() {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the blob writer thread panicked"))),
            None => Err(io::Error::other("the blob writer thread is gone")),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // No write may land after the owner gave the blob up.
        let _ = self.join();
    }
}

impl PipedWriter {
    pub(crate) fn new(file: File) -> PipedWriter {
        PipedWriter {
            buf: Vec::new(),
            hasher: Hasher::new(),
            file: Some(file),
            worker: None,
            buffers: 1,
        }
    }

    /// Bytes written so far (hashed or buffered).
    pub(crate) fn written(&self) -> u64 {
        self.hasher.len() + self.buf.len() as u64
    }

    /// Hashes the buffer and writes it: here for a blob that fits in one
    /// buffer, else on the writer thread.
    fn push(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hasher.update(&self.buf);
        if self.worker.is_none() && self.hasher.len() <= CHUNK as u64 {
            let file = self.file.as_mut().expect("no writer thread yet");
            file.write_all(&self.buf)?;
            self.buf.clear();
            return Ok(());
        }
        if self.worker.is_none() {
            let file = self.file.take().expect("no writer thread yet");
            self.worker = Some(Worker::start(file)?);
        }
        let w = self.worker.as_mut().expect("started");
        let next = match w.empty.try_recv() {
            Ok(b) => b,
            Err(_) if self.buffers < BUFFERS => {
                self.buffers += 1;
                Vec::with_capacity(CHUNK)
            }
            Err(_) => match w.empty.recv() {
                Ok(b) => b,
                // The thread stopped: its error says why.
                Err(_) => return Err(w.join().err().unwrap_or_else(gone)),
            },
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = w.full.as_ref().is_some_and(|tx| tx.send(full).is_ok());
        if !sent {
            return Err(w.join().err().unwrap_or_else(gone));
        }
        Ok(())
    }

    /// Writes what is left; the file with every byte written, the digest
    /// and size.
    pub(crate) fn finish(mut self) -> io::Result<(File, Digest, u64)> {
        self.push()?;
        let file = match self.worker.take() {
            Some(mut w) => w.join()?,
            None => self.file.take().expect("the file is here"),
        };
        let (digest, size) = std::mem::take(&mut self.hasher).finish();
        Ok((file, digest, size))
    }
}

fn gone() -> io::Error {
    io::Error::other("the blob writer thread stopped")
}

impl Write for PipedWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.capacity() == 0 && data.len() >= CHUNK {
            self.buf.reserve_exact(CHUNK);
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.push()?;
        }
        Ok(n)
    }

    /// Nothing reads the file before [`PipedWriter::finish`]: the bytes
    /// stay buffered.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn every_byte_in_order_with_its_digest() {
        for len in [0, 5, CHUNK - 1, CHUNK, CHUNK + 1, 7 * CHUNK + 12345] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut f = tempfile::tempfile().unwrap();
            let mut w = PipedWriter::new(f.try_clone().unwrap());
            // In odd pieces, as a tar writer gives them.
            for piece in data.chunks(777_777) {
                w.write_all(piece).unwrap();
            }
            assert_eq!(w.written(), len as u64);
            let (_, digest, size) = w.finish().unwrap();
            assert_eq!(size, len as u64);
            assert_eq!(digest, Digest::of_bytes(&data));
            let mut back = Vec::new();
            // The clone shares the offset the writes moved.
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_to_end(&mut back).unwrap();
            assert!(back == data, "length {len}");
        }
    }

    #[test]
    fn a_write_error_on_the_thread_is_returned() {
        // A file opened read-only: the first write fails.
        let tmp = tempfile::NamedTempFile::new().unwrap();
        let f = File::open(tmp.path()).unwrap();
        let mut w = PipedWriter::new(f);
        let data = vec![1u8; 3 * CHUNK];
        let err = w.write_all(&data).and_then(|_| w.finish().map(|_| ()));
        assert!(err.is_err());
    }
}
