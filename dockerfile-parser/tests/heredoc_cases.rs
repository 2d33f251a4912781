//! Heredoc edge cases (inputs modelled on BuildKit's parser heredoc tests).

use dockerfile_parser::parse;

/// (name, content, expand, chomp, fd) per heredoc of each instruction.
type Doc<'a> = (&'a str, &'a str, bool, bool, u64);
type OwnedDoc = (String, String, bool, bool, u64);

fn docs(src: &str) -> Vec<Vec<OwnedDoc>> {
    parse(src)
        .unwrap_or_else(|e| panic!("{e}"))
        .nodes
        .iter()
        .map(|n| {
            n.heredocs
                .iter()
                .map(|h| (h.name.clone(), h.content.clone(), h.expand, h.chomp, h.fd))
                .collect()
        })
        .collect()
}

fn check(src: &str, expected: &[Doc<'_>]) {
    let got = docs(src);
    assert_eq!(got.len(), 2, "{src:?}: {got:?}");
    let want: Vec<_> = expected
        .iter()
        .map(|&(n, c, e, ch, fd)| (n.to_string(), c.to_string(), e, ch, fd))
        .collect();
    assert_eq!(got[1], want, "{src:?}");
}

#[test]
fn heredoc_variants() {
    let f = |body: &str| format!("FROM alpine\n{body}");
    check(&f("RUN <<EMPTY\nEMPTY\n"), &[("EMPTY", "", true, false, 0)]);
    check(
        &f("RUN 3<<EMPTY2\nEMPTY2\n"),
        &[("EMPTY2", "", true, false, 3)],
    );
    check(&f("RUN \"<<NOHEREDOC\"\n"), &[]);
    check(
        &f("RUN <<INDENT\n\tfoo\n\tbar\nINDENT\n"),
        &[("INDENT", "\tfoo\n\tbar\n", true, false, 0)],
    );
    check(
        &f("RUN <<-UNINDENT2\n\tbaz\n\tquux\n\tUNINDENT2\n"),
        &[("UNINDENT2", "\tbaz\n\tquux\n", true, true, 0)],
    );
    check(
        &f("RUN <<-'NOEXPAND'\n\tdon't $X\nNOEXPAND\n"),
        &[("NOEXPAND", "\tdon't $X\n", false, true, 0)],
    );
    check(
        &f("RUN <<COMMENT\n# internal\necho x # t\nCOMMENT\n"),
        &[("COMMENT", "# internal\necho x # t\n", true, false, 0)],
    );
    check(
        &f("RUN --mount=type=cache,target=/foo <<MOUNT\necho hello\nMOUNT\n"),
        &[("MOUNT", "echo hello\n", true, false, 0)],
    );
    check(
        &f("COPY <<X <<Y /dest\nY\nX\nX\nY\n"),
        &[("X", "Y\n", true, false, 0), ("Y", "X\n", true, false, 0)],
    );
    check(
        &f("COPY <<file.txt /dest\nhello\nfile.txt\n"),
        &[("file.txt", "hello\n", true, false, 0)],
    );
    check(
        &f("RUN <<eo'f'\necho foo\neof\n"),
        &[("eof", "echo foo\n", false, false, 0)],
    );
    check(
        &f("RUN <<eo\\'f\necho foo\neo'f\n"),
        &[("eo'f", "echo foo\n", true, false, 0)],
    );
    check(
        &f("RUN <<'e'o\\'f\necho foo\neo'f\n"),
        &[("eo'f", "echo foo\n", false, false, 0)],
    );
    check(
        &f("RUN <<'one two'\necho bar\none two\n"),
        &[("one two", "echo bar\n", false, false, 0)],
    );
    check(&f("RUN <<$EOF\n$EOF\n"), &[("$EOF", "", true, false, 0)]);
    check(&f("RUN <<  EOF\nEOF\n"), &[("EOF", "", true, false, 0)]);
    check(
        &f("RUN <<  EOF  > foo\nEOF\n"),
        &[("EOF", "", true, false, 0)],
    );
    // USER never takes heredocs: the body line is an instruction of its own.
    assert_eq!(docs("FROM a\nUSER <<INVALID\nINVALID\n").len(), 3);
}
