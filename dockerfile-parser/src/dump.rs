//! S-expression dump of the syntax tree, byte-identical to BuildKit's
//! `Node.Dump()` (used by the parser conformance corpus and `--print-ast`).

use crate::ast::Node;
use std::fmt::Write;

/// Dumps all instructions, one per line, each line ending in `\n`.
pub fn dump(nodes: &[Node]) -> String {
    let mut out = String::new();
    for n in nodes {
        let mut one = String::new();
        dump_node(n, &mut one);
        out.push('(');
        // Go trims the node dump, which matters only for an empty keyword.
        out.push_str(one.trim_matches(char::is_whitespace));
        out.push_str(")\n");
    }
    out
}

/// Dumps one instruction without the surrounding parentheses.
pub fn dump_node(node: &Node, out: &mut String) {
    out.push_str(&node.name.to_lowercase());
    if !node.flags.is_empty() {
        out.push_str(" [");
        for (i, f) in node.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(&go_quote(f));
        }
        out.push(']');
    }
    if let Some(child) = &node.trigger {
        let mut one = String::new();
        dump_node(child, &mut one);
        out.push_str(" (");
        out.push_str(one.trim_matches(char::is_whitespace));
        out.push(')');
    } else if !node.known {
        // BuildKit keeps one empty argument node for unknown instructions.
        out.push_str(" \"\"");
    } else {
        for a in &node.args {
            out.push(' ');
            out.push_str(&go_quote(a));
        }
    }
}

/// Quotes a string the way Go's `strconv.Quote` / `%q` does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// Approximates Go's `strconv.IsPrint` (letters, marks, numbers,
/// punctuation, symbols and the ASCII space) without Unicode tables: control
/// and format characters, separators other than U+0020, surrogates, private
/// use and noncharacters are treated as unprintable.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F
        | 0xE000..=0xF8FF | 0xFDD0..=0xFDEF | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xFFFE | 0xFFFF | 0xF0000..=0x10FFFF)
        && (u & 0xFFFE) != 0xFFFE
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn quoting() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("\t\n\x01\x7f"), r#""\t\n\x01\x7f""#);
        assert_eq!(go_quote("한국어 é"), "\"한국어 é\"");
        assert_eq!(go_quote("\u{a0}\u{feff}"), r#""\u00a0\ufeff""#);
    }
}
