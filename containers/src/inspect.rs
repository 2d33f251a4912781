//! `kiln inspect` on a container: docker's JSON shape, from the record and
//! the OCI spec kiln wrote for it (`spec.json`: env, working directory,
//! hostname, mounts, limits). Fields kiln has no notion of keep docker's
//! zero values.

use std::fs;

use image_store::Store;
use serde_json::{json, Value};

use crate::control;
use crate::filters::status;
use crate::records::{Container, Containers, State};
use crate::run::SPEC_FILE;
use crate::runtime::RUNTIME_FILE;

/// docker's time for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The JSON `docker container inspect` prints for `c`.
pub fn describe(store: &Store, c: &Container) -> Value {
    let dir = Containers::new(store).container_dir(&c.id);
    let spec: Value = fs::read(dir.join(SPEC_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or(Value::Null);
    let process = &spec["process"];
    let running = c.is_running();
    let restarting = c.is_restarting();
    let pid = if running {
        control::init_pid(store, c).unwrap_or(0)
    } else {
        0
    };
    let dir_str = dir.to_string_lossy().into_owned();
    let binds: Vec<&Value> = spec["mounts"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter(|m| {
                    m["type"] == "bind"
                        && m["source"]
                            .as_str()
                            .is_some_and(|s| !s.starts_with(&dir_str))
                })
                .collect()
        })
        .unwrap_or_default();
    let ro = |m: &Value| {
        m["options"]
            .as_array()
            .is_some_and(|o| o.iter().any(|o| o == "ro"))
    };
    let mounts: Vec<Value> = binds
        .iter()
        .map(|m| {
            json!({
                "Type": "bind",
                "Source": m["source"],
                "Destination": m["destination"],
                "Mode": if ro(m) { "ro" } else { "" },
                "RW": !ro(m),
                "Propagation": "rprivate",
            })
        })
        .collect();
    let bind_strings: Vec<String> = binds
        .iter()
        .map(|m| {
            let s = format!(
                "{}:{}",
                m["source"].as_str().unwrap_or(""),
                m["destination"].as_str().unwrap_or("")
            );
            if ro(m) {
                s + ":ro"
            } else {
                s
            }
        })
        .collect();
    let netns = spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["type"] == "network"));
    let runtime = fs::read_to_string(dir.join(RUNTIME_FILE))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "kiln".into());
    let resources = &spec["linux"]["resources"];
    let attachment = crate::network::attachment(&dir);
    let network_mode = match (&attachment, netns) {
        (Some(a), _) => a.network.as_str(),
        (None, true) => "none",
        (None, false) => "host",
    };
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.command.first(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": status(c),
            "Running": running || restarting,
            "Paused": false,
            "Restarting": restarting,
            "OOMKilled": false,
            "Dead": false,
            "Pid": pid,
            "ExitCode": if c.state == State::Created { 0 } else { c.exit_code.unwrap_or(0) },
            "Error": "",
            "StartedAt": c.started.as_deref().unwrap_or(ZERO_TIME),
            "FinishedAt": c.finished.as_deref().filter(|_| !running).unwrap_or(ZERO_TIME),
        },
        "Image": c.image_id.to_string(),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": {
            "Binds": bind_strings,
            "NetworkMode": network_mode,
            "RestartPolicy": c.restart_policy,
            "AutoRemove": c.auto_remove,
            "ReadonlyRootfs": spec["root"]["readonly"].as_bool().unwrap_or(false),
            "Runtime": runtime,
            "Memory": resources["memory"]["limit"].as_i64().unwrap_or(0),
            "PidsLimit": resources["pids"]["limit"].as_i64(),
        },
        "Mounts": mounts,
        "NetworkSettings": network_settings(attachment.as_ref()),
        "Config": {
            "Hostname": spec["hostname"].as_str().unwrap_or(""),
            "User": user(process),
            "Tty": process["terminal"].as_bool().unwrap_or(false),
            "Env": process["env"].as_array().cloned().unwrap_or_default(),
            "Cmd": c.command,
            "Image": c.image,
            "WorkingDir": process["cwd"].as_str().unwrap_or(""),
            "Labels": c.labels,
        },
        // kiln's own: how the last runs ended (restart policies).
        "KilnRuns": c.runs,
    })
}

/// `UID:GID` as the spec has them ("" for root, as docker shows no USER).
fn user(process: &Value) -> String {
    let uid = process["user"]["uid"].as_u64().unwrap_or(0);
    let gid = process["user"]["gid"].as_u64().unwrap_or(0);
    match (uid, gid) {
        (0, 0) => String::new(),
        _ => format!("{uid}:{gid}"),
    }
}

/// docker's NetworkSettings: the address on the container's network and
/// its published ports (`{"80/tcp": [{"HostIp", "HostPort"}]}`, exposed
/// but unpublished ports as null).
fn network_settings(a: Option<&crate::network::Attachment>) -> Value {
    let Some(a) = a else {
        return json!({ "Ports": {}, "Networks": {}, "IPAddress": "", "Gateway": "" });
    };
    let mut ports = serde_json::Map::new();
    for (port, proto) in &a.exposed {
        ports.insert(format!("{port}/{proto}"), Value::Null);
    }
    for m in &a.ports {
        let key = format!("{}/{}", m.container_port, m.protocol);
        let host_ip = if m.host_ip.is_empty() {
            "0.0.0.0"
        } else {
            &m.host_ip
        };
        let entry = json!({ "HostIp": host_ip, "HostPort": m.host_port.to_string() });
        match ports.get_mut(&key).and_then(Value::as_array_mut) {
            Some(list) => list.push(entry),
            None => {
                ports.insert(key, json!([entry]));
            }
        }
    }
    let ip = a.ip.to_string();
    let gw = a.gateway.to_string();
    json!({
        "Ports": ports,
        "IPAddress": ip,
        "IPPrefixLen": a.prefix,
        "Gateway": gw,
        "Networks": {
            a.network.clone(): {
                "NetworkID": a.network,
                "IPAddress": ip,
                "IPPrefixLen": a.prefix,
                "Gateway": gw,
            }
        },
    })
}
