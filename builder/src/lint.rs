//! `kiln build --check`: the parser's lint rules (BuildKit's names) run
//! over the Dockerfile, reported as `docker build --check` reports them;
//! nothing is built.

use crate::error::BuildError;

/// What `--check` prints, and how many warnings it found.
#[derive(Debug)]
pub struct CheckReport {
    pub text: String,
    pub warnings: usize,
}

/// Lints `dockerfile` (named `name` in the report). A parse error is an
/// error, as for a build.
pub fn check(dockerfile: &str, name: &str) -> Result<CheckReport, BuildError> {
    let df = dockerfile_parser::parse_dockerfile(dockerfile).map_err(BuildError::Parse)?;
    let lines: Vec<&str> = dockerfile.lines().collect();
    let n = df.warnings.len();
    let mut text = match n {
        0 => "Check complete, no warnings found.\n".to_string(),
        1 => "Check complete, 1 warning has been found!\n".to_string(),
        n => format!("Check complete, {n} warnings have been found!\n"),
    };
    for w in &df.warnings {
        text.push_str(&format!(
            "\n{} - https://docs.docker.com/go/dockerfile/rule/{}/\n{}\n{name}:{}\n",
            w.rule,
            kebab(w.rule),
            w.message,
            w.line
        ));
        // The line with two before and one after, as BuildKit shows it.
        if (1..=lines.len()).contains(&w.line) {
            text.push_str("--------------------\n");
            for n in w.line.saturating_sub(2).max(1)..=(w.line + 1).min(lines.len()) {
                let mark = if n == w.line { ">>>" } else { "   " };
                text.push_str(&format!("{n:>4} | {mark} {}\n", lines[n - 1]));
            }
            text.push_str("--------------------\n");
        }
    }
    Ok(CheckReport { text, warnings: n })
}

/// `StageNameCasing` → `stage-name-casing` (the rule's page).
fn kebab(rule: &str) -> String {
    let mut out = String::new();
    for (i, c) in rule.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn warnings_are_listed_with_their_rule_page() {
        let r = super::check("FROM busybox AS Foo\nMAINTAINER me\n", "Dockerfile").unwrap();
        assert_eq!(r.warnings, 2, "{}", r.text);
        assert!(r
            .text
            .starts_with("Check complete, 2 warnings have been found!"));
        assert!(r.text.contains(
            "\nStageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
        ));
        assert!(r.text.contains("   2 | >>> MAINTAINER me\n"), "{}", r.text);
        assert!(r.text.contains("Dockerfile:2"));
        let clean = super::check("FROM busybox\n", "Dockerfile").unwrap();
        assert_eq!(clean.warnings, 0);
    }
}
