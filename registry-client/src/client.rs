//! The shared client: per-registry connection state, the auth handshake and
//! retries. Cloning is cheap (one `Arc`), so hand clones to parallel tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::sync::OnceCell;

use crate::auth::{parse_challenge, Challenge, TokenCache, TokenResponse};
use crate::credentials::{CredentialStore, Credentials};
use crate::error::{is_retryable_status, is_retryable_transport, parse_error_body, Error, Result};
use crate::tls::{build_http_client, cert_dirs, HttpConfig};

/// How often and how patiently to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total tries of one request (1 = no retry).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.initial_backoff.saturating_mul(1u32 << attempt.min(16));
        exp.min(self.max_backoff)
    }
}

#[derive(Clone)]
pub struct ClientOptions {
    /// Where credentials come from; `None` is anonymous.
    pub credentials: Option<Arc<dyn CredentialStore>>,
    /// Verify TLS for every registry (skopeo's `--tls-verify`). When false,
    /// certificates are not checked and plain HTTP is tried after HTTPS.
    pub tls_verify: bool,
    /// Registries treated as `tls_verify=false` even when `tls_verify` is on.
    pub insecure_registries: Vec<String>,
    /// A directory of `*.crt`, `*.cert`/`*.key` used for every registry
    /// instead of the `certs.d` roots.
    pub cert_dir: Option<PathBuf>,
    /// Roots holding `HOST[:PORT]/` certificate directories.
    pub certs_d_roots: Vec<PathBuf>,
    pub retry: RetryPolicy,
    pub user_agent: String,
    pub connect_timeout: Duration,
    /// Longest wait for any single read; a stalled transfer then fails as
    /// a retryable transport error (and a download resumes).
    pub read_timeout: Duration,
    /// Upload blobs as PATCH chunks of this many bytes instead of one
    /// streaming PUT (for registries or proxies that cap request sizes).
    pub upload_chunk_size: Option<u64>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            credentials: None,
            tls_verify: true,
            insecure_registries: Vec::new(),
            cert_dir: None,
            certs_d_roots: vec![
                PathBuf::from("/etc/containers/certs.d"),
                PathBuf::from("/etc/docker/certs.d"),
            ],
            retry: RetryPolicy::default(),
            user_agent: concat!("kiln/", env!("CARGO_PKG_VERSION")).to_string(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            upload_chunk_size: None,
        }
    }
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("credentials", &self.credentials.as_ref().map(|_| "<store>"))
            .field("tls_verify", &self.tls_verify)
            .field("insecure_registries", &self.insecure_registries)
            .field("cert_dir", &self.cert_dir)
            .field("certs_d_roots", &self.certs_d_roots)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// What we learned about one registry on its first request.
pub(crate) struct Host {
    pub registry: String,
    /// `https://host` or `http://host`.
    pub base: String,
    pub http: reqwest::Client,
    pub challenge: Challenge,
    creds: Option<Credentials>,
}

/// A distribution API v2 client shared by all tasks of a process.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub opts: ClientOptions,
    hosts: std::sync::Mutex<HashMap<String, Arc<OnceCell<Arc<Host>>>>>,
    tokens: TokenCache,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.opts)
            .finish_non_exhaustive()
    }
}

/// Whether a request may be repeated by `send` itself. Streaming uploads
/// cannot be replayed from a builder, so their callers retry whole sessions.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    Yes,
    No,
}

impl Client {
    pub fn new(opts: ClientOptions) -> Self {
        Client {
            inner: Arc::new(Inner {
                opts,
                hosts: Default::default(),
                tokens: TokenCache::default(),
            }),
        }
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    fn insecure(&self, registry: &str) -> bool {
        let o = &self.inner.opts;
        !o.tls_verify || o.insecure_registries.iter().any(|r| r == registry)
    }

    pub(crate) async fn host(&self, registry: &str) -> Result<Arc<Host>> {
        let cell = {
            let mut hosts = self.inner.hosts.lock().unwrap_or_else(|p| p.into_inner());
            hosts.entry(registry.to_string()).or_default().clone()
        };
        cell.get_or_try_init(|| self.discover(registry))
            .await
            .cloned()
    }

    /// Pings `/v2/` (HTTPS, then HTTP when insecure) and records the challenge.
    async fn discover(&self, registry: &str) -> Result<Arc<Host>> {
        let o = &self.inner.opts;
        let insecure = self.insecure(registry);
        let http = build_http_client(&HttpConfig {
            registry,
            insecure,
            dirs: cert_dirs(registry, o.cert_dir.as_deref(), &o.certs_d_roots),
            user_agent: &o.user_agent,
            connect_timeout: o.connect_timeout,
            read_timeout: o.read_timeout,
        })?;
        let host = api_host(registry);
        let mut schemes = vec!["https"];
        if insecure {
            schemes.push("http");
        }
        let mut last_err = None;
        for scheme in schemes {
            let base = format!("{scheme}://{host}");
            let url = format!("{base}/v2/");
            // An insecure registry may speak plain HTTP: a failed TLS
            // handshake is no reason to back off and retry HTTPS.
            let ping = if insecure && scheme == "https" {
                let probe = o.connect_timeout.min(Duration::from_secs(10));
                http.get(&url)
                    .timeout(probe)
                    .send()
                    .await
                    .map_err(|source| Error::Transport {
                        registry: registry.to_string(),
                        context: "GET /v2/".into(),
                        source: source.without_url(),
                    })
            } else {
                self.retrying(registry, "GET /v2/", || http.get(&url)).await
            };
            match ping {
                Ok(resp) => {
                    let challenge = match resp.status() {
                        s if s.is_success() => Challenge::None,
                        StatusCode::UNAUTHORIZED => {
                            challenge_of(resp.headers()).ok_or_else(|| Error::Protocol {
                                registry: registry.to_string(),
                                message: "401 on /v2/ without a usable WWW-Authenticate challenge"
                                    .into(),
                            })?
                        }
                        _ => return Err(status_error(registry, "GET", "/v2/", resp).await),
                    };
                    tracing::debug!(registry, %base, ?challenge, "registry discovered");
                    let creds = self.lookup_credentials(registry).await?;
                    return Ok(Arc::new(Host {
                        registry: registry.to_string(),
                        base,
                        http,
                        challenge,
                        creds,
                    }));
                }
                Err(e) => {
                    tracing::debug!(registry, scheme, error = %e, "ping failed");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Protocol {
            registry: registry.to_string(),
            message: "no scheme to try".into(),
        }))
    }

    async fn lookup_credentials(&self, registry: &str) -> Result<Option<Credentials>> {
        let Some(store) = self.inner.opts.credentials.clone() else {
            return Ok(None);
        };
        let reg = registry.to_string();
        // Helpers are external processes: keep them off the async workers.
        tokio::task::spawn_blocking(move || store.get(&reg))
            .await
            .map_err(|e| Error::Protocol {
                registry: registry.to_string(),
                message: format!("credential lookup task failed: {e}"),
            })?
    }

    /// Sends a request built by `make`, retrying 5xx/429/broken connections
    /// with backoff (honouring `Retry-After`). Returns the final response,
    /// whatever its status.
    pub(crate) async fn retrying(
        &self,
        registry: &str,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response> {
        let policy = &self.inner.opts.retry;
        let mut attempt = 0;
        loop {
            let last = attempt + 1 >= policy.max_attempts;
            match make().send().await {
                Ok(resp) if !last && is_retryable_status(resp.status().as_u16()) => {
                    let wait =
                        retry_after(resp.headers()).unwrap_or_else(|| policy.backoff(attempt));
                    tracing::debug!(registry, what, status = %resp.status(), ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Ok(resp) => return Ok(resp),
                Err(e) if !last && is_retryable_transport(&e) => {
                    let wait = policy.backoff(attempt);
                    tracing::debug!(registry, what, error = %e, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
                Err(source) => {
                    return Err(Error::Transport {
                        registry: registry.to_string(),
                        context: what.to_string(),
                        source: source.without_url(),
                    })
                }
            }
            attempt += 1;
        }
    }

    /// An authenticated request against `host`. `path_or_url` is a path
    /// under the registry (`/v2/...`) or an absolute URL (upload Locations).
    pub(crate) async fn send(
        &self,
        host: &Host,
        method: Method,
        path_or_url: &str,
        scopes: &[String],
        replay: Replay,
        make: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response> {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", host.base, path_or_url)
        };
        let what = format!("{method} {}", strip_query(path_or_url));
        let mut scopes = scopes.to_vec();
        let mut refreshed = false;
        loop {
            let auth = self.auth_header(host, &scopes, false).await?;
            let build = || {
                let mut rb = make(host.http.request(method.clone(), &url));
                if let Some(a) = &auth {
                    rb = rb.header(AUTHORIZATION, a);
                }
                rb
            };
            let resp = if replay == Replay::Yes {
                self.retrying(&host.registry, &what, build).await?
            } else {
                build().send().await.map_err(|source| Error::Transport {
                    registry: host.registry.clone(),
                    context: what.clone(),
                    source: source.without_url(),
                })?
            };
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            // A 401 after authenticating: the token may lack a scope the
            // registry now names, or have expired. Try once more, fresh.
            if !refreshed
                && replay == Replay::Yes
                && matches!(host.challenge, Challenge::Bearer { .. })
            {
                if let Some(Challenge::Bearer { scope: Some(s), .. }) = challenge_of(resp.headers())
                {
                    if !scopes.contains(&s) {
                        scopes.push(s);
                    }
                }
                self.inner
                    .tokens
                    .remove(&TokenCache::key(&host.registry, &scopes));
                refreshed = true;
                continue;
            }
            let body = resp.bytes().await.unwrap_or_default();
            return Err(unauthorized(&host.registry, &body));
        }
    }

    /// The `Authorization` value for `scopes`, fetching a token if needed.
    async fn auth_header(
        &self,
        host: &Host,
        scopes: &[String],
        force: bool,
    ) -> Result<Option<String>> {
        match &host.challenge {
            Challenge::None => Ok(None),
            Challenge::Basic => Ok(host.creds.as_ref().map(basic_value)),
            Challenge::Bearer { realm, service, .. } => {
                let key = TokenCache::key(&host.registry, scopes);
                if !force {
                    if let Some(t) = self.inner.tokens.get(&key) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                // Parallel layer fetches start together: let one of them ask
                // the token server and the others wait for its answer.
                let lock = self.inner.tokens.fetch_lock(&key);
                let _guard = lock.lock().await;
                if !force {
                    if let Some(t) = self.inner.tokens.get(&key) {
                        return Ok(Some(format!("Bearer {t}")));
                    }
                }
                let token = self
                    .fetch_token(host, realm, service.as_deref(), scopes)
                    .await?;
                self.inner.tokens.put(key, token.clone());
                Ok(Some(format!("Bearer {}", token.token)))
            }
        }
    }

    async fn fetch_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<crate::auth::CachedToken> {
        if let Some(c) = host
            .creds
            .as_ref()
            .filter(|c| c.username() == IDENTITY_TOKEN_USER)
        {
            return self
                .fetch_oauth_token(host, realm, service, scopes, c)
                .await;
        }
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(s) = service {
            query.push(("service", s));
        }
        for s in scopes {
            query.push(("scope", s));
        }
        if let Some(c) = &host.creds {
            query.push(("account", c.username()));
        }
        let resp = self
            .retrying(&host.registry, "GET token", || {
                let rb = host.http.get(realm).query(&query);
                match &host.creds {
                    Some(c) => rb.header(AUTHORIZATION, basic_value(c)),
                    None => rb,
                }
            })
            .await?;
        self.token_from_response(host, resp).await
    }

    /// docker's identity-token login: the secret is an OAuth2 refresh
    /// token exchanged by POST for an access token.
    async fn fetch_oauth_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        creds: &Credentials,
    ) -> Result<crate::auth::CachedToken> {
        let scope = scopes.join(" ");
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", creds.password()),
            ("client_id", "kiln"),
        ];
        if let Some(s) = service {
            form.push(("service", s));
        }
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        let resp = self
            .retrying(&host.registry, "POST token", || {
                host.http.post(realm).form(&form)
            })
            .await?;
        self.token_from_response(host, resp).await
    }

    async fn token_from_response(
        &self,
        host: &Host,
        resp: Response,
    ) -> Result<crate::auth::CachedToken> {
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED
            || status == StatusCode::FORBIDDEN
            || status == StatusCode::BAD_REQUEST
        {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(unauthorized(&host.registry, &body));
        }
        if !status.is_success() {
            return Err(status_error(&host.registry, "GET", "token", resp).await);
        }
        let body = resp.bytes().await.map_err(|source| Error::Transport {
            registry: host.registry.clone(),
            context: "reading token".into(),
            source: source.without_url(),
        })?;
        serde_json::from_slice::<TokenResponse>(&body)
            .ok()
            .and_then(TokenResponse::into_token)
            .ok_or_else(|| Error::Protocol {
                registry: host.registry.clone(),
                message: "token server answered without a token".into(),
            })
    }

    /// Checks that the configured credentials are accepted by `registry`
    /// (what `docker login` does before saving them).
    pub async fn check_login(&self, registry: &str) -> Result<()> {
        let host = self.host(registry).await?;
        match &host.challenge {
            Challenge::None => Ok(()),
            Challenge::Basic => {
                if host.creds.is_none() {
                    return Err(Error::Unauthorized {
                        registry: registry.to_string(),
                        message: "authentication required (no credentials)".into(),
                    });
                }
                let resp = self
                    .send(&host, Method::GET, "/v2/", &[], Replay::Yes, |r| r)
                    .await?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(status_error(registry, "GET", "/v2/", resp).await)
                }
            }
            Challenge::Bearer { .. } => self.auth_header(&host, &[], true).await.map(|_| ()),
        }
    }
}

/// The username docker's config uses for an identity (refresh) token.
const IDENTITY_TOKEN_USER: &str = "<token>";

fn basic_value(c: &Credentials) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", c.username(), c.password());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    headers
        .get_all(WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_challenge)
        // Prefer bearer when a registry offers both.
        .max_by_key(|c| matches!(c, Challenge::Bearer { .. }))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs.min(60)))
}

pub(crate) fn strip_query(s: &str) -> &str {
    s.split('?').next().unwrap_or(s)
}

fn unauthorized(registry: &str, body: &[u8]) -> Error {
    let items = parse_error_body(body);
    let detail = items
        .iter()
        .map(|e| e.message.as_str())
        .filter(|m| !m.is_empty() && *m != "authentication required")
        .collect::<Vec<_>>()
        .join("; ");
    let message = if detail.is_empty() {
        "authentication required".to_string()
    } else {
        format!("authentication required ({detail})")
    };
    Error::Unauthorized {
        registry: registry.to_string(),
        message,
    }
}

/// Turns a non-success response into `Error::Registry`, reading its body
/// (bounded) for the JSON error codes.
pub(crate) async fn status_error(
    registry: &str,
    method: &str,
    path: &str,
    resp: Response,
) -> Error {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    let mut resp = resp;
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() > 64 * 1024 {
            break;
        }
    }
    if status == 401 {
        return unauthorized(registry, &body);
    }
    Error::Registry {
        registry: registry.to_string(),
        method: method.to_string(),
        path: strip_query(path).to_string(),
        status,
        errors: parse_error_body(&body),
    }
}

/// The host the HTTP API is actually served from.
pub(crate) fn api_host(registry: &str) -> &str {
    if registry == oci_model::DOCKER_HUB {
        "registry-1.docker.io"
    } else {
        registry
    }
}
