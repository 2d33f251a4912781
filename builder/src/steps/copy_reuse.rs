//! The layer a COPY or ADD step made the last time it ran, read in step
//! with the entries of its new layer: a small file whose name the old tar
//! holds, with bytes whose sha256 is the one the plan has for the file now,
//! takes its data from there. An edit of one file among 100k then reads
//! one blob front to back instead of opening every file of the context
//! again.
//!
//! Nothing is taken from the old blob but bytes whose sha256 is the plan's
//! (the digest the step's key is made of), so the new layer is byte for
//! byte the one reading the files gives. The store's record of the old
//! layer's files ([`LayerFiles`], made by the unpack that hashed them)
//! says which digest each file's bytes have; the bytes of a file it does
//! not vouch for are hashed here. A damaged, missing or foreign blob only
//! means the files are read: any read or format error ends the reuse,
//! never the build.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use image_store::layer_files::LayerFiles;
use sha2::{Digest as _, Sha256};

use crate::context::tree_order;

/// Bytes the old blob is read in at a time.
const READ_BUF: usize = 1 << 20;
/// A GNU long name longer than this is not one the builder wrote.
const MAX_NAME: u64 = 64 * 1024;

/// A cursor over the previous layer's tar.
pub(super) struct PreviousLayer {
    r: BufReader<File>,
    /// Regular files up to this size have their data read (the files the
    /// tar writer reads ahead); larger ones are skipped.
    max_data: u64,
    /// The entry under the cursor, if read and not yet passed.
    cur: Option<Old>,
    /// The end of the tar, or a read or format error.
    done: bool,
    /// The store's record of the old layer's files, read when a file is
    /// first asked for that is worth it ([`RECORD_FROM`]).
    files: Record,
}

/// Reads the store's record of the old layer's files, if it has one.
pub type LoadRecord = Box<dyn FnOnce() -> Option<LayerFiles> + Send>;

enum Record {
    Unread(LoadRecord),
    Read(Option<LayerFiles>),
}

/// Files smaller than this are hashed rather than looked up in the record:
/// hashing a block or a few costs about what a lookup does, and a context
/// of 100k tiny files is better off without reading a record of 100k
/// entries first.
const RECORD_FROM: u64 = 1024;

struct Old {
    /// The entry's name without a trailing `/`; `None` when a pax header
    /// may have renamed it (the builder writes none).
    name: Option<Vec<u8>>,
    /// The data of a small regular file.
    data: Option<Vec<u8>>,
}

impl PreviousLayer {
    /// The uncompressed layer tar at `path`, and the store's record of its
    /// files; `None` when it cannot be opened.
    pub(super) fn open(path: &Path, max_data: u64, files: LoadRecord) -> Option<PreviousLayer> {
        let f = File::open(path).ok()?;
        Some(PreviousLayer {
            r: BufReader::with_capacity(READ_BUF, f),
            max_data,
            cur: None,
            done: false,
            files: Record::Unread(files),
        })
    }

    /// The data the old layer has for the regular file `name` when it is
    /// `size` bytes whose sha256 is `sha`. Names are asked for in the
    /// order of the old tar (depth first, siblings sorted by name, as a
    /// context walk gives them); entries before `name` are passed over, so
    /// a name asked for out of that order is just not found.
    pub(super) fn take(&mut self, name: &[u8], size: u64, sha: &[u8; 32]) -> Option<Vec<u8>> {
        loop {
            let Some(cur) = &self.cur else {
                if self.done {
                    return None;
                }
                self.cur = self.advance();
                continue;
            };
            let Some(cur_name) = &cur.name else {
                self.cur = None;
                continue;
            };
            match tree_order(cur_name, name) {
                Ordering::Less => self.cur = None,
                Ordering::Greater => return None,
                Ordering::Equal => {
                    let data = self.cur.take().and_then(|o| o.data)?;
                    if data.len() as u64 != size {
                        return None;
                    }
                    let recorded = (size >= RECORD_FROM)
                        .then(|| self.record().and_then(|f| f.get(name)))
                        .flatten();
                    let same = match recorded {
                        Some(f) if f.size == size && f.sha == *sha => true,
                        _ => Sha256::digest(&data)[..] == sha[..],
                    };
                    return same.then_some(data);
                }
            }
        }
    }

    /// The record, read on first use.
    fn record(&mut self) -> Option<&LayerFiles> {
        if let Record::Unread(_) = self.files {
            if let Record::Unread(load) = std::mem::replace(&mut self.files, Record::Read(None)) {
                self.files = Record::Read(load());
            }
        }
        match &self.files {
            Record::Read(f) => f.as_ref(),
            Record::Unread(_) => None,
        }
    }

    /// The next entry; `None` (and done) at the end or on any error.
    fn advance(&mut self) -> Option<Old> {
        match self.read_entry() {
            Ok(Some(e)) => Some(e),
            Ok(None) | Err(_) => {
                self.done = true;
                None
            }
        }
    }

    fn read_entry(&mut self) -> io::Result<Option<Old>> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut renamed = false;
        loop {
            let mut block = [0u8; 512];
            self.r.read_exact(&mut block)?;
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let h = tar::Header::from_byte_slice(&block);
            let size = h.entry_size()?;
            let padded = size
                .checked_next_multiple_of(512)
                .ok_or_else(|| io::Error::other("entry size out of range"))?;
            match h.entry_type() {
                tar::EntryType::GNULongName => {
                    if size > MAX_NAME {
                        return Err(io::Error::other("long name too long"));
                    }
                    let mut data = vec![0u8; padded as usize];
                    self.r.read_exact(&mut data)?;
                    data.truncate(size as usize);
                    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
                    data.truncate(end);
                    long_name = Some(data);
                    continue;
                }
                tar::EntryType::XHeader | tar::EntryType::XGlobalHeader => {
                    renamed = true;
                    self.skip(padded)?;
                    continue;
                }
                tar::EntryType::GNULongLink => {
                    self.skip(padded)?;
                    continue;
                }
                _ => {}
            }
            let mut name = long_name.unwrap_or_else(|| h.path_bytes().into_owned());
            while name.last() == Some(&b'/') {
                name.pop();
            }
            let small_file = matches!(
                h.entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) && size <= self.max_data;
            let data = if small_file {
                let mut data = vec![0u8; size as usize];
                self.r.read_exact(&mut data)?;
                self.skip(padded - size)?;
                Some(data)
            } else {
                self.skip(padded)?;
                None
            };
            return Ok(Some(Old {
                name: (!renamed).then_some(name),
                data,
            }));
        }
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let n = i64::try_from(n).map_err(|_| io::Error::other("entry too large"))?;
        self.r.seek_relative(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            if let Some(dir) = name.strip_suffix('/') {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                b.append_data(&mut h, format!("{dir}/"), io::empty())
                    .unwrap();
            } else {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, name, *data).unwrap();
            }
        }
        b.into_inner().unwrap()
    }

    fn sha(d: &[u8]) -> [u8; 32] {
        Sha256::digest(d).into()
    }

    #[test]
    fn gives_matching_data_in_order_and_nothing_else() {
        let long = format!("d/{}", "n".repeat(150));
        let big = vec![7u8; 5000];
        let tar = tar_of(&[
            ("d/", b""),
            ("d/a", b"alpha"),
            ("d/b", b"beta"),
            ("d/big", &big),
            ("d/c", b"gamma"),
            (&long, b"long"),
            ("d/sub/", b""),
            ("d/sub/e", b"eps"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("layer");
        std::fs::write(&p, &tar).unwrap();
        let mut prev = PreviousLayer::open(&p, 4096, Box::new(|| None)).unwrap();
        assert_eq!(prev.take(b"d/a", 5, &sha(b"alpha")).unwrap(), b"alpha");
        // Other content (the file was edited): not taken.
        assert!(prev.take(b"d/b", 4, &sha(b"BETA")).is_none());
        // Too large to have been read.
        assert!(prev.take(b"d/big", 5000, &sha(&big)).is_none());
        // A name the old layer lacks, then one it has.
        assert!(prev.take(b"d/bb", 3, &sha(b"new")).is_none());
        assert_eq!(prev.take(b"d/c", 5, &sha(b"gamma")).unwrap(), b"gamma");
        assert_eq!(
            prev.take(long.as_bytes(), 4, &sha(b"long")).unwrap(),
            b"long"
        );
        // Out of order: already passed.
        assert!(prev.take(b"d/a", 5, &sha(b"alpha")).is_none());
        assert_eq!(prev.take(b"d/sub/e", 3, &sha(b"eps")).unwrap(), b"eps");
        assert!(prev.take(b"e", 1, &sha(b"x")).is_none());

        // A cut or damaged blob gives what it can, then nothing.
        std::fs::write(&p, &tar[..1536]).unwrap();
        let mut prev = PreviousLayer::open(&p, 4096, Box::new(|| None)).unwrap();
        assert_eq!(prev.take(b"d/a", 5, &sha(b"alpha")).unwrap(), b"alpha");
        assert!(prev.take(b"d/c", 5, &sha(b"gamma")).is_none());
        std::fs::write(&p, vec![0xffu8; 4096]).unwrap();
        let mut prev = PreviousLayer::open(&p, 4096, Box::new(|| None)).unwrap();
        assert!(prev.take(b"d/a", 5, &sha(b"alpha")).is_none());
    }

    /// A file the store's record of the old layer vouches for (same size,
    /// the plan's sha256) is taken without hashing its bytes; one it has
    /// other facts for, or none, or one too small to be worth a lookup,
    /// is hashed.
    #[test]
    fn the_layer_record_spares_hashing_what_it_vouches_for() {
        use image_store::layer_files::FileFacts;
        let (a, upper_a) = (vec![b'a'; 1500], vec![b'A'; 1500]);
        let (b, c) = (vec![b'b'; 2000], vec![b'c'; 3000]);
        let tar = tar_of(&[
            ("d/", b""),
            ("d/a", &a),
            ("d/b", &b),
            ("d/c", &c),
            ("d/t", b"tiny"),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("layer");
        std::fs::write(&p, &tar).unwrap();
        let facts = |size, sha| FileFacts {
            size,
            mtime: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            sha,
        };
        let mut files = LayerFiles::default();
        // The record's word is what counts for "d/a": a record that said
        // so of other bytes would have them taken (the store's records are
        // as trusted as its blob names).
        files.insert(b"d/a", facts(1500, sha(&upper_a)));
        // A stale digest for "d/b": its bytes are hashed, and match.
        files.insert(b"d/b", facts(2000, sha(b"old b")));
        // Too small to look up: hashed, whatever the record says.
        files.insert(b"d/t", facts(4, sha(b"TINY")));
        let mut prev = PreviousLayer::open(&p, 4096, Box::new(move || Some(files))).unwrap();
        assert_eq!(prev.take(b"d/a", 1500, &sha(&upper_a)).unwrap(), a);
        assert_eq!(prev.take(b"d/b", 2000, &sha(&b)).unwrap(), b);
        // No record for "d/c": hashed, and its edit is seen.
        assert!(prev.take(b"d/c", 3000, &sha(&[b'C'; 3000])).is_none());
        assert!(prev.take(b"d/t", 4, &sha(b"TINY")).is_none());
    }
}
