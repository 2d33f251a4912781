//! The normalising copy that turns any tar stream into a clean layer blob
//! in one pass, and the errors a broken stream is reported as.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::decompress::decompress_fault;
use super::entry_check::EntryCheck;
use super::names::{EntryName, OPAQUE, WHITEOUT_PREFIX};
use super::size_limit::{max_layer_size, SizeLimit};
use super::LayerError;

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
        let raw_name = c.shown();
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
