//! `/events`: what this server did to containers and images (create,
//! start, die, destroy; pull, tag, delete, push), as docker's event
//! messages. Kept in memory: the last few for `since`, the rest only for
//! clients listening when they happen.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::http::{self, ApiResult, Query};
use crate::state::State;

/// Events kept for `since`.
const KEPT: usize = 256;

pub struct Events {
    tx: broadcast::Sender<Value>,
    recent: Mutex<VecDeque<Value>>,
}

impl Default for Events {
    fn default() -> Self {
        Events::new()
    }
}

impl Events {
    pub fn new() -> Events {
        Events {
            tx: broadcast::channel(KEPT).0,
            recent: Mutex::new(VecDeque::new()),
        }
    }

    fn emit(&self, kind: &str, action: &str, id: &str, attrs: Value) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or(0);
        let mut e = json!({
            "Type": kind,
            "Action": action,
            "Actor": { "ID": id, "Attributes": attrs },
            "scope": "local",
            "time": now.timestamp(),
            "timeNano": nanos,
        });
        // The old (pre-1.22) fields, which some clients still read.
        if kind == "container" || kind == "image" {
            e["status"] = json!(action);
            e["id"] = json!(id);
            if let Some(img) = e["Actor"]["Attributes"]["image"].as_str() {
                e["from"] = json!(img);
            }
        }
        let mut r = self.recent.lock().expect("not poisoned");
        if r.len() == KEPT {
            r.pop_front();
        }
        r.push_back(e.clone());
        drop(r);
        let _ = self.tx.send(e);
    }

    /// A container event; `extra` attributes (e.g. `exitCode`) beside its
    /// name and image.
    pub fn container(&self, action: &str, c: &containers::Container, extra: &[(&str, String)]) {
        let mut attrs = json!({ "name": c.name, "image": c.image });
        for (k, v) in &c.labels {
            attrs[k] = json!(v);
        }
        for (k, v) in extra {
            attrs[*k] = json!(v);
        }
        self.emit("container", action, &c.id, attrs);
    }

    pub fn image(&self, action: &str, name: &str) {
        self.emit("image", action, name, json!({ "name": name }));
    }
}

fn parse_when(s: Option<&str>) -> Option<f64> {
    s.and_then(|s| s.parse::<f64>().ok())
}

fn matches(e: &Value, filters: &[(String, String)]) -> bool {
    let attrs = &e["Actor"]["Attributes"];
    let mut by_key: std::collections::BTreeMap<&str, bool> = Default::default();
    for (k, v) in filters {
        let hit = match k.as_str() {
            "type" => e["Type"] == v.as_str(),
            "event" => e["Action"] == v.as_str(),
            "container" => {
                e["Type"] == "container"
                    && (attrs["name"] == v.as_str()
                        || e["Actor"]["ID"]
                            .as_str()
                            .is_some_and(|id| id.starts_with(v)))
            }
            "image" => attrs["image"] == v.as_str() || attrs["name"] == v.as_str(),
            "label" => match v.split_once('=') {
                Some((lk, lv)) => attrs[lk] == lv,
                None => !attrs[v.as_str()].is_null(),
            },
            _ => false,
        };
        let slot = by_key.entry(k.as_str()).or_insert(false);
        *slot |= hit;
    }
    by_key.values().all(|v| *v)
}

/// `GET /events?since=&until=&filters=`: the kept events since `since`,
/// then live ones until `until` (or until the client goes).
pub fn stream(state: Arc<State>, q: Query) -> ApiResult {
    let since = parse_when(q.get("since"));
    let until = parse_when(q.get("until"));
    let filters = q.filters()?;
    let mut rx = state.events.tx.subscribe();
    let backlog: Vec<Value> = match since {
        Some(s) => state
            .events
            .recent
            .lock()
            .expect("not poisoned")
            .iter()
            .filter(|e| e["time"].as_f64().is_some_and(|t| t >= s.floor()))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    let (sink, resp) = http::streamed("application/json");
    let active = state.activity.enter();
    tokio::spawn(async move {
        let _active = active;
        let line = |e: &Value| {
            let mut d = serde_json::to_vec(e).expect("plain data");
            d.push(b'\n');
            Bytes::from(d)
        };
        let before_until = |e: &Value| until.is_none_or(|u| e["time"].as_f64().unwrap_or(0.0) <= u);
        for e in backlog
            .iter()
            .filter(|e| before_until(e) && matches(e, &filters))
        {
            if sink.send(line(e)).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            std::time::Duration::from_secs_f64((u - now).max(0.0))
        });
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => return,
                e = rx.recv() => match e {
                    Ok(e) => {
                        if matches(&e, &filters) && sink.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
                // The client went away.
                _ = sink.tx_closed() => return,
            }
        }
    });
    Ok(resp)
}
