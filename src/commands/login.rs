//! `kiln login` and `kiln logout`: credentials in docker's `config.json`
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`, or the
//! configured credential helper). Secrets never reach logs or errors.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use registry_client::{Client, ClientOptions, Credentials, DockerConfig, StaticCredentials};

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::opts::TlsOpts;
use crate::transfer::runtime;

#[derive(clap::Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls: TlsOpts,
    /// Credentials file (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Registry host[:port] (default: docker.io)
    pub registry: Option<String>,
}

impl std::fmt::Debug for LoginArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginArgs")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

#[derive(clap::Args, Debug)]
pub struct LogoutArgs {
    /// Credentials file (default: $DOCKER_CONFIG/config.json or ~/.docker/config.json)
    #[arg(long, value_name = "FILE", env = "REGISTRY_AUTH_FILE")]
    pub authfile: Option<PathBuf>,
    /// Registry host[:port] (default: docker.io)
    pub registry: Option<String>,
}

fn registry_host(arg: Option<&str>) -> Result<String> {
    Ok(::transfer::credentials::registry_host(arg)?)
}

fn prompt(label: &str, hide: bool) -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{label} required: not a terminal to ask on");
    }
    eprint!("{label}: ");
    std::io::stderr().flush()?;
    let fd = libc::STDIN_FILENO;
    // SAFETY: plain termios calls on stdin with a zeroed struct they fill.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if hide && libc::tcgetattr(fd, &mut t) == 0 {
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(saved)
        } else {
            None
        }
    };
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the attributes read above.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
        eprintln!();
    }
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub fn login(_ctx: &Ctx, args: LoginArgs) -> Result<Status> {
    let registry = registry_host(args.registry.as_deref())?;
    let username = match args.username.clone() {
        Some(u) => u,
        None => prompt("Username", false)?,
    };
    if username.is_empty() {
        bail!("username is empty");
    }
    let password = if args.password_stdin {
        let mut s = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut s)
            .context("reading the password from standard input")?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match args.password.clone() {
            Some(p) => p,
            None => prompt("Password", true)?,
        }
    };
    if password.is_empty() {
        bail!("password is empty");
    }
    let creds = Credentials::new(username, password);
    let client = Client::new(ClientOptions {
        credentials: Some(Arc::new(
            StaticCredentials::new().with(registry.clone(), creds.clone()),
        )),
        tls_verify: args.tls.tls_verify,
        cert_dir: args.tls.cert_dir.clone(),
        ..ClientOptions::default()
    });
    runtime()?
        .block_on(client.check_login(&registry))
        .with_context(|| format!("logging in to {registry}"))?;
    let mut cfg = DockerConfig::load(args.authfile.as_deref())?;
    cfg.store(&registry, &creds)
        .with_context(|| format!("saving credentials for {registry}"))?;
    outln!("Login Succeeded!");
    Ok(Status::Success)
}

pub fn logout(_ctx: &Ctx, args: LogoutArgs) -> Result<Status> {
    let registry = registry_host(args.registry.as_deref())?;
    let mut cfg = DockerConfig::load(args.authfile.as_deref())?;
    if !cfg
        .erase(&registry)
        .with_context(|| format!("removing credentials for {registry}"))?
    {
        bail!("not logged into {registry}");
    }
    outln!("Removed login credentials for {registry}");
    Ok(Status::Success)
}
