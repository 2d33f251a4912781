//! A small HTTP/1.1 server on a free loopback port for tests: one request
//! per connection (`Connection: close`), answered by a handler on a thread
//! of its own. Enough for a file server or a token endpoint; not a proxy.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A request as the handler sees it: the head parsed, the body read in
/// full (`Content-Length` only; tests send nothing chunked).
pub struct Request {
    pub method: String,
    /// The request target as sent: path and query.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The query string, without `?` (empty when there is none).
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|x| x.1).unwrap_or("")
    }
}

pub struct Response {
    /// Status code and reason, e.g. `"200 OK"`.
    pub status: String,
    pub content_type: Option<String>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status: status.to_string(),
            content_type: None,
            body: body.into(),
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Response {
        Response::new("200 OK", body)
    }

    pub fn json(status: &str, body: &str) -> Response {
        Response {
            content_type: Some("application/json".into()),
            ..Response::new(status, body)
        }
    }
}

type Handler = dyn Fn(&Request) -> Response + Send + Sync;

/// A running server; stopped (its thread joined) on drop.
pub struct Server {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    pub fn start(handler: impl Fn(&Request) -> Response + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let handler = handler.clone();
                std::thread::spawn(move || answer(conn, &*handler));
            }
        });
        Server {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Serves `body` for any request until the test process ends; returns the port.
pub fn serve(body: &'static [u8]) -> u16 {
    let server = Server::start(move |_| Response::ok(body));
    let port = server.port;
    std::mem::forget(server);
    port
}

fn answer(mut conn: TcpStream, handler: &Handler) {
    let Some(req) = read_request(&mut conn) else {
        return;
    };
    let resp = handler(&req);
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        resp.status,
        resp.body.len()
    );
    if let Some(ct) = &resp.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&resp.body);
    let _ = conn.shutdown(std::net::Shutdown::Write);
}

fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut req = Request {
        method,
        target,
        headers,
        body: buf[end..].to_vec(),
    };
    let length: usize = req
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while req.body.len() < length {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.body.extend_from_slice(&chunk[..n]),
        }
    }
    Some(req)
}
