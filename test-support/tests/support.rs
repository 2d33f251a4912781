//! The helpers themselves: the HTTP server parses what clients send and
//! stops on drop; the corpus path points into the repository.

use std::io::{Read, Write};
use std::net::TcpStream;

use test_support::http::{Response, Server};

fn exchange(port: u16, request: &[u8]) -> String {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(request).unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn http_server_hands_the_handler_the_parsed_request() {
    let server = Server::start(|req| {
        let seen = format!(
            "{} {} q={} auth={:?} body={}",
            req.method,
            req.target,
            req.query(),
            req.header("AUTHORIZATION"),
            String::from_utf8_lossy(&req.body)
        );
        Response::json("201 Created", &seen)
    });
    // The body arrives in a second write, after the head.
    let mut c = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    c.write_all(
        b"POST /token?scope=a HTTP/1.1\r\nauthorization: Basic eA==\r\nContent-Length: 7\r\n\r\n",
    )
    .unwrap();
    c.write_all(b"a=b&c=d").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 201 Created\r\n"), "{out}");
    assert!(out.contains("Content-Type: application/json\r\n"), "{out}");
    assert!(
        out.ends_with(
            "\r\n\r\nPOST /token?scope=a q=scope=a auth=Some(\"Basic eA==\") body=a=b&c=d"
        ),
        "{out}"
    );
}

#[test]
fn serve_answers_every_get_with_the_body_and_a_dropped_server_stops() {
    let port = test_support::http::serve(b"hello");
    for path in ["/", "/x/y"] {
        let out = exchange(port, format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(
            out.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
            "{out}"
        );
        assert!(out.ends_with("\r\n\r\nhello"), "{out}");
    }
    let server = Server::start(|_| Response::ok("x"));
    let port = server.port;
    drop(server);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn conformance_dir_is_inside_the_repository() {
    if std::env::var_os("KILN_CONFORMANCE_DIR").is_some() {
        return;
    }
    let dir = test_support::conformance_dir();
    assert!(
        dir.starts_with(test_support::repo_root()),
        "{}",
        dir.display()
    );
    for f in [
        "README.md",
        "buildkit/LICENSE",
        "buildkit/shell/envVarTest",
        "patternmatcher/LICENSE",
        "patternmatcher/NOTICE",
        "patternmatcher/cases.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
    }
}
