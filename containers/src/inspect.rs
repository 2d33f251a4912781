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
    let attachment = crate::network::attachment(&dir);
    // Its network, the one it joins (`container:ID`), or slirp4netns's
    // once stopped too (see network::mode); else none or host.
    let network_mode = match (&attachment, crate::network::mode(&dir), netns) {
        (Some(a), _, _) => a.network.clone(),
        (None, Some(m), _) => m,
        (None, None, true) => "none".to_string(),
        (None, None, false) => "host".to_string(),
    };
    let runtime = fs::read_to_string(dir.join(RUNTIME_FILE))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "kiln".into());
    let resources = &spec["linux"]["resources"];
    let paused = crate::control::is_paused(store, c);
    let mut state = json!({
        "Status": status(store, c),
        "Running": running || restarting,
        "Paused": paused,
        "Restarting": restarting,
        "OOMKilled": false,
        "Dead": false,
        "Pid": pid,
        "ExitCode": if c.state == State::Created { 0 } else { c.exit_code.unwrap_or(0) },
        "Error": "",
        "StartedAt": c.started.as_deref().unwrap_or(ZERO_TIME),
        "FinishedAt": c.finished.as_deref().filter(|_| !running).unwrap_or(ZERO_TIME),
    });
    // docker's `Health` is there once a container with a health check ran.
    if let Some(h) = crate::health::current(store, c) {
        state["Health"] = serde_json::to_value(h).expect("plain data");
    }
    let (open_stdin, stdin_once) = crate::run::input_of(&dir);
    let mut config = json!({
        "Hostname": spec["hostname"].as_str().unwrap_or(""),
        "User": user(process),
        "Tty": process["terminal"].as_bool().unwrap_or(false),
        "OpenStdin": open_stdin,
        "StdinOnce": stdin_once,
        "Env": process["env"].as_array().cloned().unwrap_or_default(),
        "Entrypoint": c.entrypoint.as_ref().filter(|e| !e.is_empty()),
        "Cmd": match &c.cmd {
            Some(cmd) => (!cmd.is_empty()).then_some(cmd),
            None => Some(&c.command),
        },
        "Image": c.image,
        "WorkingDir": process["cwd"].as_str().unwrap_or(""),
        "Labels": c.labels,
    });
    if let Some(s) = &c.stop_signal {
        config["StopSignal"] = json!(s);
    }
    if let Some(t) = c.stop_timeout {
        config["StopTimeout"] = json!(t);
    }
    if let Some(h) = &c.healthcheck {
        config["Healthcheck"] = serde_json::to_value(&h.config).expect("plain data");
    }
    json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.command.first(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": state,
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
            "LogConfig": {"Type": "k8s-file", "Config": c.log_opts},
            "Memory": resources["memory"]["limit"].as_i64().unwrap_or(0),
            "PidsLimit": resources["pids"]["limit"].as_i64(),
            "MemorySwap": resources["memory"]["swap"].as_i64().unwrap_or(0),
            "MemoryReservation": resources["memory"]["reservation"].as_i64().unwrap_or(0),
            "CpuShares": resources["cpu"]["shares"].as_u64().unwrap_or(0),
            "CpusetCpus": resources["cpu"]["cpus"].as_str().unwrap_or(""),
            "NanoCpus": resources["cpu"]["quota"].as_i64().map_or(0, |q| {
                q * 1_000_000_000 / resources["cpu"]["period"].as_i64().unwrap_or(100_000).max(1)
            }),
        },
        "Mounts": mounts,
        "NetworkSettings": network_settings(
            attachment.as_ref(),
            &network_mode,
            crate::network::plan::read(&dir).as_ref(),
            &c.id,
        ),
        "Config": config,
        // kiln's own: how the last runs ended (restart policies).
        "KilnRuns": c.runs,
    })
}

/// docker's `NetworkSettings`, from the container's network attachment
/// (none once its network is torn down): the address, gateway and MAC of
/// its one network, per network and, on the default bridge, at the top as
/// docker puts them; the exposed ports with what they are published on.
/// A stopped container's networks are those its plan joins again at its
/// next start, with their aliases (the short ID among them on a user
/// network, as docker's: docker-compose reconnects a container whose
/// aliases lack it) and no address.
fn network_settings(
    a: Option<&crate::network::Attachment>,
    mode: &str,
    plan: Option<&crate::network::plan::Plan>,
    id: &str,
) -> Value {
    let mut ports = serde_json::Map::new();
    if let Some(a) = a {
        for (port, proto) in &a.exposed {
            ports.insert(format!("{port}/{proto}"), Value::Null);
        }
        for m in &a.ports {
            for i in 0..m.range.max(1) {
                let key = format!("{}/{}", m.container_port + i, m.protocol);
                let host_ip = match m.host_ip.as_str() {
                    "" => "0.0.0.0",
                    ip => ip,
                };
                let entry = json!({"HostIp": host_ip, "HostPort": (m.host_port + i).to_string()});
                match ports.get_mut(&key) {
                    Some(Value::Array(list)) => list.push(entry),
                    _ => {
                        ports.insert(key, json!([entry]));
                    }
                }
            }
        }
    }
    let (ip, prefix, gateway, mac) = match a {
        Some(a) => (
            a.ip.to_string(),
            a.prefix,
            a.gateway.to_string(),
            a.mac.clone(),
        ),
        None => Default::default(),
    };
    let endpoint = json!({
        "IPAMConfig": null,
        "Links": null,
        "Aliases": a.filter(|a| !a.aliases.is_empty()).map(|a| a.aliases.clone()),
        "NetworkID": a.map_or("", |a| a.network_id()),
        "EndpointID": "",
        "Gateway": gateway,
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": mac,
        "DriverOpts": null,
    });
    // The networks `network connect` added.
    let mut networks = serde_json::Map::new();
    networks.insert(mode.to_string(), endpoint);
    if let (None, Some(plan)) = (a, plan) {
        let aliases = |network: &str, given: &[String]| -> Value {
            if network == crate::network::DEFAULT_NETWORK {
                return Value::Null;
            }
            let mut all = given.to_vec();
            all.push(id[..12.min(id.len())].to_string());
            json!(all)
        };
        let planned = std::iter::once((&plan.request.network, &plan.request.aliases))
            .chain(plan.connected.iter().map(|c| (&c.network, &c.aliases)));
        for (network, given) in planned {
            networks.insert(
                network.clone(),
                json!({
                    "IPAMConfig": null,
                    "Links": null,
                    "Aliases": aliases(network, given),
                    "NetworkID": "",
                    "EndpointID": "",
                    "Gateway": "",
                    "IPAddress": "",
                    "IPPrefixLen": 0,
                    "IPv6Gateway": "",
                    "GlobalIPv6Address": "",
                    "GlobalIPv6PrefixLen": 0,
                    "MacAddress": "",
                    "DriverOpts": null,
                }),
            );
        }
    }
    for e in a.map(|a| a.extra.as_slice()).unwrap_or_default() {
        networks.insert(
            e.network.clone(),
            json!({
                "IPAMConfig": null,
                "Links": null,
                "Aliases": (!e.aliases.is_empty()).then_some(&e.aliases),
                "NetworkID": e.network_id(),
                "EndpointID": "",
                "Gateway": e.gateway.to_string(),
                "IPAddress": e.ip.to_string(),
                "IPPrefixLen": e.prefix,
                "IPv6Gateway": "",
                "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0,
                "MacAddress": e.mac,
                "DriverOpts": null,
            }),
        );
    }
    // docker fills the top-level fields for the default bridge only.
    let top = mode == crate::network::DEFAULT_NETWORK;
    let top_str = |v: &str| if top { v.to_string() } else { String::new() };
    json!({
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": false,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": a.map_or(String::new(), |a| a.netns.to_string_lossy().into_owned()),
        "SecondaryIPAddresses": null,
        "SecondaryIPv6Addresses": null,
        "EndpointID": "",
        "Gateway": top_str(&gateway),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top_str(&ip),
        "IPPrefixLen": if top { prefix } else { 0 },
        "IPv6Gateway": "",
        "MacAddress": top_str(&mac),
        "Networks": networks,
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
