//! Volumes: list, inspect, create, remove, prune (`kiln volume`'s calls).

use std::collections::BTreeMap;
use std::sync::Arc;

use containers::volumes::{Volume, Volumes};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use image_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, blocking, ApiError, ApiResult, Query};
use crate::state::State;

/// docker's Volume object.
pub fn describe(store: &Store, v: &Volume) -> Value {
    json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": Volumes::new(store).data_dir(&v.name),
        "CreatedAt": v.created,
        "Labels": v.labels,
        "Scope": "local",
        "Options": {},
    })
}

pub async fn list(state: Arc<State>, q: Query) -> ApiResult {
    // `kiln volume ls -f`'s filters.
    let items: Vec<String> = q
        .filters()?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let filters = containers::filters::VolumeFilters::parse(&items)?;
    let v = blocking(move || {
        let store = state.store()?;
        let vols = Volumes::new(&store);
        let used = vols.used()?;
        let out: Vec<Value> = vols
            .list()?
            .iter()
            .filter(|v| filters.accepts(v, || used.contains(&v.name)))
            .map(|v| describe(&store, v))
            .collect();
        Ok(json!({ "Volumes": out, "Warnings": [] }))
    })
    .await?;
    Ok(http::ok_json(&v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<BTreeMap<String, String>>,
    labels: Option<BTreeMap<String, String>>,
}

pub async fn create(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let body: CreateBody = http::read_json(req.into_body()).await?;
    if let Some(d) = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "local")
    {
        return Err(ApiError::bad_request(format!(
            "volume driver {d:?}: kiln has only the local driver"
        )));
    }
    if body.driver_opts.as_ref().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request(
            "volume driver options are not supported by kiln",
        ));
    }
    let v = blocking(move || {
        let store = state.store()?;
        let name = match body.name.filter(|n| !n.is_empty()) {
            Some(n) => n,
            None => containers::names::new_id()?,
        };
        let vols = Volumes::new(&store);
        // docker: creating an existing volume returns it.
        let vol = match vols.get(&name) {
            Ok(v) => v,
            Err(_) => vols.create(&name, body.labels.unwrap_or_default())?,
        };
        Ok(describe(&store, &vol))
    })
    .await?;
    Ok(http::json(StatusCode::CREATED, &v))
}

fn no_such(name: &str) -> impl FnOnce(containers::Error) -> ApiError + '_ {
    move |e| match e {
        e if e.is_not_found() => ApiError::not_found(format!("get {name}: no such volume")),
        e => e.into(),
    }
}

pub async fn inspect(state: Arc<State>, name: &str) -> ApiResult {
    let name = name.to_string();
    let v = blocking(move || {
        let store = state.store()?;
        let vol = Volumes::new(&store).get(&name).map_err(no_such(&name))?;
        Ok(describe(&store, &vol))
    })
    .await?;
    Ok(http::ok_json(&v))
}

pub async fn remove(state: Arc<State>, name: &str, q: Query) -> ApiResult {
    let name = name.to_string();
    let force = q.flag("force");
    blocking(move || {
        let store = state.store()?;
        let vols = Volumes::new(&store);
        vols.get(&name).map_err(no_such(&name))?;
        vols.remove(&name, force)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

/// API 1.41's prune: every volume no container uses.
pub async fn prune(state: Arc<State>, q: Query) -> ApiResult {
    let all = !q
        .filters()?
        .iter()
        .any(|(k, v)| k == "all" && (v == "false" || v == "0"));
    let v = blocking(move || {
        let store = state.store()?;
        let gone = Volumes::new(&store).prune(all)?;
        Ok(json!({ "VolumesDeleted": gone, "SpaceReclaimed": 0 }))
    })
    .await?;
    Ok(http::ok_json(&v))
}
