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

/// The reference for a walk from the top (`MatchesUsingParentResults`, what
/// BuildKit's context walker calls): a pattern that matched a parent counts
/// as matched without being evaluated again, and a pattern skipped at a
/// level (an exclusion while nothing is excluded, an inclusion while
/// something is) is not carried down. So it differs from `reference`: with
/// `dir/dir` then `!dir`, the walk keeps `dir/dir` excluded (the `!dir`
/// pattern was skipped at `dir`, when nothing was excluded yet), where
/// `MatchesOrParentMatches` re-includes it through its parent.
fn reference_walked(patterns: &[(bool, String)], path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let mut parent_matched: Option<Vec<bool>> = None;
    let mut excluded = false;
    for i in 0..parts.len() {
        let file = parts[..=i].join("/");
        let mut matched_now = vec![false; patterns.len()];
        excluded = false;
        for (k, (negated, p)) in patterns.iter().enumerate() {
            let mut m = parent_matched.as_ref().is_some_and(|pm| pm[k]);
            if !m {
                if *negated != excluded {
                    continue;
                }
                m = file == *p;
            }
            matched_now[k] = m;
            if m {
                excluded = !negated;
            }
        }
        parent_matched = Some(matched_now);
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

/// The case proptest found: the two forms differ, each as upstream does.
#[test]
fn a_walk_keeps_what_a_skipped_inclusion_would_reinclude() {
    let pm = Matcher::new(&["dir/dir", "!dir"]).unwrap();
    assert!(!pm.matches_or_parent_matches("dir/dir").unwrap());
    assert!(walked(&pm, "dir/dir"));
    let patterns = [(false, "dir/dir".to_string()), (true, "dir".to_string())];
    assert!(!reference(&patterns, "dir/dir"));
    assert!(reference_walked(&patterns, "dir/dir"));
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
        prop_assert_eq!(walked(&pm, &path), reference_walked(&patterns, &path));
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
