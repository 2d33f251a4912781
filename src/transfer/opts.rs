//! Registry flags shared by pull, push and login, and the client they make.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use registry_client::{Client, ClientOptions, CredentialStore, Credentials, DockerConfig};

/// `--tls-verify` and `--cert-dir`: how the registry's TLS is checked
/// (shared by login and every command that talks to a registry).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TlsOpts {
    /// Require HTTPS and verify certificates (`--tls-verify=false` also
    /// allows plain HTTP and skips verification)
    #[arg(
        long,
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        action = clap::ArgAction::Set
    )]
    pub tls_verify: bool,
    /// Directory of certificates (*.crt CA files, *.cert/*.key client pairs) for the registry
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

/// `--tls-verify`, `--cert-dir`, `--creds`, `--authfile`.
#[derive(clap::Args, Clone, Default)]
pub struct RegistryOpts {
    #[command(flatten)]
    pub tls: TlsOpts,
    /// Credentials USERNAME:PASSWORD for the registry (default: those stored by `kiln login`)
    #[arg(long, value_name = "USER:PASSWORD")]
    pub creds: Option<String>,
    /// Credentials file (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
}

impl std::fmt::Debug for RegistryOpts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryOpts")
            .field("tls", &self.tls)
            .field("creds", &self.creds.as_ref().map(|_| "<redacted>"))
            .field("authfile", &self.authfile)
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

impl RegistryOpts {
    pub fn client_options(&self) -> Result<ClientOptions> {
        let fixed = self.creds.as_deref().map(parse_creds).transpose()?;
        let config = if fixed.is_some() {
            None
        } else {
            Some(DockerConfig::load(self.authfile.as_deref())?)
        };
        Ok(ClientOptions {
            credentials: Some(Arc::new(Creds { fixed, config })),
            tls_verify: self.tls.tls_verify,
            cert_dir: self.tls.cert_dir.clone(),
            ..ClientOptions::default()
        })
    }

    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(self.client_options()?))
    }
}
