//! Contexts that are not on this machine: an http(s) download (an archive,
//! streamed into the unpacker, or a plain Dockerfile) and a git repository
//! checked out with the code `ADD <git URL>` uses.

use std::path::PathBuf;

use crate::error::BuildError;
use crate::steps::git::{self, GitRef};

use super::{from_stream, temp_dir, within, Inputs};

/// The response for `url`, or one line saying why not.
fn get(url: &str) -> Result<reqwest::blocking::Response, BuildError> {
    reqwest::blocking::get(url)
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            BuildError::Invalid(format!(
                "fetching the build context {url}: {}",
                with_causes(&e.without_url())
            ))
        })
}

/// `kiln build https://host/context.tar.gz`: the body is never held in
/// memory, only its first KiB (to tell an archive from a Dockerfile).
pub(super) fn url(url: &str, file: Option<&str>) -> Result<Inputs, BuildError> {
    from_stream(&mut get(url)?, file, url)
}

/// A URL that must be a context archive (a named context), unpacked.
pub(super) fn url_dir(url: &str) -> Result<tempfile::TempDir, BuildError> {
    let (head, rest) = super::sniff::peek(get(url)?)
        .map_err(|e| BuildError::Invalid(format!("reading the build context {url}: {e}")))?;
    if !super::is_archive(&head) {
        return Err(BuildError::Invalid(format!(
            "the build context {url} is not an archive"
        )));
    }
    let temp = temp_dir()?;
    super::archive::unpack(std::io::Read::chain(&head[..], rest), temp.path(), url)?;
    Ok(temp)
}

/// `kiln build git://host/repo.git#ref:subdir`: the ref checked out (the
/// remote's HEAD without one), `.git` removed unless `keep_git_dir`; the
/// context is the subdirectory, `-f` is relative to it.
pub(super) fn git(
    url: &str,
    g: &GitRef,
    file: Option<&str>,
    keep_git_dir: bool,
) -> Result<Inputs, BuildError> {
    let temp = checkout(url, g, keep_git_dir)?;
    within(temp, g.subdir.as_deref(), file, url)
}

/// A git repository checked out (a named context): the temp directory
/// and the context directory in it (`#ref:subdir`).
pub(super) fn git_dir(
    url: &str,
    g: &GitRef,
    keep_git_dir: bool,
) -> Result<(tempfile::TempDir, PathBuf), BuildError> {
    let temp = checkout(url, g, keep_git_dir)?;
    let root = match &g.subdir {
        Some(s) => super::in_root::dir(temp.path(), s)
            .map_err(|e| BuildError::Invalid(format!("{url}: subdirectory {s:?}: {e}")))?,
        None => temp.path().to_path_buf(),
    };
    Ok((temp, root))
}

fn checkout(url: &str, g: &GitRef, keep_git_dir: bool) -> Result<tempfile::TempDir, BuildError> {
    let temp = temp_dir()?;
    git::fetch(g, temp.path(), keep_git_dir)
        .map_err(|e| BuildError::Invalid(format!("the build context {url}: {e}")))?;
    Ok(temp)
}

/// An error and its causes as one line (reqwest's own text says only
/// "error sending request"; the cause says the connection was refused).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cur = c.source();
    }
    line
}
