//! Listening: a unix socket (0660, replaced when stale) and/or TCP, one
//! HTTP/1.1 connection task each (with upgrades, for attach and exec), and
//! the idle exit of `--time`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::state::{MonitorFn, State};

#[derive(Debug, Clone)]
pub enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Listen {
    /// `unix:///path`, `tcp://HOST:PORT` (or a bare path).
    pub fn parse(s: &str) -> Result<Listen> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                bail!("{s:?}: no socket path");
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp://") {
            let addr: SocketAddr = a
                .parse()
                .with_context(|| format!("{s:?}: want tcp://IP:PORT"))?;
            return Ok(Listen::Tcp(addr));
        }
        if s.starts_with('/') {
            return Ok(Listen::Unix(PathBuf::from(s)));
        }
        bail!("{s:?}: want unix:///PATH or tcp://IP:PORT")
    }
}

pub struct Config {
    pub root: PathBuf,
    pub listen: Vec<Listen>,
    /// Exit after this long with no connection open; None: never.
    pub idle: Option<Duration>,
    pub monitor: MonitorFn,
}

/// Serves until idle for `config.idle`, or SIGINT/SIGTERM; removes the
/// socket files it made.
pub async fn serve(config: Config) -> Result<()> {
    let state = Arc::new(State::new(config.root, config.monitor));
    let mut sockets = Vec::new();
    for l in &config.listen {
        match l {
            Listen::Unix(path) => {
                let listener = bind_unix(path)?;
                sockets.push(path.clone());
                let st = state.clone();
                tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((s, _)) => connection(st.clone(), s),
                            Err(e) => eprintln!("kiln: accepting a connection: {e}"),
                        }
                    }
                });
            }
            Listen::Tcp(addr) => {
                if !addr.ip().is_loopback() {
                    eprintln!(
                        "kiln: WARNING: serving the Engine API on {addr} without TLS or \
                         authentication: anyone who can reach it is root on this host"
                    );
                }
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                let st = state.clone();
                tokio::spawn(async move {
                    loop {
                        match listener.accept().await {
                            Ok((s, _)) => connection(st.clone(), s),
                            Err(e) => eprintln!("kiln: accepting a connection: {e}"),
                        }
                    }
                });
            }
        }
    }
    let idle = async {
        match config.idle {
            None => std::future::pending::<()>().await,
            Some(limit) => loop {
                let left = limit.saturating_sub(state.activity.idle_for());
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.max(Duration::from_millis(100))).await;
            },
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = idle => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    for s in sockets {
        let _ = std::fs::remove_file(s);
    }
    Ok(())
}

fn bind_unix(path: &std::path::Path) -> Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        // A socket nobody answers on is a dead server's: replaced.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use by a running server", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
    }
    let l = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("listening on {}", path.display()))?;
    // Owner and group only: the API can do anything root can.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    Ok(l)
}

fn connection<S>(state: Arc<State>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let active = state.activity.enter();
    tokio::spawn(async move {
        let st = state.clone();
        let svc = service_fn(move |req| crate::router::handle(st.clone(), req));
        let _ = http1::Builder::new()
            .serve_connection(TokioIo::new(stream), svc)
            .with_upgrades()
            .await;
        drop(active);
    });
}
