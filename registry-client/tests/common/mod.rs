//! Test support: the registry launcher from the shared test-support crate,
//! plus what only these tests need: a token server, a fault-injecting
//! proxy, test image builders and client options.
#![allow(dead_code)]

pub mod faults;
pub mod image;
pub mod token;

use std::path::PathBuf;
use std::time::Duration;

use registry_client::{Client, ClientOptions, RetryPolicy};
// Each test file uses its own subset of these.
#[allow(unused_imports)]
pub use test_support::{
    free_port,
    registry::{Auth, Registry, Tls},
};

/// Options for tests: quick backoff so retries don't slow the suite.
pub fn fast_options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(200),
        },
        certs_d_roots: Vec::new(),
        ..ClientOptions::default()
    }
}

/// A client for a plain-HTTP registry (tls_verify off, as skopeo needs too).
pub fn insecure_client() -> Client {
    Client::new(ClientOptions {
        tls_verify: false,
        ..fast_options()
    })
}

pub fn scratch_dir() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}
