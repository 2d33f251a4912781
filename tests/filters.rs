//! docker's `--filter`s, each with a match and a non-match: `images`,
//! `image prune`, `ps` (ancestor, before, since, volume, network; the
//! others are in lifecycle.rs), `network ls` and `volume ls`.

mod common;

use common::{busybox_tar, is_root, Kiln};

fn lines(k: &Kiln, args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = k
        .run(args)
        .ok()
        .stdout
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `old` (label tier=base), `mid` (tier=app, x=1), `new`, and an untagged
/// image (a `new` that a later import of `new` replaced), created in that
/// order.
fn images_store() -> Kiln {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&["import", "-c", "LABEL tier=base", &tar, "old"])
        .ok();
    k.run(&["import", "-c", "LABEL tier=app x=1", &tar, "mid"])
        .ok();
    k.run(&["import", "-c", "ENV N=1", &tar, "new"]).ok();
    k.run(&["import", "-c", "ENV N=2", &tar, "new"]).ok();
    k
}

#[test]
fn images_filters() {
    let k = images_store();
    let names = |f: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for x in f {
            args.extend(["--filter", x]);
        }
        lines(&k, &args)
    };
    let all = [
        "<none>:<none>",
        "localhost/mid:latest",
        "localhost/new:latest",
        "localhost/old:latest",
    ];
    assert_eq!(names(&[]), all);
    assert_eq!(names(&["dangling=true"]), ["<none>:<none>"]);
    assert_eq!(names(&["dangling=false"]), all[1..]);
    assert_eq!(
        names(&["label=tier"]),
        ["localhost/mid:latest", "localhost/old:latest"]
    );
    assert_eq!(names(&["label=tier=app"]), ["localhost/mid:latest"]);
    assert_eq!(
        names(&["label=tier", "label=x=1"]),
        ["localhost/mid:latest"]
    );
    assert!(names(&["label=tier=none"]).is_empty());
    assert_eq!(names(&["reference=mi*"]), ["localhost/mid:latest"]);
    assert_eq!(
        names(&["reference=localhost/old"]),
        ["localhost/old:latest"]
    );
    assert_eq!(
        names(&["reference=old", "reference=new:latest"]),
        ["localhost/new:latest", "localhost/old:latest"]
    );
    assert!(names(&["reference=alpine"]).is_empty());
    assert_eq!(names(&["before=mid"]), ["localhost/old:latest"]);
    assert_eq!(
        names(&["since=mid"]),
        ["<none>:<none>", "localhost/new:latest"]
    );
    assert!(names(&["since=new"]).is_empty());
    assert_eq!(
        names(&["since=old", "before=new", "dangling=false"]),
        ["localhost/mid:latest"]
    );
    for bad in [
        "color=red",
        "dangling=maybe",
        "before=nosuch",
        "until=1h",
        "label",
    ] {
        let r = k.run(&["images", "--filter", bad]).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains(bad), "{bad}: {}", r.stderr);
    }
}

#[test]
fn image_prune_filters() {
    let k = images_store();
    let repos = || lines(&k, &["images", "--format", "{{.Repository}}"]);
    // Everything is younger than an hour: nothing to prune.
    let r = k
        .run(&["image", "prune", "-a", "-f", "--filter", "until=1h"])
        .ok();
    assert!(!r.stdout.contains("deleted:"), "{}", r.stdout);
    assert_eq!(repos().len(), 4);
    k.run(&["image", "prune", "-a", "-f", "--filter", "label=tier=base"])
        .ok();
    assert_eq!(repos(), ["<none>", "localhost/mid", "localhost/new"]);
    k.run(&["image", "prune", "-a", "-f", "--filter", "label!=tier"])
        .ok();
    assert_eq!(repos(), ["localhost/mid"]);
    let r = k
        .run(&["image", "prune", "-f", "--filter", "until=soon"])
        .code(125);
    assert!(r.stderr.contains("until=soon"), "{}", r.stderr);
    k.run(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "until=2999-01-01T00:00:00Z",
    ])
    .ok();
    assert!(repos().is_empty());
}

#[test]
fn ps_filters_on_other_objects() {
    if !is_root() {
        eprintln!("skipping: containers need root (CI runs these as root)");
        return;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    let none = ["--network", "none"];
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        k.run(&all).ok();
    };
    run(&[
        &none[..],
        &[
            "--name",
            "f-a",
            "-v",
            "fvol:/data",
            "busybox",
            "sleep",
            "100",
        ],
    ]
    .concat());
    k.run(&["commit", "f-a", "derived"]).ok();
    run(&[&none[..], &["--name", "f-b", "derived", "sleep", "100"]].concat());
    run(&["--name", "f-net", "busybox", "sleep", "100"]);
    let ps = |f: &str| lines(&k, &["ps", "-a", "--filter", f, "--format", "{{.Names}}"]);
    assert_eq!(ps("ancestor=busybox"), ["f-a", "f-b", "f-net"]);
    assert_eq!(ps("ancestor=derived"), ["f-b"]);
    assert_eq!(ps("before=f-b"), ["f-a"]);
    assert_eq!(ps("since=f-a"), ["f-b", "f-net"]);
    assert!(ps("since=f-net").is_empty());
    assert_eq!(ps("volume=fvol"), ["f-a"]);
    assert_eq!(ps("volume=/data"), ["f-a"]);
    assert!(ps("volume=othervol").is_empty());
    assert_eq!(ps("network=bridge"), ["f-net"]);
    assert!(ps("network=no-such-net").is_empty());
    let id = k
        .run(&["network", "inspect", "-f", "{{.Id}}", "bridge"])
        .ok()
        .stdout;
    assert_eq!(ps(&format!("network={}", &id[..12])), ["f-net"]);
    for bad in ["ancestor=no-such-image", "before=no-such-container"] {
        let r = k.run(&["ps", "--filter", bad]).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {}", r.stderr);
    }
    k.run(&["rm", "-f", "-v", "f-a", "f-b", "f-net"]).ok();
}

#[test]
fn network_and_volume_ls_filters() {
    if !is_root() {
        eprintln!("skipping: networks need root (CI runs these as root)");
        return;
    }
    let k = Kiln::new();
    let net = format!("fnet{}", std::process::id());
    k.run(&["network", "create", "--label", "a=b", &net]).ok();
    let ls = |f: &str| {
        lines(
            &k,
            &["network", "ls", "--filter", f, "--format", "{{.Name}}"],
        )
    };
    let both = {
        let mut v = vec!["bridge".to_string(), net.clone()];
        v.sort();
        v
    };
    assert_eq!(ls("driver=bridge"), both);
    assert!(ls("driver=macvlan").is_empty());
    assert_eq!(ls("name=fnet"), [net.as_str()]);
    assert!(ls("name=zzz").is_empty());
    assert_eq!(ls("label=a=b"), [net.as_str()]);
    assert!(ls("label=a=c").is_empty());
    assert_eq!(ls("type=builtin"), ["bridge"]);
    assert_eq!(ls("type=custom"), [net.as_str()]);
    assert_eq!(ls("dangling=true"), [net.as_str()]);
    assert_eq!(ls("dangling=false"), ["bridge"]);
    assert_eq!(ls("scope=local"), both);
    assert!(ls("scope=swarm").is_empty());
    let id = k
        .run(&["network", "inspect", "-f", "{{.Id}}", &net])
        .ok()
        .stdout;
    assert_eq!(ls(&format!("id={}", &id[..6])), [net.as_str()]);
    let r = k.run(&["network", "ls", "--filter", "type=odd"]).code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    k.run(&["network", "rm", &net]).ok();

    k.run(&["volume", "create", "--label", "k=v", "fv1"]).ok();
    k.run(&["volume", "create", "fv2"]).ok();
    let vls = |f: &str| lines(&k, &["volume", "ls", "-q", "--filter", f]);
    assert_eq!(vls("driver=local"), ["fv1", "fv2"]);
    assert!(vls("driver=nfs").is_empty());
    assert_eq!(vls("label=k"), ["fv1"]);
    assert_eq!(vls("name=2"), ["fv2"]);
    assert_eq!(vls("dangling=true"), ["fv1", "fv2"]);
    assert!(vls("dangling=false").is_empty());
}
