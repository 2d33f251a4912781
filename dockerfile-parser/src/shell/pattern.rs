//! Shell wildcard patterns used by `${v#p}`, `${v%p}` and `${v/p/r}`.
//!
//! BuildKit converts these patterns to Go regular expressions; we match them
//! directly with a memoised backtracking search that explores alternatives in
//! the same preference order as Go's leftmost-first regexp engine, so the
//! chosen match is identical while the cost stays O(pattern × value).

/// States already explored without success. A failed state fails whatever
/// the start position, so one set may be shared between the start positions
/// of a single search.
pub(crate) struct Seen {
    bits: Vec<u64>,
    width: usize,
}

/// Upper bound on the search table (in states) so that a huge value and a
/// long pattern cannot exhaust memory; beyond it expansion fails cleanly.
const MAX_STATES: usize = 1 << 30;

impl Seen {
    fn new(pattern_len: usize, value_len: usize) -> Result<Seen, String> {
        let width = value_len + 1;
        let states = (pattern_len + 1)
            .checked_mul(width)
            .filter(|&n| n <= MAX_STATES)
            .ok_or_else(|| "pattern too complex for value".to_string())?;
        Ok(Seen {
            bits: vec![0; states.div_ceil(64)],
            width,
        })
    }

    /// Marks a state; returns false if it was already marked.
    fn insert(&mut self, pi: usize, vi: usize) -> bool {
        let i = pi * self.width + vi;
        let (w, b) = (i / 64, 1u64 << (i % 64));
        let fresh = self.bits[w] & b == 0;
        self.bits[w] |= b;
        fresh
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// `?`: any single character except newline (Go's `.`).
    Any,
    /// `*`: any run of characters except newline.
    Star,
    Lit(char),
}

#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    toks: Vec<Tok>,
    greedy: bool,
}

impl Pattern {
    /// Compiles a pattern. `\` escapes `*`, `?` and `\`; before `}` or `/` it
    /// is dropped (it only protected the delimiter). Any other escape fails,
    /// like BuildKit's `convertShellPatternToRegex`.
    pub(crate) fn compile(pattern: &str, greedy: bool) -> Result<Pattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut toks = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => {
                    if matches!(chars.get(i), Some('}') | Some('/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&e @ ('*' | '?' | '\\')) => {
                            toks.push(Tok::Lit(e));
                            i += 1;
                        }
                        Some(&e) => return Err(format!("invalid escape '\\{e}'")),
                        None => return Err("invalid escape '\\'".to_string()),
                    }
                }
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern { toks, greedy })
    }

    /// Returns the end of the preferred match that starts exactly at `start`.
    fn match_at(&self, value: &[char], start: usize, seen: &mut Seen) -> Option<usize> {
        let mut stack = vec![(0usize, start)];
        while let Some((pi, vi)) = stack.pop() {
            if !seen.insert(pi, vi) {
                continue;
            }
            let Some(tok) = self.toks.get(pi) else {
                return Some(vi);
            };
            let cur = value.get(vi).copied();
            match tok {
                Tok::Lit(c) => {
                    if cur == Some(*c) {
                        stack.push((pi + 1, vi + 1));
                    }
                }
                Tok::Any => {
                    if cur.is_some_and(|c| c != '\n') {
                        stack.push((pi + 1, vi + 1));
                    }
                }
                Tok::Star => {
                    let can_eat = cur.is_some_and(|c| c != '\n');
                    // Stack order: the preferred alternative is pushed last.
                    if self.greedy {
                        stack.push((pi + 1, vi));
                        if can_eat {
                            stack.push((pi, vi + 1));
                        }
                    } else {
                        if can_eat {
                            stack.push((pi, vi + 1));
                        }
                        stack.push((pi + 1, vi));
                    }
                }
            }
        }
        None
    }

    /// Leftmost match at or after `from`: (start, end) in char indices.
    fn find(&self, value: &[char], from: usize) -> Result<Option<(usize, usize)>, String> {
        let mut seen = Seen::new(self.toks.len(), value.len())?;
        Ok((from..=value.len()).find_map(|s| self.match_at(value, s, &mut seen).map(|e| (s, e))))
    }
}

/// `${v#p}` / `${v##p}`: remove the shortest / longest matching prefix.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let pat = Pattern::compile(pattern, greedy)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let chars: Vec<char> = value.chars().collect();
    let mut seen = Seen::new(pat.toks.len(), chars.len())?;
    Ok(match pat.match_at(&chars, 0, &mut seen) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_string(),
    })
}

/// `${v%p}` / `${v%%p}`: reverse pattern and value so that the rightmost
/// shortest/longest suffix becomes a leftmost prefix match.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rev_pat = reverse_pattern(pattern);
    let rev_val: String = value.chars().rev().collect();
    let out = trim_prefix(&rev_pat, &rev_val, greedy)?;
    Ok(out.chars().rev().collect())
}

/// Reverses a pattern while keeping each `\x` escape pair in order.
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let n = p.len();
    let mut out = vec!['\0'; n];
    let mut i = 0;
    while i < n {
        let out_idx = n - 1 - i;
        if p[i] == '\\' && i != n - 1 {
            out[out_idx - 1] = '\\';
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Bound on a `${v//p/r}` result: each match can insert the whole
/// replacement, and nested substitutions multiply, so without it a short
/// word expands exponentially (found by the `shell_expand` fuzz target).
pub(crate) const MAX_REPLACED_LEN: usize = 1 << 20;

/// `${v/p/r}` and `${v//p/r}`.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let pat = Pattern::compile(pattern, true)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let v: Vec<char> = value.chars().collect();
    if !all {
        return Ok(match pat.find(&v, 0)? {
            Some((a, b)) => {
                let mut s: String = v[..a].iter().collect();
                s.push_str(replacement);
                s.extend(&v[b..]);
                s
            }
            None => value.to_string(),
        });
    }
    // Mirrors Go's Regexp.ReplaceAllString loop, including the rule that an
    // empty match right after a previous match is not replaced.
    let mut out = String::new();
    let mut last_end = 0usize;
    let mut search = 0usize;
    while search <= v.len() {
        let Some((a, b)) = pat.find(&v, search)? else {
            break;
        };
        out.extend(&v[last_end..a]);
        if b > last_end || a == 0 {
            out.push_str(&expand_template(replacement, &v[a..b]));
        }
        if out.len() > MAX_REPLACED_LEN {
            return Err(format!(
                "substitution result is longer than {MAX_REPLACED_LEN} bytes"
            ));
        }
        last_end = b;
        if search + 1 > b {
            search += 1;
        } else {
            search = b;
        }
    }
    out.extend(&v[last_end.min(v.len())..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a pattern without capture groups: `$$` is a
/// dollar, `$0`/`${0}` the whole match, any other reference is empty.
fn expand_template(template: &str, matched: &[char]) -> String {
    let t: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < t.len() {
        if t[i] != '$' || i + 1 >= t.len() {
            out.push(t[i]);
            i += 1;
            continue;
        }
        if t[i + 1] == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        let is_name = |c: char| c.is_alphanumeric() || c == '_';
        let (name, next) = if t[i + 1] == '{' {
            match t[i + 2..].iter().position(|&c| c == '}') {
                Some(p) if p > 0 && t[i + 2..i + 2 + p].iter().all(|&c| is_name(c)) => {
                    (t[i + 2..i + 2 + p].iter().collect::<String>(), i + 3 + p)
                }
                _ => {
                    out.push('$');
                    i += 1;
                    continue;
                }
            }
        } else {
            let len = t[i + 1..].iter().take_while(|&&c| is_name(c)).count();
            if len == 0 {
                out.push('$');
                i += 1;
                continue;
            }
            (
                t[i + 1..i + 1 + len].iter().collect::<String>(),
                i + 1 + len,
            )
        };
        if !name.is_empty() && name.chars().all(|c| c == '0') {
            out.extend(matched);
        }
        i = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_keeps_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn invalid_escapes() {
        for p in ["\\", "\\x", "\\\\\\"] {
            assert!(Pattern::compile(p, true).is_err(), "{p}");
        }
    }

    #[test]
    fn shortest_and_longest() {
        assert_eq!(trim_prefix("*/", "a/b/c", false).unwrap(), "b/c");
        assert_eq!(trim_prefix("*/", "a/b/c", true).unwrap(), "c");
        assert_eq!(trim_suffix("/*", "a/b/c", false).unwrap(), "a/b");
        assert_eq!(trim_suffix("/*", "a/b/c", true).unwrap(), "a");
        assert_eq!(replace("b", "abcb", "X", true).unwrap(), "aXcX");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
    }
}
