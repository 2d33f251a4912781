//! Parser directives (`# syntax=`, `# escape=`, `# check=`) at the top of a
//! Dockerfile, with BuildKit's quirks: they must come before anything else
//! (even a blank line ends them), names are case-insensitive, unknown names
//! end the directive block, and repeating one is an error.

use std::collections::HashSet;

/// Directive values found at the top of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    pub syntax: Option<String>,
    pub escape: Option<String>,
    pub check: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    done: bool,
    seen: HashSet<String>,
}

/// RE2's `\s`: `[\t\n\f\r ]`.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\x0c' | '\r' | ' ')
}

impl DirectiveParser {
    /// Looks at one line (newline already removed). Returns the lower-cased
    /// name and value of a directive, or `None` once directives are over.
    pub(crate) fn parse_line(&mut self, line: &str) -> Result<Option<(String, String)>, String> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((name, value)) = match_directive(rest.trim_start_matches(char::is_whitespace))
        else {
            self.done = true;
            return Ok(None);
        };
        let key = name.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        Ok(Some((key, value.to_string())))
    }
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn match_directive(s: &str) -> Option<(&str, &str)> {
    let mut it = s.char_indices();
    match it.next() {
        Some((_, c)) if c.is_ascii_alphabetic() => {}
        _ => return None,
    }
    let name_end = s
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_alphanumeric())
        .map_or(s.len(), |(i, _)| i);
    let after_name = s[name_end..].trim_start_matches(is_re_space);
    let after_eq = after_name.strip_prefix('=')?;
    if after_eq.is_empty() || after_eq.contains('\n') {
        return None;
    }
    let value = after_eq.trim_start_matches(is_re_space);
    if value.is_empty() {
        // Only whitespace after `=`: the lazy group still takes one char.
        let last = after_eq.char_indices().last()?.0;
        return Some((&s[..name_end], &after_eq[last..]));
    }
    Some((&s[..name_end], value.trim_end_matches(is_re_space)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directive_syntax() {
        assert_eq!(match_directive("escape = `  "), Some(("escape", "`")));
        assert_eq!(
            match_directive("syntax=docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(match_directive("1x=y"), None);
        assert_eq!(match_directive("x y=z"), None);
    }

    #[test]
    fn repeated_is_error() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("# escape=`").unwrap().is_some());
        assert!(p.parse_line("# ESCAPE=\\").is_err());
    }

    #[test]
    fn ends_at_first_other_line() {
        let mut p = DirectiveParser::default();
        assert!(p.parse_line("").unwrap().is_none());
        assert!(p.parse_line("# escape=`").unwrap().is_none());
    }
}
