//! Layer tars: path hygiene, and the normalising copy that turns any tar
//! stream (plain, gzip, zstd, bzip2 or xz) into a clean layer blob in one pass.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

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
    #[error("tar entry {entry:?}: path escapes the root")]
    Escape { entry: String },
    #[error("tar entry {entry:?}: hard link to {target:?}, which is not earlier in the archive")]
    DanglingHardlink { entry: String, target: String },
    #[error("tar entry {entry:?}: {reason}")]
    BadEntry { entry: String, reason: String },
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Cleans a tar entry name to a relative path inside the root: leading `/`
/// and `./` dropped, `.` and empty components removed, `..` resolved
/// lexically. `Ok(None)` is the root itself; escaping above it is an error.
pub fn clean_path(name: &str) -> Result<Option<PathBuf>, LayerError> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(LayerError::Escape {
                        entry: name.to_string(),
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
struct Tagged<R> {
    kind: &'static str,
    inner: R,
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

/// Copies a tar stream entry by entry into `out` with clean relative names,
/// hard links checked against earlier entries, PAX xattrs kept, and global
/// headers dropped. Errors name the offending entry; the caller discards
/// `out` on error.
pub fn normalize_tar<R: Read, W: Write>(input: R, out: W) -> Result<TarStats, LayerError> {
    let mut archive = tar::Archive::new(input);
    let mut builder = tar::Builder::new(out);
    builder.mode(tar::HeaderMode::Complete);
    let mut seen = std::collections::HashSet::new();
    let mut stats = TarStats::default();
    let entries = archive.entries().map_err(|e| not_tar(e, stats))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| not_tar(e, stats))?;
        let kind = entry.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader) {
            continue;
        }
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(path) = clean_path(&raw_name)? else {
            continue; // the root directory entry itself
        };
        let mut header = copy_header(entry.header(), &raw_name)?;
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
                let target_raw = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let target = clean_path(&target_raw)?.ok_or_else(|| LayerError::BadEntry {
                    entry: raw_name.clone(),
                    reason: "hard link to the root directory".into(),
                })?;
                if !seen.contains(&target) {
                    return Err(LayerError::DanglingHardlink {
                        entry: raw_name,
                        target: target_raw,
                    });
                }
                header.set_size(0);
                builder.append_link(&mut header, &path, &target)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                header.set_size(0);
                builder.append_link(&mut header, &path, Path::new(&target))?;
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
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(entry.size());
                stats.bytes += entry.size();
                builder
                    .append_data(&mut header, &path, &mut entry)
                    .map_err(|e| truncated(e, &raw_name))?;
            }
            other => {
                return Err(LayerError::BadEntry {
                    entry: raw_name,
                    reason: format!("unsupported tar entry type {other:?}"),
                })
            }
        }
        seen.insert(path);
        stats.entries += 1;
    }
    builder.into_inner()?.flush()?;
    Ok(stats)
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

fn not_tar(e: io::Error, stats: TarStats) -> LayerError {
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

fn truncated(e: io::Error, entry: &str) -> LayerError {
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
}
