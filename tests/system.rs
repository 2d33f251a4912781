//! `version`, `info`, `system df` (against `du`), `system prune` (what is
//! in use stays), `builder prune --filter until= / --keep-storage`, and
//! docker's management-command aliases (`image ls`, `container rm`, …).

mod common;

use std::process::Command;

use common::{busybox_tar, is_root, Kiln};
use serde_json::Value;

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout
}

#[test]
fn version_and_info() {
    let k = Kiln::new();
    k.import_busybox("bb");
    let v = env!("CARGO_PKG_VERSION");
    assert_eq!(
        out(&k, &["version", "-f", "{{.Client.Version}}"]),
        format!("{v}\n")
    );
    assert_eq!(
        out(
            &k,
            &["version", "--format", "{{.Server.Version}} {{.Client.Os}}"]
        ),
        format!("{v} linux\n")
    );
    let j: Value = serde_json::from_str(&out(&k, &["version", "-f", "json"])).unwrap();
    assert_eq!(j["Server"]["Components"][0]["Name"], "Engine");
    let text = out(&k, &["version"]);
    assert!(text.starts_with("Client:\n Version:    "), "{text}");
    assert!(text.contains("\nServer: "), "{text}");

    assert_eq!(
        out(
            &k,
            &[
                "info",
                "-f",
                "{{.Images}} {{.Containers}} {{.Driver}} {{.OSType}}"
            ]
        ),
        "1 0 overlay linux\n"
    );
    assert_eq!(
        out(&k, &["system", "info", "--format", "{{.DockerRootDir}}"]),
        format!("{}\n", k.root().display())
    );
    let text = out(&k, &["info"]);
    for want in [
        " Images: 1\n",
        " Containers: 0\n",
        " Storage Driver: overlay\n",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    let r = k.run(&["info", "-f", "{{.Images"]).code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// `du -sbc PATHS` (hard links once, as kiln counts them).
fn du(paths: &[std::path::PathBuf]) -> u64 {
    if paths.is_empty() {
        return 0;
    }
    let o = Command::new("du").arg("-sbc").args(paths).output().unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    let total = text.lines().last().unwrap();
    total.split_whitespace().next().unwrap().parse().unwrap()
}

/// `system df`'s rows by type: (count, size bytes, reclaimable bytes).
fn df(k: &Kiln) -> std::collections::HashMap<String, (u64, u64, u64)> {
    out(
        k,
        &[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.SizeBytes}}|{{.ReclaimableBytes}}",
        ],
    )
    .lines()
    .map(|l| {
        let f: Vec<&str> = l.split('|').collect();
        (
            f[0].to_string(),
            (
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
            ),
        )
    })
    .collect()
}

/// The files `system df` counts for the store's images.
fn image_files(k: &Kiln) -> Vec<std::path::PathBuf> {
    let root = k.root();
    let blob = |d: &str| {
        root.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let mut files = std::collections::BTreeSet::new();
    for line in out(k, &["images", "-q", "--no-trunc"]).lines() {
        let v: Value = serde_json::from_str(&out(k, &["image", "inspect", line])).unwrap();
        let img = &v[0];
        files.insert(blob(img["Id"].as_str().unwrap()));
        files.insert(blob(img["Digest"].as_str().unwrap()));
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(blob(img["Digest"].as_str().unwrap())).unwrap())
                .unwrap();
        for l in manifest["layers"].as_array().unwrap() {
            files.insert(blob(l["digest"].as_str().unwrap()));
        }
        for d in img["RootFS"]["Layers"].as_array().unwrap() {
            let dir = root
                .join("kiln/layers")
                .join(d.as_str().unwrap().trim_start_matches("sha256:"));
            if dir.exists() {
                files.insert(dir);
            }
        }
    }
    files.into_iter().collect()
}

#[test]
fn system_df_agrees_with_du() {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&["import", &tar, "one"]).ok();
    k.run(&["import", "-c", "ENV X=1", &tar, "two"]).ok();
    k.run(&["volume", "create", "dfvol"]).ok();
    let d = df(&k);
    let images = d["Images"];
    assert_eq!(images.0, 2);
    assert_eq!(images.1, du(&image_files(&k)));
    assert!(images.1 > 1_000_000, "busybox is in there: {images:?}");
    // Nothing uses them: all of it can go.
    assert_eq!(images.2, images.1);
    let vols = d["Local Volumes"];
    assert_eq!(vols.0, 1);
    assert_eq!(vols.1, du(&[k.root().join("kiln/volumes/dfvol")]));
    assert_eq!(d["Build Cache"].1, 0);
    let table = out(&k, &["system", "df"]);
    assert!(
        table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          2         0  "),
        "{table}"
    );
    assert!(table.contains("(100%)"), "{table}");
    let verbose = out(&k, &["system", "df", "-v"]);
    for want in [
        "Images space usage:",
        "localhost/two",
        "Local Volumes space usage:",
        "dfvol",
    ] {
        assert!(verbose.contains(want), "{want} in {verbose}");
    }

    if !is_root() {
        eprintln!("skipping the container part: containers need root");
        return;
    }
    k.run(&[
        "run",
        "--network",
        "none",
        "--name",
        "dfc",
        "one",
        "sh",
        "-c",
        "echo x > /f",
    ])
    .ok();
    let d = df(&k);
    let id = out(&k, &["ps", "-aq", "--no-trunc"]).trim().to_string();
    let c = d["Containers"];
    assert_eq!(c.0, 1);
    assert_eq!(c.1, du(&[k.root().join("kiln/containers").join(&id)]));
    assert_eq!(c.2, c.1, "a stopped container can go");
    // `one` is in use now: what only it holds is not reclaimable.
    assert!(d["Images"].2 < d["Images"].1, "{:?}", d["Images"]);
    k.run(&["rm", "dfc"]).ok();
}

#[test]
fn system_prune_leaves_what_is_in_use() {
    if !is_root() {
        eprintln!("skipping: containers need root (CI runs these as root)");
        return;
    }
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&["import", &tar, "busybox"]).ok();
    k.run(&["import", "-c", "ENV U=1", &tar, "unused"]).ok();
    k.run(&["import", "-c", "ENV D=1", &tar, "dangling"]).ok();
    k.run(&["import", "-c", "ENV D=2", &tar, "dangling"]).ok();
    let none = ["--network", "none"];
    k.run(
        &[
            &["run", "-d", "--name", "keep"][..],
            &none,
            &["busybox", "sleep", "100"],
        ]
        .concat(),
    )
    .ok();
    k.run(
        &[
            &["run", "--name", "done", "-v", "/anon"][..],
            &none,
            &["busybox", "true"],
        ]
        .concat(),
    )
    .ok();
    k.run(&["volume", "create", "named"]).ok();
    let net = format!("spn{}", std::process::id());
    k.run(&["network", "create", &net]).ok();
    let images = || {
        let mut v: Vec<String> = out(&k, &["images", "--format", "{{.Repository}}"])
            .lines()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(images().len(), 4);

    let r = k.run(&["system", "prune", "-f", "--volumes"]).ok();
    for want in [
        "Deleted Containers:",
        "Deleted Networks:",
        &net,
        "Deleted Volumes:",
        "Deleted Images:",
        "Total reclaimed space: ",
    ] {
        assert!(r.stdout.contains(want), "{want} in {}", r.stdout);
    }
    assert_eq!(
        out(&k, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]),
        "keep running\n"
    );
    assert_eq!(
        images(),
        [
            "localhost/busybox",
            "localhost/dangling",
            "localhost/unused"
        ]
    );
    assert_eq!(out(&k, &["volume", "ls", "-q"]), "named\n");
    assert!(!out(&k, &["network", "ls"]).contains(&net));

    k.run(&["system", "prune", "-a", "-f"]).ok();
    assert_eq!(images(), ["localhost/busybox"], "in use by `keep`");
    assert_eq!(out(&k, &["ps", "-q"]).lines().count(), 1);
    k.run(&["rm", "-f", "keep"]).ok();
}

/// `df -v --format` runs the template once on docker's lists (no header,
/// no columns, nothing added), as docker's `diskUsageContext`.
#[test]
fn df_verbose_format_runs_on_dockers_lists() {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&["import", &tar, "one"]).ok();
    k.run(&["volume", "create", "--label", "v=1", "dfv"]).ok();
    let id = out(&k, &["inspect", "-f", "{{.Id}}", "one"])
        .trim()
        .to_string();
    let t = r#"{{range .Images}}{{.Repository}}:{{.Tag}} {{.ID}} {{.Containers}}{{"\n"}}{{end}}{{range .Volumes}}{{.Name}} {{.Links}} {{.Label "v"}}{{"\n"}}{{end}}{{len .Containers}} {{len .BuildCache}}"#;
    assert_eq!(
        out(&k, &["system", "df", "-v", "--format", t]),
        format!("localhost/one:latest {id} 0\ndfv 0 1\n0 0")
    );
    // `table` is dropped: still once, no header.
    assert_eq!(
        out(
            &k,
            &["system", "df", "-v", "--format", "table {{len .Images}}"]
        ),
        "1"
    );
    let j: Value =
        serde_json::from_str(&out(&k, &["system", "df", "-v", "--format", "json"])).unwrap();
    assert_eq!(j["Images"][0]["ID"], id.as_str());
    assert_eq!(j["Volumes"][0]["Labels"], "v=1");
    assert!(j["Volumes"][0].get("Label").is_none(), "{j}");
    assert!(j["BuildCache"].as_array().unwrap().is_empty());
    let r = k
        .run(&["system", "df", "-v", "--format", "{{.Nope}}"])
        .code(125);
    assert!(
        r.stderr
            .contains("can't evaluate field Nope in type *formatter.diskUsageContext"),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn builder_prune_bounds_the_cache() {
    if !is_root() {
        eprintln!("skipping: RUN steps need root (CI runs these as root)");
        return;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    // The older step's layer is big, the newer one's small.
    let ctx = k.context(
        "FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1024 count=300\nRUN echo small > /small\n",
    );
    k.run(&["build", "-q", "-t", "cached", ctx.to_str().unwrap()])
        .ok();
    // Only the cache holds the layers now.
    k.run(&["rmi", "cached"]).ok();
    let cache = |k: &Kiln| df(k)["Build Cache"];
    let (records, size, _) = cache(&k);
    assert!(records >= 2, "{records}");
    assert!(size > 300 * 1024, "{size}");
    // `df -v --format` lists the records as docker's build cache rows.
    let rows = out(
        &k,
        &[
            "system",
            "df",
            "-v",
            "--format",
            r#"{{range .BuildCache}}{{.ID}} {{.CacheType}} {{.InUse}} {{.UsageCount}}{{"\n"}}{{end}}"#,
        ],
    );
    assert_eq!(rows.lines().count() as u64, records, "{rows}");
    assert!(
        rows.lines()
            .all(|l| l.len() > 60 && l.ends_with(" regular false N/A")),
        "{rows}"
    );

    k.run(&["builder", "prune", "--filter", "until=1h"]).ok();
    assert_eq!(cache(&k), (records, size, size), "nothing is an hour old");
    k.run(&["builder", "prune", "--keep-storage", "1GB"]).ok();
    assert_eq!(cache(&k).0, records, "all of it fits");
    k.run(&["builder", "prune", "--keep-storage", "100kB"]).ok();
    let (left, small, _) = cache(&k);
    assert!(left >= 1 && left < records, "{left} of {records}");
    assert!(small < 100 * 1024, "{small}");
    k.run(&["builder", "prune", "--filter", "until=2999-01-01T00:00:00Z"])
        .ok();
    assert_eq!(cache(&k).0, 0);
    for bad in [
        &["--keep-storage", "lots"][..],
        &["--filter", "label=x"],
        &["--filter", "until=soon"],
    ] {
        let r = k.run(&[&["builder", "prune"][..], bad].concat()).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {}", r.stderr);
    }
}

#[test]
fn management_aliases() {
    let k = Kiln::new();
    k.import_busybox("bb");
    for sub in [
        "ls", "list", "rm", "inspect", "pull", "push", "tag", "save", "load", "import", "history",
        "prune", "build",
    ] {
        let r = k.run(&["image", sub, "--help"]).ok();
        assert!(r.stdout.contains("Usage"), "image {sub}");
    }
    for sub in [
        "ls", "ps", "list", "rm", "run", "create", "start", "stop", "restart", "kill", "logs",
        "exec", "cp", "diff", "export", "commit", "port", "rename", "pause", "unpause", "top",
        "wait", "inspect", "attach",
    ] {
        let r = k.run(&["container", sub, "--help"]).ok();
        assert!(r.stdout.contains("Usage"), "container {sub}");
    }
    assert_eq!(
        out(&k, &["image", "ls", "--format", "{{.Repository}}"]),
        out(&k, &["images", "--format", "{{.Repository}}"])
    );
    let archive = k.dir.path().join("bb.tar");
    k.run(&["image", "save", "-o", archive.to_str().unwrap(), "bb"])
        .ok();
    k.run(&["image", "rm", "bb"]).ok();
    k.run(&["image", "load", "-i", archive.to_str().unwrap()])
        .ok();
    assert_eq!(out(&k, &["image", "ls", "-q"]).lines().count(), 1);
    assert_eq!(out(&k, &["container", "ls", "-aq"]), "");
    // `image inspect` looks at images only, as docker's.
    k.run(&["image", "inspect", "no-such"]).code(125);
}

#[test]
fn completion_scripts_and_man_pages() {
    let k = Kiln::new();
    let bash = out(&k, &["completion", "bash"]);
    assert!(
        bash.contains("_kiln()") && bash.contains("search"),
        "{bash}"
    );
    let dir = k.dir.path();
    std::fs::write(dir.join("kiln.bash"), &bash).unwrap();
    let st = Command::new("bash")
        .arg("-n")
        .arg(dir.join("kiln.bash"))
        .status()
        .unwrap();
    assert!(st.success(), "the bash script parses");
    assert!(out(&k, &["completion", "zsh"]).starts_with("#compdef kiln"));
    assert!(out(&k, &["completion", "fish"]).contains("complete -c kiln"));
    k.run(&["completion", "powershell"]).code(125);

    let man = dir.join("man");
    k.run(&["man", man.to_str().unwrap()]).ok();
    for page in [
        "kiln.1",
        "kiln-run.1",
        "kiln-image-ls.1",
        "kiln-system-df.1",
        "kiln-search.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    let ls = std::fs::read_to_string(man.join("kiln-image-ls.1")).unwrap();
    assert!(ls.contains("filter"), "{ls}");
}
