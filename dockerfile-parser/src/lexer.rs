//! Physical lines → logical instructions: parser directives, comments,
//! line continuations with the current escape character, heredoc bodies.
//! Follows BuildKit's `parser.Parse` loop line for line so that positions,
//! continuation quirks and warnings agree.

use crate::ast::{is_space, parse_line, Heredoc, Node, Span};
use crate::directives::{DirectiveParser, Directives};
use crate::error::{ErrorKind, ParseError, ParseErrors};
use crate::shell::{EmptyEnv, Lexer};

/// A non-fatal finding, returned as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// BuildKit lint rule name (`NoEmptyContinuation`, `StageNameCasing`, …).
    pub rule: &'static str,
    pub message: String,
    /// 1-based line the warning refers to.
    pub line: usize,
}

/// Result of parsing a Dockerfile into its syntax tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub nodes: Vec<Node>,
    /// The escape character in effect (`\` or `` ` ``).
    pub escape: char,
    pub directives: Directives,
    pub warnings: Vec<Warning>,
}

struct Line<'a> {
    /// Text including its line terminator.
    text: &'a str,
    start: usize,
}

fn split_lines(text: &str) -> Vec<Line<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    for l in text.split_inclusive('\n') {
        out.push(Line { text: l, start });
        start += l.len();
    }
    out
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(s: &str) -> bool {
    s.trim_start_matches(is_space).starts_with('#')
}

/// Removes a trailing continuation escape (BuildKit's
/// `([^E])E[ \t]*$|^E[ \t]*$`). Returns the line and whether it ended the
/// instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    if before.is_empty() || !before.ends_with(escape) {
        (before, false)
    } else {
        (line, true)
    }
}

struct State {
    escape: char,
    directives: Directives,
    dparser: DirectiveParser,
}

impl State {
    /// BuildKit's `processLine`: strips the newline (and leading blanks on
    /// an instruction's first line), checks for a directive, blanks comments.
    fn process_line<'a>(
        &mut self,
        raw: &'a str,
        strip_left: bool,
    ) -> Result<(&'a str, bool), String> {
        let mut t = trim_newline(raw);
        if strip_left {
            t = t.trim_start_matches(is_space);
        }
        let mut is_directive = false;
        if let Some((k, v)) = self.dparser.parse_line(t)? {
            is_directive = true;
            match k.as_str() {
                "escape" => {
                    self.escape = match v.as_str() {
                        "`" => '`',
                        "\\" => '\\',
                        _ => {
                            return Err(format!(
                                "invalid escape token '{v}' does not match ` or \\"
                            ))
                        }
                    };
                    self.directives.escape = Some(v);
                }
                "syntax" => self.directives.syntax = Some(v),
                _ => self.directives.check = Some(v),
            }
        }
        Ok((if is_comment(t) { "" } else { t }, is_directive))
    }
}

fn span_of(
    lines: &[Line<'_>],
    first: usize,
    last: usize,
    start_off: usize,
    start_col: usize,
) -> Span {
    let last_line = &lines[last];
    let last_text = trim_newline(last_line.text);
    Span {
        start: start_off,
        end: last_line.start + last_text.len(),
        start_line: first + 1,
        start_col,
        end_line: last + 1,
        end_col: last_text.chars().count() + 1,
    }
}

/// Parses Dockerfile text into a syntax tree. Unknown instructions are kept;
/// errors that still let the parser go on are collected and reported
/// together.
pub fn parse(text: &str) -> Result<Parsed, ParseErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(text);
    let mut st = State {
        escape: '\\',
        directives: Directives::default(),
        dparser: DirectiveParser::default(),
    };
    let mut nodes = Vec::with_capacity(lines.len() / 4);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    let mut i = 0;

    let fatal = |msg: String, line: usize, lines: &[Line<'_>]| {
        let idx = line.min(lines.len().saturating_sub(1));
        let (span, txt) = match lines.get(idx) {
            Some(l) => (
                span_of(lines, idx, idx, l.start, 1),
                trim_newline(l.text).to_string(),
            ),
            None => (
                Span {
                    start_line: 1,
                    start_col: 1,
                    end_line: 1,
                    end_col: 1,
                    ..Span::default()
                },
                String::new(),
            ),
        };
        ParseError::new(ErrorKind::Directive(msg), span, txt)
    };

    while i < lines.len() {
        let first_idx = i;
        let raw = lines[i].text;
        i += 1;
        if is_comment(raw) {
            // BuildKit drops the line's first byte, whatever it is.
            let mut chars = trim_newline(raw).chars();
            chars.next();
            let c = chars.as_str().trim_matches(is_space);
            if c.is_empty() {
                comments.clear();
            } else {
                comments.push(c.to_string());
            }
        }
        let (content, is_directive) = st
            .process_line(raw, true)
            .map_err(|m| ParseErrors::from(fatal(m, first_idx, &lines)))?;
        if is_directive {
            comments.pop();
        }
        let lead = trim_newline(raw).len() - trim_newline(raw).trim_start_matches(is_space).len();
        let start_off = lines[first_idx].start + lead;
        let start_col = raw[..lead].chars().count() + 1;

        let (content, mut eol) = trim_continuation(content, st.escape);
        if eol && content.is_empty() {
            continue;
        }
        let mut buf = String::from(content);
        let mut has_empty_continuation = false;
        while !eol && i < lines.len() {
            let raw = lines[i].text;
            i += 1;
            let (c, _) = st
                .process_line(raw, false)
                .map_err(|m| ParseErrors::from(fatal(m, i - 1, &lines)))?;
            if is_comment(raw) {
                continue;
            }
            if c.trim_start_matches(is_space).is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (c, e) = trim_continuation(c, st.escape);
            eol = e;
            buf.push_str(c);
        }
        let mut last_idx = i - 1;
        if has_empty_continuation {
            warnings.push(Warning {
                rule: "NoEmptyContinuation",
                message: format!("Empty continuation line found in: {buf}"),
                line: i,
            });
        }

        let parts = match parse_line(&buf, st.escape) {
            Ok(p) => p,
            Err(kind) => {
                let span = span_of(&lines, first_idx, last_idx, start_off, start_col);
                let txt = trim_newline(lines[first_idx].text).to_string();
                errors.push(ParseError::new(kind, span, txt));
                comments.clear();
                continue;
            }
        };
        let mut node = Node {
            name: parts.name,
            known: parts.known,
            flags: parts.flags,
            args: parts.args,
            json: parts.json,
            trigger: parts.trigger,
            heredocs: Vec::new(),
            original: String::new(),
            source_text: String::new(),
            comments: std::mem::take(&mut comments),
            span: Span::default(),
        };

        if node.can_contain_heredoc() && buf.contains("<<") {
            match heredocs_from_line(&buf) {
                Ok(docs) => {
                    for mut doc in docs {
                        let mut terminated = false;
                        let mut content = String::new();
                        while i < lines.len() {
                            let raw = lines[i].text;
                            i += 1;
                            let mut candidate = trim_newline(raw);
                            if doc.chomp {
                                candidate = candidate.trim_start_matches('\t');
                            }
                            if candidate == doc.name {
                                terminated = true;
                                break;
                            }
                            content.push_str(raw);
                        }
                        last_idx = i.saturating_sub(1).max(first_idx);
                        if !terminated {
                            let span = span_of(&lines, first_idx, last_idx, start_off, start_col);
                            let txt = trim_newline(lines[first_idx].text).to_string();
                            errors.push(ParseError::new(ErrorKind::UnterminatedHeredoc, span, txt));
                            break;
                        }
                        doc.content = content;
                        node.heredocs.push(doc);
                    }
                }
                Err(e) => {
                    let span = span_of(&lines, first_idx, last_idx, start_off, start_col);
                    let txt = trim_newline(lines[first_idx].text).to_string();
                    errors.push(ParseError::new(ErrorKind::Shell(e), span, txt));
                    continue;
                }
            }
        }

        node.original = buf;
        node.span = span_of(&lines, first_idx, last_idx, start_off, start_col);
        node.source_text = text[node.span.start..node.span.end].to_string();
        if let Some(t) = node.trigger.as_mut() {
            t.span = node.span;
            t.heredocs = node.heredocs.clone();
        }
        nodes.push(node);
    }

    if nodes.is_empty() && errors.is_empty() {
        let idx = lines.len().saturating_sub(1);
        let mut e = fatal(String::new(), idx, &lines);
        e.kind = ErrorKind::NoInstructions;
        errors.push(e);
    }
    if !errors.is_empty() {
        return Err(ParseErrors(errors));
    }
    Ok(Parsed {
        nodes,
        escape: st.escape,
        directives: st.directives,
        warnings,
    })
}

/// Finds heredoc markers on an instruction line (`heredocsFromLine`): the
/// line is split into shell words with quotes and escapes kept, and every
/// word that looks like `[n]<<[-]WORD` starts a heredoc.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, crate::shell::ShellError> {
    let mut lex = Lexer::new('\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    lex.skip_unset_env = true;
    let words = lex.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for w in words {
        if let Some(d) = parse_heredoc(&w)? {
            docs.push(d);
        }
    }
    Ok(docs)
}

/// Recognises one heredoc word (`^(\d*)<<(-?)\s*([^<]*)$`). A delimiter with
/// any quoted part disables expansion of the body.
pub fn parse_heredoc(src: &str) -> Result<Option<Heredoc>, crate::shell::ShellError> {
    let digits_len = src.len() - src.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let digits = &src[..digits_len];
    let Some(rest) = src[digits_len..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let rest = rest.trim_start_matches(['\t', '\n', '\x0c', '\r', ' ']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    let fd = if digits.is_empty() {
        0
    } else {
        digits.parse::<u64>().unwrap_or(u64::MAX)
    };
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let words = lex.process_words(rest, &EmptyEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lex.raw_quotes = true;
    let raw_words = lex.process_words(rest, &EmptyEnv)?;
    if raw_words.len() != words.len() {
        return Err(crate::shell::ShellError {
            word: rest.to_string(),
            message: "internal lexing of heredoc produced inconsistent results".into(),
        });
    }
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(Heredoc {
        name: words[0].clone(),
        fd,
        expand: quotes(&words[0]) == quotes(&raw_words[0]),
        chomp,
        content: String::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\  ", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a", '\\'), ("a", true));
    }

    #[test]
    fn heredoc_words() {
        let h = parse_heredoc("<<EOF").unwrap().unwrap();
        assert!(h.expand && !h.chomp && h.name == "EOF");
        let h = parse_heredoc("3<<-'EOF'").unwrap().unwrap();
        assert!(!h.expand && h.chomp && h.fd == 3 && h.name == "EOF");
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("a<<b").unwrap().is_none());
    }
}
