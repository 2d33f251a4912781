//! `.dockerignore` reading, pattern compilation and matching. Input: the
//! ignore file, then a NUL, then newline-separated paths to match.
//! Properties: no panic; the walk-free and per-pattern answers agree
//! (`excluding_pattern` is `Some` exactly when `matches_or_parent_matches`
//! says true without error).
#![no_main]

use builder::dockerignore::{self, MatchInfo, Matcher};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (file, paths) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"a\na/b\nfoo/bar.txt\n.git/x"[..]),
    };
    let Ok(patterns) = dockerignore::read(file) else {
        return;
    };
    let Ok(pm) = Matcher::new(&patterns) else {
        return;
    };
    for path in paths.split(|&b| b == b'\n').take(64) {
        let _ = pm.matches(path);
        let full = pm.matches_or_parent_matches(path);
        let excl = pm.excluding_pattern(path);
        if let Ok(m) = full {
            assert_eq!(
                m,
                excl.is_some(),
                "excluding_pattern disagrees for {path:?}"
            );
        }
        let _ = pm.matches_using_parent_results(path, &MatchInfo::default());
        for p in patterns.iter().take(8) {
            let _ = dockerignore::glob_match(p, path);
        }
    }
});
