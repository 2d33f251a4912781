//! Layer tars: path hygiene, and the normalising copy that turns any tar
//! stream (plain, gzip, zstd, bzip2 or xz) into a clean layer blob in one pass.

use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::digest::Digest;
use crate::model::media::Compression;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("not a tar archive: {0}")]
    NotTar(String),
    #[error("tar archive is corrupt or truncated after {entries} entries: {reason}")]
    Corrupt { entries: u64, reason: String },
    #[error("the input is empty")]
    Empty,
    #[error("{kind} data is corrupt or truncated: {source}")]
    Decompress {
        kind: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("tar entry \"{entry}\": path escapes the root")]
    Escape { entry: String },
    #[error(
        "tar entry \"{entry}\": hard link to \"{target}\", which is not earlier in the archive"
    )]
    DanglingHardlink { entry: String, target: String },
    #[error("tar entry \"{entry}\": {reason}")]
    BadEntry { entry: String, reason: String },
    #[error(
        "the layer expands to more than {limit} bytes (the limit per layer; set {LIMIT_ENV} to change it)"
    )]
    TooLarge { limit: u64 },
    #[error("layer {layer}: its uncompressed content hashes to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    /// Any of the above, naming the layer (blob digest) it was found in.
    #[error("layer {layer}: {source}")]
    InLayer {
        layer: Digest,
        #[source]
        source: Box<LayerError>,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl LayerError {
    /// Ok when the layer `blob`'s uncompressed content hashed to the
    /// `claimed` diff ID, else the mismatch, naming all three.
    pub fn check_diff_id(
        blob: &Digest,
        claimed: &Digest,
        actual: &Digest,
    ) -> Result<(), LayerError> {
        if actual == claimed {
            return Ok(());
        }
        Err(LayerError::DiffIdMismatch {
            layer: blob.clone(),
            expected: claimed.clone(),
            actual: actual.clone(),
        })
    }

    /// This error, naming the layer it was found in (once).
    pub fn in_layer(self, layer: &Digest) -> LayerError {
        match self {
            e @ (LayerError::InLayer { .. } | LayerError::DiffIdMismatch { .. }) => e,
            e => LayerError::InLayer {
                layer: layer.clone(),
                source: Box::new(e),
            },
        }
    }
}

/// A tar name as shown in messages: UTF-8 where it is, `\xNN` for other
/// bytes and control characters, so one line shows the exact name.
pub fn show_name(raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() || c == '"' || c == '\\' {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

/// Cleans a tar entry name to a relative path inside the root: leading `/`
/// and `./` dropped, `.` and empty components removed, `..` resolved
/// lexically. `Ok(None)` is the root itself; escaping above it is an error.
pub fn clean_path(name: &str) -> Result<Option<PathBuf>, LayerError> {
    clean_path_bytes(name.as_bytes())
}

/// [`clean_path`] for a name as raw bytes (names need not be UTF-8; they are
/// kept byte for byte).
pub fn clean_path_bytes(name: &[u8]) -> Result<Option<PathBuf>, LayerError> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in Path::new(OsStr::from_bytes(name)).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(LayerError::Escape {
                        entry: show_name(name),
                    });
                }
            }
            Component::Normal(p) => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    Ok(Some(parts.iter().collect()))
}

pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// `.wh..wh.` names other than the opaque marker are aufs bookkeeping
/// (`.wh..wh.plnk`, `.wh..wh.aufs`); docker skips them, and so do we.
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";

/// What a layer entry's (cleaned) name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryName {
    /// An ordinary file, directory, link or node at this path.
    Path(PathBuf),
    /// `DIR/.wh.NAME`: NAME is deleted from DIR.
    Whiteout { dir: PathBuf, hidden: OsString },
    /// `DIR/.wh..wh..opq`: DIR hides everything below it in lower layers.
    Opaque { dir: PathBuf },
}

/// Classifies a raw entry name. `Ok(None)`: the root directory itself, or
/// aufs bookkeeping, which carries nothing. A whiteout names its target
/// like any other name: not empty, `.`, `..`, and no `/`.
pub fn classify_name(raw: &[u8]) -> Result<Option<EntryName>, LayerError> {
    let Some(path) = clean_path_bytes(raw)? else {
        return Ok(None);
    };
    let base = path
        .file_name()
        .expect("clean paths end in a name")
        .as_bytes();
    let dir = || path.parent().unwrap_or(Path::new("")).to_path_buf();
    if base == OPAQUE {
        return Ok(Some(EntryName::Opaque { dir: dir() }));
    }
    if base.starts_with(WHITEOUT_META_PREFIX) {
        return Ok(None);
    }
    if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Err(LayerError::BadEntry {
                entry: show_name(raw),
                reason: format!(
                    "a whiteout of \"{}\", which is not a file name",
                    show_name(hidden)
                ),
            });
        }
        return Ok(Some(EntryName::Whiteout {
            dir: dir(),
            hidden: OsStr::from_bytes(hidden).to_owned(),
        }));
    }
    Ok(Some(EntryName::Path(path)))
}

/// The environment variable that sets the largest layer accepted.
pub const LIMIT_ENV: &str = "KILN_MAX_LAYER_SIZE";
/// 64 GiB: larger than any real image layer (docker users meet 10-20 GB
/// ones), small enough that a decompression bomb stops before most disks
/// fill.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// The largest a layer may expand to (its uncompressed tar, and the sum of
/// its files' sizes, sparse files counted expanded): `KILN_MAX_LAYER_SIZE`
/// (bytes, or with a K, M, G or T suffix, powers of 1024), else
/// [`DEFAULT_MAX_LAYER_SIZE`].
pub fn max_layer_size() -> Result<u64, LayerError> {
    match std::env::var(LIMIT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAX_LAYER_SIZE),
        Ok(v) => parse_size(&v).ok_or_else(|| {
            LayerError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{LIMIT_ENV}={v:?}: expected a size such as 500M or 64G"),
            ))
        }),
        Err(e) => Err(LayerError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{LIMIT_ENV}: {e}"),
        ))),
    }
}

fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 10),
        (i, 'm' | 'M') => (&v[..i], 20),
        (i, 'g' | 'G') => (&v[..i], 30),
        (i, 't' | 'T') => (&v[..i], 40),
        _ => (v, 0),
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// A reader that fails once more than `limit` bytes have passed, so a
/// decompression bomb stops at the limit instead of filling the disk.
pub struct SizeLimit<R> {
    inner: R,
    left: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> SizeLimit<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        SizeLimit {
            inner,
            left: limit,
            limit,
            exceeded: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The error to report instead of whatever the reader's caller made of
    /// the failed read.
    pub fn exceeded(&self) -> Option<LayerError> {
        self.exceeded
            .then_some(LayerError::TooLarge { limit: self.limit })
    }
}

impl<R: Read> Read for SizeLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Reading one byte past the limit tells a stream of exactly
        // `limit` bytes from a longer one.
        let want = buf.len().min(self.left.saturating_add(1) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other(LayerError::TooLarge { limit: self.limit }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Linux's limits on a path and on one name in it.
const PATH_MAX: usize = 4096;
const NAME_MAX: usize = 255;

/// One entry that passed [`EntryCheck::check`].
#[derive(Debug)]
pub struct CheckedEntry {
    pub name: EntryName,
    pub kind: tar::EntryType,
    /// The name as shown in messages.
    pub shown: String,
    /// A hard link's target, cleaned.
    pub link_target: Option<PathBuf>,
}

/// The rules every layer entry meets, applied when a layer enters the
/// store (import, load, pull, commit) and again when one is unpacked:
/// names stay inside the root, whiteouts name a file, entry types are
/// ones a filesystem has, hard links point at earlier entries (when
/// `strict_links`), and the files add up to no more than the size limit.
pub struct EntryCheck {
    /// Every path this layer made so far, and whether it is a node that
    /// cannot hold children (a file, device or fifo).
    seen: std::collections::HashMap<PathBuf, bool>,
    strict_links: bool,
    data: u64,
    limit: u64,
}

impl EntryCheck {
    pub fn new(limit: u64, strict_links: bool) -> Self {
        EntryCheck {
            seen: Default::default(),
            strict_links,
            data: 0,
            limit,
        }
    }

    /// `Ok(None)`: the entry carries nothing (the root, a global header,
    /// aufs bookkeeping) and is skipped.
    pub fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
    ) -> Result<Option<CheckedEntry>, LayerError> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if matches!(kind, T::XGlobalHeader) {
            return Ok(None);
        }
        let raw = entry.path_bytes();
        let shown = show_name(&raw);
        let Some(name) = classify_name(&raw)? else {
            return Ok(None);
        };
        if !matches!(
            kind,
            T::Regular
                | T::Continuous
                | T::GNUSparse
                | T::Directory
                | T::Symlink
                | T::Link
                | T::Char
                | T::Block
                | T::Fifo
        ) {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("unsupported tar entry type {}", show_type(kind)),
            });
        }
        let (dir, full) = match &name {
            EntryName::Path(p) => (p.parent().unwrap_or(Path::new("")), p.clone()),
            EntryName::Whiteout { dir, hidden } => (dir.as_path(), dir.join(hidden)),
            EntryName::Opaque { dir } => (dir.as_path(), dir.join(OsStr::from_bytes(OPAQUE))),
        };
        // What no filesystem takes is refused here, naming the entry,
        // rather than failing half-way through an unpack.
        if full.as_os_str().len() >= PATH_MAX {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("the path is longer than {} bytes", PATH_MAX - 1),
            });
        }
        if full.iter().any(|c| c.len() > NAME_MAX) {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!("a name in the path is longer than {NAME_MAX} bytes"),
            });
        }
        if let Some(file) = dir
            .ancestors()
            .find(|a| self.seen.get(*a).copied().unwrap_or(false))
        {
            return Err(LayerError::BadEntry {
                entry: shown,
                reason: format!(
                    "it is inside \"{}\", which this layer made a file, not a directory",
                    show_name(file.as_os_str().as_bytes())
                ),
            });
        }
        if let EntryName::Whiteout { .. } = &name {
            self.seen.remove(&full);
        }
        let mut link_target = None;
        if let EntryName::Path(path) = &name {
            if kind == T::Link {
                let target_raw = entry.link_name_bytes().unwrap_or_default();
                let target = match classify_name(&target_raw)? {
                    Some(EntryName::Path(p)) => p,
                    None if clean_path_bytes(&target_raw)?.is_none() => {
                        return Err(LayerError::BadEntry {
                            entry: shown,
                            reason: "hard link to the root directory".into(),
                        })
                    }
                    _ => {
                        return Err(LayerError::BadEntry {
                            entry: shown,
                            reason: format!(
                                "hard link to the whiteout \"{}\"",
                                show_name(&target_raw)
                            ),
                        })
                    }
                };
                if self.strict_links && !self.seen.contains_key(&target) {
                    return Err(LayerError::DanglingHardlink {
                        entry: shown,
                        target: show_name(&target_raw),
                    });
                }
                link_target = Some(target);
            }
            if matches!(kind, T::Regular | T::Continuous | T::GNUSparse) {
                // For a sparse file this is its expanded size.
                self.data = self.data.saturating_add(entry.size());
                if self.data > self.limit {
                    return Err(LayerError::TooLarge { limit: self.limit });
                }
            }
            self.seen
                .insert(path.clone(), !matches!(kind, T::Directory | T::Symlink));
        }
        Ok(Some(CheckedEntry {
            name,
            kind,
            shown,
            link_target,
        }))
    }
}

/// A tar type byte, readably: `'V' (86)`.
pub fn show_type(kind: tar::EntryType) -> String {
    let b = kind.as_byte();
    if b.is_ascii_graphic() {
        format!("'{}' ({b})", b as char)
    } else {
        format!("{b}")
    }
}

/// Detects gzip, zstd, bzip2 or xz by magic bytes and returns a reader of
/// the plain tar.
pub fn decompressed<'a, R: Read + 'a>(input: R) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut br = BufReader::with_capacity(1 << 20, input);
    let head = br.fill_buf()?;
    if head.is_empty() {
        return Err(LayerError::Empty);
    }
    Ok(match sniff(head) {
        Sniffed::Plain => Box::new(br),
        Sniffed::Compressed(Compression::Gzip) => Box::new(Tagged {
            kind: "gzip",
            inner: flate2::bufread::MultiGzDecoder::new(br),
        }),
        Sniffed::Compressed(Compression::Zstd) => Box::new(Tagged {
            kind: "zstd",
            inner: zstd::Decoder::with_buffer(br)?,
        }),
        Sniffed::Compressed(Compression::None) => Box::new(br),
        Sniffed::Bzip2 => Box::new(Tagged {
            kind: "bzip2",
            inner: bzip2::bufread::MultiBzDecoder::new(br),
        }),
        Sniffed::Xz => Box::new(Tagged {
            kind: "xz",
            inner: liblzma::bufread::XzDecoder::new_multi_decoder(br),
        }),
    })
}

/// Marks errors of a decompressor so they are reported as corrupt input
/// rather than as a bad tar.
pub(crate) struct Tagged<R> {
    kind: &'static str,
    inner: R,
}

impl<R> Tagged<R> {
    pub(crate) fn new(kind: &'static str, inner: R) -> Self {
        Tagged { kind, inner }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
struct DecompressFault {
    kind: &'static str,
    message: String,
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                DecompressFault {
                    kind: self.kind,
                    message: e.to_string(),
                },
            )
        })
    }
}

/// The decompression fault inside an I/O error, if there is one.
fn decompress_fault(e: &io::Error) -> Option<LayerError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<DecompressFault>() {
            return Some(LayerError::Decompress {
                kind: f.kind,
                source: io::Error::new(io::ErrorKind::InvalidData, f.message.clone()),
            });
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            cur = io.get_ref().map(|r| r as _);
        } else {
            cur = err.source();
        }
    }
    None
}

/// Layers come plain, gzip or zstd; tarballs (import, ADD) may also be
/// bzip2 or xz, as docker accepts.
enum Sniffed {
    Plain,
    Compressed(Compression),
    Bzip2,
    Xz,
}

fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Compressed(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniffed::Compressed(Compression::Zstd)
    } else if head.starts_with(b"BZh") {
        Sniffed::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniffed::Xz
    } else {
        Sniffed::Plain
    }
}

/// Counts of what a normalising copy wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct TarStats {
    pub entries: u64,
    pub bytes: u64,
}

/// Copies a tar stream entry by entry into `out` with clean relative names
/// (kept byte for byte), whiteouts checked, hard links checked against
/// earlier entries, PAX xattrs kept, and global headers dropped. Errors name
/// the offending entry; the caller discards `out` on error.
pub fn normalize_tar<R: Read, W: Write>(input: R, out: W) -> Result<TarStats, LayerError> {
    let limit = max_layer_size()?;
    let mut input = SizeLimit::new(input, limit);
    let res = normalize_limited(&mut input, out, limit);
    match input.exceeded() {
        Some(e) => Err(e),
        None => res,
    }
}

fn normalize_limited<R: Read, W: Write>(
    input: R,
    out: W,
    limit: u64,
) -> Result<TarStats, LayerError> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut check = EntryCheck::new(limit, true);
    let mut stats = TarStats::default();
    let entries = archive.entries().map_err(|e| not_tar(e, stats))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_tar(e, stats))?;
        let Some(c) = check.check(&entry)? else {
            continue;
        };
        let raw_name = c.shown;
        let kind = c.kind;
        let mut header = copy_header(entry.header(), &raw_name)?;
        let path = match c.name {
            EntryName::Path(p) => p,
            // Whiteouts are written as docker writes them: empty files.
            EntryName::Whiteout { dir, hidden } => {
                let mut n = OsString::from(OsStr::from_bytes(WHITEOUT_PREFIX));
                n.push(&hidden);
                whiteout(&mut builder, &mut header, &dir.join(n))?;
                stats.entries += 1;
                continue;
            }
            EntryName::Opaque { dir } => {
                whiteout(
                    &mut builder,
                    &mut header,
                    &dir.join(OsStr::from_bytes(OPAQUE)),
                )?;
                stats.entries += 1;
                continue;
            }
        };
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions() {
            Ok(Some(exts)) => exts
                .filter_map(Result::ok)
                .filter_map(|e| {
                    let k = e.key().ok()?;
                    (k.starts_with("SCHILY.xattr."))
                        .then(|| (k.to_string(), e.value_bytes().to_vec()))
                })
                .collect(),
            _ => Vec::new(),
        };
        if !xattrs.is_empty() {
            builder
                .append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        match kind {
            tar::EntryType::Link => {
                let target = c.link_target.expect("checked hard links have a target");
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                header.set_size(0);
                builder.append_link(&mut header, &path, Path::new(OsStr::from_bytes(&target)))?;
            }
            tar::EntryType::Directory => {
                header.set_size(0);
                let mut name = path.as_os_str().to_owned();
                name.push("/");
                builder.append_data(&mut header, Path::new(&name), io::empty())?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                header.set_size(0);
                builder.append_data(&mut header, &path, io::empty())?;
            }
            _ => {
                // Regular, contiguous and sparse files (written expanded).
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.size());
                stats.bytes += entry.size();
                builder
                    .append_data(&mut header, &path, &mut entry)
                    .map_err(|e| truncated(e, &raw_name))?;
            }
        }
        stats.entries += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(stats)
}

fn whiteout<W: Write>(
    builder: &mut tar::Builder<W>,
    header: &mut tar::Header,
    name: &Path,
) -> Result<(), LayerError> {
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(0);
    builder.append_data(header, name, io::empty())?;
    Ok(())
}

fn copy_header(h: &tar::Header, name: &str) -> Result<tar::Header, LayerError> {
    let bad = |what: &str, e: io::Error| LayerError::BadEntry {
        entry: name.to_string(),
        reason: format!("bad {what}: {e}"),
    };
    let mut out = tar::Header::new_gnu();
    out.set_entry_type(h.entry_type());
    out.set_mode(h.mode().map_err(|e| bad("mode", e))? & 0o7777);
    out.set_uid(h.uid().map_err(|e| bad("uid", e))?);
    out.set_gid(h.gid().map_err(|e| bad("gid", e))?);
    out.set_mtime(h.mtime().map_err(|e| bad("mtime", e))?);
    if let Ok(Some(u)) = h.username() {
        let _ = out.set_username(u);
    }
    if let Ok(Some(g)) = h.groupname() {
        let _ = out.set_groupname(g);
    }
    if matches!(h.entry_type(), tar::EntryType::Char | tar::EntryType::Block) {
        out.set_device_major(h.device_major().ok().flatten().unwrap_or(0))?;
        out.set_device_minor(h.device_minor().ok().flatten().unwrap_or(0))?;
    }
    Ok(out)
}

pub(crate) fn not_tar(e: io::Error, stats: TarStats) -> LayerError {
    if let Some(fault) = decompress_fault(&e) {
        return fault;
    }
    if stats.entries == 0 {
        LayerError::NotTar("the data does not start with a valid tar header".into())
    } else {
        LayerError::Corrupt {
            entries: stats.entries,
            reason: one_line(&e.to_string()),
        }
    }
}

/// Control characters (a corrupt header's "name" may hold any byte) escaped.
fn one_line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

pub(crate) fn truncated(e: io::Error, entry: &str) -> LayerError {
    if let Some(fault) = decompress_fault(&e) {
        return fault;
    }
    LayerError::BadEntry {
        entry: entry.to_string(),
        reason: format!(
            "cannot read its data (corrupt or truncated input): {}",
            one_line(&e.to_string())
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_paths() {
        let c = |s: &str| {
            clean_path(s)
                .unwrap()
                .map(|p| p.to_string_lossy().into_owned())
        };
        assert_eq!(c("./a/b"), Some("a/b".into()));
        assert_eq!(c("/abs/x"), Some("abs/x".into()));
        assert_eq!(c("a/../b"), Some("b".into()));
        assert_eq!(c("./"), None);
        assert!(clean_path("../escape").is_err());
        assert!(clean_path("a/../../x").is_err());
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("64g"), Some(64 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(show_name(b"a\xffb\n\"c"), "a\\xffb\\n\\\"c");
        assert_eq!(show_type(tar::EntryType::new(b'V')), "'V' (86)");
    }

    #[test]
    fn whiteout_names() {
        let c = |s: &[u8]| classify_name(s).map_err(|e| e.to_string());
        assert!(c(b"a/.wh...").unwrap_err().contains("a whiteout of \"..\""));
        assert!(c(b".wh..").is_err());
        assert!(c(b"./.wh.").is_err());
        assert_eq!(
            c(b"/a/.wh.x").unwrap(),
            Some(EntryName::Whiteout {
                dir: "a".into(),
                hidden: "x".into()
            })
        );
        assert_eq!(
            c(b"a/.wh..wh..opq").unwrap(),
            Some(EntryName::Opaque { dir: "a".into() })
        );
        assert_eq!(c(b".wh..wh.plnk").unwrap(), None);
    }
}
