//! Registry flags shared by pull, push, build and login.

use std::path::PathBuf;

use anyhow::Result;
use registry_client::Client;
use transfer::RegistryAccess;

// `--tls-verify` and `--cert-dir`: how the registry's TLS is checked
// (shared by login and every command that talks to a registry). Plain
// comments: a doc comment would become those commands' help text.
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

// `--tls-verify`, `--cert-dir`, `--creds`, `--authfile` (a plain comment, as
// above).
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

impl RegistryOpts {
    /// What the flags say, for the transfer crate.
    pub fn access(&self) -> RegistryAccess {
        RegistryAccess {
            creds: self.creds.clone(),
            authfile: self.authfile.clone(),
            tls_verify: self.tls.tls_verify,
            cert_dir: self.tls.cert_dir.clone(),
            ..Default::default()
        }
    }

    pub fn client(&self) -> Result<Client> {
        Ok(self.access().client()?)
    }
}
