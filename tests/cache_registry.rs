//! `kiln build --cache-to/--cache-from type=registry` against a real
//! docker-registry, and `type=local` (an OCI layout directory): separate
//! stores stand for separate CI machines.

mod common;

use std::path::Path;

use common::{root_store, Kiln, Run};
use test_support::registry::Registry;

const DOCKERFILE: &str = r#"FROM busybox AS deps
COPY dep.txt /dep.txt
RUN cat /dep.txt > /deps.out && echo built >> /deps.out

FROM busybox AS tool
ENV T=1
RUN echo tool > /tool.out

FROM busybox
WORKDIR /app
COPY app.txt ./
COPY --from=deps /deps.out ./
RUN echo final > /app/final.out
COPY --from=tool /tool.out ./
CMD ["cat", "/app/app.txt"]
"#;

/// Steps after FROM: deps 2, tool 2, final 6.
const STEPS: usize = 10;
const FINAL_STEPS: usize = 6;

fn context(dir: &Path, dep: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("dep.txt"), dep).unwrap();
    std::fs::write(dir.join("app.txt"), "app\n").unwrap();
}

fn build(k: &Kiln, ctx: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["build", "--progress", "plain", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().unwrap());
    k.run(&args).ok()
}

fn hits(r: &Run) -> usize {
    r.stderr.matches("--> Using cache").count()
}

/// A second machine with the same base image: busybox carried over by
/// save/load, so its image ID (the first parent key) is the same.
fn second_machine(a: &Kiln) -> Kiln {
    let b = Kiln::new();
    let tar = a.dir.path().join(format!("bb-{}.tar", rand_suffix()));
    a.run(&["save", "-o", tar.to_str().unwrap(), "busybox"])
        .ok();
    b.run(&["load", "-i", tar.to_str().unwrap()]).ok();
    b
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Layer blobs fetched from the registry's cache repository.
fn blob_gets(reg: &Registry) -> usize {
    reg.count(&["\"GET /v2/ci/cache/blobs/sha256:"])
}

fn uploads(reg: &Registry) -> usize {
    reg.count(&["\"POST /v2/", "/blobs/uploads/"])
}

fn get_json(reg: &Registry, path: &str, accept: &str) -> serde_json::Value {
    let resp = reqwest::blocking::Client::new()
        .get(format!("http://{}{path}", reg.host()))
        .header("Accept", accept)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
    serde_json::from_slice(&resp.bytes().unwrap()).unwrap()
}

/// The cache manifest at `tag` and the digests of its layers.
fn cache_manifest(reg: &Registry, tag: &str) -> (serde_json::Value, Vec<String>) {
    let m = get_json(
        reg,
        &format!("/v2/ci/cache/manifests/{tag}"),
        "application/vnd.oci.image.manifest.v1+json",
    );
    let layers = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    (m, layers)
}

fn blob_exists(reg: &Registry, digest: &str) -> bool {
    reqwest::blocking::Client::new()
        .head(format!("http://{}/v2/ci/cache/blobs/{digest}", reg.host()))
        .send()
        .unwrap()
        .status()
        .is_success()
}

/// Machine A builds with `mode=max`; machine B, an empty store with the
/// same base, gets every step from the registry (nothing runs, same image
/// ID); machine C, with one file changed, reruns only what depends on it,
/// fetches only the layers its steps read, and exports only new layers.
#[test]
fn machines_share_steps_through_a_registry() {
    let Some(a) = root_store() else { return };
    let reg = Registry::plain();
    let cache = format!("{}/ci/cache:max", reg.host());
    let ctx = a.dir.path().join("ctx");
    context(&ctx, "dep\n");
    let to = format!("type=registry,ref={cache},mode=max");
    let built = build(&a, &ctx, &["--cache-to", &to]);
    let id_a = built.stdout.trim().to_string();
    assert!(
        built.stderr.contains("exported cache to"),
        "{}",
        built.stderr
    );
    let (m, layers) = cache_manifest(&reg, "max");
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );
    // Every layer-making step of every stage: deps 2, tool 1, final 5.
    assert_eq!(layers.len(), 8, "{m}");

    let b = second_machine(&a);
    let ctx_b = b.dir.path().join("ctx");
    context(&ctx_b, "dep\n");
    let before = blob_gets(&reg);
    let r = build(
        &b,
        &ctx_b,
        &["--cache-from", &format!("type=registry,ref={cache}")],
    );
    assert_eq!(r.stdout.trim(), id_a, "{}", r.stderr);
    assert_eq!(hits(&r), STEPS, "{}", r.stderr);
    assert!(!r.stderr.contains("Cache miss"), "{}", r.stderr);
    // The config, then the final image's layers only: COPY --from finds
    // its step through the source stage's key, without the stage's files.
    assert_eq!(blob_gets(&reg) - before, 1 + 5, "{}", reg.log());
    b.run(&["run", "--rm", "--network", "none", &id_a]).ok();
    // What was fetched is B's own now: again, only the config comes.
    let before = blob_gets(&reg);
    let again = build(&b, &ctx_b, &["--cache-from", &cache]);
    assert_eq!(hits(&again), STEPS, "{}", again.stderr);
    assert_eq!(blob_gets(&reg) - before, 1, "{}", reg.log());

    // Machine C, dep.txt changed.
    let c = second_machine(&a);
    let ctx_c = c.dir.path().join("ctx");
    context(&ctx_c, "dep 2\n");
    let (gets, posts) = (blob_gets(&reg), uploads(&reg));
    let r = build(&c, &ctx_c, &["--cache-from", &cache, "--cache-to", &to]);
    assert_ne!(r.stdout.trim(), id_a);
    // Hits: tool's ENV and RUN, final's WORKDIR and COPY app.txt.
    assert_eq!(hits(&r), 4, "{}", r.stderr);
    // Read: WORKDIR (below COPY app.txt), COPY app.txt (below COPY
    // --from=deps, a miss) and tool's RUN layer (COPY --from=tool).
    assert_eq!(blob_gets(&reg) - gets, 1 + 3, "{}", r.stderr);
    let (_, new_layers) = cache_manifest(&reg, "max");
    let fresh = new_layers.iter().filter(|l| !layers.contains(l)).count();
    assert!(
        r.stderr
            .contains(&format!("{} layers ({fresh} uploaded)", new_layers.len())),
        "{}",
        r.stderr
    );
    // The new layers and the config, nothing else.
    assert_eq!(uploads(&reg) - posts, fresh + 1, "{}", reg.log());
}

/// `mode=min` exports only the final image's steps: on another machine
/// the stages' own steps run again, the final stage's all hit.
#[test]
fn min_mode_exports_only_the_final_image_steps() {
    let Some(a) = root_store() else { return };
    let reg = Registry::plain();
    let cache = format!("{}/ci/cache:min", reg.host());
    let ctx = a.dir.path().join("ctx");
    context(&ctx, "dep\n");
    let built = build(
        &a,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={cache}")],
    );
    let (_, layers) = cache_manifest(&reg, "min");
    assert_eq!(layers.len(), 5);
    let b = second_machine(&a);
    let ctx_b = b.dir.path().join("ctx");
    context(&ctx_b, "dep\n");
    let r = build(&b, &ctx_b, &["--cache-from", &cache]);
    assert_eq!(r.stdout.trim(), built.stdout.trim(), "{}", r.stderr);
    // The stage steps (deps 2, tool 2) miss; the final stage's all hit.
    assert_eq!(hits(&r), FINAL_STEPS, "{}", r.stderr);
    assert_eq!(r.stderr.matches("Cache miss").count(), 2, "{}", r.stderr);
}

/// Two builds exporting to one ref at once: the tag names a valid cache
/// manifest and every blob it lists exists.
#[test]
fn concurrent_exporters_leave_a_complete_manifest() {
    let Some(a) = root_store() else { return };
    let reg = Registry::plain();
    let b = second_machine(&a);
    let cache = format!("{}/ci/cache:shared", reg.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let (ctx_a, ctx_b) = (a.dir.path().join("ctx"), b.dir.path().join("ctx"));
    context(&ctx_a, "from a\n");
    context(&ctx_b, "from b\n");
    std::thread::scope(|s| {
        let ta = s.spawn(|| build(&a, &ctx_a, &["--cache-to", &to]));
        let tb = s.spawn(|| build(&b, &ctx_b, &["--cache-to", &to]));
        ta.join().unwrap();
        tb.join().unwrap();
    });
    let (m, layers) = cache_manifest(&reg, "shared");
    assert_eq!(layers.len(), 8, "{m}");
    let config = m["config"]["digest"].as_str().unwrap();
    for d in layers.iter().map(String::as_str).chain([config]) {
        assert!(blob_exists(&reg, d), "{d} missing: {m}");
    }
    // And it is usable: a machine building what the winner built hits
    // every step.
    let full = ["from a\n", "from b\n"].iter().any(|dep| {
        let c = second_machine(&a);
        let ctx_c = c.dir.path().join("ctx");
        context(&ctx_c, dep);
        hits(&build(&c, &ctx_c, &["--cache-from", &cache])) == STEPS
    });
    assert!(full, "neither build's steps are in the cache");
}

/// A cache ref that is missing, or names an ordinary image, is skipped
/// with a warning; the build succeeds.
#[test]
fn missing_or_foreign_cache_is_ignored_with_a_warning() {
    let Some(a) = root_store() else { return };
    let reg = Registry::plain();
    let image = format!("{}/ci/cache:image", reg.host());
    a.run(&["push", "--tls-verify=false", "busybox", &image])
        .ok();
    let ctx = a.dir.path().join("ctx");
    context(&ctx, "dep\n");
    let missing = format!("{}/ci/cache:nothing", reg.host());
    let r = build(
        &a,
        &ctx,
        &["--cache-from", &image, "--cache-from", &missing],
    );
    assert!(
        r.stderr.contains(&format!("--cache-from {image}: ignored"))
            && r.stderr.contains("is not a kiln cache"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("--cache-from {missing}: ignored")),
        "{}",
        r.stderr
    );
    // A cache whose repository lost a layer: skipped, nothing fails.
    let cache = format!("{}/ci/cache:lossy", reg.host());
    build(
        &a,
        &ctx,
        &["--cache-to", &format!("type=registry,ref={cache}")],
    );
    let (_, layers) = cache_manifest(&reg, "lossy");
    let link = reg
        .path()
        .join("storage/docker/registry/v2/repositories/ci/cache/_layers/sha256")
        .join(layers[0].strip_prefix("sha256:").unwrap());
    std::fs::remove_dir_all(&link).unwrap();
    let b = second_machine(&a);
    let ctx_b = b.dir.path().join("ctx");
    context(&ctx_b, "dep\n");
    let r = build(&b, &ctx_b, &["--cache-from", &cache]);
    assert!(r.stderr.contains("is missing"), "{}", r.stderr);
    assert_eq!(hits(&r), 0, "{}", r.stderr);

    // Bad specs are refused before anything is built.
    let ctx = ctx.to_str().unwrap();
    let r = a
        .run(&["build", "--cache-from", "type=inline", ctx])
        .code(125);
    assert!(
        r.stderr.contains("an inline cache is read from its image"),
        "{}",
        r.stderr
    );
    let r = a
        .run(&["build", "--cache-from", "type=local", ctx])
        .code(125);
    assert!(
        r.stderr.contains("type=local needs src=DIR"),
        "{}",
        r.stderr
    );
}

/// `type=local`: the cache as an OCI layout directory (kept by CI as
/// files); another machine hits every step from it. A damaged copy is
/// skipped with a warning.
#[test]
fn local_directory_cache_is_shared_and_damage_is_ignored() {
    let Some(a) = root_store() else { return };
    let ctx = a.dir.path().join("ctx");
    context(&ctx, "dep\n");
    let dir = a.dir.path().join("cache-dir");
    let to = format!(
        "type=local,dest={},mode=max,tag=ci,compression=zstd",
        dir.display()
    );
    let built = build(&a, &ctx, &["--cache-to", &to]);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let desc = &index["manifests"][0];
    assert_eq!(
        desc["annotations"]["org.opencontainers.image.ref.name"],
        "ci"
    );
    let hex = desc["digest"]
        .as_str()
        .unwrap()
        .strip_prefix("sha256:")
        .unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap())
            .unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 8);
    assert!(
        layers
            .iter()
            .all(|l| l["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"),
        "{manifest}"
    );

    let b = second_machine(&a);
    let ctx_b = b.dir.path().join("ctx");
    context(&ctx_b, "dep\n");
    let from = format!("type=local,src={},tag=ci", dir.display());
    let r = build(&b, &ctx_b, &["--cache-from", &from]);
    assert_eq!(r.stdout.trim(), built.stdout.trim(), "{}", r.stderr);
    assert_eq!(hits(&r), STEPS, "{}", r.stderr);

    // A layer blob missing: ignored, the build runs every step.
    let layer = layers[0]["digest"].as_str().unwrap();
    let layer = dir
        .join("blobs/sha256")
        .join(layer.strip_prefix("sha256:").unwrap());
    let kept = std::fs::read(&layer).unwrap();
    std::fs::remove_file(&layer).unwrap();
    let m = second_machine(&a);
    let ctx_m = m.dir.path().join("ctx");
    context(&ctx_m, "dep\n");
    let r = build(&m, &ctx_m, &["--cache-from", &from]);
    assert!(r.stderr.contains("is missing"), "{}", r.stderr);
    assert_eq!(hits(&r), 0, "{}", r.stderr);
    std::fs::write(&layer, kept).unwrap();

    // The config blob damaged: ignored, the build runs every step.
    let config = manifest["config"]["digest"].as_str().unwrap();
    let config = dir
        .join("blobs/sha256")
        .join(config.strip_prefix("sha256:").unwrap());
    std::fs::write(&config, b"{").unwrap();
    let c = second_machine(&a);
    let ctx_c = c.dir.path().join("ctx");
    context(&ctx_c, "dep\n");
    let r = build(&c, &ctx_c, &["--cache-from", &from]);
    assert!(r.stderr.contains("ignored"), "{}", r.stderr);
    assert_eq!(hits(&r), 0, "{}", r.stderr);
}

/// `type=inline`: the final image's steps ride in its config; pushed, the
/// image is the cache: another machine's final stage hits every step (the
/// stages' own steps, not in the image, run again).
#[test]
fn inline_cache_travels_with_the_pushed_image() {
    let Some(a) = root_store() else { return };
    let reg = Registry::plain();
    let image = format!("{}/ci/app:1", reg.host());
    let ctx = a.dir.path().join("ctx");
    context(&ctx, "dep\n");
    let built = build(
        &a,
        &ctx,
        &["--cache-to", "type=inline", "-t", &image, "--push"],
    );
    let b = second_machine(&a);
    let ctx_b = b.dir.path().join("ctx");
    context(&ctx_b, "dep\n");
    let r = build(
        &b,
        &ctx_b,
        &["--cache-from", &image, "--cache-to", "type=inline"],
    );
    assert_eq!(r.stdout.trim(), built.stdout.trim(), "{}", r.stderr);
    assert_eq!(hits(&r), FINAL_STEPS, "{}", r.stderr);
    // Without the inline cache the config differs, so does the image ID.
    let plain = build(&b, &ctx_b, &[]);
    assert_ne!(plain.stdout.trim(), built.stdout.trim());
}
