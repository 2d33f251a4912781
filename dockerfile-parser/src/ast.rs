//! Syntax tree: one [`Node`] per instruction, shaped like BuildKit's AST but
//! as plain Rust values, plus the per-instruction argument parsers
//! (BuildKit's `line_parsers.go`).

use crate::error::ErrorKind;

/// A source range: byte offsets into the (BOM-stripped) text plus 1-based
/// line and column (columns count characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub start_line: usize,
    pub start_col: usize,
    pub end_line: usize,
    pub end_col: usize,
}

/// A here-document attached to RUN/COPY/ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF`).
    pub name: String,
    /// File descriptor prefix, as in `3<<EOF` (0 when absent).
    pub fd: u64,
    /// False when any part of the delimiter was quoted.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the content.
    pub chomp: bool,
    /// Body lines including their newlines, without the terminator line.
    pub content: String,
}

impl Heredoc {
    /// The content with leading tabs removed from every line when `chomp`.
    pub fn effective_content(&self) -> String {
        if self.chomp {
            chomp_heredoc_content(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes leading tabs from each line (`<<-`).
pub fn chomp_heredoc_content(s: &str) -> String {
    s.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Instruction keyword as written (`RUN`, `run`, `Foo`).
    pub name: String,
    /// False for keywords BuildKit does not know (accepted at this layer).
    pub known: bool,
    /// Leading `--flag[=value]` words, quotes and escapes removed.
    pub flags: Vec<String>,
    /// Arguments. ENV/LABEL hold `key, value, sep` triples (sep is `=` or
    /// empty for the legacy `KEY value` form); HEALTHCHECK holds the type
    /// first; JSON forms hold the array elements.
    pub args: Vec<String>,
    /// Arguments were given as a JSON array (exec form).
    pub json: bool,
    /// For ONBUILD: the trigger instruction.
    pub trigger: Option<Box<Node>>,
    pub heredocs: Vec<Heredoc>,
    /// The logical line after joining continuations (BuildKit's `Original`).
    pub original: String,
    /// The exact source text of the instruction, heredoc bodies included.
    pub source_text: String,
    /// Comment lines directly above the instruction, `#` removed.
    pub comments: Vec<String>,
    pub span: Span,
}

impl Node {
    /// The first source line, for error display.
    pub fn first_line(&self) -> &str {
        self.source_text.lines().next().unwrap_or("")
    }

    /// Whether this instruction (or an ONBUILD trigger) may carry heredocs.
    pub(crate) fn can_contain_heredoc(&self) -> bool {
        let n = match &self.trigger {
            Some(t) if self.name.eq_ignore_ascii_case("onbuild") => t,
            _ => self,
        };
        let name = n.name.to_ascii_lowercase();
        matches!(name.as_str(), "add" | "copy" | "run") && !n.json
    }
}

/// Instruction keywords the syntax layer knows.
pub const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Go's `unicode.IsSpace`.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// BuildKit's `reWhitespace`: `[\t\v\f\r ]+`.
fn is_ws_sep(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of `[\t\v\f\r ]`, keeping empty edges like Go's
/// `regexp.Split`. With `limit = Some(2)` the tail is returned unsplit.
fn split_ws(s: &str, limit: Option<usize>) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        if limit.is_some_and(|l| out.len() + 1 >= l) {
            out.push(rest);
            return out;
        }
        match rest.find(is_ws_sep) {
            Some(i) => {
                out.push(&rest[..i]);
                let after = &rest[i..];
                let skip = after.len() - after.trim_start_matches(is_ws_sep).len();
                rest = &after[skip..];
            }
            None => {
                out.push(rest);
                return out;
            }
        }
    }
}

/// Parsed pieces of one logical line.
pub(crate) struct LineParts {
    pub name: String,
    pub known: bool,
    pub flags: Vec<String>,
    pub args: Vec<String>,
    pub json: bool,
    pub trigger: Option<Box<Node>>,
}

/// Splits a logical line into command, flags and arguments and dispatches
/// to the argument parser for that command (`newNodeFromLine`).
pub(crate) fn parse_line(line: &str, escape: char) -> Result<LineParts, ErrorKind> {
    parse_line_nested(line, escape, 0)
}

/// ONBUILD nests; BuildKit puts no bound on it, but a bound keeps hostile
/// input (`ONBUILD ONBUILD …` thousands deep) from exhausting the stack.
/// The typed layer rejects any nesting beyond one level anyway.
const MAX_ONBUILD_DEPTH: usize = 32;

fn parse_line_nested(line: &str, escape: char, depth: usize) -> Result<LineParts, ErrorKind> {
    let trimmed = line.trim_matches(is_space);
    let (name, rest, flags) = match trimmed.find(is_ws_sep) {
        Some(i) => {
            let (rest, flags) = extract_flags(trimmed[i..].trim_start_matches(is_ws_sep), escape);
            (trimmed[..i].to_string(), rest, flags)
        }
        None => (trimmed.to_string(), "", Vec::new()),
    };
    let rest = rest.trim_matches(is_space);
    let lower = name.to_ascii_lowercase();
    let mut out = LineParts {
        name,
        known: true,
        flags,
        args: Vec::new(),
        json: false,
        trigger: None,
    };
    match lower.as_str() {
        "add" | "copy" | "volume" => {
            (out.args, out.json) = maybe_json_to_list(rest)?;
        }
        "cmd" | "entrypoint" | "run" | "shell" => {
            (out.args, out.json) = maybe_json(rest)?;
        }
        "arg" => out.args = parse_words(rest, escape),
        "env" => out.args = parse_name_val(rest, "ENV", escape)?,
        "label" => out.args = parse_name_val(rest, "LABEL", escape)?,
        "expose" | "from" => out.args = whitespace_delimited(rest),
        "maintainer" | "stopsignal" | "user" | "workdir" => {
            if !rest.is_empty() {
                out.args = vec![rest.to_string()];
            }
        }
        "healthcheck" => (out.args, out.json) = health_config(rest)?,
        "onbuild" => {
            if !rest.is_empty() {
                if depth >= MAX_ONBUILD_DEPTH {
                    return Err(ErrorKind::Invalid("ONBUILD nested too deeply".into()));
                }
                let sub = parse_line_nested(rest, escape, depth + 1)?;
                out.trigger = Some(Box::new(Node {
                    name: sub.name,
                    known: sub.known,
                    flags: sub.flags,
                    args: sub.args,
                    json: sub.json,
                    trigger: sub.trigger,
                    heredocs: Vec::new(),
                    original: rest.to_string(),
                    source_text: String::new(),
                    comments: Vec::new(),
                    span: Span::default(),
                }));
            }
        }
        _ => out.known = false,
    }
    Ok(out)
}

/// Pulls leading `--flag` words off the argument text (`extractBuilderFlags`):
/// quotes and escapes are removed from flags; `--` ends the flags.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let start = line.trim_start_matches(is_space);
    if !start.starts_with("--") {
        // Most instructions have no flags; skip the character walk.
        return (start, Vec::new());
    }
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut buf = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    while pos <= n {
        let at = |p: usize| chars.get(p).map(|&(_, c)| c);
        let ch = at(pos).unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            if ch != '-' || at(pos + 1) != Some('-') {
                return (&line[chars[pos].0..], words);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if buf != "--" && (blank_ok || !buf.is_empty()) {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if buf == "--" {
                    return (&line[chars[pos].0..], words);
                }
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                buf.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = chars[pos].1;
            }
            buf.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == escape {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = chars[pos].1;
        }
        buf.push(c);
        pos += 1;
    }
    ("", words)
}

/// Splits into words keeping quotes and escapes (`parseWords`); they are
/// removed later, at expansion time.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut pos = 0;
    while pos <= n {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space(ch) {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space(ch) {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                // An escaped character (even a quote) is kept with its escape.
                buf.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            buf.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            buf.push(ch);
            ch = chars[pos];
        }
        buf.push(ch);
        pos += 1;
    }
    words
}

/// ENV and LABEL: `KEY value` (legacy) or `k=v k2=v2 ...`.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_ws(rest, Some(2));
        if parts.len() < 2 {
            return Err(ErrorKind::Invalid(format!("{key} must have two arguments")));
        }
        return Ok(vec![
            parts[0].to_string(),
            parts[1].to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(ErrorKind::Invalid(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                crate::dump::go_quote(w)
            )));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_ws(rest, None)
        .into_iter()
        .map(str::to_string)
        .collect()
}

enum JsonOutcome {
    Array(Vec<String>),
    NotStrings,
    NotJson,
}

/// Parses a JSON array of strings the way BuildKit does: anything that is not
/// valid JSON falls back to shell form, but a valid array holding non-strings
/// is an error.
fn parse_json(rest: &str) -> JsonOutcome {
    let rest = rest.trim_start_matches(is_space);
    if !rest.starts_with('[') {
        return JsonOutcome::NotJson;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Ok(items) => {
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                match it {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return JsonOutcome::NotStrings,
                }
            }
            JsonOutcome::Array(out)
        }
        Err(_) => JsonOutcome::NotJson,
    }
}

fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    match parse_json(rest) {
        JsonOutcome::Array(a) => Ok((a, true)),
        JsonOutcome::NotStrings => Err(ErrorKind::JsonNotStringArray),
        JsonOutcome::NotJson => Ok((vec![rest.to_string()], false)),
    }
}

fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    match parse_json(rest) {
        JsonOutcome::Array(a) => Ok((a, true)),
        JsonOutcome::NotStrings => Err(ErrorKind::JsonNotStringArray),
        JsonOutcome::NotJson => Ok((whitespace_delimited(rest), false)),
    }
}

/// HEALTHCHECK: a type word, then a command like CMD's.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), ErrorKind> {
    let sep = rest.find(is_space).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = &rest[..sep];
    let cmd = rest[sep..].trim_start_matches(is_space);
    let (mut args, json) = maybe_json(cmd)?;
    args.insert(0, typ.to_string());
    Ok((args, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_stop_at_double_dash() {
        let (rest, flags) = extract_flags("--a=1 --b=\"x y\" -- --c x", '\\');
        assert_eq!(flags, ["--a=1", "--b=x y"]);
        assert_eq!(rest.trim(), "--c x");
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words(r#"a="b c" d\ e 'f"#, '\\'),
            [r#"a="b c""#, r"d\ e", "'f"]
        );
    }

    #[test]
    fn split_like_go() {
        assert_eq!(split_ws("a  b\tc", None), ["a", "b", "c"]);
        assert_eq!(split_ws("a  b c", Some(2)), ["a", "b c"]);
        assert_eq!(split_ws("a ", None), ["a", ""]);
    }
}
