//! A container's output to a client: `logs` (the log file, as `kiln
//! logs`) and `attach` (the output of the run that is going on, or of the
//! next one: the docker CLI attaches before it starts a container), both
//! in docker's multiplexed stream format (stdout frames 1, stderr 2).
//! Attach reads the container's log file as its monitor writes it; the
//! file is opened before the container can write (or, for a running one,
//! read from its end), so nothing is missed, even when `--rm` removes it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use containers::logfile::{self, LogOptions};
use containers::{control, Containers};
use hyper::body::Incoming;
use hyper::Request;

use crate::http::{self, blocking, ApiError, ApiResult, Mux, Query, Sink};
use crate::state::State;

const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// One buffered writer shared by the two streams' framers, so frames keep
/// their order.
#[derive(Clone)]
struct Shared(Arc<Mutex<io::BufWriter<Sink>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().expect("not poisoned").flush()
    }
}

/// The two framed outputs (a stream not asked for goes nowhere).
fn outputs(sink: Sink, stdout: bool, stderr: bool) -> (Box<dyn Write>, Box<dyn Write>, Shared) {
    let shared = Shared(Arc::new(Mutex::new(io::BufWriter::with_capacity(
        32 << 10,
        sink,
    ))));
    let pick = |on: bool, stream: u8| -> Box<dyn Write> {
        match on {
            true => Box::new(Mux {
                out: shared.clone(),
                stream,
            }),
            false => Box::new(io::sink()),
        }
    };
    (pick(stdout, 1), pick(stderr, 2), shared.clone())
}

fn log_options(q: &Query, follow: bool) -> ApiResult<LogOptions> {
    let now = chrono::Utc::now();
    let time = |k: &str| -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
        match q.get(k) {
            None | Some("0") => Ok(None),
            Some(t) => Ok(Some(logfile::parse_time(t, now)?)),
        }
    };
    let tail = match q.get("tail") {
        None | Some("all") => None,
        Some(n) => match n.parse::<i64>() {
            Ok(n) if n < 0 => None,
            Ok(n) => Some(n as usize),
            Err(_) => return Err(ApiError::bad_request(format!("invalid tail {n:?}"))),
        },
    };
    Ok(LogOptions {
        follow,
        since: time("since")?,
        until: time("until")?,
        timestamps: q.flag("timestamps"),
        tail,
        parts: false,
        poll: None,
    })
}

/// `GET /containers/{id}/logs?stdout=&stderr=&follow=&tail=&since=&until=&timestamps=`.
pub async fn logs(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let opts = log_options(&q, q.flag("follow"))?;
    let id = id.to_string();
    let st = state.clone();
    let i = id.clone();
    blocking(move || Ok(Containers::new(&st.store()?).container(&i).map(|_| ())?)).await?;
    let (sink, resp) = http::streamed(RAW_STREAM);
    tokio::task::spawn_blocking(move || {
        let (mut out, mut err, mut shared) = outputs(sink, stdout, stderr);
        let res = state
            .store()
            .and_then(|s| Ok(control::logs(&s, &id, &opts, &mut out, &mut err)?));
        let _ = shared.flush();
        if let Err(e) = res {
            // The stream has begun: the client sees it end early.
            if !matches!(e.status, hyper::StatusCode::CONFLICT) {
                eprintln!("kiln: logs of {id}: {}", e.message);
            }
        }
    });
    Ok(resp)
}

/// Where an attach reads from: the running container's log from its
/// current end (or start, `logs=1`), or the next run's, once started.
enum Source {
    Now(File, u64),
    Next(tokio::sync::oneshot::Receiver<File>),
}

/// `POST /containers/{id}/attach?stream=1&stdout=1&stderr=1`: hijacked.
pub async fn attach(
    state: Arc<State>,
    id: &str,
    q: Query,
    mut req: Request<Incoming>,
) -> ApiResult {
    if q.flag("stdin") {
        return Err(ApiError::not_implemented(
            "attaching standard input (docker run -i, docker attach)",
        ));
    }
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    let from_start = q.flag("logs");
    if !q.flag("stream") {
        return Err(ApiError::not_implemented(
            "attach without stream=1 (use the logs endpoint)",
        ));
    }
    let upgrade = http::upgrade_of(&mut req);
    let st = state.clone();
    let name = id.to_string();
    let (cid, source) = blocking(move || {
        let store = st.store()?;
        let containers = Containers::new(&store);
        let c = containers.container(&name)?;
        let path = containers
            .container_dir(&c.id)
            .join(containers::run::LOG_FILE);
        if c.is_running() {
            let f = File::open(&path)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            let start = if from_start {
                0
            } else {
                f.metadata().map(|m| m.len()).unwrap_or(0)
            };
            return Ok((c.id, Source::Now(f, start)));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        st.attachers
            .lock()
            .expect("not poisoned")
            .entry(c.id.clone())
            .or_default()
            .push(tx);
        Ok((c.id, Source::Next(rx)))
    })
    .await?;
    let active = state.activity.enter();
    Ok(http::hijack(
        upgrade,
        RAW_STREAM,
        move |_input, sink| async move {
            let _active = active;
            let (file, start) = match source {
                Source::Now(f, s) => (f, s),
                Source::Next(rx) => {
                    tokio::select! {
                        f = rx => match f {
                            Ok(f) => (f, 0),
                            // The start failed: the stream just ends.
                            Err(_) => return,
                        },
                        _ = sink.tx_closed() => return,
                    }
                }
            };
            let _ = tokio::task::spawn_blocking(move || {
                follow(&state, &cid, file, start, sink, stdout, stderr)
            })
            .await;
        },
    ))
}

/// Copies the run's output until its monitor has gone and the file is
/// read to its end.
fn follow(
    state: &Arc<State>,
    id: &str,
    file: File,
    start: u64,
    sink: Sink,
    stdout: bool,
    stderr: bool,
) {
    let run = state.run_of(id);
    let store = state.store().ok();
    let mut live = || match &run {
        Some(r) => r.borrow().is_none(),
        // Started by another kiln: its record says.
        None => store.as_ref().is_some_and(|s| {
            Containers::new(s)
                .load(id)
                .is_ok_and(|c| c.is_running() || c.is_restarting() || c.is_ending())
        }),
    };
    let (mut out, mut err, mut shared) = outputs(sink, stdout, stderr);
    // Polled often: the client (`docker run`) waits for the stream's end
    // once the run has ended.
    let opts = LogOptions {
        follow: true,
        poll: Some(std::time::Duration::from_millis(10)),
        ..Default::default()
    };
    let path = std::path::Path::new(containers::run::LOG_FILE);
    let _ = logfile::print_file(file, path, start, &opts, &mut live, &mut out, &mut err);
    let _ = shared.flush();
}
