//! `.dockerignore` pattern matching with the semantics of
//! github.com/moby/patternmatcher (`New`, `Matches`, `MatchesOrParentMatches`,
//! `MatchesUsingParentResults`).

use super::gopath::{self, go_lossy, go_match};
use super::goregex;

/// Errors from building or evaluating a pattern list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A line consisting of `!` alone.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// `filepath.ErrBadPattern`: rejected by the filepath.Match syntax check in
    /// `New`, or (for patterns that pass it) by the regular-expression compiler
    /// the first time the pattern is evaluated, as moby does.
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern { pattern: String },
    /// A `MatchInfo` from a different matcher was passed in.
    #[error("wrong number of values in parentMatched")]
    WrongParentInfo,
}

#[derive(Debug, Clone)]
enum Compiled {
    Exact,
    /// Pattern ends with `**` and has no other wildcard: a byte prefix test.
    Prefix,
    /// Pattern starts with `**`: a byte suffix test.
    Suffix,
    Regex(regex::Regex),
    /// Passed `New`'s syntax check but Go's regexp compiler rejects it; moby
    /// reports this lazily, on the first evaluation.
    Invalid,
}

/// One cleaned pattern (`Pattern` in moby).
#[derive(Debug, Clone)]
pub struct Pattern {
    cleaned: String,
    dirs: usize,
    exclusion: bool,
    compiled: Compiled,
}

impl Pattern {
    /// The cleaned pattern text, without a leading `!`.
    pub fn as_str(&self) -> &str {
        &self.cleaned
    }

    /// True for `!` (re-include) patterns.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    fn matches(&self, path: &[u8]) -> Result<bool, PatternError> {
        let pat = self.cleaned.as_bytes();
        Ok(match &self.compiled {
            Compiled::Exact => path == pat,
            Compiled::Prefix => path.starts_with(&pat[..pat.len().saturating_sub(2)]),
            Compiled::Suffix => {
                let suffix = pat.get(2..).unwrap_or_default();
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            Compiled::Regex(re) => re.is_match(&go_lossy(path)),
            Compiled::Invalid => {
                return Err(PatternError::BadPattern {
                    pattern: self.cleaned.clone(),
                })
            }
        })
    }
}

/// moby's `escapeBytes`: regexp metacharacters that mean nothing to filepath.Match.
fn should_escape(c: char) -> bool {
    matches!(c, '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$')
}

/// Port of `Pattern.compile` with `/` as separator: chooses the match kind and,
/// for regexp patterns, builds the same Go regexp text moby builds.
fn compile(cleaned: &str) -> Compiled {
    #[derive(PartialEq, Clone, Copy)]
    enum Kind {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut kind = Kind::Exact;
    // text/scanner drops a byte order mark at the very start.
    let text = cleaned.strip_prefix('\u{FEFF}').unwrap_or(cleaned);
    let mut chars = text.chars().peekable();
    let mut i = 0usize;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    // `**` at the end accepts everything, as .gitignore does.
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        re.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    // Any number of directories, including none.
                    re.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if i == 0 {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                kind = Kind::Regex;
            }
            c if should_escape(c) => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    kind = Kind::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                kind = Kind::Regex;
            }
            c => re.push(c),
        }
        i += 1;
    }
    match kind {
        Kind::Exact => Compiled::Exact,
        Kind::Prefix => Compiled::Prefix,
        Kind::Suffix => Compiled::Suffix,
        Kind::Regex => {
            re.push('$');
            goregex::translate(&re)
                .ok()
                .and_then(|rust| regex::Regex::new(&rust).ok())
                .map_or(Compiled::Invalid, Compiled::Regex)
        }
    }
}

/// Per-pattern match results of a directory, handed to its children
/// (`MatchInfo` in moby). The default value means "no parent information".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

/// A compiled `.dockerignore` pattern list (`PatternMatcher` in moby).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

impl Matcher {
    /// Port of `patternmatcher.New`: trims and cleans each pattern, drops empty
    /// ones, splits off a leading `!`, and syntax-checks with filepath.Match.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, PatternError> {
        let mut pm = Matcher {
            patterns: Vec::with_capacity(patterns.len()),
            exclusions: false,
        };
        for p in patterns {
            let p = p.as_ref().trim();
            if p.is_empty() {
                continue;
            }
            let mut p = gopath::clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(PatternError::IllegalExclusion);
                }
                exclusion = true;
                p = rest.to_string();
                pm.exclusions = true;
            }
            if go_match(p.as_bytes(), b".").is_err() {
                return Err(PatternError::BadPattern { pattern: p });
            }
            pm.patterns.push(Pattern {
                dirs: p.split('/').count(),
                compiled: compile(&p),
                cleaned: p,
                exclusion,
            });
        }
        Ok(pm)
    }

    /// True if any pattern is a `!` exclusion (`Exclusions` in moby).
    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    /// The active patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// moby's deprecated `PatternMatcher.Matches`: like
    /// [`matches_or_parent_matches`](Self::matches_or_parent_matches) but it
    /// only checks the single parent prefix with as many components as the
    /// pattern. Kept because docker still uses it for some decisions.
    pub fn matches(&self, file: impl AsRef<[u8]>) -> Result<bool, PatternError> {
        let file = file.as_ref();
        let parent = gopath::dir(file);
        let parent_dirs: Vec<&[u8]> = parent.split(|&c| c == b'/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            if pattern.exclusion != matched {
                continue;
            }
            let mut m = pattern.matches(file)?;
            if !m && parent != b"." && pattern.dirs <= parent_dirs.len() {
                m = pattern
                    .matches(&parent_dirs[..pattern.dirs].join(&b'/'))
                    .unwrap_or(false);
            }
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok(matched)
    }

    /// True if `file` (slash separated, relative to the context root) or one of
    /// its parent directories is excluded, and no later `!` pattern re-includes it.
    pub fn matches_or_parent_matches(&self, file: impl AsRef<[u8]>) -> Result<bool, PatternError> {
        Ok(self.evaluate(file.as_ref())?.is_some())
    }

    /// The pattern that excludes `file` (the last one that switched it to
    /// excluded), or `None` if the file is not excluded. Errors count as "not
    /// excluded" here; use [`matches_or_parent_matches`](Self::matches_or_parent_matches)
    /// to see them.
    pub fn excluding_pattern(&self, file: impl AsRef<[u8]>) -> Option<&str> {
        self.evaluate(file.as_ref())
            .ok()
            .flatten()
            .map(|i| self.patterns[i].as_str())
    }

    /// `MatchesOrParentMatches`, returning the index of the deciding pattern.
    fn evaluate(&self, file: &[u8]) -> Result<Option<usize>, PatternError> {
        let parent = gopath::dir(file);
        let parent_dirs: Vec<&[u8]> = parent.split(|&c| c == b'/').collect();
        let mut matched: Option<usize> = None;
        for (idx, pattern) in self.patterns.iter().enumerate() {
            if pattern.exclusion != matched.is_some() {
                continue;
            }
            let mut m = pattern.matches(file)?;
            if !m && parent != b"." {
                m = (1..=parent_dirs.len()).any(|n| {
                    pattern
                        .matches(&parent_dirs[..n].join(&b'/'))
                        .unwrap_or(false)
                });
            }
            if m {
                matched = if pattern.exclusion { None } else { Some(idx) };
            }
        }
        Ok(matched)
    }

    /// Incremental form for tree walks (`MatchesUsingParentResults`): pass the
    /// `MatchInfo` returned for the parent directory (or the default for a
    /// top-level entry, which then falls back to checking all parents).
    pub fn matches_using_parent_results(
        &self,
        file: impl AsRef<[u8]>,
        parent: &MatchInfo,
    ) -> Result<(bool, MatchInfo), PatternError> {
        let file = file.as_ref();
        let parent_matched = &parent.parent_matched;
        if !parent_matched.is_empty() && parent_matched.len() != self.patterns.len() {
            return Err(PatternError::WrongParentInfo);
        }
        let mut matched = false;
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut m = parent_matched.get(i).copied().unwrap_or(false);
            if !m {
                if pattern.exclusion != matched {
                    continue;
                }
                m = pattern.matches(file)?;
                if !m && parent_matched.is_empty() {
                    let parent_path = gopath::dir(file);
                    if parent_path != b"." {
                        let dirs: Vec<&[u8]> = parent_path.split(|&c| c == b'/').collect();
                        m = (1..=dirs.len())
                            .any(|n| pattern.matches(&dirs[..n].join(&b'/')).unwrap_or(false));
                    }
                }
            }
            info.parent_matched[i] = m;
            if m {
                matched = !pattern.exclusion;
            }
        }
        Ok((matched, info))
    }
}

/// `patternmatcher.Matches`: builds a matcher, cleans `file`, never matches `.`.
pub fn matches<S: AsRef<str>>(file: &str, patterns: &[S]) -> Result<bool, PatternError> {
    let pm = Matcher::new(patterns)?;
    let file = gopath::clean(file);
    if file == "." {
        return Ok(false);
    }
    pm.matches(file)
}

/// `patternmatcher.MatchesOrParentMatches` (free-function form).
pub fn matches_or_parent_matches<S: AsRef<str>>(
    file: &str,
    patterns: &[S],
) -> Result<bool, PatternError> {
    let pm = Matcher::new(patterns)?;
    let file = gopath::clean(file);
    if file == "." {
        return Ok(false);
    }
    pm.matches_or_parent_matches(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_regex_is_reported_on_every_evaluation() {
        // Valid for filepath.Match (l-O is an empty range), invalid for Go's regexp.
        let pm = Matcher::new(&["[Local-Only]/"]).unwrap();
        for _ in 0..2 {
            assert!(matches!(
                pm.matches_or_parent_matches("x"),
                Err(PatternError::BadPattern { .. })
            ));
        }
    }

    #[test]
    fn bang_in_class_is_literal_as_in_go() {
        // Go's filepath.Match and regexp only negate with `^`; `[!a]` is {'!','a'}.
        let pm = Matcher::new(&["[!a]b"]).unwrap();
        assert!(pm.matches_or_parent_matches("!b").unwrap());
        assert!(pm.matches_or_parent_matches("ab").unwrap());
        assert!(!pm.matches_or_parent_matches("cb").unwrap());
        let pm = Matcher::new(&["[^a]b"]).unwrap();
        assert!(pm.matches_or_parent_matches("cb").unwrap());
        assert!(!pm.matches_or_parent_matches("ab").unwrap());
    }

    #[test]
    fn match_kinds() {
        assert!(matches!(compile("abc"), Compiled::Exact));
        assert!(matches!(compile("abc/**"), Compiled::Prefix));
        assert!(matches!(compile("**/abc"), Compiled::Suffix));
        assert!(matches!(compile("a(b)c/def"), Compiled::Exact));
        assert!(matches!(compile("**/*.go"), Compiled::Regex(_)));
    }

    #[test]
    fn excluding_pattern_names_the_deciding_line() {
        let pm = Matcher::new(&["*.md", "docs", "!docs/keep.md", "foo*"]).unwrap();
        assert_eq!(pm.excluding_pattern("docs/other.txt"), Some("docs"));
        assert_eq!(pm.excluding_pattern("docs/keep.md"), None);
        assert_eq!(pm.excluding_pattern("README.md"), Some("*.md"));
        assert_eq!(pm.excluding_pattern("foobar"), Some("foo*"));
        assert_eq!(pm.excluding_pattern("src/main.rs"), None);
    }

    #[test]
    fn wrong_parent_info_is_an_error() {
        let a = Matcher::new(&["a", "b"]).unwrap();
        let b = Matcher::new(&["a"]).unwrap();
        let (_, info) = b
            .matches_using_parent_results("a", &MatchInfo::default())
            .unwrap();
        assert_eq!(
            a.matches_using_parent_results("a/x", &info),
            Err(PatternError::WrongParentInfo)
        );
    }
}
