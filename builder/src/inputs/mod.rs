//! What `kiln build` builds from, in docker's forms: a context directory,
//! `-` (standard input: a context archive, or a Dockerfile and no
//! context, told apart by content as docker's CLI does), an http(s) URL
//! (a streamed archive, or a plain Dockerfile), or a git repository
//! (`https://host/repo.git#ref:subdir`, `git://…`, `git@host:repo`).
//!
//! - `sniff`: docker's archive-or-Dockerfile rule;
//! - `archive`: a context tar unpacked into a temporary directory;
//! - `remote`: URL and git contexts;
//! - `named`: `--build-context NAME=…`;
//! - `ssh_agent`: an agent for `--ssh ID=KEYFILE`;
//! - `in_root`: files read from an unpacked or checked-out context
//!   without following its symlinks out of it.

mod archive;
mod in_root;
mod named;
mod remote;
mod sniff;
mod ssh_agent;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::BuildError;
use crate::steps::git::GitRef;

pub use named::{named, named_all, Named};
pub use sniff::is_archive;
pub use ssh_agent::{with_keys as ssh_agent_with_keys, KeyAgent};

/// The default Dockerfile name, at the context's root.
pub const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// A Dockerfile of more than this is refused rather than read into memory.
pub const MAX_DOCKERFILE: u64 = 16 << 20;

/// The build arg that keeps `.git` in a git context (BuildKit's name).
pub const KEEP_GIT_DIR_ARG: &str = "BUILDKIT_CONTEXT_KEEP_GIT_DIR";

/// Everything a build reads besides its flags.
#[derive(Debug)]
pub struct Inputs {
    pub dockerfile: String,
    /// The Dockerfile's name for messages.
    pub dockerfile_name: String,
    /// The context directory; `None` for a Dockerfile with no context.
    pub context: Option<PathBuf>,
    /// The `.dockerignore` patterns that apply.
    pub ignore_patterns: Vec<String>,
    /// An unpacked or checked-out context, removed when the inputs drop.
    _temp: Option<tempfile::TempDir>,
}

impl Inputs {
    /// The context is a temp directory removed with these inputs.
    pub fn is_transient(&self) -> bool {
        self._temp.is_some()
    }
}

/// How the context argument and `-f` are read.
pub struct Request<'a> {
    /// The context argument (`.`, a directory, `-`, a URL).
    pub context: &'a str,
    /// `-f`: a path (relative to the current directory for a directory
    /// context, to the context's root for the other forms) or `-`.
    pub file: Option<&'a str>,
    /// Keep `.git` in a git context (`--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`).
    pub keep_git_dir: bool,
}

/// Reads the Dockerfile and prepares the context. `stdin` is only read
/// when the context or `-f` is `-`.
pub fn resolve(req: &Request<'_>, stdin: &mut dyn Read) -> Result<Inputs, BuildError> {
    if req.context == "-" {
        if req.file == Some("-") {
            return Err(BuildError::Invalid(
                "standard input cannot be both the build context and the Dockerfile".into(),
            ));
        }
        return from_stream(stdin, req.file, "standard input");
    }
    if let Some(g) = GitRef::parse(req.context) {
        return remote::git(req.context, &g, req.file, req.keep_git_dir);
    }
    if req.context.starts_with("http://") || req.context.starts_with("https://") {
        return remote::url(req.context, req.file);
    }
    local(req, stdin)
}

/// A context directory; `-f -` reads the Dockerfile from `stdin`.
fn local(req: &Request<'_>, stdin: &mut dyn Read) -> Result<Inputs, BuildError> {
    let arg = req.context;
    if !Path::new(arg).is_dir() {
        return Err(BuildError::Invalid(format!(
            "the build context {arg:?} is not a directory, a URL or `-`"
        )));
    }
    let dir = std::fs::canonicalize(arg).map_err(|e| BuildError::Io(arg.into(), e))?;
    let (dockerfile, name, path) = match req.file {
        Some("-") => (
            read_dockerfile(stdin, "standard input")?,
            DEFAULT_DOCKERFILE.to_string(),
            dir.join(DEFAULT_DOCKERFILE),
        ),
        other => {
            // docker: `-f` is relative to the current directory here.
            let path = other
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join(DEFAULT_DOCKERFILE));
            let f = std::fs::File::open(&path).map_err(|e| BuildError::Io(path.clone(), e))?;
            let text = read_dockerfile(f, &path.display().to_string())?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (text, name, path)
        }
    };
    let ignore_patterns = crate::dockerignore::for_build(&dir, &path)
        .map_err(|e| BuildError::Invalid(format!("reading .dockerignore: {e}")))?;
    Ok(Inputs {
        dockerfile,
        dockerfile_name: name,
        context: Some(dir),
        ignore_patterns,
        _temp: None,
    })
}

/// A stream that is a context archive or a Dockerfile (standard input,
/// a download), told apart by its first bytes.
fn from_stream(input: &mut dyn Read, file: Option<&str>, what: &str) -> Result<Inputs, BuildError> {
    let (head, rest) = sniff::peek(input)
        .map_err(|e| BuildError::Invalid(format!("reading the build context from {what}: {e}")))?;
    let stream = std::io::Cursor::new(head.clone()).chain(rest);
    if !is_archive(&head) {
        if let Some(f) = file {
            return Err(BuildError::Invalid(format!(
                "-f {f}: {what} holds a Dockerfile, not a context archive"
            )));
        }
        return Ok(Inputs {
            dockerfile: read_dockerfile(stream, what)?,
            dockerfile_name: DEFAULT_DOCKERFILE.into(),
            context: None,
            ignore_patterns: Vec::new(),
            _temp: None,
        });
    }
    let temp = temp_dir()?;
    archive::unpack(stream, temp.path(), what)?;
    within(temp, None, file, what)
}

/// Inputs for an unpacked or checked-out context in `temp` (at `subdir`
/// of it): the Dockerfile and `.dockerignore` are read inside it.
fn within(
    temp: tempfile::TempDir,
    subdir: Option<&str>,
    file: Option<&str>,
    what: &str,
) -> Result<Inputs, BuildError> {
    let root = match subdir {
        Some(s) => in_root::dir(temp.path(), s)
            .map_err(|e| BuildError::Invalid(format!("{what}: subdirectory {s:?}: {e}")))?,
        None => temp.path().to_path_buf(),
    };
    let rel = file.unwrap_or(DEFAULT_DOCKERFILE);
    let missing = |e: std::io::Error| {
        BuildError::Invalid(format!("{what}: no Dockerfile {rel:?} in the context: {e}"))
    };
    let f = in_root::open(&root, rel).map_err(missing)?;
    let dockerfile = read_dockerfile(f, &format!("{rel} in {what}"))?;
    let mut ignore_patterns = Vec::new();
    for candidate in [format!("{rel}.dockerignore"), ".dockerignore".to_string()] {
        match in_root::open(&root, &candidate) {
            Ok(f) => {
                ignore_patterns = crate::dockerignore::read(f).map_err(|e| {
                    BuildError::Invalid(format!("{what}: reading {candidate}: {e}"))
                })?;
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(BuildError::Invalid(format!(
                    "{what}: reading {candidate}: {e}"
                )))
            }
        }
    }
    let name = Path::new(rel)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| DEFAULT_DOCKERFILE.into());
    Ok(Inputs {
        dockerfile,
        dockerfile_name: name,
        context: Some(root),
        ignore_patterns,
        _temp: Some(temp),
    })
}

/// A private directory for an unpacked context, outside the store (so a
/// killed build leaves nothing in it), removed on drop.
fn temp_dir() -> Result<tempfile::TempDir, BuildError> {
    tempfile::Builder::new()
        .prefix("kiln-context-")
        .tempdir()
        .map_err(|e| BuildError::Io(std::env::temp_dir(), e))
}

/// A Dockerfile's text, bounded by [`MAX_DOCKERFILE`].
fn read_dockerfile(r: impl Read, what: &str) -> Result<String, BuildError> {
    let mut buf = Vec::new();
    r.take(MAX_DOCKERFILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| BuildError::Invalid(format!("reading the Dockerfile from {what}: {e}")))?;
    if buf.len() as u64 > MAX_DOCKERFILE {
        return Err(BuildError::Invalid(format!(
            "the Dockerfile from {what} is larger than {MAX_DOCKERFILE} bytes"
        )));
    }
    String::from_utf8(buf)
        .map_err(|_| BuildError::Invalid(format!("the Dockerfile from {what} is not UTF-8 text")))
}
