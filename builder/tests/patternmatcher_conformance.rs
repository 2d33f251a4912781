//! Runs moby/patternmatcher's own test tables (converted to JSON in
//! `fixtures/conformance/patternmatcher`) against `builder::dockerignore`.

use std::path::PathBuf;

use builder::dockerignore::{self, MatchInfo, Matcher};
use serde_json::Value;

fn corpus_path() -> PathBuf {
    let dir = test_support::conformance_dir();
    dir.join("patternmatcher/cases.json")
}

fn load() -> Value {
    let path = corpus_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("conformance corpus missing at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

fn rows<'a>(corpus: &'a Value, table: &str) -> &'a [Value] {
    corpus[table]
        .as_array()
        .unwrap_or_else(|| panic!("table {table:?} missing from corpus"))
        .as_slice()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("patterns must be an array")
        .iter()
        .map(|p| p.as_str().expect("pattern must be a string").to_string())
        .collect()
}

/// `filepath.Dir` for the simple paths in the corpus (no `.`/`..` elements).
fn go_dir(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    let d = path[..cut].trim_end_matches('/');
    if d.is_empty() {
        if cut > 0 {
            "/".into()
        } else {
            ".".into()
        }
    } else {
        d.to_string()
    }
}

/// The walk-style evaluation moby's tests also use: feed each parent
/// directory's `MatchInfo` down to the path.
fn using_parent_results(pm: &Matcher, path: &str) -> bool {
    let mut info = MatchInfo::default();
    let parent = go_dir(path);
    if parent != "." {
        let dirs: Vec<&str> = parent.split('/').collect();
        for i in 0..dirs.len() {
            info = pm
                .matches_using_parent_results(dirs[..=i].join("/"), &info)
                .expect("parent")
                .1;
        }
    }
    pm.matches_using_parent_results(path, &info)
        .expect("match")
        .0
}

struct Report {
    pass: usize,
    fail: Vec<String>,
}

impl Report {
    fn check(&mut self, name: String, ok: bool, detail: String) {
        if ok {
            self.pass += 1;
            println!("PASS {name}");
        } else {
            println!("FAIL {name}: {detail}");
            self.fail.push(name);
        }
    }
}

#[test]
fn patternmatcher_corpus() {
    let corpus = load();
    let mut report = Report {
        pass: 0,
        fail: Vec::new(),
    };

    let mopm = rows(&corpus, "matches_or_parent_matches");
    for (i, row) in mopm.iter().enumerate() {
        let patterns = strings(&row["patterns"]);
        let path = row["path"].as_str().expect("path");
        let expect = row["expect"].as_bool().expect("expect");
        let name = format!("matches_or_parent_matches[{i}] {patterns:?} {path:?}");
        let got = Matcher::new(&patterns).map(|pm| {
            let a = pm.matches_or_parent_matches(path).unwrap_or(false);
            let no_ctx = pm
                .matches_using_parent_results(path, &MatchInfo::default())
                .map(|r| r.0);
            (a, no_ctx.unwrap_or(false), using_parent_results(&pm, path))
        });
        match got {
            Ok((a, b, c)) => report.check(
                name,
                a == expect && b == expect && c == expect,
                format!("want {expect}, got or_parent={a} parent_results(no ctx)={b} parent_results(walk)={c}"),
            ),
            Err(e) => report.check(name, false, format!("New failed: {e}")),
        }
    }

    let m = rows(&corpus, "matches");
    for (i, row) in m.iter().enumerate() {
        let patterns = strings(&row["patterns"]);
        let path = row["path"].as_str().expect("path");
        let expect = row["expect"].as_bool().expect("expect");
        let want_err = row["error"].as_bool().unwrap_or(false);
        let name = format!("matches[{i}] {patterns:?} {path:?}");
        let got = dockerignore::matches(path, &patterns);
        let ok = match &got {
            Ok(v) => !want_err && *v == expect,
            Err(_) => want_err,
        };
        report.check(
            name,
            ok,
            format!("want expect={expect} error={want_err}, got {got:?}"),
        );
    }

    let single = rows(&corpus, "match");
    for (i, row) in single.iter().enumerate() {
        let pattern = row["pattern"].as_str().expect("pattern").to_string();
        let path = row["path"].as_str().expect("path");
        let expect = row["expect"].as_bool().expect("expect");
        let want_err = row["error"].as_bool().unwrap_or(false);
        let name = format!("match[{i}] {pattern:?} {path:?}");
        let got = dockerignore::matches(path, &[pattern]);
        let ok = match &got {
            Ok(v) => !want_err && *v == expect,
            Err(_) => want_err,
        };
        report.check(
            name,
            ok,
            format!("want expect={expect} error={want_err}, got {got:?}"),
        );
    }

    let total = mopm.len() + m.len() + single.len();
    println!(
        "patternmatcher conformance: {} passed, {} failed, {} total ({} + {} + {} rows)",
        report.pass,
        report.fail.len(),
        total,
        mopm.len(),
        m.len(),
        single.len()
    );
    assert!(total > 0, "corpus has no rows");
    assert!(report.fail.is_empty(), "failing cases: {:#?}", report.fail);
}
