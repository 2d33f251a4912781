//! `kiln commit` and `kiln export` end to end (root only; skipped otherwise).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use common::{is_root, Kiln};

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout
}

const CHANGES: &str = "echo new > /newfile; echo changed >> /etc/passwd; rm /bin/vi; \
    mkdir -p /d/e; echo x > /d/e/f; rm -rf /home; mkdir /var/tmp/keep";

const LISTING: &str = "find / -xdev -type f | sort | xargs sha256sum; \
    find / -xdev | sort";

#[test]
fn commit_shows_all_kinds_of_change() {
    if !is_root() {
        eprintln!("skipping: containers need root");
        return;
    }
    let k = Kiln::new();
    let base = k.import_busybox("busybox");
    k.run(&["run", "--name", "ch", "busybox", "sh", "-c", CHANGES])
        .ok();
    let id = out(
        &k,
        &[
            "commit",
            "-m",
            "my message",
            "-a",
            "Jane <jane@example.com>",
            "-c",
            "ENV FOO=bar",
            "-c",
            "CMD [\"cat\", \"/newfile\"]",
            "ch",
            "committed:v1",
        ],
    );
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id != base, "{id}");
    // Added, changed, deleted (file and directory), new directory; --change applied.
    let r = k.run(&[
        "run",
        "--rm",
        "committed:v1",
        "sh",
        "-c",
        "cat /newfile; tail -n 1 /etc/passwd; cat /d/e/f; ls -d /var/tmp/keep; echo $FOO; \
         ls /bin/vi || echo vi-gone; ls -d /home || echo home-gone",
    ]);
    assert_eq!(
        r.stdout, "new\nchanged\nx\n/var/tmp/keep\nbar\nvi-gone\nhome-gone\n",
        "{}",
        r.stderr
    );
    assert_eq!(out(&k, &["run", "--rm", "committed:v1"]), "new\n");
    // History: the message, the container's command; two layers.
    let hist = out(&k, &["history", "--no-trunc", "committed:v1"]);
    assert!(hist.contains("my message"), "{hist}");
    assert!(hist.contains("sh -c echo new > /newfile"), "{hist}");
    let inspect: serde_json::Value =
        serde_json::from_str(&out(&k, &["inspect", "committed:v1"])).unwrap();
    let img = &inspect[0];
    assert_eq!(img["Author"], "Jane <jane@example.com>", "{img}");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        2,
        "{img}"
    );
    // No mount-point stubs (etc/hosts, ...) leak into the new layer.
    let listing = out(
        &k,
        &[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "wc -c < /etc/hostname",
        ],
    );
    assert_ne!(listing.trim(), "0");

    // The committed image is in use by nothing; the container keeps its image.
    k.run(&["rmi", "busybox"]).code(125);
}

#[test]
fn commit_pauses_a_running_container() {
    if !is_root() {
        eprintln!("skipping: containers need root");
        return;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    k.run(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo hi > /state; exec sleep 100",
    ])
    .ok();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while k.run(&["ps", "-q"]).stdout.is_empty() {
        assert!(std::time::Instant::now() < end);
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    k.run(&["commit", "live", "snap"]).ok();
    assert_eq!(out(&k, &["run", "--rm", "snap", "cat", "/state"]), "hi\n");
    // Still running (continued after the pause).
    let ps = out(&k, &["ps"]);
    assert!(ps.contains("live") && ps.contains("Up"), "{ps}");
    k.run(&["rm", "-f", "live"]).ok();
}

#[test]
fn export_then_import_gives_the_same_files() {
    if !is_root() {
        eprintln!("skipping: containers need root");
        return;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    k.run(&["run", "--name", "ex", "busybox", "sh", "-c", CHANGES])
        .ok();
    // Standard output (not a terminal here) and -o FILE give the same tar.
    let file = k.dir.path().join("ex.tar");
    k.run(&["export", "-o", file.to_str().unwrap(), "ex"]).ok();
    let mut child = k
        .cmd()
        .args(["export", "ex"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut streamed).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(std::fs::read(&file).unwrap(), streamed);
    // Deleted files are gone, additions present, no whiteout entries.
    let mut ar = tar::Archive::new(std::fs::File::open(&file).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "newfile"), "{names:?}");
    assert!(!names.iter().any(|n| n == "bin/vi" || n.starts_with("home")));
    assert!(!names.iter().any(|n| n.contains(".wh.")));

    k.run(&["import", file.to_str().unwrap(), "exported"]).ok();
    k.run(&["commit", "ex", "committed"]).ok();
    // Without a network: on the default bridge /etc/hosts (in the listing)
    // holds the container's address, which differs when other tests'
    // containers hold the first one.
    let a = out(
        &k,
        &[
            "run",
            "--rm",
            "--hostname",
            "h",
            "--network",
            "none",
            "exported",
            "sh",
            "-c",
            LISTING,
        ],
    );
    let b = out(
        &k,
        &[
            "run",
            "--rm",
            "--hostname",
            "h",
            "--network",
            "none",
            "committed",
            "sh",
            "-c",
            LISTING,
        ],
    );
    assert!(a.contains("/newfile"), "{a}");
    assert_eq!(a, b);
    let lines = BufReader::new(a.as_bytes()).lines().count();
    assert!(lines > 100, "{lines}");
    k.run(&["export", "no-such-container"]).code(125);
}

/// A mount point that an image layer deleted (a whiteout over a lower
/// layer's directory) is a stub in the container's init layer, not a
/// directory the runner makes in its upper one: the committed image does
/// not get it back. (`kiln run` once looked for mount points in the layers
/// without honouring whiteouts, so `/data` came back here.)
#[test]
fn commit_does_not_revive_a_deleted_mount_point() {
    if !is_root() {
        eprintln!("skipping: containers need root");
        return;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    k.run(&["run", "--name", "ca", "busybox", "mkdir", "/data"])
        .ok();
    k.run(&["commit", "ca", "with-data"]).ok();
    k.run(&["run", "--name", "cb", "with-data", "rmdir", "/data"])
        .ok();
    k.run(&["commit", "cb", "without-data"]).ok();
    let host = k.dir.path().join("vol");
    let vol = format!("{}:/data", host.display());
    k.run(&["run", "--name", "cc", "-v", &vol, "without-data", "true"])
        .ok();
    k.run(&["commit", "cc", "after-mount"]).ok();
    let r = k.run(&[
        "run",
        "--rm",
        "after-mount",
        "sh",
        "-c",
        "ls -d /data || echo gone",
    ]);
    assert_eq!(r.stdout, "gone\n", "{}", r.stderr);
}

/// A container on a store on overlayfs runs on a copy of its layers (its
/// overlay cannot be mounted there), and its writes land in that copy:
/// commit, export, diff and cp refuse, where they used to read its empty
/// upper directory (`commit` made an image without the container's
/// changes).
#[test]
fn a_container_on_a_copy_of_its_layers_is_not_committed_without_its_changes() {
    if !is_root() {
        eprintln!("skipping: containers need root");
        return;
    }
    let k = Kiln::new();
    let _overlay = common::OverlayStore::mount(&k);
    k.import_busybox("busybox");
    k.run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "oncopy",
        "busybox",
        "sh",
        "-c",
        "echo hi > /x; sleep 60",
    ])
    .ok();
    common::wait_until(
        "the container wrote /x",
        std::time::Duration::from_secs(20),
        || k.run(&["exec", "oncopy", "cat", "/x"]).stdout == "hi\n",
    );
    for args in [
        &["commit", "oncopy", "lost"][..],
        &["export", "-o", "/dev/null", "oncopy"],
        &["diff", "oncopy"],
        &["cp", "oncopy:/x", "-"],
    ] {
        let r = k.run(args);
        assert_eq!(r.code, 125, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("runs on a copy of its image's layers"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_ne!(k.run(&["image", "inspect", "lost"]).code, 0);
    k.run(&["rm", "-f", "oncopy"]).ok();
}
