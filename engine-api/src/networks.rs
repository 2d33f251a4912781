//! Networks: list, inspect, create, remove, prune (`kiln network`'s
//! calls). `host` and `none` are listed as docker lists them; they are
//! modes, not records.

use std::collections::BTreeMap;
use std::sync::Arc;

use containers::network::config::{CreateRequest, NetworkDef, Networks};
use containers::network::ConnectRequest;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use image_store::Store;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::{self, blocking, ApiError, ApiResult, Query};
use crate::state::State;

fn describe(store: &Store, n: &NetworkDef) -> Value {
    let containers: serde_json::Map<String, Value> =
        containers::network::attach::users(store, &n.name)
            .into_iter()
            .map(|name| (name.clone(), json!({ "Name": name })))
            .collect();
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [{ "Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string() }],
        },
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigOnly": false,
        "Containers": containers,
        // Only options the user gave, as docker (none: kiln names the
        // bridge itself), but the default network's bridge, as docker0's.
        // docker-compose recreates a network whose options differ from
        // its file's, so every second `up` failed on this.
        "Options": if n.name == containers::network::DEFAULT_NETWORK {
            json!({ "com.docker.network.bridge.name": n.interface })
        } else {
            json!({})
        },
        "Labels": n.labels,
    })
}

/// `host` and `none`, which docker lists beside the bridge networks.
fn mode(name: &str) -> Value {
    json!({
        "Name": name, "Id": name, "Created": "0001-01-01T00:00:00Z", "Scope": "local",
        "Driver": if name == "host" { "host" } else { "null" },
        "EnableIPv6": false, "IPAM": { "Driver": "default", "Options": null, "Config": [] },
        "Internal": false, "Attachable": false, "Ingress": false, "ConfigOnly": false,
        "Containers": {}, "Options": {}, "Labels": {},
    })
}

pub async fn list(state: Arc<State>, q: Query) -> ApiResult {
    let filters = q.filters()?;
    for (k, _) in &filters {
        if !matches!(k.as_str(), "name" | "id" | "label" | "driver") {
            return Err(ApiError::bad_request(format!(
                "the network filter {k:?} is not supported by kiln"
            )));
        }
    }
    let v = blocking(move || {
        let store = state.store()?;
        let nets = Networks::new(&store);
        let lock = nets.lock()?;
        let mut out: Vec<Value> = nets
            .list(&lock)?
            .iter()
            .map(|n| describe(&store, n))
            .collect();
        out.push(mode("host"));
        out.push(mode("none"));
        out.retain(|n| {
            filters.iter().all(|(k, v)| match k.as_str() {
                "name" => n["Name"].as_str().is_some_and(|x| x.contains(v.as_str())),
                "id" => n["Id"].as_str().is_some_and(|x| x.starts_with(v.as_str())),
                "driver" => n["Driver"] == v.as_str(),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => n["Labels"][lk] == lv,
                    None => !n["Labels"][v.as_str()].is_null(),
                },
                _ => false,
            })
        });
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}

pub async fn inspect(state: Arc<State>, id: &str) -> ApiResult {
    if matches!(id, "host" | "none") {
        return Ok(http::ok_json(&mode(id)));
    }
    let id = id.to_string();
    let v = blocking(move || {
        let store = state.store()?;
        let nets = Networks::new(&store);
        let lock = nets.lock()?;
        let n = nets.get(&lock, &id)?;
        Ok(describe(&store, &n))
    })
    .await?;
    Ok(http::ok_json(&v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    internal: Option<bool>,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    config: Option<Vec<IpamConfig>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
}

pub async fn create(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let body: CreateBody = http::read_json(req.into_body()).await?;
    let name = body
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("Name is required"))?;
    if let Some(d) = body
        .driver
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "bridge")
    {
        return Err(ApiError::bad_request(format!(
            "network driver {d:?}: kiln has only bridge networks"
        )));
    }
    if body.enable_ipv6 == Some(true) {
        return Err(ApiError::bad_request(
            "IPv6 networks are not supported by kiln",
        ));
    }
    let mut req = CreateRequest {
        name,
        internal: body.internal.unwrap_or(false),
        labels: body.labels.unwrap_or_default(),
        ..Default::default()
    };
    let configs = body.ipam.and_then(|i| i.config).unwrap_or_default();
    if configs.len() > 1 {
        return Err(ApiError::bad_request("kiln networks have one subnet"));
    }
    if let Some(c) = configs.into_iter().next() {
        if let Some(s) = c.subnet.filter(|s| !s.is_empty()) {
            req.subnet = Some(s.parse().map_err(|e: String| {
                ApiError::bad_request(format!("invalid subnet {s:?}: {e}"))
            })?);
        }
        if let Some(g) = c.gateway.filter(|g| !g.is_empty()) {
            req.gateway = Some(
                g.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid gateway {g:?}")))?,
            );
        }
    }
    let id = blocking(move || {
        let store = state.store()?;
        let nets = Networks::new(&store);
        let lock = nets.lock()?;
        Ok(nets.create(&lock, req)?.id)
    })
    .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({ "Id": id, "Warning": "" }),
    ))
}

pub async fn remove(state: Arc<State>, id: &str) -> ApiResult {
    let id = id.to_string();
    blocking(move || {
        let store = state.store()?;
        let nets = Networks::new(&store);
        let lock = nets.lock()?;
        nets.remove(&lock, &id)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

pub async fn prune(state: Arc<State>) -> ApiResult {
    let v = blocking(move || {
        let store = state.store()?;
        let nets = Networks::new(&store);
        let lock = nets.lock()?;
        Ok(json!({ "NetworksDeleted": nets.prune(&lock)? }))
    })
    .await?;
    Ok(http::ok_json(&v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: Option<String>,
    endpoint_config: Option<crate::create::EndpointConfig>,
    force: Option<bool>,
}

fn container_of(body: &ConnectBody) -> ApiResult<String> {
    body.container
        .clone()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("Container is required"))
}

/// `POST /networks/{id}/connect`: `kiln network connect`'s call.
pub async fn connect(state: Arc<State>, id: &str, req: Request<Incoming>) -> ApiResult {
    let body: ConnectBody = http::read_json(req.into_body()).await?;
    let container = container_of(&body)?;
    let ep = body.endpoint_config.unwrap_or_default();
    let ip = ep
        .ipam_config
        .and_then(|i| i.ipv4_address)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| {
                ApiError::bad_request(format!("IPAMConfig.IPv4Address {a:?}: not an IPv4 address"))
            })
        })
        .transpose()?;
    let req = ConnectRequest {
        network: id.to_string(),
        aliases: ep.aliases.unwrap_or_default(),
        ip,
    };
    blocking(move || {
        let store = state.store()?;
        containers::network::connect(&store, &container, req)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`: `kiln network disconnect`'s call.
pub async fn disconnect(state: Arc<State>, id: &str, req: Request<Incoming>) -> ApiResult {
    let body: ConnectBody = http::read_json(req.into_body()).await?;
    let container = container_of(&body)?;
    let force = body.force.unwrap_or(false);
    let id = id.to_string();
    blocking(move || {
        let store = state.store()?;
        containers::network::disconnect(&store, &container, &id, force)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::OK))
}
