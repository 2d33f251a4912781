//! `docker cp` (`/containers/{id}/archive`: HEAD stats a path, GET reads
//! it as a tar, PUT extracts a tar into a directory), `export` and
//! `changes`, through `kiln cp`/`export`/`diff`'s library calls (which
//! write inside the container's root or volume only).

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::sync::Arc;

use containers::copy::{self, HostEnd, PathStat};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, StatusCode};
use serde_json::json;

use crate::http::{self, blocking, ApiError, ApiResult, Query};
use crate::state::State;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Go's `os.FileMode` bits for a Unix mode.
fn go_mode(stat: &PathStat) -> u32 {
    let m = stat.meta.mode();
    let t = stat.meta.file_type();
    let mut mode = m & 0o777;
    if t.is_dir() {
        mode |= 1 << 31;
    } else if t.is_symlink() {
        mode |= 1 << 27;
    } else if t.is_fifo() {
        mode |= 1 << 25;
    } else if t.is_socket() {
        mode |= 1 << 24;
    } else if t.is_block_device() {
        mode |= 1 << 26;
    } else if t.is_char_device() {
        mode |= (1 << 26) | (1 << 21);
    }
    if m & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if m & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if m & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode
}

fn stat_header(stat: &PathStat) -> HeaderValue {
    use base64::Engine as _;
    let mtime = chrono::DateTime::from_timestamp(stat.meta.mtime(), stat.meta.mtime_nsec() as u32)
        .unwrap_or_default()
        .to_rfc3339();
    let v = json!({
        "name": stat.name,
        "size": stat.meta.len(),
        "mode": go_mode(stat),
        "mtime": mtime,
        "linkTarget": stat.link_target,
    });
    let enc = base64::engine::general_purpose::STANDARD.encode(v.to_string());
    HeaderValue::from_str(&enc).expect("base64 is a valid header value")
}

fn path_of(q: &Query) -> ApiResult<String> {
    q.get("path")
        .map(str::to_string)
        .ok_or_else(|| ApiError::bad_request("path is required"))
}

async fn stat_of(state: &Arc<State>, id: &str, path: &str) -> ApiResult<PathStat> {
    let (st, id, path) = (state.clone(), id.to_string(), path.to_string());
    blocking(move || Ok(copy::stat(&st.store()?, &id, &path)?)).await
}

pub async fn stat(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let path = path_of(&q)?;
    let s = stat_of(&state, id, &path).await?;
    let mut r = http::status(StatusCode::OK);
    r.headers_mut().insert(STAT_HEADER, stat_header(&s));
    Ok(r)
}

/// A tar of what `path` is, streamed.
pub async fn get(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let path = path_of(&q)?;
    let s = stat_of(&state, id, &path).await?;
    let (sink, mut resp) = http::streamed("application/x-tar");
    resp.headers_mut().insert(STAT_HEADER, stat_header(&s));
    let id = id.to_string();
    // A thread of its own, not the blocking pool's: export mounts the
    // container's view in a private mount namespace, which the thread
    // keeps. A pool thread left there made the network namespaces later
    // requests on it created invisible to their containers (`join
    // network namespace: Invalid argument` for the next `docker run`).
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(256 << 10, sink);
        let res = state.store().and_then(|st| {
            Ok(copy::copy_out(
                &st,
                &id,
                &path,
                false,
                HostEnd::Tar,
                &mut out,
            )?)
        });
        if let Err(e) = res {
            eprintln!("kiln: copying {path} out of {id}: {}", e.message);
        }
    });
    Ok(resp)
}

/// Extracts the tar in the body into the directory `path`.
pub async fn put(state: Arc<State>, id: &str, q: Query, req: Request<Incoming>) -> ApiResult {
    let path = path_of(&q)?;
    let id = id.to_string();
    let input = http::body_reader(req.into_body());
    blocking(move || {
        let store = state.store()?;
        let mut input = std::io::BufReader::with_capacity(256 << 10, input);
        copy::copy_in(&store, &id, &path, HostEnd::Tar, false, &mut input)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::OK))
}

/// `GET /containers/{id}/export`: the container's filesystem as a tar.
pub async fn export(state: Arc<State>, id: &str) -> ApiResult {
    let (st, i) = (state.clone(), id.to_string());
    blocking(move || {
        Ok(containers::Containers::new(&st.store()?)
            .container(&i)
            .map(|_| ())?)
    })
    .await?;
    let (sink, resp) = http::streamed("application/x-tar");
    let id = id.to_string();
    // A thread of its own, not the blocking pool's: export mounts the
    // container's view in a private mount namespace, which the thread
    // keeps. A pool thread left there made the network namespaces later
    // requests on it created invisible to their containers (`join
    // network namespace: Invalid argument` for the next `docker run`).
    std::thread::spawn(move || {
        let mut out = std::io::BufWriter::with_capacity(256 << 10, sink);
        let res = state
            .store()
            .and_then(|st| Ok(containers::export::export(&st, &id, &mut out)?));
        if let Err(e) = res {
            eprintln!("kiln: exporting {id}: {}", e.message);
        }
    });
    Ok(resp)
}

/// `GET /containers/{id}/changes`: `[{"Path", "Kind": 0 modified, 1 added, 2 deleted}]`.
pub async fn changes(state: Arc<State>, id: &str) -> ApiResult {
    let id = id.to_string();
    let v = blocking(move || {
        let store = state.store()?;
        let out: Vec<serde_json::Value> = copy::diff(&store, &id)?
            .iter()
            .map(|c| {
                let kind = match c.kind {
                    'A' => 1,
                    'D' => 2,
                    _ => 0,
                };
                json!({ "Path": c.path, "Kind": kind })
            })
            .collect();
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}
