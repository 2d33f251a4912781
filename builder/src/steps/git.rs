//! `ADD <git URL> <dest>`: the repository at a ref, checked out with the
//! host's `git` (as buildah does) into the step's scratch space, then
//! copied like a directory. The key is the commit the ref resolved to.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::error::BuildError;

/// A git source in BuildKit's forms: `git://…`, `ssh://…`, `git@host:path`,
/// or `http(s)://….git`, each with an optional `#ref[:subdir]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitRef {
    pub remote: String,
    /// Branch, tag or full commit; the remote's HEAD when absent.
    pub reference: Option<String>,
    /// Only this directory of the repository is copied.
    pub subdir: Option<String>,
}

impl GitRef {
    /// `None` when `s` is not a git URL (a plain http(s) download, a path).
    pub fn parse(s: &str) -> Option<GitRef> {
        let (remote, fragment) = match s.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (s, None),
        };
        let http = remote.starts_with("https://") || remote.starts_with("http://");
        let git = remote.starts_with("git://")
            || remote.starts_with("ssh://")
            || remote.starts_with("git@")
            || (http && remote.trim_end_matches('/').ends_with(".git"));
        if !git {
            return None;
        }
        let some = |v: &str| (!v.is_empty()).then(|| v.to_string());
        let (reference, subdir) = match fragment {
            None => (None, None),
            Some(f) => match f.split_once(':') {
                Some((r, d)) => (some(r), some(d.trim_matches('/'))),
                None => (some(f), None),
            },
        };
        Some(GitRef {
            remote: remote.to_string(),
            reference,
            subdir,
        })
    }
}

/// Checks the ref out into `dir` (created) and returns its commit. The
/// `.git` directory is removed unless `keep_git_dir`.
pub fn fetch(g: &GitRef, dir: &Path, keep_git_dir: bool) -> Result<String, BuildError> {
    let want = g.reference.as_deref().unwrap_or("HEAD");
    // git reads an argument that starts with `-` as an option wherever it
    // stands: `#--upload-pack=…` would reach `git fetch` as one.
    if want.starts_with('-') {
        return Err(BuildError::Invalid(format!(
            "invalid git ref {want:?}: a ref does not start with '-'"
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| BuildError::Io(dir.to_path_buf(), e))?;
    git(dir, &["init", "-q"])?;
    let is_commit = want.len() == 40 && want.bytes().all(|b| b.is_ascii_hexdigit());
    if is_commit {
        // Servers need not serve an unadvertised commit shallowly: fetch
        // the history and pick the commit from it.
        git(dir, &["fetch", "-q", "--no-tags", &g.remote])?;
        git(dir, &["checkout", "-q", want])?;
    } else {
        git(
            dir,
            &["fetch", "-q", "--depth", "1", "--no-tags", &g.remote, want],
        )?;
        git(dir, &["checkout", "-q", "FETCH_HEAD"])?;
    }
    let commit = git(dir, &["rev-parse", "HEAD"])?.trim().to_string();
    if dir.join(".gitmodules").exists() {
        git(
            dir,
            &[
                "submodule",
                "update",
                "-q",
                "--init",
                "--recursive",
                "--depth",
                "1",
            ],
        )?;
    }
    if !keep_git_dir {
        let dot_git = dir.join(".git");
        std::fs::remove_dir_all(&dot_git).map_err(|e| BuildError::Io(dot_git, e))?;
    }
    Ok(commit)
}

/// Runs git in `dir` with no terminal to prompt on; its stdout, or an
/// error with the last line it printed.
fn git(dir: &Path, args: &[&str]) -> Result<String, BuildError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            BuildError::Invalid(format!("a git repository needs git on this machine: {e}"))
        })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(BuildError::Invalid(format!(
            "git {}: {}",
            args.first().copied().unwrap_or(""),
            last.trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::GitRef;

    #[test]
    fn buildkit_forms_are_git_and_plain_urls_are_not() {
        let g = GitRef::parse("https://github.com/moby/buildkit.git#v0.10.1:docs").unwrap();
        assert_eq!(g.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(g.reference.as_deref(), Some("v0.10.1"));
        assert_eq!(g.subdir.as_deref(), Some("docs"));
        let g = GitRef::parse("git@github.com:moby/buildkit.git").unwrap();
        assert_eq!((g.reference, g.subdir), (None, None));
        let g = GitRef::parse("git://127.0.0.1:9418/repo.git#:sub/dir/").unwrap();
        assert_eq!(g.reference, None);
        assert_eq!(g.subdir.as_deref(), Some("sub/dir"));
        assert!(GitRef::parse("ssh://git@host/repo#main").is_some());
        assert!(GitRef::parse("https://example.com/file.tar.gz").is_none());
        assert!(GitRef::parse("https://github.com/moby/buildkit").is_none());
        assert!(GitRef::parse("src/.git").is_none());
    }

    #[test]
    fn a_ref_that_reads_as_an_option_is_refused_before_git_runs() {
        let dir = tempfile::tempdir().unwrap();
        let g = GitRef::parse("git://127.0.0.1:1/r.git#--upload-pack=touch /tmp/x").unwrap();
        let e = super::fetch(&g, &dir.path().join("c"), false).unwrap_err();
        assert!(e.to_string().contains("invalid git ref"), "{e}");
        assert!(!dir.path().join("c").exists());
    }
}
