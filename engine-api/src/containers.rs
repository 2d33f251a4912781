//! Containers: create, list, inspect, start, stop, restart, kill, wait,
//! remove, rename, pause, top, prune. Every container this server starts
//! runs under a monitor (as `kiln run -d`), which the server waits for:
//! its exit is the container's, for `wait` and the `die` event.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use containers::run::{Created, Start};
use containers::{control, Container, Containers};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use image_store::Store;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::http::{self, blocking, ApiError, ApiResult, Query};
use crate::state::State;

fn unix_time(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t).map_or(0, |t| t.timestamp())
}

/// docker's ContainerSummary (`/containers/json`).
pub fn summary(store: &Store, c: &Container) -> Value {
    let dir = Containers::new(store).container_dir(&c.id);
    let attachment = containers::network::attachment(&dir);
    let ports: Vec<Value> = containers::network::published(store, c)
        .iter()
        .map(|m| {
            json!({
                "IP": if m.host_ip.is_empty() { "0.0.0.0" } else { &m.host_ip },
                "PrivatePort": m.container_port,
                "PublicPort": m.host_port,
                "Type": m.protocol.to_string(),
            })
        })
        .collect();
    let network = attachment.as_ref().map_or("none", |a| a.network.as_str());
    let networks = match &attachment {
        Some(a) => json!({ a.network.clone(): {
            "NetworkID": a.network, "IPAddress": a.ip.to_string(),
            "Gateway": a.gateway.to_string(), "IPPrefixLen": a.prefix,
        }}),
        None => json!({}),
    };
    let mounts: Vec<Value> = c
        .mounts
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id.to_string(),
        "Command": c.command.join(" "),
        "Created": unix_time(&c.created),
        "Ports": ports,
        "Labels": c.labels,
        "State": containers::filters::status(store, c),
        "Status": containers::summary::status_text(store, c),
        "HostConfig": { "NetworkMode": network },
        "NetworkSettings": { "Networks": networks },
        "Mounts": mounts,
    })
}

/// `GET /containers/json?all=&filters=`: `ps`'s filters (id, name, label,
/// status, exited).
pub async fn list(state: Arc<State>, q: Query) -> ApiResult {
    let filters: Vec<String> = q
        .filters()?
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let all = q.flag("all");
    let limit = q.int("limit")?.filter(|l| *l > 0);
    let v = blocking(move || {
        let store = state.store()?;
        let filters = containers::filters::Filters::parse(&filters)?;
        let all = all || filters.implies_all() || limit.is_some();
        let list = control::list(&store, all)?;
        let out: Vec<Value> = list
            .iter()
            .filter(|c| filters.accepts(&store, c))
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .map(|c| summary(&store, c))
            .collect();
        Ok(out)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `POST /containers/create?name=`: recorded and ready, as `kiln create`.
pub async fn create(state: Arc<State>, q: Query, req: Request<Incoming>) -> ApiResult {
    if let Some(p) = q.get("platform") {
        let host = format!("linux/{}", crate::system::go_arch());
        if p != host {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: kiln runs only this host's platform ({host})"
            )));
        }
    }
    let body: crate::create::CreateBody = http::read_json(req.into_body()).await?;
    let (request, networks) = crate::create::run_request(body, q.get("name").map(str::to_string))?;
    let rec = blocking(move || {
        let store = state.store()?;
        let image = request.image.clone();
        let created = containers::run::create(&store, request).map_err(|e| match e {
            // docker's words: the CLI pulls on a 404 naming the image.
            containers::Error::Store(image_store::StoreError::NoSuchImage(_)) => {
                ApiError::not_found(format!("No such image: {image}"))
            }
            e => e.into(),
        })?;
        let rec = created.keep()?;
        for n in networks {
            if let Err(e) = containers::network::connect(&store, &rec.id, n) {
                // Not half-made: the container goes again.
                let _ = control::remove_with_volumes(&store, &rec.id, true, true);
                return Err(e.into());
            }
        }
        state.events.container("create", &rec, &[]);
        Ok(rec)
    })
    .await?;
    Ok(http::json(
        StatusCode::CREATED,
        &json!({ "Id": rec.id, "Warnings": [] }),
    ))
}

pub async fn inspect(state: Arc<State>, id: &str) -> ApiResult {
    let id = id.to_string();
    let v = blocking(move || {
        let store = state.store()?;
        let c = Containers::new(&store).container(&id)?;
        let mut v = containers::inspect::describe(&store, &c);
        // docker's fields kiln's inspect leaves out (the SDKs read them).
        // The log driver: clients read the logs endpoint only for
        // json-file or journald, and kiln's answers as json-file's does
        // (its file is podman's k8s-file format, which no client reads).
        v["HostConfig"]["LogConfig"] = json!({ "Type": "json-file", "Config": {} });
        v["Config"]["AttachStdout"] = json!(true);
        v["Config"]["AttachStderr"] = json!(true);
        v["Config"]["AttachStdin"] = v["Config"]["OpenStdin"].clone();
        v["LogPath"] = json!(Containers::new(&store)
            .container_dir(&c.id)
            .join(containers::run::LOG_FILE));
        Ok(v)
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// How long the exit code of a run is kept after its monitor ended.
const KEEP_EXIT: Duration = Duration::from_secs(300);

/// Starts `created` under a monitor that this server waits for; the
/// attach requests waiting for it get its log file first.
pub fn launch(state: &Arc<State>, store: &Store, created: Created) -> ApiResult<Container> {
    let id = created.record.id.clone();
    let cmd = (state.monitor)(store, &id)
        .map_err(|e| ApiError::internal(format!("the container monitor: {e}")))?;
    let waiting = state
        .attachers
        .lock()
        .expect("not poisoned")
        .remove(&id)
        .unwrap_or_default();
    let (tx, rx) = watch::channel(None);
    state
        .runs
        .lock()
        .expect("not poisoned")
        .insert(id.clone(), rx);
    let started = created.start_monitored(cmd, |log| {
        for w in waiting {
            if let Ok(f) = File::open(log) {
                let _ = w.send(f);
            }
        }
    });
    let (rec, mut child) = match started {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send(Some(e.exit_code() as i32));
            return Err(e.into());
        }
    };
    state.events.container("start", &rec, &[]);
    let st = state.clone();
    let r = rec.clone();
    let rt = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        use std::os::unix::process::ExitStatusExt as _;
        let code = match child.wait() {
            Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9)),
            Err(_) => 125,
        };
        let _ = tx.send(Some(code));
        st.events
            .container("die", &r, &[("exitCode", code.to_string())]);
        if r.auto_remove {
            st.events.container("destroy", &r, &[]);
        }
        // The exit code is kept a while for a `wait` that comes late,
        // then dropped (memory stays bounded); a newer run's is kept.
        rt.spawn(async move {
            tokio::time::sleep(KEEP_EXIT).await;
            let mut runs = st.runs.lock().expect("not poisoned");
            if runs.get(&r.id).is_some_and(|w| w.borrow().is_some()) {
                runs.remove(&r.id);
            }
        });
    });
    Ok(rec)
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already.
pub async fn start(state: Arc<State>, id: &str) -> ApiResult {
    let id = id.to_string();
    let started = blocking(move || {
        let store = state.store()?;
        // Input as created: open when `OpenStdin` asked for it.
        match containers::run::start(&store, &id, true)? {
            Start::Running => Ok(false),
            Start::Ready(c) => launch(&state, &store, *c).map(|_| true),
        }
    })
    .await?;
    Ok(http::status(match started {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_MODIFIED,
    }))
}

/// `t` (or `timeout`); None: the container's own stop timeout.
fn timeout(q: &Query) -> ApiResult<Option<Duration>> {
    let t = q.int("t")?.or(q.int("timeout")?);
    Ok(t.map(|t| Duration::from_secs(t.max(0) as u64)))
}

/// `POST /containers/{id}/stop?t=&signal=`: 204, or 304 when not running.
pub async fn stop(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let time = timeout(&q)?;
    let sig = q.get("signal").map(control::parse_signal).transpose()?;
    let stopped = blocking(move || {
        let store = state.store()?;
        let c = Containers::new(&store).container(&id)?;
        if !c.is_running() && !c.is_restarting() && !c.is_ending() {
            return Ok(false);
        }
        control::stop(&store, &id, sig, time)?;
        state.events.container("stop", &c, &[]);
        Ok(true)
    })
    .await?;
    Ok(http::status(match stopped {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::NOT_MODIFIED,
    }))
}

/// `POST /containers/{id}/restart?t=`.
pub async fn restart(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let time = timeout(&q)?;
    blocking(move || {
        let store = state.store()?;
        match containers::run::restart(&store, &id, time)? {
            Start::Running => {}
            Start::Ready(c) => {
                let rec = launch(&state, &store, *c)?;
                state.events.container("restart", &rec, &[]);
            }
        }
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill?signal=` (default SIGKILL).
pub async fn kill(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let sig = control::parse_signal(q.get("signal").unwrap_or("KILL"))?;
    blocking(move || {
        let store = state.store()?;
        let c = Containers::new(&store).container(&id)?;
        control::kill(&store, &id, sig)?;
        state
            .events
            .container("kill", &c, &[("signal", sig.to_string())]);
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}?force=&v=`.
pub async fn remove(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let (force, vols) = (q.flag("force"), q.flag("v"));
    blocking(move || {
        let store = state.store()?;
        let c = Containers::new(&store).container(&id)?;
        control::remove_with_volumes(&store, &id, force, vols)?;
        // Attach requests waiting for a start that will not come end.
        state.attachers.lock().expect("not poisoned").remove(&c.id);
        state.events.container("destroy", &c, &[]);
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`.
/// The headers go out at once (the docker CLI waits for them before it
/// starts the container); the body when the condition is met.
pub async fn wait(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let condition = q.get("condition").unwrap_or("not-running").to_string();
    if !matches!(condition.as_str(), "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad_request(format!(
            "invalid condition {condition:?}: want not-running, next-exit or removed"
        )));
    }
    let st = state.clone();
    let name = id.to_string();
    let (full_id, first) = blocking(move || {
        let store = st.store()?;
        match Containers::new(&store).container(&name) {
            Ok(c) => Ok((c.id.clone(), Some(c))),
            Err(containers::Error::NoSuchContainer(n)) => {
                // Started here and gone already (`--rm`): its exit is known.
                let runs = st.runs.lock().expect("not poisoned");
                match runs.keys().find(|k| k.starts_with(&n)) {
                    Some(k) if !n.is_empty() => Ok((k.clone(), None)),
                    _ => Err(containers::Error::NoSuchContainer(n).into()),
                }
            }
            Err(e) => Err(e.into()),
        }
    })
    .await?;
    let (sink, resp) = http::streamed("application/json");
    tokio::spawn(async move {
        let code = wait_for(&state, &full_id, first, &condition, &sink).await;
        if let Some(code) = code {
            let _ = sink
                .send(
                    serde_json::to_vec(&json!({ "StatusCode": code, "Error": null }))
                        .expect("plain data")
                        .into(),
                )
                .await;
        }
    });
    Ok(resp)
}

/// Polls the record (and wakes on the exit of a run this server started)
/// until `condition` holds; None when the client went away.
async fn wait_for(
    state: &Arc<State>,
    id: &str,
    first: Option<Container>,
    condition: &str,
    sink: &http::Sink,
) -> Option<i64> {
    // next-exit: an exit after a moment when it was not exited.
    let mut seen_live = first
        .as_ref()
        .is_some_and(|c| c.state != containers::State::Exited);
    let mut last_code: Option<i64> = first.and_then(|c| c.exit_code.map(i64::from));
    loop {
        let mut rx = state.run_of(id);
        let st = state.clone();
        let i = id.to_string();
        let rec = tokio::task::spawn_blocking(move || {
            let store = st.store().ok()?;
            Containers::new(&store).load(&i).ok()
        })
        .await
        .ok()
        .flatten();
        let run_code = rx.as_ref().and_then(|r| (*r.borrow()).map(i64::from));
        // A run of this server whose record is gone: its monitor removed
        // it (`--rm`) and is about to exit with the code.
        let monitor_going = rx.is_some() && run_code.is_none();
        match &rec {
            None if !monitor_going => return Some(run_code.or(last_code).unwrap_or(0)),
            None => {}
            Some(c) => {
                let exited = c.state == containers::State::Exited;
                if exited {
                    last_code = c.exit_code.map(i64::from).or(run_code);
                }
                match condition {
                    "not-running" if exited => return Some(last_code.unwrap_or(0)),
                    "next-exit" if exited && seen_live => return Some(last_code.unwrap_or(0)),
                    _ => {}
                }
                if !exited {
                    seen_live = true;
                }
            }
        }
        let changed = async {
            match rx.as_mut() {
                Some(r) => {
                    let _ = r.changed().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = sink.tx_closed() => return None,
        }
    }
}

pub async fn rename(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let new = q
        .get("name")
        .ok_or_else(|| ApiError::bad_request("name is required"))?
        .to_string();
    blocking(move || {
        let store = state.store()?;
        Containers::new(&store).rename(&id, &new)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

pub async fn pause(state: Arc<State>, id: &str, on: bool) -> ApiResult {
    let id = id.to_string();
    blocking(move || {
        let store = state.store()?;
        containers::freeze::freeze(&store, &id, on)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::NO_CONTENT))
}

/// `h` and `w` of a resize request.
pub fn size_of(q: &Query) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        let v = q
            .get(k)
            .ok_or_else(|| ApiError::bad_request(format!("{k} is required")))?;
        v.parse()
            .map_err(|_| ApiError::bad_request(format!("{k}={v:?}: not a size (0 to 65535)")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// `POST /containers/{id}/resize?h=&w=`: the size of a `-t` container's
/// pty, as a terminal's SIGWINCH in `kiln attach` sets it.
pub async fn resize(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let (rows, cols) = size_of(&q)?;
    let id = id.to_string();
    blocking(move || {
        let store = state.store()?;
        containers::attach::resize(&store, &id, rows, cols)?;
        Ok(())
    })
    .await?;
    Ok(http::status(StatusCode::OK))
}

/// `GET /containers/{id}/top?ps_args=`: `{"Titles", "Processes"}`.
pub async fn top(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let id = id.to_string();
    let args: Vec<String> = q
        .get("ps_args")
        .map(|a| a.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    let v = blocking(move || {
        let store = state.store()?;
        let c = Containers::new(&store).container(&id)?;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        let (titles, rows) = containers::top::top(&store, &id, &args)?.table();
        Ok(json!({ "Titles": titles, "Processes": rows }))
    })
    .await?;
    Ok(http::ok_json(&v))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=`:
/// `kiln commit`'s library call, `changes` applied by the builder's
/// Dockerfile config rules; 201 `{"Id"}`.
pub async fn commit(state: Arc<State>, q: Query, req: Request<Incoming>) -> ApiResult {
    let name = q
        .get("container")
        .ok_or_else(|| ApiError::bad_request("container is required"))?
        .to_string();
    // docker merges a Config in the body; its clients send none (null or
    // {}): refused rather than dropped when one comes.
    let body: Value = http::read_json(req.into_body()).await?;
    let empty = match &body {
        Value::Null => true,
        Value::Object(m) => m.values().all(Value::is_null),
        _ => false,
    };
    if !empty {
        return Err(ApiError::bad_request(
            "a container config in the commit body is not supported by kiln: use changes",
        ));
    }
    let reference = match q.get("repo") {
        None => None,
        Some(repo) => {
            let r = match q.get("tag") {
                Some(t) => format!("{repo}:{t}"),
                None => repo.to_string(),
            };
            Some(
                r.parse::<image_store::Reference>()
                    .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?,
            )
        }
    };
    let opts = containers::commit::CommitOptions {
        author: q.get("author").map(str::to_string),
        message: q.get("comment").map(str::to_string),
        pause: q.get("pause").is_none() || q.flag("pause"),
        reference: reference.clone(),
    };
    let changes: Vec<String> = q
        .all("changes")
        .into_iter()
        .filter(|c| !c.is_empty())
        .collect();
    let id = blocking(move || {
        let store = state.store()?;
        let edit = Box::new(|config: &mut _, author: &mut _| {
            builder::config::apply_changes(config, author, &changes).map_err(Into::into)
        });
        let committed = containers::commit::commit(&store, &name, opts, edit)?;
        let id = committed.id.to_string();
        state
            .events
            .image("commit", &reference.map_or(id.clone(), |r| r.to_string()));
        Ok(id)
    })
    .await?;
    Ok(http::json(StatusCode::CREATED, &json!({ "Id": id })))
}

/// `POST /containers/prune`: removes every exited container.
pub async fn prune(state: Arc<State>, q: Query) -> ApiResult {
    if !q.filters()?.is_empty() {
        return Err(ApiError::bad_request(
            "container prune filters are not supported by kiln",
        ));
    }
    let v = blocking(move || {
        let store = state.store()?;
        let mut deleted = Vec::new();
        for c in control::list(&store, true)? {
            if c.state == containers::State::Exited && !c.live() {
                control::remove(&store, &c.id, false)?;
                state.events.container("destroy", &c, &[]);
                deleted.push(c.id);
            }
        }
        Ok(json!({ "ContainersDeleted": deleted, "SpaceReclaimed": 0 }))
    })
    .await?;
    Ok(http::ok_json(&v))
}
