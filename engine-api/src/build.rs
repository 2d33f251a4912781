//! `POST /build` (the classic builder's API): the context is a tar in the
//! body, unpacked with the store's safe unpacker (no entry lands outside
//! the context: `..` and links resolve inside it) into a temp directory,
//! then built by the builder crate as `kiln build` builds; the progress
//! goes out as docker's `{"stream": …}` lines and the image ID as
//! `{"aux": {"ID": …}}`. `/build/prune` forgets the build cache.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use builder::{flags, BuildOptions, Event, EventKind, PullPolicy};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

use crate::http::{self, blocking, ApiError, ApiResult, Query, Sink};
use crate::images::{stream_error, JsonProgress};
use crate::state::State;

fn json_map(q: &Query, k: &str) -> ApiResult<BTreeMap<String, Option<String>>> {
    match q.get(k) {
        None => Ok(BTreeMap::new()),
        Some(raw) => serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid {k} {raw:?}: {e}"))),
    }
}

/// The Dockerfile's path inside the context: relative, no `..`.
fn dockerfile_in(dir: &Path, name: &str) -> ApiResult<PathBuf> {
    let rel = Path::new(name);
    let ok = rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !ok || name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "dockerfile {name:?}: want a path inside the build context"
        )));
    }
    Ok(dir.join(rel))
}

/// What the query asks for, checked before the body is read.
struct BuildRequest {
    dockerfile: String,
    opts: BuildOptions,
}

fn options(q: &Query) -> ApiResult<BuildRequest> {
    if q.get("remote").is_some() {
        return Err(ApiError::not_implemented("building from a remote context"));
    }
    if q.get("cachefrom").is_some_and(|c| c != "[]" && c != "null") {
        return Err(ApiError::not_implemented("cachefrom"));
    }
    let bad = |e: builder::BuildError| ApiError::bad_request(e.to_string());
    flags::platform(q.get("platform")).map_err(bad)?;
    let mut opts = BuildOptions {
        quiet: q.flag("q"),
        no_cache: q.flag("nocache"),
        squash: q.flag("squash"),
        target: q.get("target").map(str::to_string),
        pull: match q.get("pull") {
            Some(p) if q.flag("pull") && p != "missing" => PullPolicy::Always,
            _ => PullPolicy::default(),
        },
        capture_output: true,
        ..Default::default()
    };
    for t in q.all("t") {
        if t.is_empty() {
            continue;
        }
        opts.tags.push(
            t.parse()
                .map_err(|e| ApiError::bad_request(format!("invalid tag {t:?}: {e}")))?,
        );
    }
    // A build arg without a value is the client's environment's, which
    // the client resolves; the server's environment never leaks in.
    let args: Vec<String> = json_map(q, "buildargs")?
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    opts.build_args = flags::build_args(&args);
    let labels: Vec<String> = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| format!("{k}={}", v.unwrap_or_default()))
        .collect();
    opts.labels = flags::labels(&labels);
    opts.network = flags::network(q.get("networkmode")).map_err(bad)?;
    opts.source_date_epoch = flags::source_date_epoch(&opts.build_args, None).map_err(bad)?;
    Ok(BuildRequest {
        dockerfile: q.get("dockerfile").unwrap_or("Dockerfile").to_string(),
        opts,
    })
}

/// docker's classic builder lines for the builder's events.
fn render(sink: &Sink, e: Event) {
    let text = match e.kind {
        EventKind::Step {
            number,
            total,
            text,
            ..
        } => format!("Step {number}/{total} : {text}\n"),
        EventKind::CacheHit => " ---> Using cache\n".into(),
        // The failure comes back as the build's error.
        EventKind::CacheMiss { .. }
        | EventKind::StepDone { .. }
        | EventKind::StageDone
        | EventKind::Failed(_) => return,
        EventKind::Output(_, line) => format!("{line}\n"),
        EventKind::Warning(w) => format!("WARNING: {w}\n"),
        EventKind::Info(i) => format!("{i}\n"),
    };
    let _ = sink.json_line(&json!({ "stream": text }));
}

pub async fn build(state: Arc<State>, q: Query, req: Request<Incoming>) -> ApiResult {
    let BuildRequest {
        dockerfile,
        mut opts,
    } = options(&q)?;
    let access = crate::images::build_access(&req)?;
    let input = http::body_reader(req.into_body());
    // The context is unpacked before the response starts: a bad tar is a
    // 400 with the entry named.
    let st = state.clone();
    let ctx = blocking(move || {
        let store = st.store()?;
        let tmp = store.tmp_dir();
        std::fs::create_dir_all(&tmp)
            .map_err(|e| ApiError::internal(format!("{}: {e}", tmp.display())))?;
        let dir = tempfile::Builder::new()
            .prefix("build-context-")
            .tempdir_in(&tmp)
            .map_err(|e| ApiError::internal(format!("{}: {e}", tmp.display())))?;
        let input = image_store::layer::decompressed(std::io::BufReader::new(input))
            .map_err(|e| ApiError::bad_request(format!("the build context: {e}")))?;
        let unpack = image_store::unpack::UnpackOptions {
            whiteouts: image_store::unpack::Whiteouts::Delete,
            same_owner: false,
        };
        image_store::unpack::unpack(input, dir.path(), unpack)
            .map_err(|e| ApiError::bad_request(format!("the build context: {e}")))?;
        Ok(dir)
    })
    .await?;
    let path = dockerfile_in(ctx.path(), &dockerfile)?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ApiError::bad_request(format!(
            "reading the Dockerfile {dockerfile:?} of the context: {e}"
        ))
    })?;
    opts.dockerfile = text;
    opts.dockerfile_name = Path::new(&dockerfile)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    opts.ignore_patterns = builder::dockerignore::for_build(ctx.path(), &path)
        .map_err(|e| ApiError::bad_request(format!("reading .dockerignore: {e}")))?;
    opts.context = Some(ctx.path().to_path_buf());
    let (sink, resp) = http::streamed("application/json");
    // A thread of its own: the builder's views are mounted in a private
    // mount namespace, which this thread (and those it starts) enters.
    std::thread::spawn(move || {
        let _ctx = ctx;
        if let Err(e) = builder::private_mount_namespace() {
            stream_error(&sink, &format!("the build's mount namespace: {e}"));
            return;
        }
        let store = match state.store() {
            Ok(s) => s,
            Err(e) => return stream_error(&sink, &e.message),
        };
        let progress = Arc::new(JsonProgress { sink: sink.clone() });
        let puller = transfer::Puller::new(access, progress);
        let quiet = opts.quiet;
        let out_sink = sink.clone();
        let mut on_event = |e: Event| {
            if !quiet {
                render(&out_sink, e)
            }
        };
        match builder::build(&store, &opts, Some(&puller), &mut on_event) {
            Ok(out) => {
                let id = out.id.to_string();
                let _ = sink.json_line(&json!({ "aux": { "ID": id } }));
                // docker's `-q` prints the stream: the ID alone.
                if quiet {
                    let _ = sink.json_line(&json!({ "stream": format!("{id}\n") }));
                } else {
                    let _ = sink.json_line(
                        &json!({ "stream": format!("Successfully built {}\n", out.id.short()) }),
                    );
                    for t in &opts.tags {
                        let name = crate::images::familiar(&t.normalized().to_string());
                        let _ = sink.json_line(
                            &json!({ "stream": format!("Successfully tagged {name}\n") }),
                        );
                    }
                }
                for t in &opts.tags {
                    state.events.image("tag", &t.normalized().to_string());
                }
            }
            Err(e) => stream_error(&sink, &e.to_string()),
        }
    });
    Ok(resp)
}

/// `POST /build/prune?all=`: the build cache.
pub async fn prune(state: Arc<State>, q: Query) -> ApiResult {
    let all = q.flag("all");
    let v = blocking(move || {
        let store = state.store()?;
        let opts = builder::PruneOptions {
            all,
            ..Default::default()
        };
        let p =
            builder::prune_cache(&store, &opts).map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(json!({ "CachesDeleted": [], "SpaceReclaimed": p.freed }))
    })
    .await?;
    Ok(http::ok_json(&v))
}
