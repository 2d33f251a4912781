//! A tiny token server the test registry trusts (distribution's
//! `auth.token`): ES256 JWTs with an `x5c` header holding a self-signed
//! certificate that is also the registry's `rootcertbundle`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use rcgen::{CertificateParams, DnType, KeyPair};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use test_support::http::{Request, Response, Server};
use test_support::registry::TokenAuth;

pub const SERVICE: &str = "kiln-test-registry";
pub const ISSUER: &str = "kiln-test-issuer";

pub struct TokenServer {
    /// What the registry needs to trust this server (`Auth::Token`).
    pub config: TokenAuth,
    /// Token requests answered (any outcome).
    pub requests: Arc<AtomicUsize>,
    _server: Server,
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
    pub fn start(dir: &Path, user: &str, password: &str) -> TokenServer {
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
        let signer = Signer {
            key,
            cert_der_b64: STANDARD.encode(cert.der()),
            user: user.into(),
            password: password.into(),
        };
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let server = Server::start(move |req| {
            counter.fetch_add(1, Ordering::SeqCst);
            answer(req, &signer, &counter)
        });
        TokenServer {
            config: TokenAuth {
                realm: server.url("/token"),
                service: SERVICE.into(),
                issuer: ISSUER.into(),
                cert_path,
            },
            requests,
            _server: server,
        }
    }
}

fn answer(req: &Request, signer: &Signer, counter: &AtomicUsize) -> Response {
    let is_post = req.method == "POST";
    let query = req.query().to_string();
    let form = String::from_utf8_lossy(&req.body).to_string();
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
            return Response::json("401 Unauthorized", r#"{"details":"invalid refresh token"}"#);
        }
    }
    let who = match req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic "))
    {
        Some(b64) => {
            let decoded =
                String::from_utf8(STANDARD.decode(b64).unwrap_or_default()).unwrap_or_default();
            if decoded == format!("{}:{}", signer.user, signer.password) {
                Some(signer.user.clone())
            } else {
                let body = r#"{"details":"incorrect username or password"}"#;
                return Response::json("401 Unauthorized", body);
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
    Response::json("200 OK", &body)
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
