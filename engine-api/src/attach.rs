//! A container's output to a client: `logs` (the log file, as `kiln
//! logs`) and `attach` (the output of the run that is going on, or of the
//! next one: the docker CLI attaches before it starts a container), both
//! in docker's multiplexed stream format (stdout frames 1, stderr 2), or
//! raw for a container on a tty. Attach also takes the client's input
//! into the container's (`-i`).
//! Attach reads the container's log file as its monitor writes it; the
//! file is opened before the container can write (or, for a running one,
//! read from its end), so nothing is missed, even when `--rm` removes it.

use std::fs::File;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
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

/// The two outputs, framed (a stream not asked for goes nowhere), or
/// raw on a tty (its one stream: kiln's own messages in the log too).
fn outputs(
    sink: Sink,
    stdout: bool,
    stderr: bool,
    tty: bool,
) -> (Box<dyn Write>, Box<dyn Write>, Shared) {
    let shared = Shared(Arc::new(Mutex::new(io::BufWriter::with_capacity(
        32 << 10,
        sink,
    ))));
    let pick = |on: bool, stream: u8| -> Box<dyn Write> {
        match on {
            true => Box::new(Mux {
                out: shared.clone(),
                stream: if tty { 0 } else { stream },
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

/// Whether container `id` runs on a tty (its logs go out raw, as
/// docker's: clients read `Config.Tty` to know).
fn tty_of(state: &State, id: &str) -> bool {
    state.store().is_ok_and(|s| {
        let containers = Containers::new(&s);
        containers
            .container(id)
            .is_ok_and(|c| containers::attach::has_terminal(&containers.container_dir(&c.id)))
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
        let tty = tty_of(&state, &id);
        let (mut out, mut err, mut shared) = outputs(sink, stdout, stderr, tty);
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

/// What one attach is to the container.
struct Attached {
    id: String,
    /// On a pty: output goes out raw, input is a terminal's keys.
    tty: bool,
    /// The container's input FIFO (`stdin=1` on an `OpenStdin` one): a
    /// handle that reads and writes, held until the run begins (none for
    /// a running container), and the client's writing end.
    input: Option<(Option<File>, File)>,
    /// The record's start time when attached: input kept for the run
    /// after it (see [`feed`]).
    started: Option<String>,
}

/// `POST /containers/{id}/attach?stream=1&stdin=&stdout=&stderr=&logs=`:
/// hijacked (docker's `101 UPGRADED`). Output comes from the container's
/// log (framed, or raw for a tty); the client's bytes go into its input
/// FIFO through `kiln attach`'s relay, Ctrl-P Ctrl-Q detaching on a tty.
pub async fn attach(
    state: Arc<State>,
    id: &str,
    q: Query,
    mut req: Request<Incoming>,
) -> ApiResult {
    let (stdout, stderr) = (q.flag("stdout"), q.flag("stderr"));
    let from_start = q.flag("logs");
    if !q.flag("stream") {
        return Err(ApiError::not_implemented(
            "attach without stream=1 (use the logs endpoint)",
        ));
    }
    if q.get("detachKeys")
        .is_some_and(|k| !k.is_empty() && k != "ctrl-p,ctrl-q")
    {
        return Err(ApiError::bad_request(
            "detachKeys: kiln detaches with docker's default ctrl-p,ctrl-q only",
        ));
    }
    let want_input = q.flag("stdin");
    let upgrade = http::upgrade_of(&mut req);
    let st = state.clone();
    let name = id.to_string();
    let (attached, source) = blocking(move || {
        let store = st.store()?;
        let containers = Containers::new(&store);
        let c = containers.container(&name)?;
        let dir = containers.container_dir(&c.id);
        let (open_stdin, _) = containers::run::input_of(&dir);
        // Opened (made, before a start) now: what the client sends before
        // the container reads is kept in the FIFO.
        let input = match want_input && open_stdin {
            true => {
                let held = containers::attach::open_stdin(&dir)?;
                let writer = containers::attach::stdin_writer(&dir)?;
                // A running container's monitor holds the FIFO already.
                Some(((!c.is_running()).then_some(held), writer))
            }
            false => None,
        };
        let attached = Attached {
            id: c.id.clone(),
            tty: containers::attach::has_terminal(&dir),
            input,
            started: c.started.clone(),
        };
        let path = dir.join(containers::run::LOG_FILE);
        if c.is_running() {
            let f = File::open(&path)
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            let start = if from_start {
                0
            } else {
                f.metadata().map(|m| m.len()).unwrap_or(0)
            };
            return Ok((attached, Source::Now(f, start)));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        st.attachers
            .lock()
            .expect("not poisoned")
            .entry(c.id.clone())
            .or_default()
            .push(tx);
        Ok((attached, Source::Next(rx)))
    })
    .await?;
    let active = state.activity.enter();
    Ok(http::hijack(
        upgrade,
        RAW_STREAM,
        move |input, sink| async move {
            let _active = active;
            let detached = Arc::new(AtomicBool::new(false));
            let done = Arc::new(AtomicBool::new(false));
            let Attached {
                id: cid,
                tty,
                input: fifo,
                started,
            } = attached;
            if let Some(fifo) = fifo {
                let (st, id) = (state.clone(), cid.clone());
                let (det, done) = (detached.clone(), done.clone());
                let rt = tokio::runtime::Handle::current();
                std::thread::spawn(move || {
                    let mut from = tokio_util::io::SyncIoBridge::new_with_handle(input, rt);
                    feed(&st, &id, &mut from, fifo, tty, started, &det, &done)
                });
            }
            let (file, start) = match source {
                Source::Now(f, s) => (f, s),
                Source::Next(rx) => {
                    tokio::select! {
                        f = rx => match f {
                            Ok(f) => (f, 0),
                            // The start failed: the stream just ends.
                            Err(_) => {
                                done.store(true, Ordering::SeqCst);
                                return;
                            }
                        },
                        _ = sink.tx_closed() => {
                            done.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            };
            let out = Output {
                stdout,
                stderr,
                tty,
                detached,
            };
            let _ = tokio::task::spawn_blocking(move || {
                follow(&state, &cid, file, start, sink, out);
            })
            .await;
            done.store(true, Ordering::SeqCst);
        },
    ))
}

/// Copies the client's input into the container's FIFO (`kiln attach`'s
/// relay). The FIFO's reading handle `held` stays open here until the run
/// that follows the attach has begun (its monitor reads it then), so that
/// what a client sends and closes before the start (`echo x | docker run
/// -i`) is not lost with the last handle; then the client's end is the
/// only writer (a `StdinOnce` container reads end of file when it
/// closes), and a write fails once the container's monitor has gone.
#[allow(clippy::too_many_arguments)]
fn feed(
    state: &Arc<State>,
    id: &str,
    from: &mut dyn std::io::Read,
    (held, fifo): (Option<File>, File),
    tty: bool,
    started: Option<String>,
    detached: &Arc<AtomicBool>,
    done: &Arc<AtomicBool>,
) {
    if let Some(held) = held {
        let (store, i, d) = (state.store().ok(), id.to_string(), done.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                let begun = store.as_ref().is_none_or(|s| {
                    Containers::new(s)
                        .load(&i)
                        .map_or(true, |c| c.started != started)
                });
                if begun {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(held);
        });
    }
    if containers::attach::relay(from, fifo, tty) {
        detached.store(true, Ordering::SeqCst);
    }
}

/// What an attach sends: which streams, framed or raw (a tty's one
/// stream), and until when.
struct Output {
    stdout: bool,
    stderr: bool,
    tty: bool,
    /// Set when the client detached (Ctrl-P Ctrl-Q).
    detached: Arc<AtomicBool>,
}

/// Copies the run's output until its monitor has gone and the file is
/// read to its end (or the client detached).
fn follow(state: &Arc<State>, id: &str, file: File, start: u64, sink: Sink, o: Output) {
    let run = state.run_of(id);
    let store = state.store().ok();
    let mut live = || {
        !o.detached.load(Ordering::SeqCst)
            && match &run {
                Some(r) => r.borrow().is_none(),
                // Started by another kiln: its record says.
                None => store.as_ref().is_some_and(|s| {
                    Containers::new(s)
                        .load(id)
                        .is_ok_and(|c| c.is_running() || c.is_restarting() || c.is_ending())
                }),
            }
    };
    let (mut out, mut err, mut shared) = outputs(sink, o.stdout, o.stderr, o.tty);
    // Polled often: the client (`docker run`) waits for the stream's end
    // once the run has ended. A tty's output goes out as it comes (a
    // prompt has no newline).
    let opts = LogOptions {
        follow: true,
        poll: Some(std::time::Duration::from_millis(10)),
        parts: o.tty,
        ..Default::default()
    };
    let path = std::path::Path::new(containers::run::LOG_FILE);
    let _ = logfile::print_file(file, path, start, &opts, &mut live, &mut out, &mut err);
    let _ = shared.flush();
}
