use super::*;

fn is_match(go_re: &str, text: &str) -> bool {
    let rust = translate(go_re).unwrap();
    regex::Regex::new(&rust).unwrap().is_match(text)
}

#[test]
fn class_with_nested_bracket_is_literal_in_go() {
    // moby turns `[*]` into `^[[^/]*]$`: class {'[','^','/'} repeated, then ']'.
    assert!(is_match("^[[^/]*]$", "]"));
    assert!(is_match("^[[^/]*]$", "[^/]"));
    assert!(!is_match("^[[^/]*]$", "a]"));
}

#[test]
fn perl_classes_are_ascii() {
    assert!(is_match(r"^a\d$", "a5"));
    assert!(!is_match(r"^a\d$", "a٣"));
    assert!(!is_match(r"^a\d$", "ad"));
}

#[test]
fn escapes() {
    assert!(is_match(r"^\a$", "\u{7}"));
    assert!(is_match(r"^\01$", "\u{1}"));
    assert!(is_match(r"^\Qa[^/]*b$", "a[^/]*b$"));
    assert!(translate(r"^\1$").is_err());
    assert!(translate(r"^\e$").is_err());
    assert!(translate(r"^\é$").is_err());
}

#[test]
fn class_errors() {
    assert!(translate("^[Local-Only]$").is_err());
    assert!(translate("^[a$").is_err());
    assert!(translate("^a)$").is_err());
    assert!(translate("^[[:nope:]]$").is_err());
    assert!(is_match("^[[:alpha:]]$", "q"));
    assert!(is_match("^[^[:alpha:]]$", "1"));
}

#[test]
fn groups_and_repeats() {
    assert!(is_match("^(.*/)?foo$", "a/b/foo"));
    assert!(is_match("^(.*/)?foo$", "foo"));
    assert!(!is_match("^(.*/)?foo$", "afoo"));
    assert!(translate("^(*)$").is_err());
    assert!(translate("^a**$").is_err());
    assert!(is_match("^^a$", "a"));
}

#[test]
fn empty_classes_compile() {
    assert!(!is_match(r"^[\P{Any}]$", "a"));
    assert!(is_match(r"^[^\P{Any}]$", "a"));
}

#[test]
fn unicode_tables() {
    assert!(is_match(r"^\pL$", "é"));
    assert!(is_match(r"^\p{Greek}$", "α"));
    assert!(!is_match(r"^\P{Greek}$", "α"));
    assert!(translate(r"^\p{Nope}$").is_err());
    assert!(translate(r"^\p{Grek}$").is_err());
}
