//! `/_ping`, `/version`, `/info`, `/system/df`, `/auth`: what clients ask
//! before anything else (the CLI negotiates its API version from
//! `/_ping`'s `API-Version` header).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::http::{self, blocking, ApiError, ApiResult, Resp};
use crate::state::State;
use crate::{API_VERSION, MIN_API_VERSION};

/// kiln's version, as the server's.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn ping(head: bool) -> Resp {
    let mut r = Response::new(if head {
        http::empty()
    } else {
        http::full("OK")
    });
    let h = r.headers_mut();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    // The classic builder's `/build` (BuildKit's session API is not served).
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Go's name of this machine's architecture.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        a => a,
    }
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

pub async fn version() -> ApiResult {
    let kernel = kernel_version();
    Ok(http::ok_json(&json!({
        "Platform": { "Name": "kiln" },
        "Components": [{
            "Name": "Engine",
            "Version": VERSION,
            "Details": {
                "ApiVersion": API_VERSION,
                "MinAPIVersion": MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel,
            }
        }],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel,
        "BuildTime": "",
    })))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "linux".into())
}

pub async fn info(state: Arc<State>) -> ApiResult {
    // `kiln info`'s facts.
    let info = blocking(move || {
        let store = state.store()?;
        Ok(containers::usage::info(&store)?)
    })
    .await?;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    Ok(http::ok_json(&json!({
        "ID": "",
        "Containers": info.containers,
        "ContainersRunning": info.running,
        "ContainersPaused": info.paused,
        "ContainersStopped": info.stopped,
        "Images": info.images,
        "Driver": "overlay",
        "DriverStatus": [],
        "Plugins": {
            "Volume": ["local"],
            "Network": ["bridge", "host", "none"],
            "Authorization": null,
            "Log": ["k8s-file"],
        },
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "IPv4Forwarding": true,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339(),
        "LoggingDriver": "k8s-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": info.cgroup_version.to_string(),
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os_name(),
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": ncpu,
        "MemTotal": mem_total(),
        "DockerRootDir": info.root,
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": { "kiln": { "path": "kiln" } },
        "DefaultRuntime": info.default_runtime,
        "Swarm": { "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
                   "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": false,
        "Isolation": "",
        "InitBinary": "",
        "SecurityOptions": [],
        "Warnings": [],
    })))
}

/// `docker system df`: `kiln system df`'s measure (containers::usage), in
/// docker's shape; shared bytes count once in `LayersSize`.
pub async fn df(state: Arc<State>) -> ApiResult {
    let v = blocking(move || {
        let store = state.store()?;
        let usage = containers::usage::disk_usage(&store)?;
        let images: std::collections::HashMap<_, _> = store
            .images()?
            .into_iter()
            .map(|i| (i.id().clone(), i))
            .collect();
        let imgs: Vec<_> = usage
            .images
            .iter()
            .filter_map(|u| {
                let mut v = crate::images::summary(images.get(&u.id)?, u.containers as i64);
                v["Size"] = json!(u.size);
                v["VirtualSize"] = json!(u.size);
                v["SharedSize"] = json!(u.shared);
                Some(v)
            })
            .collect();
        let ctrs: Vec<_> = usage
            .containers
            .iter()
            .map(|c| {
                let mut v = crate::containers::summary(&store, &c.container);
                v["SizeRw"] = json!(c.size);
                v
            })
            .collect();
        let vols = containers::volumes::Volumes::new(&store);
        let vols: Vec<_> = usage
            .volumes
            .iter()
            .filter_map(|u| {
                let vol = vols.get(&u.name).ok()?;
                let mut v = crate::volumes::describe(&store, &vol);
                v["UsageData"] = json!({ "Size": u.size, "RefCount": u.users });
                Some(v)
            })
            .collect();
        // The builder's step records (`kiln system df -v`'s build cache).
        let cache: Vec<_> = usage
            .cache
            .iter()
            .map(|c| {
                json!({
                    "ID": c.key,
                    "Parent": "",
                    "Type": "regular",
                    "Description": "",
                    "InUse": false,
                    "Shared": c.shared,
                    "Size": c.size,
                    "CreatedAt": c.created,
                    "LastUsedAt": null,
                    "UsageCount": 0,
                })
            })
            .collect();
        Ok(json!({
            "LayersSize": usage.images_size,
            "Images": imgs,
            "Containers": ctrs,
            "Volumes": vols,
            "BuildCache": cache,
        }))
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// docker's AuthConfig (`POST /auth`'s body); the password stays out
/// of `Debug`.
#[derive(Default, serde::Deserialize)]
#[serde(default)]
struct AuthBody {
    username: String,
    password: String,
    serveraddress: String,
    identitytoken: String,
}

/// `docker login` against the daemon: the credentials are checked
/// against the registry with `kiln login`'s library call and not stored
/// (as podman's service: the client keeps them and sends them with each
/// pull and push). 200 `{"Status": "Login Succeeded"}`, 401 when the
/// registry refuses them.
pub async fn auth(req: Request<Incoming>) -> ApiResult {
    let body: AuthBody = http::read_json(req.into_body()).await?;
    if !body.identitytoken.is_empty() && body.password.is_empty() {
        return Err(ApiError::bad_request(
            "login with an identity token is not supported by kiln's Engine API: give a username and password",
        ));
    }
    if body.username.is_empty() || body.password.is_empty() {
        return Err(ApiError::bad_request(
            "login needs a username and a password",
        ));
    }
    let registry = transfer::credentials::registry_host(Some(&body.serveraddress))
        .map_err(|e| ApiError::bad_request(e.render()))?;
    let access = transfer::RegistryAccess {
        creds: Some(format!("{}:{}", body.username, body.password)),
        tls_verify: !crate::images::is_loopback_registry(&registry),
        ..Default::default()
    };
    let client = access.client()?;
    match client.check_login(&registry).await {
        Ok(()) => Ok(http::ok_json(&json!({
            "Status": "Login Succeeded",
            "IdentityToken": "",
        }))),
        Err(e @ registry_client::Error::Unauthorized { .. }) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("login attempt to {registry} failed: {}", http::chain(&e)),
        )),
        Err(e) => Err(ApiError::internal(format!(
            "login attempt to {registry} failed: {}",
            http::chain(&e)
        ))),
    }
}
