//! How a registry is reached: TLS checks and credentials (`--creds`, else
//! the docker config and its helpers), turned into a client.

use std::path::PathBuf;
use std::sync::Arc;

use registry_client::{Client, ClientOptions, CredentialStore, Credentials, DockerConfig};

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
}

impl std::fmt::Debug for RegistryAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAccess")
            .field("creds", &self.creds.as_ref().map(|_| "<redacted>"))
            .field("authfile", &self.authfile)
            .field("tls_verify", &self.tls_verify)
            .field("cert_dir", &self.cert_dir)
            .finish()
    }
}

/// `--creds` for every registry, else the docker config (and its helpers).
struct Creds {
    fixed: Option<Credentials>,
    config: Option<DockerConfig>,
}

impl CredentialStore for Creds {
    fn get(&self, registry: &str) -> registry_client::Result<Option<Credentials>> {
        if let Some(c) = &self.fixed {
            return Ok(Some(c.clone()));
        }
        match &self.config {
            Some(cfg) => cfg.get(registry),
            None => Ok(None),
        }
    }
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
        Ok(ClientOptions {
            credentials: Some(Arc::new(Creds { fixed, config })),
            tls_verify: self.tls_verify,
            cert_dir: self.cert_dir.clone(),
            ..ClientOptions::default()
        })
    }

    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(self.client_options()?))
    }
}
