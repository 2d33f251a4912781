//! Reads the regular expression text moby's `Pattern.compile` builds, with Go
//! `regexp` (RE2, `syntax.Perl` flags) rules, and writes an equivalent pattern
//! for the `regex` crate.
//!
//! moby only escapes some characters of a `.dockerignore` pattern before
//! handing it to Go's parser, so user text reaches that parser raw: `[...]`
//! classes (with Go's POSIX/Perl class rules), `\d`, `\pL`, octal and hex
//! escapes, `\Q...\E`, `^`. The two regex dialects disagree on several of these
//! (nested `[` inside classes, `\d` being ASCII-only in Go, octal escapes,
//! `\Q`), so the text is parsed here with Go's rules and re-emitted with every
//! literal escaped.

use std::fmt::Write as _;

use classes::{is_go_unicode_table, posix_class, DIGIT, PERL_SPACE, WORD};

mod classes;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Go regular expression: {0}")]
pub struct GoRegexError(pub &'static str);

type Result<T> = std::result::Result<T, GoRegexError>;

const MAX_RUNE: u32 = 0x10FFFF;

/// One parsed element awaiting concatenation.
struct Item {
    /// Rust regex text, self-contained (safe to suffix with a quantifier).
    text: String,
}

struct Frame {
    /// Finished alternatives of this group.
    alternatives: Vec<String>,
    items: Vec<Item>,
}

impl Frame {
    fn new() -> Self {
        Frame {
            alternatives: Vec::new(),
            items: Vec::new(),
        }
    }

    fn finish(mut self) -> String {
        let seq: String = self.items.drain(..).map(|i| i.text).collect();
        self.alternatives.push(seq);
        if self.alternatives.len() == 1 {
            self.alternatives.pop().unwrap_or_default()
        } else {
            self.alternatives.join("|")
        }
    }
}

/// Translates Go regexp syntax to `regex` crate syntax with the same meaning.
pub fn translate(src: &str) -> Result<String> {
    let chars: Vec<char> = src.chars().collect();
    let mut p = Parser { s: &chars, i: 0 };
    p.parse()
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn peek_at(&self, off: usize) -> Option<char> {
        self.s.get(self.i + off).copied()
    }

    fn parse(&mut self) -> Result<String> {
        let mut stack: Vec<Frame> = vec![Frame::new()];
        // Whether the previous token was a repetition operator: Go rejects
        // stacked operators such as `a**`.
        let mut last_repeat = false;
        while let Some(c) = self.peek() {
            let mut repeat = false;
            let top = stack.len() - 1;
            match c {
                '(' => {
                    if self.peek_at(1) == Some('?') {
                        // moby never emits `(?`; the user cannot either, since
                        // moby escapes `(`.
                        return Err(GoRegexError("unsupported Perl group syntax"));
                    }
                    self.i += 1;
                    stack.push(Frame::new());
                }
                ')' => {
                    self.i += 1;
                    if stack.len() < 2 {
                        return Err(GoRegexError("unexpected )"));
                    }
                    let frame = stack.pop().unwrap_or_else(Frame::new);
                    let inner = frame.finish();
                    let last = stack.len() - 1;
                    stack[last].items.push(Item {
                        text: format!("(?:{inner})"),
                    });
                }
                '|' => {
                    self.i += 1;
                    let f = &mut stack[top];
                    let seq: String = f.items.drain(..).map(|i| i.text).collect();
                    f.alternatives.push(seq);
                }
                '^' => {
                    self.i += 1;
                    stack[top].items.push(Item { text: r"\A".into() });
                }
                '$' => {
                    self.i += 1;
                    stack[top].items.push(Item { text: r"\z".into() });
                }
                '.' => {
                    self.i += 1;
                    // Go's `.` excludes only \n, like the regex crate's default.
                    stack[top].items.push(Item {
                        text: "(?:.)".into(),
                    });
                }
                '[' => {
                    let class = self.parse_class()?;
                    stack[top].items.push(Item { text: class });
                }
                '*' | '+' | '?' => {
                    self.i += 1;
                    // A trailing `?` makes the operator non-greedy; irrelevant
                    // for a yes/no match but it is part of the same token.
                    if self.peek() == Some('?') {
                        self.i += 1;
                    }
                    if last_repeat {
                        return Err(GoRegexError("invalid nested repetition operator"));
                    }
                    apply_repeat(&mut stack[top], &c.to_string())?;
                    repeat = true;
                }
                '{' => {
                    if let Some((min, max, len)) = self.parse_repeat() {
                        if min > 1000 || max.is_some_and(|m| m > 1000 || m < min) {
                            return Err(GoRegexError("invalid repeat count"));
                        }
                        self.i += len;
                        if self.peek() == Some('?') {
                            self.i += 1;
                        }
                        if last_repeat {
                            return Err(GoRegexError("invalid nested repetition operator"));
                        }
                        let op = match max {
                            Some(m) if m == min => format!("{{{min}}}"),
                            Some(m) => format!("{{{min},{m}}}"),
                            None => format!("{{{min},}}"),
                        };
                        apply_repeat(&mut stack[top], &op)?;
                        repeat = true;
                    } else {
                        self.i += 1;
                        stack[top].items.push(Item { text: lit('{') });
                    }
                }
                '\\' => self.parse_backslash(&mut stack[top])?,
                _ => {
                    self.i += 1;
                    stack[top].items.push(Item { text: lit(c) });
                }
            }
            last_repeat = repeat;
        }
        if stack.len() != 1 {
            return Err(GoRegexError("missing closing )"));
        }
        Ok(stack.pop().map(Frame::finish).unwrap_or_default())
    }

    /// `{min}`, `{min,}` or `{min,max}`; returns the token length in chars.
    fn parse_repeat(&self) -> Option<(u32, Option<u32>, usize)> {
        let mut j = self.i + 1;
        let min = self.parse_int(&mut j)?;
        let max = match self.s.get(j)? {
            ',' => {
                j += 1;
                if *self.s.get(j)? == '}' {
                    None
                } else {
                    Some(self.parse_int(&mut j)?)
                }
            }
            _ => Some(min),
        };
        if *self.s.get(j)? != '}' {
            return None;
        }
        Some((min, max, j + 1 - self.i))
    }

    fn parse_int(&self, j: &mut usize) -> Option<u32> {
        let start = *j;
        while self.s.get(*j).is_some_and(|c| c.is_ascii_digit()) {
            *j += 1;
        }
        let digits = &self.s[start..*j];
        if digits.is_empty() || (digits.len() >= 2 && digits[0] == '0') {
            return None;
        }
        let mut n: u32 = 0;
        for d in digits {
            // Go maps anything this large to "too big" (an error later).
            n = n
                .saturating_mul(10)
                .saturating_add(d.to_digit(10).unwrap_or(0));
            if n >= 100_000_000 {
                n = u32::MAX;
            }
        }
        Some(n)
    }

    fn parse_backslash(&mut self, frame: &mut Frame) -> Result<()> {
        match self.peek_at(1) {
            Some('A') => {
                self.i += 2;
                frame.items.push(Item { text: r"\A".into() });
                return Ok(());
            }
            Some('z') => {
                self.i += 2;
                frame.items.push(Item { text: r"\z".into() });
                return Ok(());
            }
            Some('b') => {
                self.i += 2;
                frame.items.push(Item {
                    text: r"(?-u:\b)".into(),
                });
                return Ok(());
            }
            Some('B') => {
                self.i += 2;
                frame.items.push(Item {
                    text: r"(?-u:\B)".into(),
                });
                return Ok(());
            }
            Some('C') => return Err(GoRegexError("invalid escape sequence \\C")),
            Some('Q') => {
                self.i += 2;
                // Everything up to `\E` (or the end) is literal.
                while let Some(c) = self.peek() {
                    if c == '\\' && self.peek_at(1) == Some('E') {
                        self.i += 2;
                        break;
                    }
                    self.i += 1;
                    frame.items.push(Item { text: lit(c) });
                }
                return Ok(());
            }
            _ => {}
        }
        let mut set = ClassSet::default();
        if self.parse_unicode_class(&mut set)? || self.parse_perl_class(&mut set) {
            frame.items.push(Item {
                text: set.render(false),
            });
            return Ok(());
        }
        let c = self.parse_escape()?;
        frame.items.push(Item { text: lit_u32(c) });
        Ok(())
    }

    /// Go's `parseEscape`: the text at `self.i` starts with `\`.
    fn parse_escape(&mut self) -> Result<u32> {
        self.i += 1;
        let Some(c) = self.peek() else {
            return Err(GoRegexError("trailing backslash at end of expression"));
        };
        self.i += 1;
        let invalid = Err(GoRegexError("invalid escape sequence"));
        match c {
            '1'..='7' if !self.peek().is_some_and(|d| ('0'..='7').contains(&d)) => invalid,
            '0'..='7' => {
                let mut r = c as u32 - '0' as u32;
                for _ in 1..3 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            r = r * 8 + (d as u32 - '0' as u32);
                            self.i += 1;
                        }
                        _ => break,
                    }
                }
                Ok(r)
            }
            'x' => {
                let Some(c1) = self.peek() else {
                    return invalid;
                };
                self.i += 1;
                if c1 == '{' {
                    let mut r: u32 = 0;
                    let mut nhex = 0;
                    loop {
                        let Some(d) = self.peek() else { return invalid };
                        self.i += 1;
                        if d == '}' {
                            break;
                        }
                        let Some(v) = d.to_digit(16) else {
                            return invalid;
                        };
                        r = r * 16 + v;
                        if r > MAX_RUNE {
                            return invalid;
                        }
                        nhex += 1;
                    }
                    if nhex == 0 {
                        return invalid;
                    }
                    return Ok(r);
                }
                let c2 = self.peek();
                if c2.is_some() {
                    self.i += 1;
                }
                match (c1.to_digit(16), c2.and_then(|c| c.to_digit(16))) {
                    (Some(x), Some(y)) => Ok(x * 16 + y),
                    _ => invalid,
                }
            }
            'a' => Ok(7),
            'f' => Ok(12),
            'n' => Ok(10),
            'r' => Ok(13),
            't' => Ok(9),
            'v' => Ok(11),
            c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
            _ => invalid,
        }
    }

    /// `\d \s \w` and their negations (ASCII only in Go).
    fn parse_perl_class(&mut self, set: &mut ClassSet) -> bool {
        if self.peek() != Some('\\') {
            return false;
        }
        let Some(c) = self.peek_at(1) else {
            return false;
        };
        let (ranges, negated) = match c {
            'd' => (DIGIT, false),
            'D' => (DIGIT, true),
            's' => (PERL_SPACE, false),
            'S' => (PERL_SPACE, true),
            'w' => (WORD, false),
            'W' => (WORD, true),
            _ => return false,
        };
        set.add_table(ranges, negated);
        self.i += 2;
        true
    }

    /// `\pN`, `\p{Name}`, `\PN`, `\p{^Name}`.
    fn parse_unicode_class(&mut self, set: &mut ClassSet) -> Result<bool> {
        if self.peek() != Some('\\') {
            return Ok(false);
        }
        let mut negated = match self.peek_at(1) {
            Some('p') => false,
            Some('P') => true,
            _ => return Ok(false),
        };
        let Some(c) = self.peek_at(2) else {
            return Err(GoRegexError("invalid character class range"));
        };
        let mut name: String;
        if c != '{' {
            name = c.to_string();
            self.i += 3;
        } else {
            let Some(end) = self.s[self.i..].iter().position(|&c| c == '}') else {
                return Err(GoRegexError("invalid character class range"));
            };
            name = self.s[self.i + 3..self.i + end].iter().collect();
            self.i += end + 1;
        }
        if let Some(stripped) = name.strip_prefix('^') {
            negated = !negated;
            name = stripped.to_string();
        }
        if name == "Any" {
            set.add_table(&[(0, MAX_RUNE)], negated);
            return Ok(true);
        }
        if !is_go_unicode_table(&name) {
            return Err(GoRegexError("invalid character class range"));
        }
        set.unicode.push((name, negated));
        Ok(true)
    }

    /// Go's `parseClass`, starting at `[`.
    fn parse_class(&mut self) -> Result<String> {
        self.i += 1;
        let mut set = ClassSet::default();
        let mut negated = false;
        if self.peek() == Some('^') {
            negated = true;
            self.i += 1;
        }
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(GoRegexError("missing closing ]")),
                Some(']') if !first => break,
                _ => {}
            }
            first = false;
            // POSIX [:alnum:] etc.
            if self.peek() == Some('[') && self.peek_at(1) == Some(':') && self.i + 2 < self.s.len()
            {
                let rest = &self.s[self.i + 2..];
                if let Some(pos) = rest.windows(2).position(|w| w == [':', ']']) {
                    let name: String = rest[..pos].iter().collect();
                    let (name, neg) = match name.strip_prefix('^') {
                        Some(n) => (n.to_string(), true),
                        None => (name, false),
                    };
                    let Some(table) = posix_class(&name) else {
                        return Err(GoRegexError("invalid character class range"));
                    };
                    set.add_table(table, neg);
                    self.i += 2 + pos + 2;
                    continue;
                }
            }
            if self.parse_unicode_class(&mut set)? || self.parse_perl_class(&mut set) {
                continue;
            }
            let lo = self.parse_class_char()?;
            let mut hi = lo;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.i += 1;
                hi = self.parse_class_char()?;
                if hi < lo {
                    return Err(GoRegexError("invalid character class range"));
                }
            }
            set.ranges.push((lo, hi));
        }
        self.i += 1;
        Ok(set.render(negated))
    }

    fn parse_class_char(&mut self) -> Result<u32> {
        match self.peek() {
            None => Err(GoRegexError("missing closing ]")),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.i += 1;
                Ok(c as u32)
            }
        }
    }
}

fn apply_repeat(frame: &mut Frame, op: &str) -> Result<()> {
    let Some(last) = frame.items.last_mut() else {
        return Err(GoRegexError("missing argument to repetition operator"));
    };
    last.text = format!("(?:{}){op}", last.text);
    Ok(())
}

/// A character class under construction: plain ranges plus Unicode tables the
/// regex crate knows by name.
#[derive(Default)]
struct ClassSet {
    ranges: Vec<(u32, u32)>,
    unicode: Vec<(String, bool)>,
}

impl ClassSet {
    fn add_table(&mut self, table: &[(u32, u32)], negated: bool) {
        if negated {
            self.ranges.extend(complement(table));
        } else {
            self.ranges.extend_from_slice(table);
        }
    }

    fn render(&self, negated: bool) -> String {
        let mut body = String::new();
        for &(lo, hi) in &self.ranges {
            // Surrogates never occur in decoded text; the regex crate rejects them.
            for (lo, hi) in split_surrogates(lo, hi) {
                let _ = write!(body, "\\x{{{lo:X}}}-\\x{{{hi:X}}}");
            }
        }
        for (name, neg) in &self.unicode {
            let _ = write!(body, "\\{}{{{}}}", if *neg { 'P' } else { 'p' }, name);
        }
        if body.is_empty() {
            // An empty class matches nothing; negated, it matches any character.
            return if negated {
                r"[\x{0}-\x{10FFFF}]".into()
            } else {
                r"[^\x{0}-\x{10FFFF}]".into()
            };
        }
        format!("[{}{}]", if negated { "^" } else { "" }, body)
    }
}

fn split_surrogates(lo: u32, hi: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(2);
    if lo < 0xD800 {
        out.push((lo, hi.min(0xD7FF)));
    }
    if hi > 0xDFFF {
        out.push((lo.max(0xE000), hi));
    }
    out
}

fn complement(table: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut sorted = table.to_vec();
    sorted.sort_unstable();
    let mut out = Vec::new();
    let mut next = 0u32;
    for (lo, hi) in sorted {
        if lo > next {
            out.push((next, lo - 1));
        }
        next = next.max(hi.saturating_add(1));
    }
    if next <= MAX_RUNE {
        out.push((next, MAX_RUNE));
    }
    out
}

fn lit(c: char) -> String {
    lit_u32(c as u32)
}

fn lit_u32(c: u32) -> String {
    if (0xD800..=0xDFFF).contains(&c) {
        // A surrogate literal can never match decoded text.
        return r"[^\x{0}-\x{10FFFF}]".into();
    }
    format!("\\x{{{c:X}}}")
}

#[cfg(test)]
mod tests;
