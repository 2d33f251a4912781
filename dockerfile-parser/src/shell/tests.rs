//! Unit tests of the word lexer (the BuildKit tables run in
//! `tests/conformance.rs`).

use super::*;

#[test]
fn mandatory_vars() {
    let lex = Lexer::new('\\');
    let set = env_from_pairs(["VAR=plain", "ARG=x"]);
    let empty = env_from_pairs(["VAR=", "ARG=x"]);
    let unset = env_from_pairs(["ARG=x"]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(lex.process_word(no_empty, &set).unwrap(), "plain");
    let e = lex.process_word(no_empty, &empty).unwrap_err();
    assert!(e.to_string().contains("message herex"), "{e}");
    assert!(lex.process_word(no_empty, &unset).is_err());
    assert_eq!(lex.process_word(no_unset, &empty).unwrap(), "");
    assert!(lex.process_word(no_unset, &unset).is_err());
}

#[test]
fn reports_unmatched() {
    let lex = Lexer::new('\\');
    let env = env_from_pairs(["A=1"]);
    let e = lex.process("$A ${B:-x} $C", &env).unwrap();
    assert_eq!(e.result, "1 x ");
    assert!(e.matched.contains("A"));
    assert_eq!(e.unmatched.iter().collect::<Vec<_>>(), ["B", "C"]);
}

#[test]
fn skip_unset_keeps_references() {
    let mut lex = Lexer::new('\\');
    lex.skip_unset_env = true;
    let got = lex
        .process_word("$A ${B} ${C:-d} ${E/f/g}", &EmptyEnv)
        .unwrap();
    assert_eq!(got, "$A ${B} ${C:-d} ${E/f/g}");
}
