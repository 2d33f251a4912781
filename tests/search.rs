//! `kiln search` against a local docker-registry holding 150 repositories
//! (more than a catalog page, so paging through `Link` is exercised), and
//! `--list-tags`. Docker Hub's search is unit-tested on a saved response in
//! registry-client (no network here).

mod common;

use common::Kiln;
use test_support::registry::Registry;

/// The registry with one tiny image pushed once and then given 150 names
/// (`team/app000`, `lib001`, `team/app002`, …) by cross-repository blob
/// mounts and a manifest PUT each: no blob is uploaded twice.
fn registry_with_150_repos(k: &Kiln) -> Registry {
    let reg = Registry::plain();
    let host = reg.host();
    k.import_busybox("bb");
    let first = format!("{host}/seed:latest");
    k.run(&["push", "--tls-verify=false", "bb", &first]).ok();
    let http = reqwest::blocking::Client::new();
    let base = format!("http://{host}/v2");
    let manifest = http
        .get(format!("{base}/seed/manifests/latest"))
        .header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap();
    let media_type = manifest.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let body = manifest.bytes().unwrap();
    let m: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut blobs = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    for l in m["layers"].as_array().unwrap() {
        blobs.push(l["digest"].as_str().unwrap().to_string());
    }
    // Four at a time: the registry answers each request in a few ms, and
    // 450 of them in a row made up most of this test's time.
    let give_name = |i: usize| {
        let name = repo_name(i);
        for d in &blobs {
            let r = http
                .post(format!("{base}/{name}/blobs/uploads/?mount={d}&from=seed"))
                .send()
                .unwrap();
            assert_eq!(r.status().as_u16(), 201, "mount {d} into {name}");
        }
        let r = http
            .put(format!("{base}/{name}/manifests/latest"))
            .header("Content-Type", &media_type)
            .body(body.clone())
            .send()
            .unwrap();
        assert!(
            r.status().is_success(),
            "manifest of {name}: {}",
            r.status()
        );
    };
    std::thread::scope(|s| {
        for w in 0..4 {
            let give_name = &give_name;
            s.spawn(move || (w..150).step_by(4).for_each(give_name));
        }
    });
    // A second tag on one of them.
    let r = http
        .put(format!("{base}/lib001/manifests/v2"))
        .header("Content-Type", &media_type)
        .body(body)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    reg
}

fn repo_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("team/app{i:03}")
    } else {
        format!("lib{i:03}")
    }
}

#[test]
fn search_pages_through_the_catalog() {
    let k = Kiln::new();
    let reg = registry_with_150_repos(&k);
    let host = reg.host();
    let search = |args: &[&str]| {
        let mut all = vec!["search", "--tls-verify=false"];
        all.extend_from_slice(args);
        k.run(&all).ok().stdout
    };
    let names = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["--format", "{{.Name}}"];
        a.extend_from_slice(args);
        search(&a).lines().map(str::to_string).collect()
    };
    // 75 of the 151 names contain "app": past the first page of 100.
    let apps = names(&["--limit", "100", &format!("{host}/app")]);
    assert_eq!(apps.len(), 75, "{apps:?}");
    assert_eq!(apps[0], format!("{host}/team/app000"));
    assert_eq!(apps[74], format!("{host}/team/app148"));
    assert!(
        reg.count(&["/v2/_catalog"]) >= 2,
        "the catalog was read in pages:\n{}",
        reg.log()
    );
    // The default limit is docker's 25; paging stops once it is reached.
    assert_eq!(names(&[&format!("{host}/app")]).len(), 25);
    assert_eq!(names(&["--limit", "7", &format!("{host}/")]).len(), 7);
    assert_eq!(
        names(&[&format!("{host}/lib14")]),
        ["lib141", "lib143", "lib145", "lib147", "lib149"].map(|n| format!("{host}/{n}"))
    );
    assert!(names(&[&format!("{host}/nothing-like-this")]).is_empty());
    assert!(names(&["--filter", "is-official=true", &format!("{host}/app")]).is_empty());
    assert_eq!(
        names(&[
            "--filter",
            "stars=0",
            "--limit",
            "3",
            &format!("{host}/app")
        ])
        .len(),
        3
    );

    let table = search(&[&format!("{host}/lib149")]);
    // NAME is as wide as the name and 3 spaces; DESCRIPTION (empty) and
    // the rest have tabwriter's minimum of 10.
    let w = host.len() + "/lib149".len() + 3;
    assert_eq!(
        table.lines().next().unwrap(),
        format!("{:<w$}DESCRIPTION   STARS     OFFICIAL   AUTOMATED", "NAME")
    );
    assert!(table.contains(&format!("{host}/lib149   ")), "{table}");

    let tags = search(&["--list-tags", &format!("{host}/lib001")]);
    assert_eq!(
        tags,
        format!(
            "{:<w$}TAG\n{host}/lib001   latest\n{host}/lib001   v2\n",
            "NAME"
        )
    );
    let tags = search(&[
        "--list-tags",
        "--limit",
        "1",
        "--format",
        "{{.Tag}}",
        &format!("{host}/lib001"),
    ]);
    assert_eq!(tags, "latest\n");

    for bad in [
        &["--filter", "color=red", "x/y"][..],
        &["--limit", "0", "x"],
        &["--format", "{{.Name", "x"],
    ] {
        let mut a = vec!["search"];
        a.extend_from_slice(bad);
        let r = k.run(&a).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {}", r.stderr);
    }
    let r = k
        .run(&[
            "search",
            "--tls-verify=false",
            "--list-tags",
            &format!("{host}/no-such-repo"),
        ])
        .code(125);
    assert!(r.stderr.contains("no-such-repo"), "{}", r.stderr);
}
