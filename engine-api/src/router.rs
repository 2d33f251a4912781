//! From method and path to handler. Clients put the API version in front
//! (`/v1.41/containers/json`; newer ones `/v1.43/…`): any `/vX.Y` prefix is
//! dropped, as the shapes served are the same. Image names may hold
//! slashes, so `/images/…` paths are matched by their last segment.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request};

use crate::http::{ApiError, ApiResult, Query, Resp};
use crate::state::State;
use crate::{
    archive, attach, build, containers, events, exec, images, networks, stats, system, volumes,
};

pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Result<Resp, Infallible> {
    let res = route(state, req).await;
    Ok(res.unwrap_or_else(|e| e.response()))
}

/// `/v1.41/x` → `/x`.
fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let v = &rest[..end];
    let is_version = !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if is_version {
        &rest[end..]
    } else {
        path
    }
}

/// `%2F` and friends in a path.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let path = percent_decode(strip_version(req.uri().path()));
    let q = Query::parse(req.uri().query());
    let m = req.method().clone();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let get = m == Method::GET || m == Method::HEAD;
    let post = m == Method::POST;
    let del = m == Method::DELETE;
    let st = state;
    match segs.as_slice() {
        ["_ping"] if get => Ok(system::ping(m == Method::HEAD)),
        ["version"] if get => system::version().await,
        ["info"] if get => system::info(st).await,
        ["events"] if get => events::stream(st, q),
        ["system", "df"] if get => system::df(st).await,
        ["auth"] if post => system::auth(req).await,

        ["images", "json"] if get => images::list(st, q).await,
        ["images", "create"] if post => images::create(st, q, req).await,
        ["images", "load"] if post => images::load(st, q, req).await,
        ["images", "get"] if get => images::save(st, q, None).await,
        ["images", "prune"] if post => images::prune(st, q).await,
        ["build"] if post => build::build(st, q, req).await,
        ["build", "prune"] if post => build::prune(st, q).await,
        ["images", rest @ ..] if rest.len() >= 2 && get && rest.last() == Some(&"json") => {
            images::inspect(st, join(&rest[..rest.len() - 1])).await
        }
        ["images", rest @ ..] if rest.len() >= 2 && get && rest.last() == Some(&"history") => {
            images::history(st, join(&rest[..rest.len() - 1])).await
        }
        ["images", rest @ ..] if rest.len() >= 2 && get && rest.last() == Some(&"get") => {
            images::save(st, q, Some(join(&rest[..rest.len() - 1]))).await
        }
        ["images", rest @ ..] if rest.len() >= 2 && post && rest.last() == Some(&"tag") => {
            images::tag(st, join(&rest[..rest.len() - 1]), q).await
        }
        ["images", rest @ ..] if rest.len() >= 2 && post && rest.last() == Some(&"push") => {
            images::push(st, join(&rest[..rest.len() - 1]), q, req).await
        }
        ["images", rest @ ..] if !rest.is_empty() && del => images::remove(st, join(rest), q).await,

        ["containers", "json"] if get => containers::list(st, q).await,
        ["containers", "create"] if post => containers::create(st, q, req).await,
        ["containers", "prune"] if post => containers::prune(st, q).await,
        ["commit"] if post => containers::commit(st, q, req).await,
        ["containers", id, "json"] if get => containers::inspect(st, id).await,
        ["containers", id, "start"] if post => containers::start(st, id).await,
        ["containers", id, "stop"] if post => containers::stop(st, id, q).await,
        ["containers", id, "restart"] if post => containers::restart(st, id, q).await,
        ["containers", id, "kill"] if post => containers::kill(st, id, q).await,
        ["containers", id, "wait"] if post => containers::wait(st, id, q).await,
        ["containers", id, "rename"] if post => containers::rename(st, id, q).await,
        ["containers", id, "pause"] if post => containers::pause(st, id, true).await,
        ["containers", id, "unpause"] if post => containers::pause(st, id, false).await,
        ["containers", id, "top"] if get => containers::top(st, id, q).await,
        ["containers", id, "stats"] if get => stats::stats(st, id, q).await,
        ["containers", id, "changes"] if get => archive::changes(st, id).await,
        ["containers", id, "export"] if get => archive::export(st, id).await,
        ["containers", id, "logs"] if get => attach::logs(st, id, q).await,
        ["containers", id, "attach"] if post => attach::attach(st, id, q, req).await,
        ["containers", id, "resize"] if post => containers::resize(st, id, q).await,
        ["containers", id, "archive"] if m == Method::HEAD => archive::stat(st, id, q).await,
        ["containers", id, "archive"] if get => archive::get(st, id, q).await,
        ["containers", id, "archive"] if m == Method::PUT => archive::put(st, id, q, req).await,
        ["containers", id, "exec"] if post => exec::create(st, id, req).await,
        ["containers", id] if del => containers::remove(st, id, q).await,
        ["exec", id, "start"] if post => exec::start(st, id, req).await,
        ["exec", id, "json"] if get => exec::inspect(st, id).await,
        ["exec", id, "resize"] if post => exec::resize(st, id, q).await,

        ["networks"] if get => networks::list(st, q).await,
        ["networks", "create"] if post => networks::create(st, req).await,
        ["networks", "prune"] if post => networks::prune(st).await,
        ["networks", id] if get => networks::inspect(st, id).await,
        ["networks", id] if del => networks::remove(st, id).await,
        ["networks", id, "connect"] if post => networks::connect(st, id, req).await,
        ["networks", id, "disconnect"] if post => networks::disconnect(st, id, req).await,

        ["volumes"] if get => volumes::list(st, q).await,
        ["volumes", "create"] if post => volumes::create(st, req).await,
        ["volumes", "prune"] if post => volumes::prune(st, q).await,
        ["volumes", name] if get => volumes::inspect(st, name).await,
        ["volumes", name] if del => volumes::remove(st, name, q).await,

        _ => Err(ApiError::not_found("page not found")),
    }
}

fn join(parts: &[&str]) -> String {
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefixes_are_dropped() {
        assert_eq!(strip_version("/v1.41/containers/json"), "/containers/json");
        assert_eq!(strip_version("/v1.43/_ping"), "/_ping");
        assert_eq!(strip_version("/volumes"), "/volumes");
        assert_eq!(strip_version("/vx/y"), "/vx/y");
    }

    #[test]
    fn paths_are_percent_decoded() {
        assert_eq!(percent_decode("/images/a%2Fb/json"), "/images/a/b/json");
        assert_eq!(percent_decode("/x%"), "/x%");
    }
}
