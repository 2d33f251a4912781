//! End-to-end: a real context directory with a `.dockerignore` using `!`
//! re-includes and `**`, walked and queried the way the builder will.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use builder::context::{BuildContext, ContextError};
use builder::dockerignore;

const IGNORE: &str = "\
# build outputs and logs
**/*.log
docs
!docs/keep.md
node_modules
/secret*
!secret-but-public.txt
build/**
!build/out/app
";

const FILES: &[&str] = &[
    "Dockerfile",
    "a.txt",
    "debug.log",
    "src/main.rs",
    "src/deep/trace.log",
    "docs/keep.md",
    "docs/drop.md",
    "docs/sub/x.md",
    "node_modules/pkg/index.js",
    "secret.key",
    "secret-but-public.txt",
    "build/tmp/o.o",
    "build/out/app",
    "build/out/other",
];

fn make_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in FILES {
        let p = dir.path().join(f);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(&p, f.as_bytes()).expect("write");
    }
    fs::write(dir.path().join(".dockerignore"), IGNORE).expect("write ignore");
    std::os::unix::fs::symlink("a.txt", dir.path().join("link")).expect("symlink");
    dir
}

fn open(dir: &Path) -> BuildContext {
    let patterns =
        dockerignore::for_build(dir, &dir.join("Dockerfile")).expect("read .dockerignore");
    BuildContext::new(dir, &patterns).expect("patterns compile")
}

fn walk_paths(ctx: &BuildContext) -> Vec<String> {
    ctx.walk()
        .map(|e| e.expect("walk entry").path.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn filtered_walk_matches_docker_rules() {
    let dir = make_context();
    let ctx = open(dir.path());
    let got = walk_paths(&ctx);
    let want = [
        ".dockerignore",
        "Dockerfile",
        "a.txt",
        "build",
        "build/out",
        "build/out/app",
        "docs",
        "docs/keep.md",
        "link",
        "secret-but-public.txt",
        "src",
        "src/deep",
        "src/main.rs",
    ];
    assert_eq!(got, want);
}

/// Independent oracle: a non-directory is in the context iff neither it nor a
/// parent is excluded (MatchesOrParentMatches); a directory is in it if it is
/// not excluded itself or holds something that is. The walk (with pruning and
/// incremental parent results) must agree.
#[test]
fn walk_agrees_with_whole_path_matching() {
    let dir = make_context();
    let ctx = open(dir.path());
    let mut visible = BTreeSet::new();
    let all: Vec<_> = walkdir::WalkDir::new(dir.path())
        .min_depth(1)
        .into_iter()
        .map(|e| e.unwrap())
        .collect();
    for e in &all {
        let rel = e.path().strip_prefix(dir.path()).unwrap();
        let rel_b = rel.as_os_str().as_bytes();
        let excluded = ctx.matcher().matches_or_parent_matches(rel_b).unwrap();
        if !excluded {
            visible.insert(rel.to_path_buf());
            // Parents of a visible entry are part of the view too.
            let mut p = rel.parent();
            while let Some(parent) = p.filter(|p| !p.as_os_str().is_empty()) {
                visible.insert(parent.to_path_buf());
                p = parent.parent();
            }
        }
    }
    let got: BTreeSet<_> = ctx.walk().map(|e| e.unwrap().path).collect();
    assert_eq!(got, visible);
}

fn sources(ctx: &BuildContext, src: &str) -> Vec<String> {
    ctx.resolve_sources(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .into_iter()
        .map(|e| e.path.to_string_lossy().into_owned())
        .collect()
}

fn not_found(ctx: &BuildContext, src: &str) -> Option<String> {
    match ctx.resolve_sources(src) {
        Err(ContextError::NotFound {
            excluded_by,
            source_path,
        }) => {
            assert_eq!(source_path, src);
            excluded_by
        }
        other => panic!("{src}: expected NotFound, got {other:?}"),
    }
}

#[test]
fn copy_sources_resolve_against_filtered_context() {
    let dir = make_context();
    let ctx = open(dir.path());

    assert_eq!(sources(&ctx, "a.txt"), ["a.txt"]);
    assert_eq!(sources(&ctx, "../../a.txt"), ["a.txt"]);
    assert_eq!(sources(&ctx, "/docs/"), ["docs"]);
    assert_eq!(sources(&ctx, "*.txt"), ["a.txt", "secret-but-public.txt"]);
    assert_eq!(sources(&ctx, "secret*"), ["secret-but-public.txt"]);
    assert_eq!(sources(&ctx, "s*"), ["secret-but-public.txt", "src"]);
    // An excluded directory that holds a re-included file is still a match.
    assert_eq!(sources(&ctx, "build/*"), ["build/out"]);
    assert_eq!(sources(&ctx, "b?ild/o[a-u]t"), ["build/out"]);
    // Like fsutil, the source is cleaned first, so a trailing slash does not
    // restrict the match to directories.
    assert_eq!(sources(&ctx, "src/*/"), ["src/deep", "src/main.rs"]);

    assert_eq!(not_found(&ctx, "secret.key").as_deref(), Some("secret*"));
    assert_eq!(
        not_found(&ctx, "node_modules/pkg/index.js").as_deref(),
        Some("node_modules")
    );
    assert_eq!(
        not_found(&ctx, "src/deep/trace.log").as_deref(),
        Some("**/*.log")
    );
    assert_eq!(not_found(&ctx, "*.key").as_deref(), Some("secret*"));
    assert_eq!(not_found(&ctx, "src/*/*.log").as_deref(), Some("**/*.log"));
    assert_eq!(not_found(&ctx, "docs/sub").as_deref(), Some("docs"));
    assert_eq!(not_found(&ctx, "missing.txt"), None);
    assert_eq!(not_found(&ctx, "nope/*.txt"), None);
    assert_eq!(not_found(&ctx, "a.txt/inner"), None);

    let err = ctx.resolve_sources("secret.key").unwrap_err();
    assert_eq!(
        err.to_string(),
        "file not found in build context: \"secret.key\" (excluded by .dockerignore pattern \"secret*\")"
    );
}

#[test]
fn source_entries_walk_each_match() {
    let dir = make_context();
    let ctx = open(dir.path());
    let got: Vec<(String, String)> = ctx
        .source_entries("[bd]*")
        .unwrap()
        .map(|r| {
            let e = r.unwrap();
            (
                e.source.to_string_lossy().into_owned(),
                e.entry.path.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let want = [
        ("build", "build"),
        ("build", "build/out"),
        ("build", "build/out/app"),
        ("docs", "docs"),
        ("docs", "docs/keep.md"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(got, want);

    let link = ctx.resolve_sources("link").unwrap();
    assert!(
        link[0].metadata.file_type().is_symlink(),
        "symlinks are reported, not followed"
    );
}

#[test]
fn no_ignore_file_means_everything() {
    let dir = make_context();
    fs::remove_file(dir.path().join(".dockerignore")).unwrap();
    let ctx = open(dir.path());
    let got = walk_paths(&ctx);
    let on_disk = walkdir::WalkDir::new(dir.path())
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .count();
    assert_eq!(got.len(), on_disk);
    assert!(got.iter().any(|p| p == "node_modules/pkg/index.js"));
}

#[test]
fn wildcard_exception_disables_pruning() {
    // With a wildcard in a `!` pattern fsutil cannot prove a directory is
    // unreachable, so it descends and re-includes deep matches.
    let dir = make_context();
    fs::write(
        dir.path().join(".dockerignore"),
        "node_modules\ndocs\n!**/index.js\n",
    )
    .unwrap();
    let ctx = open(dir.path());
    let got = walk_paths(&ctx);
    assert!(
        got.iter().any(|p| p == "node_modules/pkg/index.js"),
        "{got:?}"
    );
    assert!(got.iter().any(|p| p == "node_modules/pkg"));
    assert!(!got.iter().any(|p| p.starts_with("docs")), "{got:?}");
}
