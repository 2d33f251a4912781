//! `.dockerignore` files: reading them (moby `ignorefile.ReadAll`), choosing
//! which one applies to a build, and matching paths against the patterns
//! (moby `patternmatcher`), with Docker's exact rules.

mod gopath;
mod goregex;
mod pattern;

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

pub use gopath::BadPattern;
pub use pattern::{matches, matches_or_parent_matches, MatchInfo, Matcher, Pattern, PatternError};

/// `filepath.Match` with Go's rules (`*`, `?`, `[...]`, `[^...]`, `\` escapes;
/// `*` and `?` never match `/`). COPY/ADD wildcards use this.
pub fn glob_match(pattern: &str, name: impl AsRef<[u8]>) -> Result<bool, PatternError> {
    gopath::go_match(pattern.as_bytes(), name.as_ref()).map_err(|_| PatternError::BadPattern {
        pattern: pattern.to_string(),
    })
}

/// Errors reading an ignore file.
#[derive(Debug, thiserror::Error)]
pub enum IgnoreFileError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Go's `bufio.Scanner` refuses lines of 64 KiB or more; docker fails the
    /// build in that case, and so do we.
    #[error("reading {path}: line {line} is too long (bufio.Scanner: token too long)")]
    LineTooLong { path: PathBuf, line: usize },
}

/// `bufio.MaxScanTokenSize`: a line plus its newline must fit in this.
const MAX_LINE: usize = 64 * 1024;

/// Parses an ignore file (moby `ignorefile.ReadAll`): strips a UTF-8 BOM from
/// the first line, skips lines starting with `#` (before trimming), trims
/// whitespace, skips empty lines, and cleans each pattern, removing a leading
/// `/` while keeping a `!` prefix. Bytes that are not UTF-8 become U+FFFD.
pub fn read<R: Read>(reader: R) -> Result<Vec<String>, IgnoreFileError> {
    read_named(reader, Path::new("<ignore file>"))
}

fn read_named<R: Read>(reader: R, name: &Path) -> Result<Vec<String>, IgnoreFileError> {
    let mut reader = BufReader::new(reader);
    let mut excludes = Vec::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| IgnoreFileError::Io {
                path: name.to_path_buf(),
                source,
            })?;
        if n == 0 {
            break;
        }
        let mut line: &[u8] = &buf;
        if let Some(stripped) = line.strip_suffix(b"\n") {
            line = stripped;
        }
        if line.len() >= MAX_LINE {
            return Err(IgnoreFileError::LineTooLong {
                path: name.to_path_buf(),
                line: line_no + 1,
            });
        }
        // ScanLines drops one trailing carriage return.
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line_no == 0 {
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        line_no += 1;
        if line.first() == Some(&b'#') {
            continue;
        }
        let text = gopath::go_lossy(line);
        let mut pattern = text.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut out = String::new();
        if invert {
            out.push('!');
        }
        if !pattern.is_empty() {
            let cleaned = gopath::clean(pattern);
            match cleaned.strip_prefix('/') {
                Some(rest) if !rest.is_empty() => out.push_str(rest),
                _ => out.push_str(&cleaned),
            }
        }
        excludes.push(out);
    }
    Ok(excludes)
}

/// Reads one ignore file by path.
pub fn read_file(path: &Path) -> Result<Vec<String>, IgnoreFileError> {
    let file = std::fs::File::open(path).map_err(|source| IgnoreFileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_named(file, path)
}

/// The ignore patterns for a build: `<Dockerfile path>.dockerignore` beside the
/// Dockerfile if it exists (it takes precedence), else `.dockerignore` at the
/// context root, else none. Also returns which file was used.
pub fn for_build_with_source(
    context_dir: &Path,
    dockerfile: &Path,
) -> Result<(Vec<String>, Option<PathBuf>), IgnoreFileError> {
    let mut specific = dockerfile.as_os_str().to_owned();
    specific.push(".dockerignore");
    let candidates = [PathBuf::from(specific), context_dir.join(".dockerignore")];
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(meta) if meta.is_file() => {
                let patterns = read_file(&candidate)?;
                return Ok((patterns, Some(candidate)));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => {
                return Err(IgnoreFileError::Io {
                    path: candidate,
                    source,
                })
            }
        }
    }
    Ok((Vec::new(), None))
}

/// [`for_build_with_source`] without the file name.
pub fn for_build(context_dir: &Path, dockerfile: &Path) -> Result<Vec<String>, IgnoreFileError> {
    for_build_with_source(context_dir, dockerfile).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_str(s: &[u8]) -> Vec<String> {
        read(s).unwrap()
    }

    #[test]
    fn read_all_rules() {
        let got = read_str(
            b"\xEF\xBB\xBF# comment\n  # not a comment\n\n  /abs/path/  \n!  /re/./included\r\n!\n*.go\n/\nfoo/../bar",
        );
        assert_eq!(
            got,
            [
                "# not a comment",
                "abs/path",
                "!re/included",
                "!",
                "*.go",
                "/",
                "bar"
            ]
        );
    }

    #[test]
    fn bom_only_on_first_line() {
        assert_eq!(read_str(b"a\n\xEF\xBB\xBFb"), ["a", "\u{FEFF}b"]);
    }

    #[test]
    fn long_lines_fail_like_bufio_scanner() {
        let mut ok = vec![b'a'; MAX_LINE - 1];
        ok.push(b'\n');
        assert_eq!(read(&ok[..]).unwrap().len(), 1);
        let long = vec![b'a'; MAX_LINE];
        assert!(matches!(
            read(&long[..]),
            Err(IgnoreFileError::LineTooLong { .. })
        ));
    }

    #[test]
    fn dockerfile_specific_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = dir.path();
        std::fs::write(ctx.join(".dockerignore"), "root-pattern\n").unwrap();
        std::fs::create_dir(ctx.join("build")).unwrap();
        let dockerfile = ctx.join("build/app.Dockerfile");
        std::fs::write(&dockerfile, "FROM scratch\n").unwrap();
        assert_eq!(for_build(ctx, &dockerfile).unwrap(), ["root-pattern"]);
        std::fs::write(ctx.join("build/app.Dockerfile.dockerignore"), "specific\n").unwrap();
        let (patterns, source) = for_build_with_source(ctx, &dockerfile).unwrap();
        assert_eq!(patterns, ["specific"]);
        assert_eq!(
            source.unwrap(),
            ctx.join("build/app.Dockerfile.dockerignore")
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(for_build(empty.path(), &empty.path().join("Dockerfile"))
            .unwrap()
            .is_empty());
    }
}
