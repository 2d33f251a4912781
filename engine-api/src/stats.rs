//! `GET /containers/{id}/stats?stream=&one-shot=`: `kiln stats`'s
//! readings ([`containers::stats::stats`]) in docker's stats JSON, whose
//! clients (`docker stats`, the SDKs) compute CPU percentage, memory and
//! I/O themselves from the raw counters: `cpu_stats` and `precpu_stats`
//! are the two readings one interval apart.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use containers::stats::Stats;
use containers::Containers;
use serde_json::{json, Value};

use crate::http::{self, blocking, ApiError, ApiResult, Query};
use crate::state::State;

/// docker's sampling interval (its stream sends one object a second).
const INTERVAL: Duration = Duration::from_secs(1);

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// One stats object in docker's shape.
pub fn to_json(s: &Stats) -> Value {
    let cpu = |total: u64, system: u64| {
        json!({
            "cpu_usage": { "total_usage": total },
            "system_cpu_usage": system,
            "online_cpus": s.online_cpus,
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        })
    };
    json!({
        "id": s.id,
        "name": format!("/{}", s.name),
        "read": time(&s.read_at.1),
        "preread": time(&s.read_at.0),
        "num_procs": 0,
        "pids_stats": { "current": s.pids },
        "cpu_stats": cpu(s.cpu_ns.1, s.system_cpu_ns.1),
        "precpu_stats": cpu(s.cpu_ns.0, s.system_cpu_ns.0),
        // No `stats` breakdown: clients then take `usage` as it is.
        "memory_stats": { "usage": s.mem_usage, "limit": s.mem_limit, "stats": {} },
        "blkio_stats": {
            "io_service_bytes_recursive": [
                { "major": 0, "minor": 0, "op": "read", "value": s.block_read },
                { "major": 0, "minor": 0, "op": "write", "value": s.block_write },
            ],
        },
        // The container's interfaces together (kiln reads the namespace's
        // totals, loopback left out).
        "networks": { "eth0": {
            "rx_bytes": s.net_rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": s.net_tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }},
        "storage_stats": {},
    })
}

/// Reads container `id` once (over `interval`).
fn read(state: &State, id: &str, interval: Duration) -> ApiResult<(Stats, bool)> {
    let store = state.store()?;
    let mut list = containers::stats::stats(&store, &[id.to_string()], false, interval)?;
    let s = list
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("No such container: {id}")))?;
    let running = Containers::new(&store)
        .load(&s.id)
        .is_ok_and(|c| c.is_running());
    Ok((s, running))
}

/// `stream=false`: one object (two readings a second apart; `one-shot`:
/// no wait, no `precpu_stats` difference). `stream=true` (the default):
/// one object a second while the container runs.
pub async fn stats(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let stream = q.get("stream").is_none() || q.flag("stream");
    let one_shot = q.flag("one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let name = id.to_string();
    let st = state.clone();
    // The container's full ID (and a 404 before the stream begins).
    let id = blocking(move || Ok(Containers::new(&st.store()?).container(&name)?.id)).await?;
    if !stream {
        let interval = if one_shot { Duration::ZERO } else { INTERVAL };
        let (s, _) = blocking(move || read(&state, &id, interval)).await?;
        return Ok(http::ok_json(&to_json(&s)));
    }
    let (sink, resp) = http::streamed("application/json");
    tokio::task::spawn_blocking(move || loop {
        let (s, running) = match read(&state, &id, INTERVAL) {
            Ok(r) => r,
            // Removed meanwhile: the stream ends.
            Err(_) => return,
        };
        if sink.json_line(&to_json(&s)).is_err() || !running {
            return;
        }
    });
    Ok(resp)
}
