//! Exec instances: `POST /containers/{id}/exec` records what to run,
//! `/exec/{id}/start` runs it through `kiln exec`'s library call with the
//! server's pipes as its stdio (the output framed on the hijacked
//! connection, or raw from a `Tty` exec's pty, the client's input into
//! its stdin), `/exec/{id}/resize` sizes that pty, `/exec/{id}/json`
//! reports it (the CLI reads the exit code there).

use std::io::{Read as _, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use containers::exec::{ExecRequest, Outcome};
use containers::Containers;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::http::{self, blocking, ApiError, ApiResult, Input, Mux, Query, Sink};
use crate::state::State;

/// One exec, created and not yet (or already) run.
pub struct ExecInstance {
    pub id: String,
    pub container: String,
    pub request: ExecRequest,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// On a pty of its own (`Tty`): one raw output stream, resizable.
    pub tty: bool,
    pub pty: Mutex<Pty>,
    pub status: Mutex<ExecStatus>,
}

/// A running exec's pty and the size last asked for it (a client resizes
/// as soon as it started the exec, maybe before its process runs).
#[derive(Debug, Default)]
pub struct Pty {
    fd: Option<OwnedFd>,
    size: Option<(u16, u16)>,
}

impl Pty {
    fn apply(&self) {
        if let (Some(fd), Some((rows, cols))) = (&self.fd, self.size) {
            let _ = containers::attach::set_pty_size(fd, rows, cols);
        }
    }
}

#[derive(Debug, Default, Clone)]
pub struct ExecStatus {
    pub started: bool,
    pub running: bool,
    pub exit_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: Option<bool>,
    attach_stdout: Option<bool>,
    attach_stderr: Option<bool>,
    tty: Option<bool>,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    privileged: Option<bool>,
    user: Option<String>,
    working_dir: Option<String>,
}

/// `POST /containers/{id}/exec`: 201 `{"Id"}`; 409 when it is not running.
pub async fn create(state: Arc<State>, id: &str, req: Request<Incoming>) -> ApiResult {
    let body: CreateBody = http::read_json(req.into_body()).await?;
    let tty = body.tty.unwrap_or(false);
    let cmd = body.cmd.unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    let name = id.to_string();
    let st = state.clone();
    let container = blocking(move || {
        let store = st.store()?;
        let c = Containers::new(&store).container(&name)?;
        if !c.is_running() {
            return Err(ApiError::conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        Ok(c.id)
    })
    .await?;
    let exec_id = containers::names::new_id()?;
    let request = ExecRequest {
        container: container.clone(),
        command: cmd,
        env: body.env.unwrap_or_default(),
        user: body.user.filter(|u| !u.is_empty()),
        workdir: body.working_dir.filter(|w| !w.is_empty()),
        terminal: tty,
        interactive: body.attach_stdin.unwrap_or(false),
        detach: false,
        privileged: body.privileged.unwrap_or(false),
        fds: None,
    };
    let inst = ExecInstance {
        id: exec_id.clone(),
        container,
        request,
        stdin: body.attach_stdin.unwrap_or(false),
        stdout: body.attach_stdout.unwrap_or(true),
        stderr: body.attach_stderr.unwrap_or(true),
        tty,
        pty: Mutex::new(Pty::default()),
        status: Mutex::new(ExecStatus::default()),
    };
    state
        .execs
        .lock()
        .expect("not poisoned")
        .insert(exec_id.clone(), Arc::new(inst));
    Ok(http::json(StatusCode::CREATED, &json!({ "Id": exec_id })))
}

fn instance(state: &State, id: &str) -> ApiResult<Arc<ExecInstance>> {
    state
        .execs
        .lock()
        .expect("not poisoned")
        .get(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
}

/// `Tty` here is the one given at create (docker's CLI sends both).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: Option<bool>,
}

/// A pipe, both ends close-on-exec (the runner dups the child's end).
fn pipe() -> ApiResult<(std::fs::File, std::fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ApiError::internal(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both were just created and are owned here.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((r.into(), w.into()))
}

/// `POST /exec/{id}/start`: hijacked unless `Detach`.
pub async fn start(state: Arc<State>, id: &str, mut req: Request<Incoming>) -> ApiResult {
    let inst = instance(&state, id)?;
    let upgrade = http::upgrade_of(&mut req);
    let body: StartBody = http::read_json(req.into_body()).await?;
    {
        let mut s = inst.status.lock().expect("not poisoned");
        if s.started {
            return Err(ApiError::conflict(format!(
                "exec {} has already been started",
                inst.id
            )));
        }
        s.started = true;
        s.running = true;
    }
    if body.detach == Some(true) {
        let mut request = inst.request.clone();
        request.detach = true;
        request.interactive = false;
        let i = inst.clone();
        let st = state.clone();
        blocking(move || {
            let store = st.store()?;
            let res = containers::exec::exec(&store, &request);
            i.status.lock().expect("not poisoned").running = false;
            res?;
            Ok(())
        })
        .await?;
        forget_later(state, inst.id.clone());
        return Ok(http::status(StatusCode::OK));
    }
    let active = state.activity.enter();
    Ok(http::hijack(
        upgrade,
        "application/vnd.docker.raw-stream",
        move |input, sink| async move {
            let _active = active;
            let (st, id) = (state.clone(), inst.id.clone());
            let _ = tokio::task::spawn_blocking(move || run(&state, &inst, input, sink)).await;
            forget_later(st, id);
        },
    ))
}

/// Runs the exec with pipes for its stdio, copying its output to `sink`
/// (framed) and `input` to its stdin, and records its exit code before
/// the stream ends.
fn run(state: &Arc<State>, inst: &Arc<ExecInstance>, input: Input, sink: Sink) {
    let finish = |code: i32| {
        let mut s = inst.status.lock().expect("not poisoned");
        s.running = false;
        s.exit_code = Some(code);
    };
    let pipes = (|| -> ApiResult<_> { Ok((pipe()?, pipe()?, pipe()?)) })();
    let Ok(((in_r, in_w), (out_r, out_w), (err_r, err_w))) = pipes else {
        finish(126);
        return;
    };
    let mut request = inst.request.clone();
    request.fds = Some([in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]);
    let shared = Arc::new(Mutex::new(sink));
    // A pty's output is one stream, sent raw.
    let framing = |stream: u8| if inst.tty { 0 } else { stream };
    let pump = |mut r: std::fs::File, stream: u8, on: bool| {
        let shared = shared.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 32 << 10];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if !on {
                    continue;
                }
                let mut sink = shared.lock().expect("not poisoned");
                let mut mux = Mux {
                    out: &mut *sink,
                    stream,
                };
                // A client that went away: the output is drained unread.
                let _ = mux.write_all(&buf[..n]);
            }
        })
    };
    let out_t = pump(out_r, framing(1), inst.stdout);
    let err_t = pump(err_r, framing(2), inst.stderr);
    // The client's input, until it closes its side.
    let stdin = inst.stdin;
    let rt = tokio::runtime::Handle::current();
    let feeder = std::thread::spawn(move || {
        let mut w = in_w;
        if stdin {
            let mut bridge = tokio_util::io::SyncIoBridge::new_with_handle(input, rt);
            let _ = std::io::copy(&mut bridge, &mut w);
        }
        drop(w);
    });
    let code = match state.store() {
        Ok(store) => match containers::exec::exec_with(&store, &request, |pty| {
            let mut p = inst.pty.lock().expect("not poisoned");
            p.fd = pty;
            p.apply();
        }) {
            Ok(Outcome::Exited(s)) => s.code() as i32,
            Ok(Outcome::Detached) => 0,
            Err(e) => {
                let msg = format!("kiln: {}\n", ApiError::from(e).message);
                let mut sink = shared.lock().expect("not poisoned");
                let _ = Mux {
                    out: &mut *sink,
                    stream: framing(2),
                }
                .write_all(msg.as_bytes());
                126
            }
        },
        Err(_) => 125,
    };
    // Our copies of the process's ends: the readers see EOF once it and
    // its children are gone.
    drop(out_w);
    drop(err_w);
    drop(in_r);
    inst.pty.lock().expect("not poisoned").fd = None;
    finish(code);
    let _ = out_t.join();
    let _ = err_t.join();
    // The feeder may still wait for input the client never sends; it
    // ends with the connection.
    drop(feeder);
}

/// An ended exec is kept a while for its inspect, then forgotten (memory
/// stays bounded).
fn forget_later(state: Arc<State>, id: String) {
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(300)).await;
        state.execs.lock().expect("not poisoned").remove(&id);
    });
}

/// `GET /exec/{id}/json`.
pub async fn inspect(state: Arc<State>, id: &str) -> ApiResult {
    let inst = instance(&state, id)?;
    let s = inst.status.lock().expect("not poisoned").clone();
    let r = &inst.request;
    Ok(http::ok_json(&json!({
        "ID": inst.id,
        "Running": s.running,
        "ExitCode": s.exit_code,
        "ProcessConfig": {
            "entrypoint": r.command.first(),
            "arguments": r.command.get(1..).unwrap_or_default(),
            "privileged": r.privileged,
            "tty": inst.tty,
            "user": r.user.clone().unwrap_or_default(),
        },
        "OpenStdin": inst.stdin,
        "OpenStdout": inst.stdout,
        "OpenStderr": inst.stderr,
        "CanRemove": false,
        "ContainerID": inst.container,
        "DetachKeys": "",
        "Pid": 0,
    })))
}

/// `POST /exec/{id}/resize?h=&w=`: the size of a `Tty` exec's pty, set
/// now if it runs, else when it starts.
pub async fn resize(state: Arc<State>, id: &str, q: Query) -> ApiResult {
    let inst = instance(&state, id)?;
    let size = crate::containers::size_of(&q)?;
    if !inst.tty {
        return Err(ApiError::bad_request(format!(
            "exec {} has no terminal to resize (it was created without Tty)",
            inst.id
        )));
    }
    let mut p = inst.pty.lock().expect("not poisoned");
    p.size = Some(size);
    p.apply();
    Ok(http::status(StatusCode::OK))
}
