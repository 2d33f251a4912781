//! Per-registry HTTP clients: system roots plus `certs.d` CA files and
//! client certificates, or no verification for insecure registries.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

/// Where certificates for `registry` live: only `cert_dir` when given (as
/// podman/skopeo do), else `<root>/HOST[:PORT]/` for each root.
pub(crate) fn cert_dirs(
    registry: &str,
    cert_dir: Option<&Path>,
    roots: &[PathBuf],
) -> Vec<PathBuf> {
    match cert_dir {
        Some(d) => vec![d.to_path_buf()],
        None => roots.iter().map(|r| r.join(registry)).collect(),
    }
}

pub(crate) struct HttpConfig<'a> {
    pub registry: &'a str,
    pub insecure: bool,
    pub dirs: Vec<PathBuf>,
    pub user_agent: &'a str,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

pub(crate) fn build_http_client(cfg: &HttpConfig<'_>) -> Result<reqwest::Client> {
    let tls_err = |message: String| Error::Tls {
        registry: cfg.registry.to_string(),
        message,
    };
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .user_agent(cfg.user_agent)
        .connect_timeout(cfg.connect_timeout)
        .read_timeout(cfg.read_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(Duration::from_secs(60));
    if cfg.insecure {
        b = b.danger_accept_invalid_certs(true);
    }
    for dir in &cfg.dirs {
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(tls_err(format!("reading {}: {e}", dir.display()))),
        };
        entries.sort();
        for path in entries {
            let read = |p: &Path| {
                std::fs::read(p).map_err(|e| tls_err(format!("reading {}: {e}", p.display())))
            };
            match path.extension().and_then(|e| e.to_str()) {
                Some("crt") => {
                    let pem = read(&path)?;
                    let certs = reqwest::Certificate::from_pem_bundle(&pem)
                        .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
                    for c in certs {
                        b = b.add_root_certificate(c);
                    }
                }
                Some("cert") => {
                    let key = path.with_extension("key");
                    if !key.exists() {
                        return Err(tls_err(format!(
                            "{} has no matching {}",
                            path.display(),
                            key.display()
                        )));
                    }
                    let mut pem = read(&path)?;
                    pem.push(b'\n');
                    pem.extend(read(&key)?);
                    let id = reqwest::Identity::from_pem(&pem)
                        .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
                    b = b.identity(id);
                }
                Some("key") if !path.with_extension("cert").exists() => {
                    return Err(tls_err(format!("{} has no matching .cert", path.display())));
                }
                _ => {}
            }
        }
    }
    b.build().map_err(|e| tls_err(e.to_string()))
}
