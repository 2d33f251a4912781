//! ADD's remote sources: a URL (downloaded, never extracted) and a git
//! repository (checked out, then planned like a directory).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use dockerfile_parser::instructions::{Copy, Source};

use super::copy_layer::Planned;
use super::copy_plan::{plan, CopyParams, SourceRoot};
use super::git::GitRef;
use super::lower::Lowers;
use crate::cache::KeyHasher;
use crate::context::BuildContext;
use crate::error::BuildError;

/// `ADD https://…`: fetched into `dir` (the step's scratch space), never
/// extracted. With `--checksum` the key is the checksum and the download
/// is checked against it; without, the content is fetched to be hashed.
pub(super) fn fetch_url(
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
pub(super) fn fetched_path(scratch: &Path, kind: &str, url: &str) -> PathBuf {
    use sha2::Digest as _;
    scratch.join(format!(
        "{kind}-{}",
        hex::encode(&sha2::Sha256::digest(url.as_bytes())[..8])
    ))
}

pub(super) fn url_basename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if name.is_empty() || name.contains(':') {
        "download".to_string()
    } else {
        name.to_string()
    }
}

/// The git repository an ADD names (its URL and parsed form), if it names
/// one; git sources stand alone (one source, no `--from`).
pub(super) fn git_source(c: &Copy) -> Result<Option<(&str, GitRef)>, BuildError> {
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
pub(super) fn plan_git(
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
