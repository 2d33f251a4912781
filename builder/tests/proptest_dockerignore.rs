//! Property tests mirroring the `dockerignore` fuzz target (fuzz/), with
//! fixed case counts: reading and compiling arbitrary ignore files and
//! matching arbitrary paths never panics, and for literal patterns (no
//! wildcards) the matcher agrees with a simple reference: the last pattern
//! naming the path or one of its parent directories decides.

use builder::dockerignore::{self, MatchInfo, Matcher};
use proptest::prelude::*;

/// A literal pattern: 1–3 components, optionally negated.
fn literal() -> impl Strategy<Value = (bool, String)> {
    let part = prop::sample::select(vec!["a", "b", "c.txt", "dir", "é"]);
    (
        prop::bool::weighted(0.3),
        prop::collection::vec(part, 1..4).prop_map(|p| p.join("/")),
    )
}

fn path() -> impl Strategy<Value = String> {
    let part = prop::sample::select(vec!["a", "b", "c.txt", "dir", "é", "x"]);
    prop::collection::vec(part, 1..5).prop_map(|p| p.join("/"))
}

/// The reference: `!` patterns re-include; a pattern covers itself and
/// everything below it.
fn reference(patterns: &[(bool, String)], path: &str) -> bool {
    let mut excluded = false;
    for (negated, p) in patterns {
        if path == p || path.starts_with(&format!("{p}/")) {
            excluded = !negated;
        }
    }
    excluded
}

/// Walks `path` from the top, feeding each directory's result down.
fn walked(pm: &Matcher, path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut info = MatchInfo::default();
    let mut last = false;
    for i in 0..parts.len() {
        let (m, next) = pm
            .matches_using_parent_results(parts[..=i].join("/"), &info)
            .unwrap();
        last = m;
        info = next;
    }
    last
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn literal_patterns_agree_with_the_reference(
        patterns in prop::collection::vec(literal(), 1..6),
        path in path(),
    ) {
        let lines: Vec<String> = patterns
            .iter()
            .map(|(neg, p)| format!("{}{p}", if *neg { "!" } else { "" }))
            .collect();
        let file = lines.join("\n");
        let read = dockerignore::read(file.as_bytes()).unwrap();
        prop_assert_eq!(&read, &lines);
        let pm = Matcher::new(&read).unwrap();
        let want = reference(&patterns, &path);
        prop_assert_eq!(pm.matches_or_parent_matches(&path).unwrap(), want);
        prop_assert_eq!(pm.excluding_pattern(&path).is_some(), want);
        prop_assert_eq!(walked(&pm, &path), want);
    }

    #[test]
    fn arbitrary_ignore_files_never_panic(
        file in prop::collection::vec(
            prop::sample::select(vec![
                "*", "**", "?", "[", "]", "[^a]", "[a-", "\\", "!", "/", ".", "..", "a", "b/",
                "\n", "\r\n", "#", " ", "\u{feff}", "é", "\u{0}",
            ]),
            0..24,
        ),
        paths in prop::collection::vec("[a-c/.*?\\[\\]é]{0,12}", 1..6),
    ) {
        let file = file.concat();
        let Ok(patterns) = dockerignore::read(file.as_bytes()) else { return Ok(()) };
        let Ok(pm) = Matcher::new(&patterns) else { return Ok(()) };
        for p in &paths {
            let _ = pm.matches(p);
            if let Ok(m) = pm.matches_or_parent_matches(p) {
                prop_assert_eq!(m, pm.excluding_pattern(p).is_some());
            }
            let _ = pm.matches_using_parent_results(p, &MatchInfo::default());
            for pat in &patterns {
                let _ = dockerignore::glob_match(pat, p);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        file in prop::collection::vec(any::<u8>(), 0..256),
        path in prop::collection::vec(any::<u8>(), 0..32),
    ) {
        if let Ok(patterns) = dockerignore::read(file.as_slice()) {
            if let Ok(pm) = Matcher::new(&patterns) {
                let _ = pm.matches_or_parent_matches(&path);
                let _ = pm.matches(&path);
            }
        }
    }
}
