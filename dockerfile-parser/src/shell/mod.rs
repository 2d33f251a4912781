//! Word expansion and splitting, matching BuildKit's shell lexer
//! (`frontend/dockerfile/shell/lex.go`) case for case.
//!
//! The parser never expands variables itself; the builder calls
//! [`Lexer::process_word`] / [`Lexer::process_words`] with the stage's
//! ARG/ENV values through the [`Env`] trait.

mod env;
mod pattern;

pub use env::{env_from_pairs, EmptyEnv, Env};

use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {message}", crate::dump::go_quote(.word))]
pub struct ShellError {
    /// The word that failed to expand.
    pub word: String,
    pub message: String,
}

/// Outcome of expanding one word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded text with quotes removed, spaces kept.
    pub result: String,
    /// The same text split into words after expansion (quoted spaces kept).
    pub words: Vec<String>,
    /// Variables that were referenced and set.
    pub matched: BTreeSet<String>,
    /// Variables that were referenced but unset (for lint warnings).
    pub unmatched: BTreeSet<String>,
}

/// Word lexer settings. `Lexer::new(escape)` gives the behaviour the
/// Dockerfile frontend uses for expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset_env: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` and also reports its words and variable usage.
    pub fn process(&self, word: &str, env: &dyn Env) -> Result<Expansion, ShellError> {
        let mut st = State {
            lex: self,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        };
        match st.process_stop_on(None, self.raw_escapes) {
            Ok((result, words)) => Ok(Expansion {
                result,
                words,
                matched: st.matched,
                unmatched: st.unmatched,
            }),
            Err(message) => Err(ShellError {
                word: word.to_string(),
                message,
            }),
        }
    }

    /// Expands `word` into one string (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process(word, env).map(|e| e.result)
    }

    /// Expands and splits `word` (BuildKit's `ProcessWords`).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        self.process(word, env).map(|e| e.words)
    }
}

/// Go's `unicode.IsSpace` (the White_Space property) equals Rust's.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// Accumulates words while expanding: unquoted whitespace separates words,
/// quoted or escaped text never does.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if is_space(c) {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }
    fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }
    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }
    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }
    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}

struct State<'a> {
    lex: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    /// Nesting of `${…}` inside `${…}`; bounded so hostile input cannot
    /// overflow the stack.
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

const MAX_NESTING: usize = 200;

type Res<T> = Result<T, String>;

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }
    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        match self.env.get(name) {
            Some(v) => {
                self.matched.insert(name.to_string());
                Some(v.to_string())
            }
            None => {
                self.unmatched.insert(name.to_string());
                None
            }
        }
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        if self.depth >= MAX_NESTING {
            return Err("substitution nested too deeply".into());
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        let escape = self.lex.escape;
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '\'' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                '"' if !self.lex.skip_process_quotes => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&tmp);
                }
                _ => {
                    self.pos += 1;
                    if ch == escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(c) = self.next() else { break };
                        words.add_raw_char(c);
                        result.push(c);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    fn process_single_quote(&mut self) -> Res<String> {
        // No escapes inside single quotes: every character is literal.
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        let escape = self.lex.escape;
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let v = self.process_dollar()?;
                    result.push_str(&v);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            // Only these can be escaped; other escapes stay literal.
                            Some(c) if c == '"' || c == '$' || c == escape => {
                                self.pos += 1;
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Res<String> {
        self.pos += 1; // '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let ch = self.next();
        // Go renders a missing rune (EOF) as U+FFFD in messages.
        let show = |c: Option<char>| c.unwrap_or('\u{FFFD}');
        let mut chs = show(ch).to_string();
        match ch {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let mut op = ch;
                let null_is_unset = ch == Some(':');
                if null_is_unset {
                    op = self.next();
                    chs.push(show(op));
                }
                let raw = matches!(op, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let unset = value.is_none();
                let empty_or_unset = unset || (null_is_unset && value.as_deref() == Some(""));
                match op {
                    Some('-') => Ok(if empty_or_unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    Some('+') => Ok(if empty_or_unset { String::new() } else { word }),
                    Some('?') => {
                        if unset {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        if null_is_unset && value.as_deref() == Some("") {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        Ok(value.unwrap_or_default())
                    }
                    Some(c @ ('%' | '#')) => {
                        let (greedy, pat) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let value = value.unwrap_or_default();
                        if c == '%' {
                            pattern::trim_suffix(pat, &value, greedy)
                        } else {
                            pattern::trim_prefix(pat, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let repl = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                match value {
                    None if self.lex.skip_unset_env => Ok(format!("${{{name}/{pat}/{repl}}}")),
                    v => pattern::replace(&pat, &v.unwrap_or_default(), &repl, all),
                }
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(c) = self.peek().filter(|&c| is_digit(c)) {
                    self.pos += 1;
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_digit(ch) && ch != '_' {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut out = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests;
