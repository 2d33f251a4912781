//! A real `docker-registry` (Debian's build of distribution) per test, on a
//! free loopback port: plain HTTP, TLS (optionally demanding a client
//! certificate), htpasswd basic auth or token auth. Only the process
//! started here is killed, when the [`Registry`] is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::TlsFiles;

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// Whether the registry serves HTTPS, and whether it asks for a client
/// certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    Off,
    /// HTTPS with a server certificate from the test CA.
    On,
    /// HTTPS that also demands a client certificate signed by the test CA.
    ClientCerts,
}

/// Distribution's `auth.token`: where to get tokens and what signs them.
#[derive(Clone, Debug)]
pub struct TokenAuth {
    pub realm: String,
    pub service: String,
    pub issuer: String,
    /// The certificate bundle that verifies the token signatures.
    pub cert_path: PathBuf,
}

pub enum Auth {
    None,
    Htpasswd { user: String, password: String },
    Token(TokenAuth),
}

/// A running `docker-registry serve`; killed (only this child) on drop.
pub struct Registry {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
    /// TLS material when the registry serves HTTPS.
    pub tls: Option<TlsFiles>,
}

impl Registry {
    pub fn plain() -> Registry {
        Self::start(Tls::Off, Auth::None)
    }

    /// TLS (a test CA a client trusts through `tls.ca_dir`) plus htpasswd
    /// basic auth for `user`/`password`.
    pub fn tls_auth(user: &str, password: &str) -> Registry {
        Self::start(
            Tls::On,
            Auth::Htpasswd {
                user: user.into(),
                password: password.into(),
            },
        )
    }

    pub fn start(tls: Tls, auth: Auth) -> Registry {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::free_port();
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage).unwrap();
        let mut cfg = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: kiln-test-secret\n",
            storage.display()
        );
        let tls_files = (tls != Tls::Off).then(|| {
            let files = TlsFiles::generate(dir.path());
            cfg.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                files.server_cert.display(),
                files.server_key.display(),
            ));
            if tls == Tls::ClientCerts {
                cfg.push_str(&format!(
                    "    clientcas:\n      - {}\n",
                    files.ca_cert.display()
                ));
            }
            files
        });
        match &auth {
            Auth::None => {}
            Auth::Htpasswd { user, password } => {
                let hash = bcrypt::hash_with_result(password, 4)
                    .unwrap()
                    .format_for_version(bcrypt::Version::TwoY);
                let path = dir.path().join("htpasswd");
                std::fs::write(&path, format!("{user}:{hash}\n")).unwrap();
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: kiln-test\n    path: {}\n",
                    path.display()
                ));
            }
            Auth::Token(t) => {
                cfg.push_str(&format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    t.realm,
                    t.service,
                    t.issuer,
                    t.cert_path.display()
                ));
            }
        }
        let cfg_path = dir.path().join("config.yml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run {REGISTRY_BIN} ({e}): apt-get install docker-registry")
            });
        let mut reg = Registry {
            dir,
            port,
            child,
            tls: tls_files,
        };
        reg.wait_ready();
        reg
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited early ({status}): {}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "docker-registry did not listen on {}: {}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The access log (one line per request) and anything else logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Requests in the access log whose line contains all of `parts`.
    pub fn count(&self, parts: &[&str]) -> usize {
        self.log()
            .lines()
            .filter(|l| parts.iter().all(|p| l.contains(p)))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
