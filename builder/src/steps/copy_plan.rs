//! COPY and ADD: the selected files become a layer tar written straight
//! from their sources (no copy into a rootfs first), and a key that covers
//! names, modes, ownership and bytes — not mtimes.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use dockerfile_parser::instructions::{Copy, Source};

use super::git::GitRef;
use super::lower::Lowers;
use crate::cache::{KeyHasher, StatIndex};
use crate::context::{BuildContext, ContextError, SourceEntry};
use crate::dockerignore::Matcher;
use crate::error::BuildError;
use image_store::layer::show_name;

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
    },
    Inline(Vec<u8>),
    Symlink(PathBuf),
    /// A hard link to a file planned earlier in the same step (BuildKit
    /// keeps the links between the files it copies).
    HardLink(PathBuf),
    /// A local archive ADD extracts under `dest`.
    Archive(PathBuf),
}

/// `ADD https://…`: fetched into `dir` (the step's scratch space), never
/// extracted. With `--checksum` the key is the checksum and the download
/// is checked against it; without, the content is fetched to be hashed.
fn fetch_url(
    url: &str,
    checksum: Option<&str>,
    dir: &Path,
) -> Result<(PathBuf, String), BuildError> {
    use sha2::Digest as _;
    let bad = |m: String| BuildError::Invalid(format!("ADD {url}: {m}"));
    let want = match checksum {
        Some(c) => Some(
            c.strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    bad(format!(
                        "unsupported --checksum {c:?}: expected sha256:<64 hex>"
                    ))
                })?
                .to_ascii_lowercase(),
        ),
        None => None,
    };
    fs::create_dir_all(dir).map_err(|e| BuildError::Io(dir.to_path_buf(), e))?;
    let dest = fetched_path(dir, "url", url);
    let mut resp = reqwest::blocking::get(url)
        .and_then(|r| r.error_for_status())
        .map_err(|e| bad(e.without_url().to_string()))?;
    let mut f = File::create(&dest).map_err(|e| BuildError::Io(dest.clone(), e))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = io::Read::read(&mut resp, &mut buf).map_err(|e| bad(e.to_string()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| BuildError::Io(dest.clone(), e))?;
    }
    let got = hex::encode(h.finalize());
    if let Some(w) = want {
        if w != got {
            let _ = fs::remove_file(&dest);
            return Err(bad(format!(
                "checksum mismatch: expected sha256:{w}, got sha256:{got}"
            )));
        }
    }
    Ok((dest, got))
}

/// Where a download or checkout of `url` goes in a step's scratch space.
fn fetched_path(scratch: &Path, kind: &str, url: &str) -> PathBuf {
    use sha2::Digest as _;
    scratch.join(format!(
        "{kind}-{}",
        hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
    ))
}

fn url_basename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if name.is_empty() || name.contains(':') {
        "download".to_string()
    } else {
        name.to_string()
    }
}

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

    let hashed = |rel: &Path,
                  abs: &Path,
                  md: &fs::Metadata,
                  key: &mut KeyHasher,
                  root: &mut SourceRoot|
     -> Result<(), BuildError> {
        if let Some(idx) = root.index {
            let sha = idx
                .hash(&show_name(rel.as_os_str().as_bytes()), abs, md)
                .map_err(|e| BuildError::Io(abs.to_path_buf(), e))?;
            key.part("sha", sha.as_bytes());
        }
        Ok(())
    };

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
                    kind: Kind::File { src: file, size },
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
                        .unwrap_or(Path::new(""))
                        .to_path_buf();
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
                                .join(&under)
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
                        join_os(&dest_rel, &under)
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
                        if followed.is_some() {
                            // The index knows the link, not its target.
                            let sha = crate::cache::hash_file(&abs)
                                .map_err(|e| BuildError::Io(abs.clone(), e))?;
                            key.part("followed", sha.as_bytes());
                        } else {
                            hashed(rel, &abs, md, key, root)?;
                        }
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
                            match links.get(&inode) {
                                Some(first) if md.nlink() > 1 && followed.is_none() => {
                                    Kind::HardLink(first.clone())
                                }
                                _ => {
                                    if md.nlink() > 1 && followed.is_none() {
                                        links.insert(inode, target.clone());
                                    }
                                    Kind::File {
                                        src: abs.clone(),
                                        size: md.len(),
                                    }
                                }
                            }
                        }
                    } else if ft.is_char_device() && md.rdev() == 0 {
                        continue; // an overlay whiteout seen in a stage view
                    } else {
                        continue; // sockets, fifos and devices are not copied
                    };
                    key.part("dest", target.as_os_str().as_bytes())
                        .part("mode", &mode.to_le_bytes())
                        .part("owner", format!("{uid}:{gid}").as_bytes());
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
    Ok(out)
}

/// The git repository an ADD names (its URL and parsed form), if it names
/// one; git sources stand alone (one source, no `--from`).
fn git_source(c: &Copy) -> Result<Option<(&str, GitRef)>, BuildError> {
    let gits: Vec<(&str, GitRef)> = c
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::Path(p) => GitRef::parse(p).map(|g| (p.as_str(), g)),
            Source::Heredoc { .. } => None,
        })
        .collect();
    match gits.len() {
        0 => Ok(None),
        1 if c.sources.len() == 1 => Ok(gits.into_iter().next()),
        _ => Err(BuildError::Invalid(
            "ADD of a git repository takes it as the only source".into(),
        )),
    }
}

/// ADD of a git repository: checked out, then planned as a COPY of its
/// root (or `#ref:subdir`) into the destination directory, keyed by the
/// commit rather than by file contents.
fn plan_git(
    p: &CopyParams,
    url: &str,
    g: &GitRef,
    dest_abs: &str,
    lowers: &Lowers,
    key: &mut KeyHasher,
) -> Result<Vec<Planned>, BuildError> {
    let checkout = fetched_path(p.scratch, "git", url);
    let keep = p.copy.keep_git_dir.unwrap_or(false);
    let commit = super::git::fetch(g, &checkout, keep)
        .map_err(|e| BuildError::Invalid(format!("ADD {url}: {e}")))?;
    if let Some(want) = &p.copy.checksum {
        if !commit.starts_with(want.as_str()) {
            return Err(BuildError::Invalid(format!(
                "ADD {url}: checksum mismatch: expected commit {want}, got {commit}"
            )));
        }
    }
    key.part("git", g.remote.as_bytes())
        .part("commit", commit.as_bytes())
        .part("keep-git-dir", &[keep as u8]);
    let ctx = BuildContext::new(&checkout, &[] as &[&str])
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    let mut root = SourceRoot {
        ctx: &ctx,
        index: None,
        inputs: Vec::new(),
        from: Some(url.to_string()),
    };
    let inner = Copy {
        sources: vec![Source::Path(g.subdir.clone().unwrap_or_else(|| ".".into()))],
        dest: format!("{}/", dest_abs.trim_end_matches('/')),
        checksum: None,
        ..p.copy.clone()
    };
    let params = CopyParams {
        copy: &inner,
        // Archives inside a repository are copied, not extracted.
        is_add: false,
        ..*p
    };
    plan(&params, &mut root, lowers, key)
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
fn join_os(dir: &str, name: &Path) -> PathBuf {
    let mut n = name.as_os_str().as_bytes();
    while let Some(rest) = n.strip_prefix(b"/") {
        n = rest;
    }
    while let Some(rest) = n.strip_suffix(b"/") {
        n = rest;
    }
    let mut out = dir.as_bytes().to_vec();
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

/// A local file ADD extracts: a tar, plain or gzip, bzip2, xz or zstd
/// compressed.
fn is_archive(p: &Path) -> bool {
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

/// Writes the planned entries as a tar stream; `clamp` caps mtimes.
pub fn write_layer<W: Write>(
    entries: &[Planned],
    out: W,
    clamp: Option<u64>,
) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(out);
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
            Kind::File { src, size } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let f = File::open(src).map_err(|er| io_err(src, er))?;
                b.append_data(&mut h, &e.dest, f)
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
        .and_then(|mut w| w.flush())
        .map_err(|e| BuildError::Io(PathBuf::from("layer"), e))?;
    Ok(())
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
        let shown = &c.shown;
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
