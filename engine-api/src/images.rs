//! Images: list, inspect, pull (`/images/create?fromImage=`), tag,
//! remove, push, save (`/images/get`), load, prune. Pulls and pushes
//! stream docker's JSON progress messages; a client that goes away stops
//! getting them, and the transfer finishes (or fails) as it would have,
//! leaving the store consistent.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use image_store::{Digest, Image, Store};
use serde_json::{json, Value};

use crate::http::{self, blocking, ApiError, ApiResult, Query, Sink};
use crate::state::State;

/// A stored name as docker shows it: Docker Hub's official images without
/// `docker.io/library/`, other Hub images without `docker.io/`.
pub fn familiar(name: &str) -> String {
    name.strip_prefix("docker.io/library/")
        .or_else(|| name.strip_prefix("docker.io/"))
        .unwrap_or(name)
        .to_string()
}

fn unix_time(t: Option<&str>) -> i64 {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or(0, |t| t.timestamp())
}

/// docker's ImageSummary; `containers` is how many use it (-1: not counted).
pub fn summary(img: &Image, containers: i64) -> Value {
    let tags: Vec<String> = img.names.iter().map(|n| familiar(n)).collect();
    let digests: std::collections::BTreeSet<String> = img
        .names
        .iter()
        .map(|n| {
            format!(
                "{}@{}",
                familiar(image_store::images::repo_of(n)),
                img.manifest_digest()
            )
        })
        .collect();
    let labels = img
        .config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    json!({
        "Id": img.id().to_string(),
        "ParentId": "",
        "RepoTags": if tags.is_empty() { vec!["<none>:<none>".to_string()] } else { tags },
        "RepoDigests": digests,
        "Created": unix_time(img.config.created.as_deref()),
        "Size": img.size(),
        "SharedSize": -1,
        "VirtualSize": img.size(),
        "Labels": labels,
        "Containers": containers,
    })
}

/// `filters`: `reference` (a name, with or without tag), `dangling`.
pub async fn list(state: Arc<State>, q: Query) -> ApiResult {
    let filters = q.filters()?;
    let mut refs = Vec::new();
    let mut dangling = None;
    for (k, v) in filters {
        match k.as_str() {
            "reference" => refs.push(v),
            "dangling" => dangling = Some(v == "true" || v == "1"),
            "label" | "before" | "since" => {
                return Err(ApiError::bad_request(format!(
                    "the image filter {k:?} is not supported by kiln"
                )))
            }
            _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        }
    }
    let v = blocking(move || {
        let store = state.store()?;
        let mut images = store.images()?;
        images.sort_by(|a, b| b.config.created.cmp(&a.config.created));
        let out: Vec<Value> = images
            .iter()
            .filter(|i| dangling.is_none_or(|d| d == i.names.is_empty()))
            .filter(|i| {
                refs.is_empty()
                    || refs.iter().any(|r| {
                        i.names
                            .iter()
                            .any(|n| reference_matches(r, n) || reference_matches(r, &familiar(n)))
                    })
            })
            .map(|i| summary(i, -1))
            .collect();
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// docker's `reference` filter: `busybox` matches every tag of the
/// repository, `busybox:1` that tag; `*` globs within a path component.
fn reference_matches(filter: &str, name: &str) -> bool {
    let has_tag = filter
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'));
    let target = if has_tag {
        name
    } else {
        image_store::images::repo_of(name)
    };
    glob(filter.as_bytes(), target.as_bytes())
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && glob(p, &s[1..])),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}

pub async fn inspect(state: Arc<State>, name: String) -> ApiResult {
    let v = blocking(move || {
        let store = state.store()?;
        let img = store.resolve(&name)?;
        let mut v = image_store::inspect::describe(&img);
        // docker's shapes: familiar names, the container config as
        // ContainerConfig too, sizes.
        v["RepoTags"] = json!(img.names.iter().map(|n| familiar(n)).collect::<Vec<_>>());
        if let Some(d) = v["RepoDigests"].as_array_mut() {
            for x in d.iter_mut() {
                if let Some(s) = x.as_str() {
                    *x = json!(familiar(s));
                }
            }
        }
        v["VirtualSize"] = json!(img.size());
        v["ContainerConfig"] = v["Config"].clone();
        v["DockerVersion"] = json!("");
        v["Container"] = json!("");
        v["GraphDriver"] = json!({ "Name": "overlay", "Data": null });
        Ok(v)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `GET /images/{name}/history`: newest first, the top entry with the ID.
pub async fn history(state: Arc<State>, name: String) -> ApiResult {
    let v = blocking(move || {
        let store = state.store()?;
        let img = store.resolve(&name)?;
        let tags: Vec<String> = img.names.iter().map(|n| familiar(n)).collect();
        let mut out: Vec<Value> = image_store::inspect::history(&img)
            .iter()
            .map(|e| {
                json!({
                    "Id": "<missing>",
                    "Created": unix_time(e.history.created.as_deref()),
                    "CreatedBy": e.history.created_by.clone().unwrap_or_default(),
                    "Tags": null,
                    "Size": e.size,
                    "Comment": e.history.comment.clone().unwrap_or_default(),
                })
            })
            .collect();
        out.reverse();
        if let Some(top) = out.first_mut() {
            top["Id"] = json!(img.id().to_string());
            top["Tags"] = json!(tags);
        }
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `repo` and `tag` → `repo:tag` (or `repo@digest`).
/// `POST /images/create?fromSrc=-|URL&repo=&tag=&message=&changes=`: the
/// body (`-`) or the URL's (fetched here, as `kiln import` and docker do)
/// is a rootfs tarball made into an image by `kiln import`'s library call.
/// Answers docker's one progress line with the image ID.
async fn import(state: Arc<State>, src: &str, q: Query, req: Request<Incoming>) -> ApiResult {
    if let Some(p) = q.get("platform") {
        let host = format!("linux/{}", crate::system::go_arch());
        if p != host {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: kiln imports only for this host's platform ({host})"
            )));
        }
    }
    if src != "-" && !builder::import::is_url(src) {
        return Err(ApiError::bad_request(format!(
            "fromSrc {src:?}: want - (the request body) or an http(s) URL"
        )));
    }
    let reference = q
        .get("repo")
        .map(|r| with_tag(r, q.get("tag")))
        .map(|r| {
            r.parse::<image_store::Reference>()
                .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))
        })
        .transpose()?;
    let request = builder::import::ImportRequest {
        source: src.to_string(),
        reference,
        message: q.get("message").map(str::to_string),
        changes: q
            .all("changes")
            .into_iter()
            .filter(|c| !c.is_empty())
            .collect(),
    };
    let body = http::body_reader(req.into_body());
    let id = blocking(move || {
        let store = state.store()?;
        let bad = |e: builder::BuildError| match e {
            builder::BuildError::Store(s) => ApiError::from(s),
            e => ApiError::bad_request(http::chain(&e)),
        };
        let committed = match builder::import::is_url(&request.source) {
            true => {
                let input = builder::import::open_url(&request.source).map_err(bad)?;
                builder::import::import(&store, input, &request)
            }
            false => builder::import::import(&store, body, &request),
        }
        .map_err(bad)?;
        let id = committed.id.to_string();
        let name = request
            .reference
            .as_ref()
            .map_or(id.clone(), |r| r.to_string());
        state.events.image("import", &name);
        Ok(id)
    })
    .await?;
    let mut line = serde_json::to_vec(&json!({ "status": id })).expect("plain data");
    line.push(b'\n');
    let mut r = hyper::Response::new(http::full(line));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn with_tag(repo: &str, tag: Option<&str>) -> String {
    match tag {
        Some(t) if t.starts_with("sha256:") => format!("{repo}@{t}"),
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    }
}

/// Is `host` (a registry's `host[:port]`) on this machine's loopback? The
/// docker daemon reaches those over plain HTTP (`127.0.0.0/8` is an
/// insecure registry by default); kiln's server does the same.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(r) => r.split(']').next().unwrap_or(r),
        None => registry.rsplit_once(':').map_or(registry, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Registry access for a request: the client's `X-Registry-Auth`
/// (base64url JSON with `username`/`password`) and plain HTTP for
/// loopback registries. Credentials are never logged.
/// A base64 (URL-safe or standard, padded or not) JSON header value.
fn decode_header(h: &str, name: &str) -> ApiResult<Value> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h.trim())
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h.trim()))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h.trim()))
        .map_err(|_| ApiError::bad_request(format!("{name}: not base64")))?;
    serde_json::from_slice(&raw).map_err(|_| ApiError::bad_request(format!("{name}: not JSON")))
}

/// `USER:PASSWORD` of one docker AuthConfig (`username`/`password`, or
/// `auth`, their base64); None when it has neither.
fn auth_config_creds(v: &Value) -> Option<String> {
    use base64::Engine as _;
    let user = v["username"].as_str().unwrap_or("");
    let pass = v["password"].as_str().unwrap_or("");
    if !user.is_empty() {
        return Some(format!("{user}:{pass}"));
    }
    let auth = v["auth"].as_str().filter(|a| !a.is_empty())?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .ok()?;
    String::from_utf8(raw).ok().filter(|c| c.contains(':'))
}

fn access(req_auth: Option<&str>, registry: &str) -> ApiResult<transfer::RegistryAccess> {
    let mut a = transfer::RegistryAccess {
        tls_verify: !is_loopback_registry(registry),
        ..Default::default()
    };
    if let Some(h) = req_auth.filter(|h| !h.is_empty()) {
        let v = decode_header(h, "X-Registry-Auth")?;
        if !v.is_object() {
            return Err(ApiError::bad_request("X-Registry-Auth: not a JSON object"));
        }
        a.creds = auth_config_creds(&v);
    }
    Ok(a)
}

/// A build's registry access from `X-Registry-Config` (base64 JSON of
/// registry → AuthConfig, every login the client has): each registry's
/// credentials for its base image pulls; loopback registries among them
/// without TLS checks, as the docker daemon reaches them.
pub fn build_access(req: &Request<Incoming>) -> ApiResult<transfer::RegistryAccess> {
    let mut a = transfer::RegistryAccess {
        tls_verify: true,
        ..Default::default()
    };
    let Some(h) = req
        .headers()
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
        .filter(|h| !h.trim().is_empty())
    else {
        return Ok(a);
    };
    let v = decode_header(h, "X-Registry-Config")?;
    let map = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("X-Registry-Config: not a JSON object"))?;
    for (key, conf) in map {
        let Ok(registry) = transfer::credentials::registry_host(Some(key)) else {
            continue;
        };
        if let Some(c) = auth_config_creds(conf) {
            if is_loopback_registry(&registry) {
                a.insecure_registries.push(registry.clone());
            }
            a.registry_creds.insert(registry, c);
        }
    }
    Ok(a)
}

fn registry_auth(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// docker's progress messages on a streamed body.
pub struct JsonProgress {
    pub sink: Sink,
}

struct JsonBlob {
    sink: Sink,
    id: String,
    verb: &'static str,
}

impl transfer::Progress for JsonProgress {
    fn line(&self, msg: &str) {
        let _ = self.sink.json_line(&json!({ "status": msg }));
    }
    fn warn(&self, msg: &str) {
        let _ = self
            .sink
            .json_line(&json!({ "status": format!("WARNING: {msg}") }));
    }
    fn blob(
        &self,
        verb: &'static str,
        digest: &Digest,
        size: u64,
    ) -> Arc<dyn transfer::BlobProgress> {
        let id = digest.short().to_string();
        let _ = self.sink.json_line(&json!({
            "status": transfer::progress::docker_start(verb),
            "progressDetail": { "current": 0, "total": size },
            "id": id,
        }));
        Arc::new(JsonBlob {
            sink: self.sink.clone(),
            id,
            verb,
        })
    }
}

impl transfer::BlobProgress for JsonBlob {
    fn finish(&self, msg: &str) {
        // docker's words, as its own daemon streams them.
        let _ = self.sink.json_line(&json!({
            "status": transfer::progress::docker_done(self.verb, msg),
            "progressDetail": {},
            "id": self.id,
        }));
    }
    fn fail(&self) {
        let _ = self.sink.json_line(&json!({
            "status": format!("{} failed", self.verb),
            "progressDetail": {},
            "id": self.id,
        }));
    }
}

/// An error inside a progress stream (the status line was sent already).
pub fn stream_error(sink: &Sink, message: &str) {
    let _ = sink.json_line(&json!({
        "errorDetail": { "message": message },
        "error": message,
    }));
}

/// `POST /images/create?fromImage=NAME&tag=TAG`: a pull from a registry.
/// With `fromSrc`, an import instead ([`import`]).
pub async fn create(state: Arc<State>, q: Query, req: Request<Incoming>) -> ApiResult {
    if let Some(src) = q.get("fromSrc") {
        let src = src.to_string();
        return import(state, &src, q, req).await;
    }
    let from = q
        .get("fromImage")
        .ok_or_else(|| ApiError::bad_request("fromImage is required"))?;
    if let Some(p) = q.get("platform") {
        let host = format!("linux/{}", crate::system::go_arch());
        if p != host {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: kiln pulls only this host's platform ({host})"
            )));
        }
    }
    let name = with_tag(from, q.get("tag"));
    let reference = name
        .parse::<registry_client::Reference>()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?
        .remote();
    let access = access(registry_auth(&req).as_deref(), reference.registry())?;
    let (sink, resp) = http::streamed("application/json");
    tokio::task::spawn_blocking(move || {
        let progress = JsonProgress { sink: sink.clone() };
        let res = (|| -> ApiResult<transfer::Pulled> {
            let store = state.store()?;
            let client = access.client()?;
            transfer::Progress::line(&progress, &format!("Pulling from {reference}"));
            Ok(transfer::registry::pull(
                &store,
                &client,
                &reference,
                &registry_client::Platform::host(),
                &progress,
            )?)
        })();
        match res {
            Ok(p) => {
                let _ = sink.json_line(&json!({ "status": format!("Digest: {}", p.manifest) }));
                let _ = sink.json_line(&json!({
                    "status": format!("Status: Downloaded newer image for {}", familiar(&p.name))
                }));
                state.events.image("pull", &familiar(&p.name));
            }
            Err(e) => stream_error(&sink, &e.message),
        }
    });
    Ok(resp)
}

/// `POST /images/{name}/tag?repo=R&tag=T`.
pub async fn tag(state: Arc<State>, name: String, q: Query) -> ApiResult {
    let repo = q
        .get("repo")
        .ok_or_else(|| ApiError::bad_request("repo is required"))?;
    let target = with_tag(repo, Some(q.get("tag").unwrap_or("latest")));
    let t = target.clone();
    blocking(move || {
        let store = state.store()?;
        store.tag(&name, &t)?;
        state.events.image("tag", &t);
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::CREATED))
}

fn in_use(store: &Store) -> impl Fn(&Digest) -> Option<String> + '_ {
    |id| containers::Containers::new(store).container_using(id)
}

/// `DELETE /images/{name}?force=`: docker's untag/delete report.
pub async fn remove(state: Arc<State>, name: String, q: Query) -> ApiResult {
    let force = q.flag("force");
    let v = blocking(move || {
        let store = state.store()?;
        let report = store.remove(&name, force, &in_use(&store))?;
        let mut out: Vec<Value> = report
            .untagged
            .iter()
            .map(|u| json!({ "Untagged": familiar(u) }))
            .collect();
        out.extend(
            report
                .deleted
                .iter()
                .map(|d| json!({ "Deleted": d.to_string() })),
        );
        state.events.image("delete", &name);
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `POST /images/prune?filters={"dangling":["false"]}` (false: all unused).
pub async fn prune(state: Arc<State>, q: Query) -> ApiResult {
    let mut all = false;
    for (k, v) in q.filters()? {
        match k.as_str() {
            "dangling" => all = v == "false" || v == "0",
            _ => {
                return Err(ApiError::bad_request(format!(
                    "the prune filter {k:?} is not supported by kiln"
                )))
            }
        }
    }
    let v = blocking(move || {
        let store = state.store()?;
        let (deleted, freed) = store.prune(all, &|img| in_use(&store)(img.id()).is_some())?;
        let deleted: Vec<Value> = deleted
            .iter()
            .map(|d| json!({ "Deleted": d.to_string() }))
            .collect();
        Ok(json!({ "ImagesDeleted": deleted, "SpaceReclaimed": freed }))
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `POST /images/{name}/push?tag=T` with the client's `X-Registry-Auth`.
pub async fn push(state: Arc<State>, name: String, q: Query, req: Request<Incoming>) -> ApiResult {
    let name = with_tag(&name, q.get("tag"));
    let reference = name
        .parse::<registry_client::Reference>()
        .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?
        .remote();
    let access = access(registry_auth(&req).as_deref(), reference.registry())?;
    // A missing image is a 404 before the stream starts.
    let st = state.clone();
    let n = name.clone();
    blocking(move || Ok(st.store()?.resolve(&n).map(|_| ())?)).await?;
    let (sink, resp) = http::streamed("application/json");
    tokio::task::spawn_blocking(move || {
        let progress = JsonProgress { sink: sink.clone() };
        let res = (|| -> ApiResult<Digest> {
            let store = state.store()?;
            let _reader = store.reader_lock()?;
            let img = store.resolve_locked(&name)?;
            let client = access.client()?;
            transfer::Progress::line(
                &progress,
                &format!("The push refers to repository [{}]", reference.repository()),
            );
            Ok(transfer::registry::push(
                &store,
                &client,
                &img,
                &reference,
                None,
                image_store::compressed::LayerFormat::Gzip,
                &progress,
            )?)
        })();
        match res {
            Ok(d) => {
                let tag = reference.tag().unwrap_or("latest").to_string();
                let _ = sink.json_line(&json!({
                    "status": format!("{tag}: digest: {d}"),
                }));
                let _ = sink.json_line(&json!({
                    "progressDetail": {},
                    "aux": { "Tag": tag, "Digest": d.to_string() },
                }));
                state.events.image("push", &name);
            }
            Err(e) => stream_error(&sink, &e.message),
        }
    });
    Ok(resp)
}

/// `GET /images/get?names=…` or `/images/{name}/get`: a docker-archive
/// tar, streamed.
pub async fn save(state: Arc<State>, q: Query, name: Option<String>) -> ApiResult {
    let names: Vec<String> = match name {
        Some(n) => vec![n],
        None => q.all("names"),
    };
    if names.is_empty() {
        return Err(ApiError::bad_request("names is required"));
    }
    // Resolved first: a missing image is a 404, not a broken stream.
    let st = state.clone();
    let ns = names.clone();
    blocking(move || {
        let store = st.store()?;
        for n in &ns {
            store.resolve(n)?;
        }
        Ok(())
    })
    .await?;
    let (sink, resp) = http::streamed("application/x-tar");
    tokio::task::spawn_blocking(move || {
        let res = (|| -> ApiResult<()> {
            let store = state.store()?;
            let _reader = store.reader_lock()?;
            let images = transfer::archive::select(&store, &names)?;
            let out = std::io::BufWriter::with_capacity(256 << 10, sink);
            transfer::archive::save(
                &store,
                &images,
                transfer::archive::ArchiveFormat::DockerArchive,
                out,
            )?;
            Ok(())
        })();
        // The tar is cut short: the client sees a truncated archive.
        if let Err(e) = res {
            eprintln!("kiln: saving {}: {}", names.join(", "), e.message);
        }
    });
    Ok(resp)
}

/// `POST /images/load`: a docker or OCI archive in the body.
pub async fn load(state: Arc<State>, q: Query, req: Request<Incoming>) -> ApiResult {
    // `quiet` only hides progress, which kiln's load does not send.
    let _ = q;
    let input = http::body_reader(req.into_body());
    let loaded = blocking(move || {
        let store = state.store()?;
        let input = std::io::BufReader::with_capacity(1 << 20, input);
        let loaded = transfer::archive::load(&store, input)
            .map_err(|e| ApiError::bad_request(e.render()))?;
        Ok(loaded)
    })
    .await?;
    let mut text = String::new();
    for (id, names, _) in &loaded.images {
        if names.is_empty() {
            text.push_str(&json!({ "stream": format!("Loaded image ID: {id}\n") }).to_string());
        }
        for n in names {
            text.push_str(
                &json!({ "stream": format!("Loaded image: {}\n", familiar(n)) }).to_string(),
            );
        }
        text.push('\n');
    }
    let mut r = http::json(StatusCode::OK, &Value::Null);
    *r.body_mut() = http::full(text);
    Ok(r)
}
