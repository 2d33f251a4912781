//! Property tests mirroring the `dockerfile_parse` and `shell_expand` fuzz
//! targets (fuzz/), with fixed case counts so CI time stays bounded:
//! spans point at each instruction's own text, parsing is deterministic,
//! and quoting round-trips through the parser and the word expander.

use dockerfile_parser::instructions::ShellOrExec;
use dockerfile_parser::shell::{EmptyEnv, Lexer};
use dockerfile_parser::{dump, parse, parse_dockerfile, Instruction};
use proptest::prelude::*;

const FRAGMENTS: &[&str] = &[
    "FROM x",
    "RUN ",
    "COPY ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "ONBUILD ",
    "CMD ",
    "HEALTHCHECK ",
    "<<EOF",
    "<<-E",
    "EOF",
    "E",
    "\\",
    "`",
    "\n",
    "\r\n",
    " ",
    "\t",
    "#",
    "# escape=`\n",
    "\"",
    "'",
    "[",
    "]",
    "\"a\",",
    "=",
    "$",
    "${",
    "}",
    "a",
    "é",
    "\u{feff}",
    "--from=a ",
    "\u{0}",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|v| v.concat())
}

/// `s` in double quotes for the word lexer: only `"`, `$` and the escape
/// character need escaping there (BuildKit keeps any other escape literally).
fn double_quote(s: &str, escape: char) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '$' || c == escape {
            out.push(escape);
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Printable text without line breaks (a raw newline would end the line).
fn value() -> impl Strategy<Value = String> {
    "[ -~é\u{3b1}\t]{0,16}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn spans_cover_the_source_text(s in fragments()) {
        if let Ok(p) = parse(&s) {
            let text = s.strip_prefix('\u{feff}').unwrap_or(&s);
            for n in &p.nodes {
                prop_assert!(n.span.start <= n.span.end && n.span.end <= text.len());
                prop_assert_eq!(text.get(n.span.start..n.span.end), Some(n.source_text.as_str()));
            }
            // Deterministic.
            prop_assert_eq!(parse(&s).map(|q| dump(&q.nodes)).ok(), Some(dump(&p.nodes)));
        }
    }

    #[test]
    fn env_values_round_trip_through_quoting(
        pairs in prop::collection::vec(("[A-Za-z_][A-Za-z0-9_]{0,6}", value()), 1..5),
        backtick in any::<bool>(),
    ) {
        let escape = if backtick { '`' } else { '\\' };
        let mut src = String::new();
        if backtick {
            src.push_str("# escape=`\n");
        }
        src.push_str("FROM scratch\nENV");
        for (k, v) in &pairs {
            src.push_str(&format!(" {k}={}", double_quote(v, escape)));
        }
        src.push('\n');
        let mut df = parse_dockerfile(&src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))?;
        let lex = df.lexer();
        let ins = &mut df.commands[1].instruction;
        ins.expand(&lex, &EmptyEnv).unwrap();
        let Instruction::Env(kvs) = ins else { panic!("not ENV: {ins:?}") };
        let got: Vec<(String, String)> = kvs.iter().map(|kv| (kv.key.clone(), kv.value.clone())).collect();
        prop_assert_eq!(got, pairs);
    }

    #[test]
    fn exec_form_round_trips_through_json(args in prop::collection::vec(value(), 1..5)) {
        let src = format!("FROM scratch\nCMD {}\n", serde_json::to_string(&args).unwrap());
        let df = parse_dockerfile(&src).map_err(|e| TestCaseError::fail(format!("{src:?}: {e}")))?;
        prop_assert_eq!(&df.commands[1].instruction, &Instruction::Cmd(ShellOrExec::Exec(args)));
    }

    #[test]
    fn quoted_words_expand_to_themselves(s in "[^\u{0}]{0,40}", backtick in any::<bool>()) {
        let escape = if backtick { '`' } else { '\\' };
        let lex = Lexer::new(escape);
        prop_assert_eq!(lex.process_word(&double_quote(&s, escape), &EmptyEnv).unwrap(), s.clone());
        if !s.contains('\'') {
            prop_assert_eq!(lex.process_word(&format!("'{s}'"), &EmptyEnv).unwrap(), s);
        }
    }

    #[test]
    fn plain_words_expand_to_themselves(s in "[A-Za-z0-9_./:@,+=-]{0,30}") {
        prop_assert_eq!(Lexer::new('\\').process_word(&s, &EmptyEnv).unwrap(), s);
    }
}

/// Found by the `shell_expand` fuzz target (a 612-byte input ran for minutes
/// and used ~900 MB): nested `${v//p/r}` with a replacement that matches
/// every position multiplies the length at each level. Now an error.
#[test]
fn nested_replace_all_cannot_explode() {
    let env = dockerfile_parser::shell::env_from_pairs([format!("a={}", "x".repeat(64))]);
    let mut word = String::from("yy");
    for _ in 0..8 {
        word = format!("${{a//?/{word}}}");
    }
    let err = Lexer::new('\\').process_word(&word, &env).unwrap_err();
    assert!(err.message.contains("longer than"), "{err}");
}
