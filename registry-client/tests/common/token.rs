//! A tiny token server the test registry trusts (distribution's
//! `auth.token`): ES256 JWTs with an `x5c` header holding a self-signed
//! certificate that is also the registry's `rootcertbundle`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const SERVICE: &str = "kiln-test-registry";
pub const ISSUER: &str = "kiln-test-issuer";

pub struct TokenServerConfig {
    pub realm: String,
    pub cert_path: PathBuf,
}

pub struct TokenServer {
    pub config: TokenServerConfig,
    /// Token requests answered (any outcome).
    pub requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Signer {
    key: EcdsaKeyPair,
    cert_der_b64: String,
    user: String,
    password: String,
}

impl TokenServer {
    /// Grants everything asked to `user`/`password`, only `pull` to
    /// anonymous callers, and 401 to wrong credentials.
    pub async fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
        let kp = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kiln token signer");
        let cert = params.self_signed(&kp).unwrap();
        let cert_path = dir.join("token-signer.pem");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &kp.serialize_der(), &rng)
                .unwrap();
        let signer = Arc::new(Signer {
            key,
            cert_der_b64: STANDARD.encode(cert.der()),
            user: user.into(),
            password: password.into(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let signer = signer.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = serve(sock, &signer, &counter).await;
                });
            }
        });
        TokenServer {
            config: TokenServerConfig {
                realm: format!("http://127.0.0.1:{port}/token"),
                cert_path,
            },
            requests,
            task,
        }
    }
}

async fn serve(
    mut sock: tokio::net::TcpStream,
    signer: &Signer,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    counter.fetch_add(1, Ordering::SeqCst);
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut body = buf[split..].to_vec();
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let content_length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while body.len() < content_length {
        let n = sock.read(&mut tmp).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&tmp[..n]);
    }
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let is_post = head.starts_with("POST ");
    let query = target
        .split_once('?')
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    let form = String::from_utf8_lossy(&body).to_string();
    let params: Vec<(String, String)> = if is_post { &form } else { &query }
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .filter(|p| p.0 == k)
            .map(|p| p.1.clone())
            .collect::<Vec<_>>()
    };
    // GET repeats `scope`; the OAuth2 POST joins scopes with spaces.
    let scopes: Vec<String> = param("scope")
        .iter()
        .flat_map(|s| s.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    if is_post {
        let ok = param("grant_type") == ["refresh_token"]
            && param("refresh_token") == [refresh_token(&signer.password)];
        if !ok {
            return respond(
                &mut sock,
                "401 Unauthorized",
                r#"{"details":"invalid refresh token"}"#,
            )
            .await;
        }
    }
    let auth = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    });
    let who = match auth.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
        Some(b64) => {
            let decoded =
                String::from_utf8(STANDARD.decode(b64).unwrap_or_default()).unwrap_or_default();
            if decoded == format!("{}:{}", signer.user, signer.password) {
                Some(signer.user.clone())
            } else {
                let body = r#"{"details":"incorrect username or password"}"#;
                return respond(&mut sock, "401 Unauthorized", body).await;
            }
        }
        None if is_post => Some(signer.user.clone()),
        None => None,
    };
    let access: Vec<serde_json::Value> = scopes
        .iter()
        .filter_map(|s| {
            let mut parts = s.splitn(3, ':');
            let (ty, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
            let actions: Vec<&str> = actions
                .split(',')
                .filter(|a| who.is_some() || *a == "pull")
                .collect();
            Some(serde_json::json!({"type": ty, "name": name, "actions": actions}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [signer.cert_der_b64]});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": who.clone().unwrap_or_default(),
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": format!("{now}-{}", counter.load(Ordering::SeqCst)),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let rng = ring::rand::SystemRandom::new();
    let sig = signer.key.sign(&rng, signing_input.as_bytes()).unwrap();
    let jwt = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()));
    let key = if is_post { "access_token" } else { "token" };
    let body = serde_json::json!({key: jwt, "expires_in": 300}).to_string();
    respond(&mut sock, "200 OK", &body).await
}

async fn respond(
    sock: &mut tokio::net::TcpStream,
    status: &str,
    body: &str,
) -> std::io::Result<()> {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(resp.as_bytes()).await?;
    sock.shutdown().await
}

/// The identity (refresh) token the server accepts for `password`'s user.
pub fn refresh_token(password: &str) -> String {
    format!("refresh-{password}")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
