//! Contexts that are not on this machine: an http(s) download (an archive,
//! streamed into the unpacker, or a plain Dockerfile) and a git repository
//! checked out with the code `ADD <git URL>` uses.

use crate::error::BuildError;
use crate::steps::git::{self, GitRef};

use super::{from_stream, temp_dir, within, Inputs};

/// `kiln build https://host/context.tar.gz`: the body is never held in
/// memory, only its first KiB (to tell an archive from a Dockerfile).
pub(super) fn url(url: &str, file: Option<&str>) -> Result<Inputs, BuildError> {
    let mut resp = reqwest::blocking::get(url)
        .and_then(|r| r.error_for_status())
        .map_err(|e| {
            BuildError::Invalid(format!(
                "fetching the build context {url}: {}",
                with_causes(&e.without_url())
            ))
        })?;
    from_stream(&mut resp, file, url)
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
    let temp = temp_dir()?;
    git::fetch(g, temp.path(), keep_git_dir)
        .map_err(|e| BuildError::Invalid(format!("the build context {url}: {e}")))?;
    within(temp, g.subdir.as_deref(), file, url)
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
