//! How a registry is reached: TLS checks and credentials (`--creds`, else
//! the docker config and its helpers), turned into a client.

use std::path::PathBuf;
use std::sync::Arc;

use registry_client::{
    normalize_registry, Client, ClientOptions, CredentialStore, Credentials, DockerConfig,
};

use crate::{bail, Result};

/// What the registry flags of pull, push, login and build say.
#[derive(Clone, Default)]
pub struct RegistryAccess {
    /// `USER:PASSWORD` for every registry.
    pub creds: Option<String>,
    /// The docker config to read credentials from (default: the usual one).
    pub authfile: Option<PathBuf>,
    pub tls_verify: bool,
    pub cert_dir: Option<PathBuf>,
    /// `USER:PASSWORD` per registry host, before `creds` and the docker
    /// config (the Engine API's `X-Registry-Config` for a build's pulls).
    pub registry_creds: std::collections::BTreeMap<String, String>,
    /// Registries reached without TLS checks (and over plain HTTP) even
    /// when `tls_verify` is on.
    pub insecure_registries: Vec<String>,
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("creds", &self.creds.as_ref().map(|_| "<redacted>"))
            .field("authfile", &self.authfile)
            .field("tls_verify", &self.tls_verify)
            .field("cert_dir", &self.cert_dir)
            .field(
                "registry_creds",
                &self.registry_creds.keys().collect::<Vec<_>>(),
            )
            .field("insecure_registries", &self.insecure_registries)
            .finish()
    }
}

/// Per-registry credentials, else `--creds` for every registry, else the
/// docker config (and its helpers).
struct Creds {
    per_registry: std::collections::BTreeMap<String, Credentials>,
    fixed: Option<Credentials>,
    config: Option<DockerConfig>,
}

impl CredentialStore for Creds {
    fn get(&self, registry: &str) -> registry_client::Result<Option<Credentials>> {
        if let Some(c) = self.per_registry.get(registry) {
            return Ok(Some(c.clone()));
        }
        if let Some(c) = &self.fixed {
            return Ok(Some(c.clone()));
        }
        match &self.config {
            Some(cfg) => cfg.get(registry),
            None => Ok(None),
        }
    }
}

/// The registry a login names: `https://host/v2/`, `host/path` → `host`,
/// Docker Hub's spellings (`https://index.docker.io/v1/`) → docker.io,
/// none → docker.io. (`kiln login`'s argument, the Engine API's
/// `serveraddress`.)
pub fn registry_host(arg: Option<&str>) -> Result<String> {
    let raw = arg.filter(|a| !a.is_empty()).unwrap_or("docker.io");
    let s = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"))
        .unwrap_or(raw);
    let host = s.split('/').next().unwrap_or("");
    if host.is_empty() {
        bail!("invalid registry {raw:?}");
    }
    Ok(normalize_registry(host))
}

/// Splits `USER:PASSWORD` (the password may contain ':').
pub fn parse_creds(s: &str) -> Result<Credentials> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok(Credentials::new(u, p)),
        _ => bail!("--creds: expected USERNAME:PASSWORD"),
    }
}

impl RegistryAccess {
    pub fn client_options(&self) -> Result<ClientOptions> {
        let fixed = self.creds.as_deref().map(parse_creds).transpose()?;
        let config = if fixed.is_some() {
            None
        } else {
            Some(DockerConfig::load(self.authfile.as_deref())?)
        };
        let per_registry = self
            .registry_creds
            .iter()
            .map(|(r, c)| Ok((normalize_registry(r), parse_creds(c)?)))
            .collect::<Result<_>>()?;
        Ok(ClientOptions {
            credentials: Some(Arc::new(Creds {
                per_registry,
                fixed,
                config,
            })),
            tls_verify: self.tls_verify,
            insecure_registries: self.insecure_registries.clone(),
            cert_dir: self.cert_dir.clone(),
            ..ClientOptions::default()
        })
    }

    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(self.client_options()?))
    }
}
