//! Random and mutated Dockerfiles never panic or hang; parse time is linear.

use dockerfile_parser::shell::{env_from_pairs, Lexer};
use dockerfile_parser::{dump, parse, parse_dockerfile};
use proptest::prelude::*;
use std::fs;
use std::time::{Duration, Instant};

fn corpus_dockerfiles() -> Vec<String> {
    let dir = test_support::conformance_dir().join("buildkit/parser/testfiles");
    let mut out: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus missing at {}: {e}", dir.display()))
        .filter_map(|e| fs::read_to_string(e.ok()?.path().join("Dockerfile")).ok())
        .collect();
    out.sort();
    assert!(!out.is_empty());
    out
}

/// Exercise every layer on one input; only panics or hangs can fail this.
fn exercise(src: &str) {
    if let Ok(p) = parse(src) {
        let _ = dump(&p.nodes);
    }
    if let Ok(mut df) = parse_dockerfile(src) {
        let lex = df.lexer();
        let env = env_from_pairs(["A=x y", "B=", "PATH=/bin"]);
        for c in &mut df.commands {
            let _ = c.instruction.expand(&lex, &env);
        }
    }
}

const FRAGMENTS: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "SHELL ",
    "CMD ",
    "--mount=type=cache,target=/x ",
    "--from=a ",
    "--interval=1s ",
    "<<EOF",
    "<<-'E'",
    "EOF",
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
    ":-",
    "##",
    "%%",
    "//",
    "a",
    "é",
    "\u{feff}",
    "NONE",
    "CMD",
    "AS",
    "1",
];

fn fragments() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(s in "\\PC{0,200}") {
        exercise(&s);
    }

    #[test]
    fn random_fragments_never_panic(s in fragments()) {
        exercise(&s);
    }

    #[test]
    fn mutated_corpus_never_panics(
        idx in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, prop::sample::select(FRAGMENTS)), 1..8),
    ) {
        let files = corpus_dockerfiles();
        let mut s: Vec<char> = files[idx.index(files.len())].chars().collect();
        for (pos, op, frag) in edits {
            let at = pos.index(s.len() + 1);
            match op {
                0 => { s.splice(at..at, frag.chars()); }
                1 if at < s.len() => { s.remove(at); }
                _ => { let end = (at + 5).min(s.len()); s.drain(at..end); }
            }
        }
        exercise(&s.into_iter().collect::<String>());
    }

    #[test]
    fn random_words_never_panic(s in "[-a-z${}:+?#%/\\\\'\" <>*]{0,40}") {
        let env = env_from_pairs(["a=abcabc", "b=", "c=x/y/z"]);
        let _ = Lexer::new('\\').process(&s, &env);
        let _ = Lexer::new('`').process(&s, &env);
    }
}

#[test]
fn hostile_inputs_finish() {
    let deep_onbuild = format!("FROM x\n{}RUN x\n", "ONBUILD ".repeat(100_000));
    exercise(&deep_onbuild);
    let deep_json = format!("FROM x\nCMD {}\n", "[".repeat(100_000));
    exercise(&deep_json);
    let long_cont = format!("FROM x\nRUN a{}\n", " \\\n b".repeat(50_000));
    exercise(&long_cont);
    let many_heredocs = format!("FROM x\nRUN {}\n", "<<A ".repeat(10_000));
    exercise(&many_heredocs);
    let lex = Lexer::new('\\');
    let env = env_from_pairs([format!("V={}", "a".repeat(3000))]);
    let started = Instant::now();
    lex.process_word("${V//*b/x} ${V%%*b} ${V#*a*a*a*b}", &env)
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn hundred_thousand_lines_parse_quickly() {
    let mut src = String::from("FROM alpine:3.19 AS base\n");
    let mut i = 0;
    // Each block below is 5 lines.
    while i * 5 < 100_000 {
        src.push_str(&format!(
            "RUN --mount=type=cache,target=/c echo {i} \\\n    && true\nENV K{i}=\"v {i}\" L=x\n# comment {i}\nCOPY --chown=1:1 a{i} /b/\n"
        ));
        i += 1;
    }
    let started = Instant::now();
    let df = parse_dockerfile(&src).expect("parses");
    let took = started.elapsed();
    println!(
        "100k lines ({} bytes, {} instructions) in {took:?}",
        src.len(),
        df.commands.len()
    );
    assert_eq!(df.commands.len(), 60_001);
    // Very generous: a quadratic parser would take minutes here.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn deeply_nested_substitution_fails_cleanly() {
    let deep = format!("{}x{}", "${a:-".repeat(100_000), "}".repeat(100_000));
    assert!(Lexer::new('\\')
        .process_word(&deep, &env_from_pairs(["b=1"]))
        .is_err());
    exercise(&format!("FROM x\nRUN <<EOF {deep}\nEOF\n"));
}
