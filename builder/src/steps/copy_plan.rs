//! COPY and ADD planning: which entries the layer will hold (from the
//! context, a stage or image view, a download or a checkout; written by
//! `copy_layer`), and a key that covers names, modes, ownership and
//! bytes — not mtimes.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use dockerfile_parser::instructions::{Copy, Source};

use super::lower::Lowers;
use crate::cache::{KeyHasher, StatIndex};
use crate::context::{BuildContext, ContextError, SourceEntry};
use crate::dockerignore::Matcher;
use crate::error::BuildError;

use super::copy_layer::{is_archive, Kind, Planned};
use super::copy_remote::{fetch_url, git_source, plan_git, url_basename};

/// Where COPY reads from.
pub struct SourceRoot<'a> {
    pub ctx: &'a BuildContext,
    /// Hash file contents through this index (the build context); `None`
    /// for a stage or image, whose key already covers its content.
    pub index: Option<&'a StatIndex>,
    /// (path, content hash) of every context file read, to explain a miss.
    pub inputs: Vec<(String, String)>,
    /// `--from` value, when the source is a stage or image.
    pub from: Option<String>,
}

pub struct CopyParams<'a> {
    pub copy: &'a Copy,
    pub is_add: bool,
    pub workdir: &'a str,
    pub chown: Option<(u64, u64)>,
    pub chmod: Option<u32>,
    pub now: u64,
    /// Where ADD puts downloads.
    pub scratch: &'a Path,
}

/// Plans the entries and feeds everything that identifies them into `key`.
pub fn plan(
    p: &CopyParams,
    root: &mut SourceRoot,
    lowers: &Lowers,
    key: &mut KeyHasher,
) -> Result<Vec<Planned>, BuildError> {
    let c = p.copy;
    let raw_dest = if c.dest.starts_with('/') {
        c.dest.clone()
    } else {
        format!("{}/{}", p.workdir.trim_end_matches('/'), c.dest)
    };
    // Symlinks on the way are followed inside the image (BuildKit): a
    // layer must not replace `/link -> /real/dir` with a directory.
    let dest_abs = lowers.resolve(&crate::config::clean_abs(&raw_dest));
    let dest_rel = dest_abs.trim_start_matches('/').to_string();
    let wildcard = c
        .sources
        .iter()
        .any(|s| matches!(s, Source::Path(p) if p.contains(['*', '?', '['])));
    let dest_is_dir = raw_dest.ends_with('/')
        || c.dest == "."
        || lowers.stat(&dest_rel).is_some_and(|m| m.is_dir());
    if (c.sources.len() > 1 || wildcard) && !dest_is_dir && !raw_dest.ends_with('/') {
        return Err(BuildError::Invalid(
            "When using COPY with more than one source file, the destination must be a directory and end with a /".into(),
        ));
    }
    let excludes = Matcher::new(&c.exclude).map_err(|e| BuildError::Invalid(e.to_string()))?;
    if p.is_add {
        if let Some((url, g)) = git_source(c)? {
            return plan_git(p, url, &g, &dest_abs, lowers, key);
        }
    }

    let mut out = Vec::new();
    // (device, inode) of a multiply linked file → where it was planned.
    let mut links: std::collections::HashMap<(u64, u64), PathBuf> = Default::default();
    // Ancestors of the destination: kept as the image has them, or created
    // 0755 root-owned.
    let mut ancestors: Vec<&str> = Vec::new();
    let parts: Vec<&str> = dest_rel.split('/').filter(|s| !s.is_empty()).collect();
    let dir_depth = if dest_is_dir {
        parts.len()
    } else {
        parts.len().saturating_sub(1)
    };
    for i in 1..=dir_depth {
        ancestors.push(&dest_rel[..parts[..i].iter().map(|s| s.len() + 1).sum::<usize>() - 1]);
    }
    for a in ancestors {
        out.push(dir_entry(a, lowers, p));
    }

    // The file's sha256 goes into the key, and with the planned entry
    // (the writer may take the bytes from the step's previous layer).
    // `read`: the walk hashed it already, right after `md`'s stat.
    let hashed = |rel: &Path,
                  abs: &Path,
                  md: &fs::Metadata,
                  read: Option<crate::cache::stat_index::Hashed>,
                  key: &mut KeyHasher,
                  root: &mut SourceRoot|
     -> Result<Option<[u8; 32]>, BuildError> {
        let Some(idx) = root.index else {
            return Ok(None);
        };
        let sha = idx
            .digest_read(
                rel.as_os_str().as_bytes(),
                abs,
                &crate::cache::FileStat::from(md),
                read,
            )
            .map_err(|e| BuildError::Io(abs.to_path_buf(), e))?;
        let mut hex = [0u8; 64];
        hex::encode_to_slice(sha, &mut hex).expect("64 hex digits");
        key.part("sha", &hex);
        Ok(Some(sha))
    };

    // A plan that will hash every file it walks has the walk's workers
    // hash the small ones ahead of it. Decided per plan: once one COPY of
    // a first build has recorded the files it hashed, the next finds them
    // in the index and would hash them ahead for nothing.
    if let Some(idx) = root.index {
        root.ctx.hash_files_ahead(idx.is_empty());
    }
    // The last owner keyed: (uid, gid), "uid:gid" and its length.
    let mut owner = ((u64::MAX, u64::MAX), [0u8; 41], 0);
    for src in &c.sources {
        match src {
            Source::Heredoc { name, content, .. } => {
                let target = if dest_is_dir {
                    join(&dest_rel, name)
                } else {
                    dest_rel.clone()
                };
                key.part("heredoc", target.as_bytes())
                    .part("content", content.as_bytes());
                out.push(Planned {
                    dest: target.into(),
                    kind: Kind::Inline(content.clone().into_bytes()),
                    mode: p.chmod.unwrap_or(0o644),
                    uid: p.chown.map_or(0, |c| c.0),
                    gid: p.chown.map_or(0, |c| c.1),
                    mtime: p.now,
                });
            }
            Source::Path(s)
                if p.is_add && (s.starts_with("http://") || s.starts_with("https://")) =>
            {
                let (file, sha) = fetch_url(s, c.checksum.as_deref(), p.scratch)?;
                let target = if dest_is_dir {
                    join(&dest_rel, &url_basename(s))
                } else {
                    dest_rel.clone()
                };
                key.part("url", s.as_bytes())
                    .part("sha", sha.as_bytes())
                    .part("dest", target.as_bytes());
                let size = fs::metadata(&file)
                    .map_err(|e| BuildError::Io(file.clone(), e))?
                    .len();
                out.push(Planned {
                    dest: target.into(),
                    kind: Kind::File {
                        src: file,
                        size,
                        sha: None,
                    },
                    // Docker gives downloads 0600 unless --chmod says otherwise.
                    mode: p.chmod.unwrap_or(0o600),
                    uid: p.chown.map_or(0, |c| c.0),
                    gid: p.chown.map_or(0, |c| c.1),
                    mtime: p.now,
                });
            }
            Source::Path(s) => {
                // The whole context (`.`): its contents, as a directory.
                let whole = s.split('/').all(|c| c.is_empty() || c == "." || c == "..");
                if whole {
                    dest_dir(&mut out, &dest_rel, lowers, p);
                }
                let entries: Box<dyn Iterator<Item = Result<SourceEntry, ContextError>>> = if whole
                {
                    Box::new(root.ctx.walk().map(|r| {
                        r.map(|entry| SourceEntry {
                            source: PathBuf::new(),
                            entry,
                        })
                    }))
                } else {
                    Box::new(
                        root.ctx
                            .source_entries(s)
                            .map_err(|e| context_err(e, s, root.from.as_deref()))?,
                    )
                };
                for se in entries {
                    let se = se.map_err(|e| context_err(e, s, root.from.as_deref()))?;
                    let under = se
                        .entry
                        .path
                        .strip_prefix(&se.source)
                        .unwrap_or(Path::new(""));
                    let md = &se.entry.metadata;
                    let is_root = under.as_os_str().is_empty();
                    if !is_root
                        && !excludes.is_empty()
                        && excludes
                            .matches_or_parent_matches(under.as_os_str().as_encoded_bytes())
                            .unwrap_or(false)
                    {
                        continue;
                    }
                    // COPY --parents: the source's own path (after a `/./`
                    // pivot) is kept under the destination, its directories
                    // copied like the source's.
                    let kept = c.parents.then(|| parents_kept(s, &se.source));
                    if let (Some(kept), true) = (&kept, is_root) {
                        let norm: PathBuf = se
                            .source
                            .components()
                            .filter(|c| matches!(c, std::path::Component::Normal(_)))
                            .collect();
                        let n = norm.components().count();
                        let k = kept.components().count();
                        let dirs = if md.is_dir() { k } else { k.saturating_sub(1) };
                        for i in (n - k + 1)..=(n - k + dirs) {
                            let src: PathBuf = norm.components().take(i).collect();
                            let rel: PathBuf =
                                norm.components().skip(n - k).take(i - (n - k)).collect();
                            let dest = join_os(&dest_rel, &rel);
                            if out.iter().any(|e| e.dest == dest) {
                                continue;
                            }
                            let abs = root.ctx.absolute(&src);
                            let Ok(dm) = fs::symlink_metadata(&abs) else {
                                continue;
                            };
                            let (uid, gid) = p.chown.unwrap_or(if root.from.is_some() {
                                (dm.uid() as u64, dm.gid() as u64)
                            } else {
                                (0, 0)
                            });
                            key.part("parent", dest.as_os_str().as_bytes());
                            out.push(Planned {
                                dest,
                                kind: Kind::Dir,
                                mode: p.chmod.unwrap_or(dm.mode() & 0o7777),
                                uid,
                                gid,
                                mtime: dm.mtime().max(0) as u64,
                            });
                        }
                        if md.is_dir() {
                            continue;
                        }
                    }
                    let target = if let Some(kept) = &kept {
                        join_os(
                            &dest_rel,
                            &Path::new(kept)
                                .join(under)
                                .components()
                                .collect::<PathBuf>(),
                        )
                    } else if is_root && !md.is_dir() {
                        if dest_is_dir {
                            let base = se.source.file_name().unwrap_or_default();
                            join_os(&dest_rel, Path::new(base))
                        } else {
                            PathBuf::from(&dest_rel)
                        }
                    } else if is_root {
                        // A directory's contents go into the destination.
                        dest_dir(&mut out, &dest_rel, lowers, p);
                        continue;
                    } else {
                        join_os(&dest_rel, under)
                    };
                    let mut abs = root.ctx.absolute(&se.entry.path);
                    // A source named directly that is a symlink is followed
                    // (inside the source root), as BuildKit does.
                    let followed = if is_root && md.file_type().is_symlink() {
                        follow_in(&root.ctx.absolute(Path::new("")), &se.entry.path)
                    } else {
                        None
                    };
                    let md = match &followed {
                        Some((p, m)) => {
                            abs = p.clone();
                            m
                        }
                        None => md,
                    };
                    let ft = md.file_type();
                    let mode = p.chmod.unwrap_or(md.mode() & 0o7777);
                    // Files from another stage or image keep their owner.
                    let (uid, gid) = p.chown.unwrap_or(if root.from.is_some() {
                        (md.uid() as u64, md.gid() as u64)
                    } else {
                        (0, 0)
                    });
                    let kind = if ft.is_dir() {
                        Kind::Dir
                    } else if ft.is_symlink() {
                        Kind::Symlink(
                            fs::read_link(&abs).map_err(|e| BuildError::Io(abs.clone(), e))?,
                        )
                    } else if ft.is_file() {
                        let rel = &se.entry.path;
                        let sha = if followed.is_some() {
                            // The index knows the link, not its target.
                            let sha = crate::cache::hash_file(&abs)
                                .map_err(|e| BuildError::Io(abs.clone(), e))?;
                            key.part("followed", sha.as_bytes());
                            None
                        } else {
                            hashed(rel, &abs, md, se.entry.hashed, key, root)?
                        };
                        if p.is_add && is_root && p.copy.unpack != Some(false) && is_archive(&abs) {
                            // Extracted into the destination directory.
                            out.push(dir_entry(&dest_rel, lowers, p));
                            key.part("archive-into", dest_rel.as_bytes());
                            out.push(Planned {
                                dest: PathBuf::from(&dest_rel),
                                kind: Kind::Archive(abs.clone()),
                                mode: 0,
                                uid: 0,
                                gid: 0,
                                mtime: 0,
                            });
                            continue;
                        } else {
                            let inode = (md.dev(), md.ino());
                            // Only multiply linked files are looked up.
                            let linked = md.nlink() > 1 && followed.is_none();
                            match linked.then(|| links.get(&inode)).flatten() {
                                Some(first) => Kind::HardLink(first.clone()),
                                None => {
                                    if linked {
                                        links.insert(inode, target.clone());
                                    }
                                    Kind::File {
                                        src: std::mem::take(&mut abs),
                                        size: md.len(),
                                        sha,
                                    }
                                }
                            }
                        }
                    } else if ft.is_char_device() && md.rdev() == 0 {
                        continue; // an overlay whiteout seen in a stage view
                    } else {
                        continue; // sockets, fifos and devices are not copied
                    };
                    // Formatted once per owner (most files share one).
                    if owner.0 != (uid, gid) {
                        use std::io::Write;
                        let mut text = [0u8; 41];
                        let mut w = &mut text[..];
                        let _ = write!(w, "{uid}:{gid}");
                        let len = 41 - w.len();
                        owner = ((uid, gid), text, len);
                    }
                    key.part("dest", target.as_os_str().as_bytes())
                        .part("mode", &mode.to_le_bytes())
                        .part("owner", &owner.1[..owner.2]);
                    match &kind {
                        Kind::Symlink(t) => {
                            key.part("link", t.as_os_str().as_encoded_bytes());
                        }
                        Kind::Dir => {
                            key.part("dir", b"");
                        }
                        Kind::HardLink(t) => {
                            key.part("hardlink", t.as_os_str().as_bytes());
                        }
                        _ => {}
                    }
                    out.push(Planned {
                        dest: target,
                        kind,
                        mode,
                        uid,
                        gid,
                        mtime: md.mtime().max(0) as u64,
                    });
                }
            }
        }
    }
    key.part("copy-dest", dest_abs.as_bytes());
    // Held while the layer is written: up to half of its doubled
    // capacity is unused (4 MB of a 100k-file COPY).
    out.shrink_to_fit();
    Ok(out)
}

fn dir_entry(rel: &str, lowers: &Lowers, p: &CopyParams) -> Planned {
    match lowers.stat(rel) {
        Some(m) if m.is_dir() => Planned {
            dest: rel.into(),
            kind: Kind::Dir,
            mode: m.mode() & 0o7777,
            uid: m.uid() as u64,
            gid: m.gid() as u64,
            mtime: m.mtime().max(0) as u64,
        },
        _ => Planned {
            dest: rel.into(),
            kind: Kind::Dir,
            mode: 0o755,
            uid: p.chown.map_or(0, |c| c.0),
            gid: p.chown.map_or(0, |c| c.1),
            mtime: p.now,
        },
    }
}

/// `COPY --parents`: the part of a matched source path kept under the
/// destination: all of it, or what follows a `/./` pivot in the pattern.
fn parents_kept(pattern: &str, source: &Path) -> PathBuf {
    let skip = match pattern.find("/./") {
        Some(i) => Path::new(&pattern[..i])
            .components()
            .filter(|c| matches!(c, std::path::Component::Normal(_)))
            .count(),
        None => 0,
    };
    source
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .skip(skip)
        .collect()
}

/// The destination a directory's contents go to: when the image lacks it,
/// made 0755 and owned by `--chown` (else root), whatever the source
/// directory's own mode and owner (BuildKit's MkdirAll of the destination).
fn dest_dir(out: &mut Vec<Planned>, dest_rel: &str, lowers: &Lowers, p: &CopyParams) {
    if dest_rel.is_empty() || lowers.stat(dest_rel).is_some() {
        return;
    }
    if out.iter().any(|e| {
        e.dest.as_os_str().as_bytes() == dest_rel.as_bytes() && matches!(e.kind, Kind::Dir)
    }) {
        return; // already planned as an ancestor, the same way
    }
    out.push(dir_entry(dest_rel, lowers, p));
}

/// Follows the symlink `rel` under `root` to a file or directory that is
/// still under `root` (absolute targets are taken from `root`); `None` when
/// it dangles, loops or would leave the root.
fn follow_in(root: &Path, rel: &Path) -> Option<(PathBuf, fs::Metadata)> {
    // Names are bytes: a context's need not be UTF-8.
    let names = |p: &Path| -> Vec<OsString> {
        p.as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(|c| OsStr::from_bytes(c).to_owned())
            .collect()
    };
    let mut cur = names(rel);
    for _ in 0..40 {
        let path = root.join(cur.iter().collect::<PathBuf>());
        let m = fs::symlink_metadata(&path).ok()?;
        if !m.file_type().is_symlink() {
            return Some((path, m));
        }
        let target = fs::read_link(&path).ok()?;
        cur.pop();
        if target.as_os_str().as_bytes().starts_with(b"/") {
            cur.clear();
        }
        for c in names(&target) {
            if c.as_bytes() == b".." {
                cur.pop()?;
            } else {
                cur.push(c);
            }
        }
        // Every component but the last must be a real directory.
        let mut p = root.to_path_buf();
        for c in &cur[..cur.len().saturating_sub(1)] {
            p.push(c);
            if !fs::symlink_metadata(&p).ok()?.is_dir() {
                return None;
            }
        }
    }
    None
}

/// `dir/name` for a name from a source tree, byte for byte (no leading or
/// trailing `/`; `dir` alone when the name is empty).
pub(super) fn join_os(dir: &str, name: &Path) -> PathBuf {
    let mut n = name.as_os_str().as_bytes();
    while let Some(rest) = n.strip_prefix(b"/") {
        n = rest;
    }
    while let Some(rest) = n.strip_suffix(b"/") {
        n = rest;
    }
    let mut out = Vec::with_capacity(dir.len() + 1 + n.len());
    out.extend_from_slice(dir.as_bytes());
    if !n.is_empty() {
        if !out.is_empty() {
            out.push(b'/');
        }
        out.extend_from_slice(n);
    }
    PathBuf::from(OsString::from_vec(out))
}

fn join(dir: &str, name: &str) -> String {
    let name = name.trim_start_matches('/');
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn context_err(e: ContextError, src: &str, from: Option<&str>) -> BuildError {
    match (e, from) {
        (ContextError::NotFound { source_path, .. }, Some(from)) => BuildError::Invalid(format!(
            "COPY failed: {source_path:?} not found in --from={from}"
        )),
        (e @ ContextError::NotFound { .. }, None) => {
            BuildError::Invalid(format!("COPY failed: {e}"))
        }
        (other, _) => BuildError::Invalid(format!("COPY {src}: {other}")),
    }
}
