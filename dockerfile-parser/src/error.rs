//! Errors with source positions. A [`ParseError`] renders as
//! `Dockerfile:LINE:COL: message` followed by the offending source line.

use crate::ast::Span;
use std::fmt;

/// What went wrong; the position lives in [`ParseError::span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("file with no instructions")]
    NoInstructions,
    #[error("unterminated heredoc")]
    UnterminatedHeredoc,
    #[error("{0}")]
    Directive(String),
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStringArray,
    #[error("unknown instruction: {name}{}", .suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownInstruction {
        name: String,
        suggestion: Option<String>,
    },
    #[error("unknown flag: --{flag}{}", .suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownFlag {
        flag: String,
        suggestion: Option<String>,
    },
    #[error(transparent)]
    Shell(#[from] crate::shell::ShellError),
    /// Any other syntax or validation failure, worded like BuildKit's.
    #[error("{0}")]
    Invalid(String),
}

/// One error at one place in the Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub kind: ErrorKind,
    pub span: Span,
    /// The first source line of the instruction, for display.
    pub line_text: String,
    /// File name used only for display (default `Dockerfile`).
    pub file: String,
}

impl ParseError {
    pub fn new(kind: ErrorKind, span: Span, line_text: impl Into<String>) -> ParseError {
        ParseError {
            kind,
            span,
            line_text: line_text.into(),
            file: "Dockerfile".to_string(),
        }
    }

    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.span.start_line, self.span.start_col, self.kind
        )?;
        if !self.line_text.is_empty() {
            let num = self.span.start_line.to_string();
            write!(f, "\n {num} | {}", self.line_text)?;
            let pad = " ".repeat(num.len());
            let caret_pad = " ".repeat(self.span.start_col.saturating_sub(1));
            write!(f, "\n {pad} | {caret_pad}^")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Shell(e) => Some(e),
            _ => None,
        }
    }
}

/// All errors found in one file, in source order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseErrors(pub Vec<ParseError>);

impl ParseErrors {
    /// Sets the file name shown in every message.
    pub fn with_file_name(mut self, name: &str) -> ParseErrors {
        for e in &mut self.0 {
            e.file = name.to_string();
        }
        self
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ParseError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ParseErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ParseErrors {}

impl From<ParseError> for ParseErrors {
    fn from(e: ParseError) -> Self {
        ParseErrors(vec![e])
    }
}

/// Closest candidate by edit distance, for "did you mean" hints. Matching is
/// case-insensitive; only reasonably close names are suggested.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for &c in candidates {
        let d = levenshtein(&lower, &c.to_lowercase());
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let (d, c) = best?;
    let limit = (lower.chars().count() / 3).max(1);
    (d > 0 && d <= limit).then_some(c)
}

/// Optimal-string-alignment distance (edits plus adjacent transpositions).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, slot) in d.iter_mut().enumerate().take(w) {
        *slot = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}
