//! `--format` as docker's scripts write it: Go templates with docker's field
//! names and functions, `table` and `json`, on a known image (any user) and
//! known containers (root only), each with the output docker prints.

mod common;

use common::{busybox_tar, Kiln};
use serde_json::Value;

/// busybox imported with a known config, as `bb` and `other:v2`.
fn image_store() -> (Kiln, Value) {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&[
        "import",
        "-c",
        "ENV A=1",
        "-c",
        "LABEL org.k=v a=b",
        "-c",
        r#"CMD ["sh","-c","echo hi"]"#,
        "-c",
        "WORKDIR /srv",
        "-m",
        "the busybox",
        &tar,
        "bb",
    ])
    .ok();
    k.run(&["tag", "bb", "other:v2"]).ok();
    let v: Value = serde_json::from_str(&k.run(&["inspect", "bb"]).ok().stdout).unwrap();
    (k, v[0].clone())
}

#[track_caller]
fn check(k: &Kiln, args: &[&str], want: &str) {
    let r = k.run(args).ok();
    assert_eq!(r.stdout, want, "kiln {args:?}");
}

#[test]
fn templates_on_an_image() {
    let (k, img) = image_store();
    let id = img["Id"].as_str().unwrap();
    let short = &id[7..19];
    let layer = img["RootFS"]["Layers"][0].as_str().unwrap();
    let size = img["Size"].as_u64().unwrap();
    let inspect: &[(&str, String)] = &[
        ("{{.Id}}", id.to_string()),
        ("{{json .Config.Env}}", r#"["A=1"]"#.into()),
        ("{{json .Config.Cmd}}", r#"["sh","-c","echo hi"]"#.into()),
        (
            "{{range .RepoTags}}{{.}} {{end}}",
            "localhost/bb:latest localhost/other:v2 ".into(),
        ),
        (r#"{{index .Config.Labels "org.k"}}"#, "v".into()),
        (r#"{{index .Config.Labels "missing"}}"#, "".into()),
        ("{{.Config.Labels}}", "map[a:b org.k:v]".into()),
        (
            "{{.Os}}/{{.Architecture}}",
            format!("linux/{}", img["Architecture"].as_str().unwrap()),
        ),
        ("{{.Config.WorkingDir}}", "/srv".into()),
        ("{{.Config.Cmd}}", "[sh -c echo hi]".into()),
        (r#"{{join .Config.Cmd " "}}"#, "sh -c echo hi".into()),
        (
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            "a=b;org.k=v;".into(),
        ),
        ("{{len .RootFS.Layers}}", "1".into()),
        (
            "{{if .Config.Labels}}labelled{{else}}bare{{end}}",
            "labelled".into(),
        ),
        (
            "{{if .Config.Entrypoint}}ep{{else}}no ep{{end}}",
            "no ep".into(),
        ),
        (
            "{{with .Config.WorkingDir}}wd={{.}}{{end}}",
            "wd=/srv".into(),
        ),
        ("{{upper .Os}}", "LINUX".into()),
        (r#"{{lower "MiXed"}}"#, "mixed".into()),
        ("{{title .Comment}}", "The Busybox".into()),
        (r#"{{split "a:b:c" ":"}}"#, "[a b c]".into()),
        (r#"{{join (split "a:b:c" ":") "-"}}"#, "a-b-c".into()),
        ("{{truncate .Id 19}}", id[..19].to_string()),
        ("{{pad .Os 2 1}}|", "  linux |".into()),
        ("{{println .Os}}", "linux\n".into()),
        (
            "{{json .RootFS}}",
            format!(r#"{{"Layers":["{layer}"],"Type":"layers"}}"#),
        ),
        ("{{.Size}}", size.to_string()),
        ("{{index .RepoTags 0}}", "localhost/bb:latest".into()),
        ("{{range .Config.Env}}{{println .}}{{end}}", "A=1\n".into()),
        (r#"{{eq .Os "linux"}}"#, "true".into()),
        (
            r#"{{printf "%.12s" .Id}}"#,
            "sha256:".to_string() + &id[7..12],
        ),
        ("{{index .RootFS.Layers 0}}", layer.to_string()),
        ("{{.RootFS.Type}} {{.Comment}}", "layers the busybox".into()),
        (
            r#"{{if eq .Os "linux"}}{{.Config.WorkingDir}}{{end}}"#,
            "/srv".into(),
        ),
        (
            "{{range $i, $t := .RepoTags}}{{$i}}:{{$t}} {{end}}",
            "0:localhost/bb:latest 1:localhost/other:v2 ".into(),
        ),
        ("{{json .Config.Labels}}", r#"{"a":"b","org.k":"v"}"#.into()),
    ];
    for (t, want) in inspect {
        check(&k, &["inspect", "-f", t, "bb"], &format!("{want}\n"));
        check(
            &k,
            &["image", "inspect", "--format", t, "bb"],
            &format!("{want}\n"),
        );
    }
    // One line per object, as docker.
    check(
        &k,
        &["inspect", "-f", "{{.Os}}", "bb", "other:v2"],
        "linux\nlinux\n",
    );
    let r = k.run(&["inspect", "--format", "json", "bb"]).ok();
    let v: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(v["Id"], id);

    let lists: &[(&[&str], String)] = &[
        (
            &["images", "--format", "{{.Repository}}:{{.Tag}}"],
            "localhost/bb:latest\nlocalhost/other:v2\n".into(),
        ),
        (
            &["images", "--format", "{{.ID}}", "bb"],
            format!("{short}\n"),
        ),
        (
            &["images", "--no-trunc", "--format", "{{.ID}}", "bb"],
            format!("{id}\n"),
        ),
        (
            &["images", "--format", r"table {{.Repository}}\t{{.Tag}}"],
            "REPOSITORY        TAG\nlocalhost/bb      latest\nlocalhost/other   v2\n".into(),
        ),
        (
            &[
                "images",
                "--format",
                r"table {{.ID}}\t{{.Tag}}\t{{.Size}}",
                "other",
            ],
            format!(
                "IMAGE ID       TAG       SIZE\n{short}   v2        {}\n",
                k_size(size)
            ),
        ),
        (
            &["images", "--format", "{{.Repository}} {{.Digest}}", "bb"],
            format!("localhost/bb {}\n", img["Digest"].as_str().unwrap()),
        ),
        (
            &["images", "--format", "{{upper .Tag}}", "other"],
            "V2\n".into(),
        ),
        (
            &["history", "--format", "{{.ID}}|{{.Comment}}", "bb"],
            format!("{short}|the busybox\n"),
        ),
        (
            &["history", "--format", r"table {{.ID}}\t{{.Size}}", "bb"],
            format!("IMAGE          SIZE\n{short}   {}\n", k_size(size)),
        ),
    ];
    for (args, want) in lists {
        check(&k, args, want);
    }
    // `json`: one object per line, docker's field names.
    let r = k.run(&["images", "--format", "json"]).ok();
    let rows: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["Repository"], "localhost/bb");
    assert_eq!(rows[0]["ID"], short);
    assert_eq!(rows[1]["Tag"], "v2");
    // `table` alone is the default table.
    let header = k.run(&["images", "--format", "table"]).ok().stdout;
    assert!(
        header.starts_with("REPOSITORY        TAG       IMAGE ID       CREATED"),
        "{header}"
    );
}

/// go-units' size, as the lists print it.
fn k_size(bytes: u64) -> String {
    let mut v = bytes as f64;
    let mut unit = 0;
    let units = ["B", "kB", "MB", "GB"];
    while v >= 1000.0 && unit < 3 {
        v /= 1000.0;
        unit += 1;
    }
    let s = if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[unit])
}

#[test]
fn bad_templates_exit_125_with_one_line() {
    let (k, _) = image_store();
    for (args, named) in [
        (&["inspect", "-f", "{{.Id", "bb"][..], "{{.Id"),
        (&["images", "--format", "{{nosuch .ID}}"], "{{nosuch .ID}}"),
        (&["history", "--format", "{{if}}", "bb"], "{{if}}"),
        (&["volume", "ls", "--format", "{{end}}"], "{{end}}"),
        (&["network", "ls", "--format", "{{range}}"], "{{range}}"),
        (&["ps", "--format", "{{.ID"], "{{.ID"),
        (&["inspect", "-f", r#"{{join .Id ","}}"#, "bb"], "join"),
    ] {
        let r = k.run(args).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(named), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
}

#[test]
fn volume_and_network_templates() {
    let k = Kiln::new();
    k.run(&["volume", "create", "--label", "x=y", "fmtvol"])
        .ok();
    check(
        &k,
        &[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}",
        ],
        "fmtvol local x=y\n",
    );
    check(
        &k,
        &["volume", "ls", "--format", r"table {{.Name}}\t{{.Scope}}"],
        "VOLUME NAME   SCOPE\nfmtvol        local\n",
    );
    check(
        &k,
        &["volume", "ls"],
        "DRIVER    VOLUME NAME\nlocal     fmtvol\n",
    );
    let r = k
        .run(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{json .Labels}} {{.Scope}}",
            "fmtvol",
        ])
        .ok();
    assert_eq!(r.stdout, "fmtvol {\"x\":\"y\"} local\n");
    // `.Label "k"` on volume and network rows; `{{json .}}` shows no method.
    check(
        &k,
        &[
            "volume",
            "ls",
            "--format",
            r#"{{.Name}} {{.Label "x"}}|{{.Label "no"}}|"#,
        ],
        "fmtvol y||\n",
    );
    let r = k.run(&["volume", "ls", "--format", "{{json .}}"]).ok();
    assert!(!r.stdout.contains("\"Label\""), "{}", r.stdout);
    let net = format!("fmtnet{}", std::process::id());
    k.run(&["network", "create", "--label", "team=blue", &net])
        .ok();
    check(
        &k,
        &[
            "network",
            "ls",
            "--filter",
            &format!("name={net}"),
            "--format",
            r#"{{.Name}} {{.Label "team"}}"#,
        ],
        &format!("{net} blue\n"),
    );
    k.run(&["network", "rm", &net]).ok();
    check(
        &k,
        &[
            "network",
            "ls",
            "--format",
            "{{.Name}}|{{.Driver}}|{{.Scope}}",
        ],
        "bridge|bridge|local\n",
    );
    let r = k.run(&["network", "ls"]).ok();
    assert!(
        r.stdout
            .starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n"),
        "{}",
        r.stdout
    );
    let r = k
        .run(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}} {{.Internal}}",
            "bridge",
        ])
        .ok();
    assert_eq!(r.stdout, "bridge bridge false\n");
}

#[test]
fn templates_on_containers() {
    let Some(k) = common::root_store() else {
        return;
    };
    let id = k
        .run(&[
            "run",
            "-d",
            "--name",
            "fmt-web",
            "-l",
            "tier=web",
            "-l",
            "env=prod",
            "--network",
            "none",
            "busybox",
            "sleep",
            "100",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    k.run(&[
        "run",
        "--name",
        "fmt-done",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ])
    .code(3);
    let rows: &[(&[&str], String)] = &[
        (
            &["ps", "--format", "{{.Names}} {{.Image}} {{.State}}"],
            "fmt-web busybox running\n".into(),
        ),
        (&["ps", "--format", "{{.ID}}"], format!("{}\n", &id[..12])),
        (
            &["ps", "--no-trunc", "--format", "{{.ID}} {{.Command}}"],
            format!("{id} \"sleep 100\"\n"),
        ),
        (
            &["ps", "--format", "{{.Labels}}"],
            "env=prod,tier=web\n".into(),
        ),
        // docker's row method with an argument.
        (
            &[
                "ps",
                "--format",
                r#"{{.Names}} {{.Label "tier"}}|{{.Label "nope"}}|"#,
            ],
            "fmt-web web||\n".into(),
        ),
        (
            &[
                "ps",
                "--format",
                r#"{{if eq (.Label "env") "prod"}}{{.Names}}{{end}}"#,
            ],
            "fmt-web\n".into(),
        ),
        (
            &["ps", "--format", r#"table {{.Names}}\t{{.Label "tier"}}"#],
            "NAMES     tier\nfmt-web   web\n".into(),
        ),
        (
            &[
                "ps",
                "-a",
                "--filter",
                "name=fmt-done",
                "--format",
                "{{.Status}}",
            ],
            String::new(),
        ),
        (
            &["ps", "--format", r"table {{.Names}}\t{{.State}}"],
            "NAMES     STATE\nfmt-web   running\n".into(),
        ),
        (
            &[
                "inspect",
                "-f",
                "{{.Name}} {{.State.Status}} {{.State.Running}}",
                "fmt-web",
            ],
            "/fmt-web running true\n".into(),
        ),
        (
            &[
                "container",
                "inspect",
                "-f",
                "{{.State.ExitCode}} {{.Config.Image}}",
                "fmt-done",
            ],
            "3 busybox\n".into(),
        ),
        (
            &[
                "inspect",
                "-f",
                r#"{{index .Config.Labels "tier"}}"#,
                "fmt-web",
            ],
            "web\n".into(),
        ),
    ];
    for (args, want) in rows {
        if want.is_empty() {
            // Status reads "Exited (3) N seconds ago": the part without time.
            let s = k.run(args).ok().stdout;
            assert!(s.starts_with("Exited (3) "), "{s}");
            continue;
        }
        check(&k, args, want);
    }
    k.run(&["rm", "-f", "fmt-web", "fmt-done"]).ok();
}

/// A field docker's rows do not have is an error naming it and the row's
/// type (docker's rows are structs), where `inspect`'s JSON (maps) gives
/// `<no value>`; images have no `.Label` in docker either.
#[test]
fn a_field_rows_lack_is_an_error() {
    let (k, _) = image_store();
    for (args, field, ty) in [
        (
            &["images", "--format", "{{.ID}} {{.Nope}}"][..],
            "Nope",
            "*formatter.imageContext",
        ),
        (
            &["images", "--format", r#"{{.Label "org.k"}}"#],
            "Label",
            "*formatter.imageContext",
        ),
        (
            &["history", "--format", "{{.Bogus}}", "bb"],
            "Bogus",
            "*image.historyContext",
        ),
        (
            &["network", "ls", "--format", "{{.Nope}}"],
            "Nope",
            "*network.networkContext",
        ),
    ] {
        let r = k.run(args).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("can't evaluate field {field} in type {ty}")),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    // inspect reads maps: no error.
    check(&k, &["inspect", "-f", "{{.Nope}}", "bb"], "<no value>\n");
}
