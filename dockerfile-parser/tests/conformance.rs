//! BuildKit conformance corpora from `fixtures/conformance` (or
//! `$KILN_CONFORMANCE_DIR`), read at test time. Every case is reported by
//! name; a missing corpus fails.

use dockerfile_parser::shell::{env_from_pairs, Lexer};
use dockerfile_parser::{dump, parse};
use std::fs;
use std::path::PathBuf;

fn corpus() -> PathBuf {
    let dir = test_support::conformance_dir();
    assert!(
        dir.join("buildkit").is_dir(),
        "conformance corpus not found at {} (set KILN_CONFORMANCE_DIR)",
        dir.display()
    );
    dir
}

fn case_dirs(sub: &str) -> Vec<(String, PathBuf)> {
    let dir = corpus().join(sub);
    let mut out: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no cases in {}", dir.display());
    out
}

fn finish(corpus: &str, failures: &[String], total: usize) {
    println!("{corpus}: {}/{total} passed", total - failures.len());
    assert!(failures.is_empty(), "{corpus}: failed cases: {failures:?}");
}

#[test]
fn parser_testfiles_dump_identical() {
    let cases = case_dirs("buildkit/parser/testfiles");
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let src = fs::read(dir.join("Dockerfile")).expect("Dockerfile");
        let expected = fs::read_to_string(dir.join("result")).expect("result");
        let got = String::from_utf8(src)
            .map_err(|e| e.to_string())
            .and_then(|s| parse(&s).map_err(|e| e.to_string()))
            .map(|p| dump(&p.nodes));
        match got {
            Ok(d) if d == expected => println!("PASS {name}"),
            Ok(d) => {
                println!("FAIL {name}\n--- expected\n{expected}--- got\n{d}");
                failures.push(name.clone());
            }
            Err(e) => {
                println!("FAIL {name}: {e}");
                failures.push(name.clone());
            }
        }
    }
    finish("testfiles", &failures, cases.len());
}

#[test]
fn parser_testfiles_negative_rejected() {
    let cases = case_dirs("buildkit/parser/testfiles-negative");
    let mut failures = Vec::new();
    for (name, dir) in &cases {
        let src = fs::read_to_string(dir.join("Dockerfile")).expect("Dockerfile");
        match parse(&src) {
            Err(e) => println!("PASS {name}: {}", e.0[0].message()),
            Ok(p) => {
                println!("FAIL {name}: accepted, dump:\n{}", dump(&p.nodes));
                failures.push(name.clone());
            }
        }
    }
    finish("testfiles-negative", &failures, cases.len());
}

#[test]
fn parser_testfile_line_positions() {
    let path = corpus().join("buildkit/parser/testfile-line/Dockerfile");
    let src = fs::read_to_string(&path).expect("testfile-line");
    let parsed = parse(&src).expect("parses");
    let spans: Vec<(usize, usize)> = parsed
        .nodes
        .iter()
        .map(|n| (n.span.start_line, n.span.end_line))
        .collect();
    println!("instruction line ranges: {spans:?}");
    let whole = (spans.first().unwrap().0, spans.last().unwrap().1);
    assert_eq!(whole, (5, 31), "whole file range");
    assert_eq!(spans, [(5, 5), (11, 12), (17, 31)]);
    println!("PASS testfile-line");
}

#[test]
fn shell_env_var_test() {
    let path = corpus().join("buildkit/shell/envVarTest");
    let text = fs::read_to_string(&path).expect("envVarTest");
    let env = env_from_pairs(["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lex = Lexer::new('\\');
    let (mut total, mut failures) = (0, Vec::new());
    for (no, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols.len(), 3, "line {}: {line:?}", no + 1);
        let (tag, input, expected) = (cols[0].trim(), cols[1].trim(), cols[2].trim());
        if tag != "A" && tag != "U" {
            continue;
        }
        total += 1;
        let got = lex.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(g), e) => e != "error" && g == e,
            _ => false,
        };
        let name = format!("line {} {input:?}", no + 1);
        if ok {
            println!("PASS {name}");
        } else {
            println!("FAIL {name}: expected {expected:?}, got {got:?}");
            failures.push(name);
        }
    }
    finish("envVarTest", &failures, total);
}

#[test]
fn shell_words_test() {
    let path = corpus().join("buildkit/shell/wordsTest");
    let text = fs::read_to_string(&path).expect("wordsTest");
    let lex = Lexer::new('\\');
    let mut envs: Vec<String> = Vec::new();
    let (mut total, mut failures) = (0, Vec::new());
    for (no, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            envs.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let cols: Vec<&str> = line.split('|').collect();
        assert_eq!(cols.len(), 2, "line {}: {line:?}", no + 1);
        let input = cols[0].trim();
        let expected: Vec<&str> = cols[1].trim_start_matches(' ').split(',').collect();
        total += 1;
        let env = env_from_pairs(&envs);
        let got = lex
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        let name = format!("line {} {input:?}", no + 1);
        if got == expected {
            println!("PASS {name}");
        } else {
            println!("FAIL {name}: expected {expected:?}, got {got:?}");
            failures.push(name);
        }
    }
    finish("wordsTest", &failures, total);
}
