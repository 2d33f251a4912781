//! Typed instructions, heredocs, lexing details and error reporting.

use dockerfile_parser::instructions::{
    Copy, Healthcheck, Instruction, MountType, NetworkMode, Security, ShellOrExec, Source,
};
use dockerfile_parser::shell::{env_from_pairs, Lexer};
use dockerfile_parser::{dump, parse, parse_dockerfile, ErrorKind};
use std::time::Duration;

fn instrs(src: &str) -> Vec<Instruction> {
    parse_dockerfile(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .commands
        .into_iter()
        .map(|c| c.instruction)
        .collect()
}

fn errors(src: &str) -> Vec<String> {
    parse_dockerfile(src)
        .expect_err("should fail")
        .iter()
        .map(|e| e.to_string())
        .collect()
}

#[test]
fn from_with_platform_and_alias() {
    let i = instrs("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\n");
    let Instruction::From(f) = &i[0] else {
        panic!()
    };
    assert_eq!(f.image, "golang:1.22");
    assert_eq!(f.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(f.alias.as_deref(), Some("build"));
    assert!(errors("FROM a AS 1bad\n")[0].contains("invalid name for build stage"));
    assert!(errors("FROM a b\n")[0].contains("FROM requires either one or three arguments"));
}

#[test]
fn run_forms_and_flags() {
    let i = instrs(
        "FROM x\nRUN --mount=type=cache,target=/c --network=none --security=insecure make\nRUN [\"a\", \"b c\"]\n",
    );
    let Instruction::Run(r) = &i[1] else { panic!() };
    assert_eq!(r.cmd, ShellOrExec::Shell("make".into()));
    assert_eq!(r.mounts[0].kind, MountType::Cache);
    assert_eq!(r.mounts[0].target.as_deref(), Some("/c"));
    assert_eq!(r.network, NetworkMode::None);
    assert_eq!(r.security, Security::Insecure);
    let Instruction::Run(r) = &i[2] else { panic!() };
    assert_eq!(r.cmd, ShellOrExec::Exec(vec!["a".into(), "b c".into()]));
    assert!(errors("FROM x\nRUN --network=bogus true\n")[0].contains("invalid network mode"));
    // Mount values are validated once expanded (BuildKit): not at parse time...
    let i = instrs("FROM x\nRUN --mount=type=nfs true\n");
    let Instruction::Run(r) = &i[1] else { panic!() };
    let e = r
        .expand_mounts(&Lexer::new('\\'), &env_from_pairs(["A=1"]))
        .unwrap_err();
    assert!(e.to_string().contains("unsupported mount type"), "{e}");
    // ...except `from`, which may not hold a variable.
    assert!(errors("FROM x\nRUN --mount=from=$X,target=/x true\n")[0]
        .contains("'from' doesn't support variable expansion"));
    // `$` at the very end is no variable.
    instrs("FROM x\nRUN --mount=from=a$,target=/x true\n");
    // An empty shell form is `/bin/sh -c ""`.
    let i = instrs("FROM x\nRUN\n");
    let Instruction::Run(r) = &i[1] else { panic!() };
    assert_eq!(r.cmd, ShellOrExec::Shell(String::new()));
}

#[test]
fn run_mounts_expand_with_env() {
    let i = instrs("FROM x\nRUN --mount=type=secret,id=$ID,target=/s cat /s\n");
    let Instruction::Run(r) = &i[1] else { panic!() };
    let env = env_from_pairs(["ID=token"]);
    let m = r.expand_mounts(&Lexer::new('\\'), &env).unwrap();
    assert_eq!(m[0].id.as_deref(), Some("token"));
    assert_eq!(m[0].kind, MountType::Secret);
    // Every value is expanded before it is validated: uid=$UID works.
    let i = instrs("FROM x\nRUN --mount=type=cache,target=/x,uid=$UID,mode=$M,sharing=$S true\n");
    let Instruction::Run(r) = &i[1] else { panic!() };
    let env = env_from_pairs(["UID=1000", "M=0700", "S=locked"]);
    let m = r.expand_mounts(&Lexer::new('\\'), &env).unwrap();
    assert_eq!((m[0].uid, m[0].mode), (Some(1000), Some(0o700)));
    assert_eq!(
        m[0].sharing,
        Some(dockerfile_parser::instructions::Sharing::Locked)
    );
}

#[test]
fn copy_and_add_flags() {
    let i = instrs(concat!(
        "FROM x\n",
        "COPY --from=build --chown=1:1 --chmod=755 --link --exclude=*.md --exclude=.git --parents a b /dst/\n",
        "ADD --checksum=sha256:abc --keep-git-dir=true https://x/y.git /src\n",
        "COPY [\"a b\", \"/d\"]\n",
    ));
    let Instruction::Copy(c) = &i[1] else {
        panic!()
    };
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1:1"));
    assert_eq!(c.chmod.as_deref(), Some("755"));
    assert!(c.link && c.parents);
    assert_eq!(c.exclude, ["*.md", ".git"]);
    assert_eq!(
        c.sources,
        [Source::Path("a".into()), Source::Path("b".into())]
    );
    assert_eq!(c.dest, "/dst/");
    let Instruction::Add(a) = &i[2] else { panic!() };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert_eq!(a.keep_git_dir, Some(true));
    let Instruction::Copy(c) = &i[3] else {
        panic!()
    };
    assert!(c.json);
    assert_eq!(c.sources, [Source::Path("a b".into())]);
    // --from is COPY-only; ADD rejects it with a hint.
    let e = errors("FROM x\nADD --from=a b /c\n");
    assert!(e[0].contains("unknown flag: --from"), "{e:?}");
    let e = errors("FROM x\nCOPY --chwon=1 a /b\n");
    assert!(
        e[0].contains("unknown flag: --chwon (did you mean chown?)"),
        "{e:?}"
    );
}

#[test]
fn copy_requires_two_arguments() {
    let e = errors("FROM x\nCOPY onlyone\n");
    assert!(
        e[0].contains("COPY requires at least two arguments"),
        "{e:?}"
    );
}

#[test]
fn env_label_arg() {
    let i = instrs(concat!(
        "ARG BASE=alpine\n",
        "FROM $BASE\n",
        "ENV A=1 B=\"two words\" C=three\\ words\n",
        "ENV LEGACY value with spaces\n",
        "LABEL org.x=\"y\" z=w\n",
        "ARG X Y=2 Z=\n",
    ));
    let Instruction::Arg(a) = &i[0] else { panic!() };
    assert_eq!(
        (a[0].name.as_str(), a[0].default.as_deref()),
        ("BASE", Some("alpine"))
    );
    let Instruction::Env(e) = &i[2] else { panic!() };
    assert_eq!(e.len(), 3);
    assert_eq!(e[1].value, "\"two words\"");
    let Instruction::Env(e) = &i[3] else { panic!() };
    assert!(e[0].legacy);
    assert_eq!(e[0].value, "value with spaces");
    let Instruction::Arg(a) = &i[5] else { panic!() };
    let got: Vec<_> = a
        .iter()
        .map(|d| (d.name.as_str(), d.default.as_deref()))
        .collect();
    assert_eq!(got, [("X", None), ("Y", Some("2")), ("Z", Some(""))]);

    // Expansion is the builder's call, with the stage's variables.
    let mut env_instr = i[2].clone();
    let env = env_from_pairs(["UNUSED=1"]);
    env_instr.expand(&Lexer::new('\\'), &env).unwrap();
    let Instruction::Env(e) = &env_instr else {
        panic!()
    };
    assert_eq!(e[1].value, "two words");
    assert_eq!(e[2].value, "three words");
}

#[test]
fn expand_reports_unset_variables() {
    let mut i = instrs("FROM x\nWORKDIR /app/$SUB/${MISSING:-d}\n").remove(1);
    let env = env_from_pairs(["SUB=s"]);
    let unset = i.expand(&Lexer::new('\\'), &env).unwrap();
    assert_eq!(i, Instruction::Workdir("/app/s/d".into()));
    assert_eq!(unset.into_iter().collect::<Vec<_>>(), ["MISSING"]);
}

#[test]
fn env_without_value_is_an_error() {
    let e = errors("FROM x\nENV PATH\n");
    assert!(e[0].contains("ENV must have two arguments"), "{e:?}");
}

#[test]
fn onbuild_rules() {
    let i = instrs("FROM x\nONBUILD RUN echo hi\n");
    let Instruction::OnBuild(o) = &i[1] else {
        panic!()
    };
    assert_eq!(o.expression, "RUN echo hi");
    // The trigger is kept as text, checked only in the child (BuildKit).
    let i = instrs("FROM x\nONBUILD COPY --bogus a b\nONBUILD BOGUS x\n");
    let Instruction::OnBuild(o) = &i[1] else {
        panic!()
    };
    assert_eq!(o.expression, "COPY --bogus a b");
    assert!(
        errors("FROM x\nONBUILD FROM y\n")[0].contains("FROM isn't allowed as an ONBUILD trigger")
    );
    assert!(errors("FROM x\nONBUILD MAINTAINER y\n")[0]
        .contains("MAINTAINER isn't allowed as an ONBUILD trigger"));
    assert!(errors("FROM x\nONBUILD ONBUILD RUN y\n")[0]
        .contains("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"));
}

#[test]
fn healthcheck() {
    let i = instrs(concat!(
        "FROM x\n",
        "HEALTHCHECK NONE\n",
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=2s --start-interval=1s --retries=3 CMD curl -f http://x/\n",
        "HEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n",
    ));
    assert_eq!(i[1], Instruction::Healthcheck(Healthcheck::None));
    let Instruction::Healthcheck(Healthcheck::Cmd {
        test,
        interval,
        timeout,
        start_period,
        start_interval,
        retries,
    }) = &i[2]
    else {
        panic!()
    };
    assert_eq!(test, &["CMD-SHELL", "curl -f http://x/"]);
    assert_eq!(*interval, Some(Duration::from_secs(90)));
    assert_eq!(*timeout, Some(Duration::from_millis(500)));
    assert_eq!(*start_period, Some(Duration::from_secs(2)));
    assert_eq!(*start_interval, Some(Duration::from_secs(1)));
    assert_eq!(*retries, Some(3));
    let Instruction::Healthcheck(Healthcheck::Cmd { test, .. }) = &i[3] else {
        panic!()
    };
    assert_eq!(test, &["CMD", "/bin/check", "-q"]);
    let e = errors("FROM x\nHEALTHCHECK --interval=5 CMD true\n");
    assert!(e[0].contains("missing unit in duration"), "{e:?}");
    let e = errors("FROM x\nHEALTHCHECK --timeout=1ns CMD true\n");
    assert!(e[0].contains("cannot be less than 1ms"), "{e:?}");
    assert!(errors("FROM x\nHEALTHCHECK NONE x\n")[0].contains("takes no arguments"));
}

#[test]
fn shell_requires_json() {
    let i = instrs("FROM x\nSHELL [\"/bin/bash\", \"-c\"]\n");
    assert_eq!(
        i[1],
        Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
    );
    assert!(errors("FROM x\nSHELL /bin/bash -c\n")[0].contains("JSON"));
}

#[test]
fn other_instructions() {
    let i = instrs(concat!(
        "FROM x\nEXPOSE 80/tcp 443\nVOLUME /a /b\nVOLUME [\"/c\"]\nUSER app\nWORKDIR /w\n",
        "STOPSIGNAL SIGTERM\nMAINTAINER me\nCMD [\"a\"]\nENTRYPOINT run it\n",
    ));
    assert_eq!(
        i[1],
        Instruction::Expose(vec!["80/tcp".into(), "443".into()])
    );
    assert_eq!(i[2], Instruction::Volume(vec!["/a".into(), "/b".into()]));
    assert_eq!(i[3], Instruction::Volume(vec!["/c".into()]));
    assert_eq!(i[4], Instruction::User("app".into()));
    assert_eq!(i[5], Instruction::Workdir("/w".into()));
    assert_eq!(i[6], Instruction::StopSignal("SIGTERM".into()));
    assert_eq!(i[7], Instruction::Maintainer("me".into()));
    assert_eq!(i[8], Instruction::Cmd(ShellOrExec::Exec(vec!["a".into()])));
    assert_eq!(
        i[9],
        Instruction::Entrypoint(ShellOrExec::Shell("run it".into()))
    );
}

#[test]
fn unknown_instruction_error_names_position_and_source() {
    let err = parse_dockerfile("FROM x\n\n  FOOM bar\n").unwrap_err();
    let e = &err.0[0];
    assert!(matches!(e.kind, ErrorKind::UnknownInstruction { .. }));
    assert_eq!((e.span.start_line, e.span.start_col), (3, 3));
    let shown = err.clone().with_file_name("Dockerfile.dev").to_string();
    assert!(
        shown.starts_with("Dockerfile.dev:3:3: unknown instruction: FOOM (did you mean FROM?)"),
        "{shown}"
    );
    assert!(shown.contains("  FOOM bar"), "{shown}");
}

#[test]
fn several_errors_reported_together() {
    let err = parse_dockerfile(
        "FROM x\nFOO a\nCOPY one\nRUN --bad true\nHEALTHCHECK --interval=x CMD y\n",
    )
    .unwrap_err();
    let lines: Vec<usize> = err.iter().map(|e| e.span.start_line).collect();
    assert_eq!(lines, [2, 3, 4, 5], "{err}");
    // Syntax-level errors are collected too.
    let err = parse("FROM x\nCMD [\"a\", 1]\nENV X\n").unwrap_err();
    assert_eq!(err.len(), 2, "{err}");
}

#[test]
fn instruction_before_from_is_rejected() {
    assert!(errors("RUN true\nFROM x\n")[0].contains("no build stage"));
}

#[test]
fn heredocs() {
    let src = concat!(
        "FROM x\n",
        "RUN <<EOF\necho $HOME\nEOF\n",
        "RUN <<-EOT bash\n\t\techo tabs\n\tEOT\n",
        "RUN <<'RAW' cat\n$NOT_EXPANDED\nRAW\n",
        "RUN 3<<A cat /dev/fd/3 && cat <<B\na\nA\nb\nB\n",
        "COPY <<EOF /dst\nfile body\nEOF\n",
        "COPY <<\"Q\" /q\nquoted\nQ\n",
    );
    let parsed = parse(src).unwrap();
    let n = &parsed.nodes;
    assert_eq!(n[1].heredocs[0].name, "EOF");
    assert_eq!(n[1].heredocs[0].content, "echo $HOME\n");
    assert!(n[1].heredocs[0].expand);
    assert!(n[2].heredocs[0].chomp);
    assert_eq!(n[2].heredocs[0].effective_content(), "echo tabs\n");
    assert!(!n[3].heredocs[0].expand);
    assert_eq!(n[4].heredocs.len(), 2);
    assert_eq!(n[4].heredocs[0].fd, 3);
    assert_eq!(
        (
            n[4].heredocs[0].content.as_str(),
            n[4].heredocs[1].content.as_str()
        ),
        ("a\n", "b\n")
    );
    assert_eq!((n[4].span.start_line, n[4].span.end_line), (11, 15));
    assert_eq!(dump(&n[5..6]), "(copy \"<<EOF\" \"/dst\")\n");

    let i = instrs(src);
    let Instruction::Copy(Copy { sources, dest, .. }) = &i[5] else {
        panic!()
    };
    assert_eq!(dest, "/dst");
    assert_eq!(
        sources,
        &[Source::Heredoc {
            name: "EOF".into(),
            content: "file body\n".into(),
            expand: true
        }]
    );
    let Instruction::Copy(Copy { sources, .. }) = &i[6] else {
        panic!()
    };
    assert!(matches!(&sources[0], Source::Heredoc { expand: false, .. }));
    let Instruction::Run(r) = &i[1] else { panic!() };
    assert_eq!(r.heredocs.len(), 1);

    let err = parse("FROM x\nRUN <<EOF\nno end\n").unwrap_err();
    assert_eq!(err.0[0].kind, ErrorKind::UnterminatedHeredoc);
    // JSON form never takes heredocs.
    let p = parse("FROM x\nRUN [\"cat\", \"<<EOF\"]\nEOF\n").unwrap();
    assert_eq!(p.nodes.len(), 3);
}

#[test]
fn onbuild_heredoc_expression() {
    let i = instrs("FROM x\nONBUILD RUN <<EOF\necho hi\nEOF\n");
    let Instruction::OnBuild(o) = &i[1] else {
        panic!()
    };
    assert_eq!(o.expression, "RUN <<EOF\necho hi\nEOF");
}

#[test]
fn lexing_details() {
    // Directives, BOM, CRLF, backtick escape, comments and blank lines
    // inside a continuation, escape at EOF.
    let src = "\u{feff}# syntax=docker/dockerfile:1\r\n# check=skip=all\r\n# escape=`\r\nFROM x\r\nRUN a `\r\n# comment inside\r\n\r\n  b `\r\n  c\r\nRUN d `";
    let p = parse(src).unwrap();
    assert_eq!(p.escape, '`');
    assert_eq!(p.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(p.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(
        dump(&p.nodes),
        "(from \"x\")\n(run \"a   b   c\")\n(run \"d\")\n"
    );
    assert_eq!(p.warnings.len(), 1, "empty continuation line warning");
    assert_eq!(
        (p.nodes[1].span.start_line, p.nodes[1].span.end_line),
        (5, 9)
    );
    assert!(p.nodes[1].source_text.starts_with("RUN a `"));
    // A directive after an instruction or a blank line is just a comment.
    let p = parse("\n# escape=`\nFROM x\n").unwrap();
    assert_eq!(p.escape, '\\');
    assert!(parse("# escape=x\nFROM a\n").is_err());
    assert!(parse("# escape=`\n# escape=\\\nFROM a\n").is_err());
}

#[test]
fn unknown_instruction_kept_in_ast() {
    let p = parse("FROM x\nFOO bar baz\n").unwrap();
    assert_eq!(dump(&p.nodes), "(from \"x\")\n(foo \"\")\n");
}

#[test]
fn lint_warnings_are_data() {
    let df = parse_dockerfile("FROM x as Build\nMAINTAINER me\n").unwrap();
    let rules: Vec<&str> = df.warnings.iter().map(|w| w.rule).collect();
    assert_eq!(
        rules,
        ["StageNameCasing", "FromAsCasing", "MaintainerDeprecated"]
    );
    assert_eq!(
        df.warnings[0].message,
        "Stage name 'Build' should be lowercase"
    );
    assert_eq!(df.warnings[2].line, 2);
}

#[test]
fn dump_ast_for_cli() {
    let out = dockerfile_parser::dump_ast("FROM x\nONBUILD RUN echo hi\n").unwrap();
    assert_eq!(out, "(from \"x\")\n(onbuild (run \"echo hi\"))\n");
    assert!(dockerfile_parser::dump_ast("# only a comment\n").is_err());
}

#[test]
fn empty_continuation_warnings() {
    let src = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
    let p = parse(src).unwrap();
    let w: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("Empty continuation line found in: RUN something     following     more"));
    assert!(w[1].contains("RUN another     thing"));
    assert_eq!(
        dump(&p.nodes[4..]),
        "(run \"non-indented    after-comment\")\n(run \"indented     comment\")\n"
    );
}

#[test]
fn copy_heredoc_expansion_keeps_quotes() {
    let mut i = instrs("FROM x\nCOPY --chown=$U <<EOF <<'RAW' /d/$D\n\"$A\" '$B'\nEOF\n$A\nRAW\n")
        .remove(1);
    let env = env_from_pairs(["A=1", "B=2", "U=app", "D=dir"]);
    i.expand(&Lexer::new('\\'), &env).unwrap();
    let Instruction::Copy(c) = &i else { panic!() };
    assert_eq!(c.chown.as_deref(), Some("app"));
    assert_eq!(c.dest, "/d/dir");
    let contents: Vec<&str> = c
        .sources
        .iter()
        .map(|s| match s {
            Source::Heredoc { content, .. } => content.as_str(),
            Source::Path(p) => p.as_str(),
        })
        .collect();
    assert_eq!(contents, ["\"1\" '2'\n", "$A\n"]);
}

#[test]
fn raw_bytes_with_invalid_utf8() {
    let p =
        dockerfile_parser::parse_bytes(b"\xef\xbb\xbfFROM a\n# caf\xe9\nRUN echo \xff\n").unwrap();
    assert_eq!(dump(&p.nodes), "(from \"a\")\n(run \"echo \u{fffd}\")\n");
}
