//! What kiln's test crates share, so that no test crate writes its own
//! copy: a real `docker-registry` per test ([`registry`]) with TLS
//! material from [`pki`], the busybox rootfs made from the host's
//! busybox-static ([`busybox`]), a loopback HTTP server ([`http`]) and the
//! paths of the repository's fixtures. A dev-dependency only: nothing here
//! is part of kiln.

pub mod busybox;
pub mod http;
pub mod pki;
pub mod registry;

use std::net::TcpListener;
use std::path::PathBuf;

/// The repository's root (this crate sits one level below it).
pub fn repo_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("test-support has a parent")
        .to_path_buf()
}

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    repo_root().join("fixtures")
}

/// The upstream conformance corpora (`fixtures/conformance`, see its
/// README), or `$KILN_CONFORMANCE_DIR` when set, to try another copy.
pub fn conformance_dir() -> PathBuf {
    match std::env::var_os("KILN_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => fixtures().join("conformance"),
    }
}

/// A loopback port nothing listens on right now (the kernel's choice, so
/// never a well-known one such as 5000).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().unwrap().port()
}
