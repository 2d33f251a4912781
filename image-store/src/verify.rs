//! Checking layers that come from outside (pull, `oci:` directories,
//! archives) in the same pass that stores them.
//!
//! An image config's `rootfs.diff_ids` are only claims: an image that
//! claimed another image's diff ID would supply that image's files through
//! the unpack cache (`layers/<diff-id>`). So while a layer blob is copied
//! into the store, its bytes are also decompressed, hashed and read as a
//! tar whose every entry must pass [`EntryCheck`]; the caller compares the
//! resulting diff ID with the config before it names anything.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::PathBuf;

use crate::digest::{Digest, HashingReader};
use crate::layer::{max_layer_size, not_tar, EntryCheck, LayerError, SizeLimit, Tagged, TarStats};
use crate::model::media::{self, Compression};
use crate::model::Descriptor;
use crate::store::Store;
use crate::{ComposeError, StoreError};

/// Reads a plain (uncompressed) layer tar to its very end: every entry
/// checked, every byte hashed. Returns the diff ID.
pub fn check_plain<R: Read>(input: R) -> Result<Digest, LayerError> {
    let limit = max_layer_size()?;
    let mut limited = SizeLimit::new(HashingReader::new(input), limit);
    let res = check_entries(&mut limited, limit);
    if let Some(e) = limited.exceeded() {
        return Err(e);
    }
    res?;
    let (_, digest, _) = limited.into_inner().finish();
    Ok(digest)
}

fn check_entries<R: Read>(input: &mut R, limit: u64) -> Result<(), LayerError> {
    let mut stats = TarStats::default();
    {
        let mut archive = tar::Archive::new(&mut *input);
        let mut check = EntryCheck::new(limit, true);
        let entries = archive.entries().map_err(|e| not_tar(e, stats))?;
        for entry in entries {
            // Advancing skips (and so reads and hashes) the entry's data.
            let entry = entry.map_err(|e| not_tar(e, stats))?;
            check.check(&entry)?;
            stats.entries += 1;
        }
    }
    // Whatever follows the end-of-archive blocks is part of the diff ID.
    io::copy(input, &mut io::sink()).map_err(|e| not_tar(e, stats))?;
    Ok(())
}

/// Copies `raw` (a layer blob as stored, compressed as `compression` says)
/// into `sink` byte for byte, and checks the layer it holds. Reading
/// (`raw`) and writing (`sink`) failures come back as
/// [`CopyError::Io`], faults of the layer as [`CopyError::Layer`].
///
/// Two threads share the work: this one reads the blob, writes it and
/// decompresses it; another hashes and checks the plain tar. Inflating
/// and hashing each cost about as much as the other, so a pull or load
/// takes the longer of the two instead of their sum.
pub fn copy_checked<R: Read, W: Write>(
    raw: R,
    sink: W,
    compression: Compression,
) -> Result<Digest, CopyError> {
    let mut tee = Tee {
        inner: raw,
        sink,
        fault: None,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let mut chunks = Chunks::new(rx);
    let spares = chunks.spares(CHUNKS_IN_FLIGHT);
    std::thread::scope(|s| {
        let checker = s.spawn(move || check_plain(chunks));
        decompress_into(&mut tee, compression, &tx, &spares);
        drop(tx);
        // The rest of the blob is copied even when the layer failed: the
        // caller's digest check of the whole blob (a corrupt download)
        // comes first. The compressed stream may also go on after its
        // last frame.
        if tee.fault.is_none() {
            let _ = io::copy(&mut tee, &mut io::sink());
        }
        let res = checker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        if let Some(e) = tee.fault.take() {
            return Err(CopyError::Io(e));
        }
        res.map_err(CopyError::Layer)
    })
}

/// The plain layer tar inside `raw` (a blob compressed as `compression`
/// says), inflated on a thread of `scope` while the caller reads it: an
/// unpack then takes the longer of inflating and its own work (hashing,
/// checking and making the files) instead of their sum. A failure to
/// read or inflate comes back as the reader's error.
pub(crate) fn inflated<'scope, R: Read + Send + 'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    raw: R,
    compression: Compression,
) -> io::Result<Chunks> {
    let (tx, rx) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let mut chunks = Chunks::new(rx);
    let spares = chunks.spares(CHUNKS_IN_FLIGHT);
    std::thread::Builder::new()
        .name("layer-inflate".into())
        .spawn_scoped(scope, move || {
            let mut tee = Tee {
                inner: raw,
                sink: io::sink(),
                fault: None,
            };
            decompress_into(&mut tee, compression, &tx, &spares);
        })?;
    Ok(chunks)
}

/// Chunks between the two threads of [`copy_checked`]: enough to keep
/// both busy, few enough that memory stays bounded.
const CHUNKS_IN_FLIGHT: usize = 4;
const CHUNK: usize = 256 << 10;

/// Sends the plain layer read from `tee` as chunks, then an empty chunk at
/// its end, or the error that stopped it. Stops early when the checker
/// has hung up (it found a fault and needs no more).
fn decompress_into<R: Read, W: Write>(
    tee: &mut Tee<R, W>,
    compression: Compression,
    tx: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    spares: &std::sync::mpsc::Receiver<Vec<u8>>,
) {
    let mut plain: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(tee),
        Compression::Gzip => Box::new(Tagged::new(
            "gzip",
            flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(1 << 20, tee)),
        )),
        Compression::Zstd => match zstd::Decoder::new(tee) {
            Ok(d) => Box::new(Tagged::new("zstd", d)),
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        },
    };
    loop {
        let mut buf = spare_or_new(spares, CHUNK);
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let end = loop {
            match plain.read(&mut buf[filled..]) {
                Ok(0) => break Ok(true),
                Ok(n) => {
                    filled += n;
                    if filled == buf.len() {
                        break Ok(false);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        buf.truncate(filled);
        let sent = match end {
            Ok(at_end) => {
                let ok = buf.is_empty() || tx.send(Ok(buf)).is_ok();
                if at_end {
                    let _ = tx.send(Ok(Vec::new()));
                    return;
                }
                ok
            }
            Err(e) => {
                if !buf.is_empty() {
                    let _ = tx.send(Ok(buf));
                }
                let _ = tx.send(Err(e));
                return;
            }
        };
        if !sent {
            return;
        }
    }
}

/// The reading side of a channel of chunks (also [`crate::unpacking`]'s):
/// an empty chunk ends the stream, an error is returned as read, and a
/// sender gone without either is an error.
pub(crate) struct Chunks {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
    /// Where chunks read through go back to the sender (see [`Chunks::spares`]).
    back: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
}

impl Chunks {
    pub(crate) fn new(rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>) -> Chunks {
        Chunks {
            rx,
            cur: Vec::new(),
            pos: 0,
            done: false,
            back: None,
        }
    }

    /// The chunks this reader is done with, emptied, for the sender to
    /// fill again (up to `n` kept waiting), instead of a new 256 KB buffer
    /// per chunk: those came from fresh pages until glibc's mmap threshold
    /// rose past their size, and from wherever its heap had room after
    /// (an edit of the w1 bench's 18 MB layer: about 7,500 page faults for
    /// the whole build, 300 to 800 fewer with this).
    pub(crate) fn spares(&mut self, n: usize) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(n);
        self.back = Some(tx);
        rx
    }
}

/// A buffer for the next chunk: one given back, or a new one.
pub(crate) fn spare_or_new(spares: &std::sync::mpsc::Receiver<Vec<u8>>, cap: usize) -> Vec<u8> {
    spares
        .try_recv()
        .unwrap_or_else(|_| Vec::with_capacity(cap))
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur.len() {
                let n = buf.len().min(self.cur.len() - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.done = chunk.is_empty();
                    let mut used = std::mem::replace(&mut self.cur, chunk);
                    if let (Some(back), true) = (&self.back, used.capacity() > 0) {
                        used.clear();
                        let _ = back.try_send(used);
                    }
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                // The reader stopped without an end or an error: it failed
                // in a way its own result reports.
                Err(_) => return Err(io::Error::other("the layer reader stopped")),
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0}")]
    Io(io::Error),
    #[error(transparent)]
    Layer(LayerError),
}

/// Reads `inner`, writing every byte read into `sink`; a failure on either
/// side is kept in `fault` (the reader above sees only that the read failed).
struct Tee<R, W> {
    inner: R,
    sink: W,
    fault: Option<io::Error>,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.fault.is_some() {
            return Err(io::Error::other("the copy already failed"));
        }
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let msg = e.to_string();
                self.fault = Some(e);
                return Err(io::Error::other(msg));
            }
        };
        if let Err(e) = self.sink.write_all(&buf[..n]) {
            let msg = e.to_string();
            self.fault = Some(e);
            return Err(io::Error::other(msg));
        }
        Ok(n)
    }
}

impl Store {
    /// Streams a layer blob from outside into the store: its digest must
    /// be `desc.digest`, and the layer inside must pass every check and
    /// hash to `diff_id`, the image config's claim. Nothing is stored
    /// otherwise. Says whether the blob is new to the store.
    pub fn store_checked_layer<R: Read>(
        &self,
        raw: R,
        desc: &Descriptor,
        diff_id: &Digest,
    ) -> Result<bool, ComposeError> {
        let compression = media::layer_compression(&desc.media_type)
            .ok_or_else(|| StoreError::UnsupportedMediaType(desc.media_type.clone()))?;
        let mut w = self.blob_writer()?;
        let checked = copy_checked(raw, &mut w, compression);
        let actual = match checked {
            Ok(d) => d,
            Err(CopyError::Layer(e)) => return Err(e.in_layer(&desc.digest).into()),
            Err(CopyError::Io(e)) => {
                return Err(StoreError::io(self.blob_path(&desc.digest))(e).into())
            }
        };
        LayerError::check_diff_id(&desc.digest, diff_id, &actual)?;
        let (_, _, new) = w.commit_reporting(Some(&desc.digest))?;
        let _ = self.remember_diff_id(&desc.digest, diff_id);
        Ok(new)
    }

    /// As [`Store::store_checked_layer`], then also keeps the layer
    /// uncompressed, as a build keeps its own layers (its digest is its
    /// diff ID), with `desc` remembered as its compressed form. For layers
    /// a build takes from a registry cache: the image it makes is then
    /// the same, byte for byte, as on the machine that ran the step.
    pub fn store_layer_uncompressed<R: Read>(
        &self,
        raw: R,
        desc: &Descriptor,
        diff_id: &Digest,
    ) -> Result<(), ComposeError> {
        self.store_checked_layer(raw, desc, diff_id)?;
        if !self.has_blob(diff_id) {
            let src = self.open_blob(&desc.digest)?;
            let mut plain = crate::layer::decompressed(src)?;
            let mut w = self.blob_writer()?;
            io::copy(&mut plain, &mut w).map_err(StoreError::io(self.blob_path(diff_id)))?;
            w.commit(Some(diff_id))?;
        }
        let format = match media::layer_compression(&desc.media_type) {
            Some(Compression::Gzip) => Some(crate::compressed::LayerFormat::Gzip),
            Some(Compression::Zstd) => Some(crate::compressed::LayerFormat::Zstd),
            _ => None,
        };
        if let Some(f) = format {
            self.remember_compressed(diff_id, f, desc)?;
        }
        Ok(())
    }

    fn verified_path(&self, blob: &Digest) -> PathBuf {
        self.kiln_dir().join("diffids").join(blob.hex())
    }

    /// Remembers that layer blob `blob` holds a checked layer with diff ID
    /// `diff_id`. A fact about content, so it never goes stale.
    pub(crate) fn remember_diff_id(&self, blob: &Digest, diff_id: &Digest) -> io::Result<()> {
        let p = self.verified_path(blob);
        fs::create_dir_all(p.parent().expect("has a parent"))?;
        crate::fsutil::write_atomic(&p, diff_id.to_string().as_bytes())
    }

    /// Checks a layer blob already in the store against the diff ID an
    /// image config claims for it (reading it once, unless it was checked
    /// before).
    pub fn check_stored_layer(
        &self,
        blob: &Digest,
        compression: Compression,
        diff_id: &Digest,
    ) -> Result<(), ComposeError> {
        // An uncompressed blob was hashed on its way into the store, and
        // its entries checked there (import, commit, load, pull).
        if compression == Compression::None && blob == diff_id {
            return Ok(());
        }
        if let Ok(known) = fs::read_to_string(self.verified_path(blob)) {
            if known.trim() == diff_id.to_string() {
                return Ok(());
            }
        }
        let f = self.open_blob(blob)?;
        let actual = match copy_checked(f, io::sink(), compression) {
            Ok(d) => d,
            Err(CopyError::Layer(e)) => return Err(e.in_layer(blob).into()),
            Err(CopyError::Io(e)) => return Err(StoreError::io(self.blob_path(blob))(e).into()),
        };
        LayerError::check_diff_id(blob, diff_id, &actual)?;
        let _ = self.remember_diff_id(blob, diff_id);
        Ok(())
    }
}
