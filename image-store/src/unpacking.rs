//! A layer blob unpacked into the unpacked-layer cache while it is being
//! written, for a build step whose layer the next steps stack as a lower
//! directory (a COPY before a RUN). Unpacked afterwards, the layer is read
//! back and its files created only once the tar is whole; here the
//! creates run on a thread of their own beside the tar writer's reads, on
//! the bytes it writes (a 1,800-file COPY then RUN: the unpack's 40 ms no
//! longer add up after the COPY's).
//!
//! Unpacking is a head start, never a source of truth: if it fails, the
//! tee stops and nothing is installed; the layer is then unpacked from its
//! blob when it is wanted, as any other, and that unpack reports the
//! error.

use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::digest::Digest;
use crate::error::Result;
use crate::fsutil::{self, TempPath};
use crate::layer::LayerError;
use crate::layer_files::{LayerFiles, Vouched};
use crate::store::{BlobWriter, PendingBlob, Store};
use crate::unpack::{unpack_recording, Reuse, UnpackOptions, Whiteouts};
use crate::verify::{spare_or_new, Chunks};

/// Bytes handed to the unpacking thread at a time, and chunks in flight.
const CHUNK: usize = 256 << 10;
const IN_FLIGHT: usize = 8;

/// The unpack's facts, and the base when it made a delta.
type Unpacked = (LayerFiles, Option<Digest>);

/// A [`BlobWriter`] whose bytes are also unpacked, in overlay form, into a
/// temp directory that [`UnpackingWriter::finish`] installs as the
/// unpacked layer of the blob's digest (the diff ID of an uncompressed
/// layer).
pub struct UnpackingWriter {
    store: Store,
    /// Until finished.
    blob: Option<BlobWriter>,
    buf: Vec<u8>,
    /// `None` once the unpacking thread stopped taking bytes.
    tx: Option<SyncSender<io::Result<Vec<u8>>>>,
    /// Chunks the unpack is done with, to fill again.
    spares: Option<Receiver<Vec<u8>>>,
    unpacker: Option<JoinHandle<std::result::Result<Unpacked, LayerError>>>,
    /// The temp directory and the lock that keeps cleaners away from it.
    tmp: Option<(TempPath, File)>,
}

impl Store {
    /// Tees `blob` (an uncompressed layer tar about to be written) into an
    /// unpack. With `like`, an unpacked layer the same build step made
    /// before, it writes only what differs from that layer (or from the
    /// whole layer below it, if it is a delta itself), as a delta
    /// ([`crate::unpack::Reuse::delta`]); where owners cannot be set from
    /// the tar, it links the files `like` has with the same facts
    /// ([`crate::layer_files`]). A layer that is not a delta over it is not
    /// installed here: unpacked from its blob when wanted, linking.
    /// `vouched`: where the tar's writer vouches for the digests of files
    /// it checked (it may have begun before this writer was made: see
    /// [`crate::rewrite`]).
    pub fn unpacking_writer(
        &self,
        blob: BlobWriter,
        like: Option<&Digest>,
        vouched: Arc<Vouched>,
    ) -> UnpackingWriter {
        let mut w = UnpackingWriter {
            store: self.clone(),
            blob: Some(blob),
            buf: Vec::new(),
            tx: None,
            spares: None,
            unpacker: None,
            tmp: None,
        };
        let parent = self.layers_dir();
        if crate::store::private_dir(&parent).is_err() {
            return w;
        }
        let Ok((tmp, lock)) = fsutil::tempdir_in(&parent, "-unpacking") else {
            return w;
        };
        let store = self.clone();
        let like = like.cloned();
        let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
        let mut input = Chunks::new(rx);
        let spares = input.spares(IN_FLIGHT);
        let dest = tmp.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("layer-unpacker".into())
            .spawn(move || {
                let opts = UnpackOptions {
                    whiteouts: Whiteouts::Overlay,
                    ..Default::default()
                };
                // The earlier layer's facts are read here, beside the
                // writer (8 MB for 100,000 files).
                let (reuse, base) = match like {
                    Some(l) if opts.same_owner => match store.delta_base(&l) {
                        Some((b, files)) => (Some(Reuse::delta(files)), Some(b)),
                        None => (None, None),
                    },
                    Some(l) => (store.reuse_of(&l, None), None),
                    None => (None, None),
                };
                unpack_recording(input, &dest, opts, reuse, Some(vouched))
                    .map(|(_, files)| (files, base))
            });
        match spawned {
            Ok(h) => {
                w.buf = Vec::with_capacity(CHUNK);
                w.tx = Some(tx);
                w.spares = Some(spares);
                w.unpacker = Some(h);
                w.tmp = Some((tmp, lock));
            }
            Err(_) => {
                let _ = fs::remove_dir_all(&*tmp);
            }
        }
        w
    }
}

impl UnpackingWriter {
    fn send(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let next = match &self.spares {
            Some(spares) => spare_or_new(spares, CHUNK),
            None => Vec::with_capacity(CHUNK),
        };
        let chunk = std::mem::replace(&mut self.buf, next);
        let taken = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send(Ok(chunk)).is_ok());
        if !taken {
            // The unpack failed; `finish` then installs nothing.
            self.tx = None;
        }
    }

    /// Ends the blob, hashed but not yet durable ([`BlobWriter::finish`]),
    /// and installs the unpacked layer when every byte reached the unpack
    /// and it succeeded. True when the unpacked layer is in place: a build
    /// may then commit the blob off its path, as it does a RUN's (the next
    /// step mounts the directory, not the blob).
    pub fn finish(mut self) -> Result<(PendingBlob, bool)> {
        self.send();
        // The end of the tar, or a stream cut short if the unpack hung up.
        let whole = self
            .tx
            .take()
            .is_some_and(|tx| tx.send(Ok(Vec::new())).is_ok());
        let blob = self.blob.take().expect("finish is called once").finish()?;
        let files = self.unpacker.take().map(|h| h.join());
        let mut installed = false;
        if let (true, Some(Ok(Ok((files, base)))), Some((tmp, _lock))) =
            (whole, files, self.tmp.take())
        {
            // A failed install leaves the layer to be unpacked later.
            installed = self
                .store
                .install_unpacked(&tmp, blob.digest(), Some(&files), base.as_ref())
                .is_ok();
            let _ = fs::remove_dir_all(&*tmp);
        }
        Ok((blob, installed))
    }
}

impl Write for UnpackingWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.blob.as_mut().expect("not finished").write(data)?;
        if self.tx.is_some() {
            self.buf.extend_from_slice(&data[..n]);
            if self.buf.len() >= CHUNK {
                self.send();
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.blob.as_mut().expect("not finished").flush()
    }
}

impl Drop for UnpackingWriter {
    fn drop(&mut self) {
        // Unfinished: the input stops without its end, so the unpack
        // fails; then its directory goes (an installed one was moved).
        self.tx = None;
        if let Some(h) = self.unpacker.take() {
            let _ = h.join();
        }
        if let Some((tmp, _lock)) = self.tmp.take() {
            let _ = fs::remove_dir_all(&*tmp);
        }
    }
}
