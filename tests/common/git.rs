//! Git helpers for the end-to-end tests: a `git daemon` on a free
//! loopback port and `git` with a fixed identity.

use std::path::Path;
use std::process::Command;

/// A `git daemon` serving `base` on a free loopback port; killed on drop.
pub struct GitDaemon {
    child: std::process::Child,
    pub port: u16,
}

impl GitDaemon {
    pub fn start(base: &Path) -> GitDaemon {
        super::require_tool("git");
        let port = test_support::free_port();
        // git-daemon itself, not `git daemon`: the wrapper would leave the
        // daemon running when killed.
        let exec_path = Command::new("git").arg("--exec-path").output().unwrap();
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "git daemon did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        GitDaemon { child, port }
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=kiln", "-c", "user.email=kiln@example.com"])
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// `git http-backend` (smart HTTP) for the bare repositories under `root`,
/// behind the test-support HTTP server on a free loopback port.
pub fn http_backend(root: &Path) -> test_support::http::Server {
    use std::io::Write;
    use test_support::http::{Response, Server};
    let root = root.to_path_buf();
    Server::start(move |req| {
        let (path, query) = req.target.split_once('?').unwrap_or((&req.target, ""));
        let mut cmd = Command::new("git");
        cmd.arg("http-backend")
            .env("GIT_PROJECT_ROOT", &root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("REQUEST_METHOD", &req.method)
            .env("PATH_INFO", path)
            .env("QUERY_STRING", query)
            .env("CONTENT_LENGTH", req.body.len().to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        for (header, var) in [
            ("content-type", "CONTENT_TYPE"),
            ("content-encoding", "HTTP_CONTENT_ENCODING"),
            ("git-protocol", "GIT_PROTOCOL"),
        ] {
            if let Some(v) = req.header(header) {
                cmd.env(var, v);
            }
        }
        let mut child = cmd.spawn().expect("git http-backend");
        child.stdin.take().unwrap().write_all(&req.body).unwrap();
        let out = child.wait_with_output().unwrap();
        // CGI: headers, a blank line, the body.
        let split = out
            .stdout
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, i + 4))
            .or_else(|| {
                out.stdout
                    .windows(2)
                    .position(|w| w == b"\n\n")
                    .map(|i| (i, i + 2))
            })
            .unwrap_or((0, 0));
        let head = String::from_utf8_lossy(&out.stdout[..split.0]).into_owned();
        let mut resp = Response::ok(out.stdout[split.1..].to_vec());
        for line in head.lines() {
            match line.split_once(':') {
                Some((k, v)) if k.eq_ignore_ascii_case("status") => resp.status = v.trim().into(),
                Some((k, v)) if k.eq_ignore_ascii_case("content-type") => {
                    resp.content_type = Some(v.trim().into())
                }
                _ => {}
            }
        }
        resp
    })
}
