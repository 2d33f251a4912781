//! `WWW-Authenticate` challenges, scopes and the bearer token flow.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What the registry asked for on `/v2/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `/v2/` answered 200: no auth at all.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses one `WWW-Authenticate` value: `Scheme k="v", k2=v2`.
pub(crate) fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('=') {
            continue;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
            value = value.trim().to_string();
        }
        out.insert(key.trim().to_ascii_lowercase(), value);
    }
    out
}

/// Scope strings for the token server.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}
pub(crate) fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

/// Token response from the auth server (docker and OAuth2 spellings).
#[derive(serde::Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub(crate) fn into_token(self) -> Option<CachedToken> {
        let token = if self.token.is_empty() {
            self.access_token
        } else {
            self.token
        };
        if token.is_empty() {
            return None;
        }
        // The spec's default lifetime is 60 s; refresh a little early.
        let secs = self.expires_in.unwrap_or(60).max(10);
        Some(CachedToken {
            token,
            valid_until: Instant::now() + Duration::from_secs(secs - secs.min(5)),
        })
    }
}

#[derive(Clone)]
pub(crate) struct CachedToken {
    pub token: String,
    pub valid_until: Instant,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CachedToken(<redacted>)")
    }
}

/// Tokens keyed by registry and the sorted scope set they were issued for.
#[derive(Default)]
pub(crate) struct TokenCache {
    map: std::sync::Mutex<HashMap<String, CachedToken>>,
    fetching: std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
}

impl TokenCache {
    pub(crate) fn key(registry: &str, scopes: &[String]) -> String {
        let mut s: Vec<&str> = scopes.iter().map(String::as_str).collect();
        s.sort_unstable();
        s.dedup();
        format!("{registry} {}", s.join(" "))
    }
    /// The lock serialising token fetches for one key.
    pub(crate) fn fetch_lock(&self, key: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        let mut m = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(key.to_string()).or_default().clone()
    }
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|t| t.valid_until > Instant::now())
            .map(|t| t.token.clone())
    }
    pub(crate) fn put(&self, key: String, token: CachedToken) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key, token);
    }
    pub(crate) fn remove(&self, key: &str) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_with_commas_in_quotes() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }

    #[test]
    fn token_cache_expires_and_keys_by_sorted_scopes() {
        let c = TokenCache::default();
        let k = TokenCache::key("r", &["b".into(), "a".into()]);
        assert_eq!(k, TokenCache::key("r", &["a".into(), "b".into()]));
        let t = TokenResponse {
            token: "".into(),
            access_token: "tok".into(),
            expires_in: Some(300),
        }
        .into_token()
        .unwrap();
        c.put(k.clone(), t);
        assert_eq!(c.get(&k).as_deref(), Some("tok"));
        c.put(
            k.clone(),
            CachedToken {
                token: "old".into(),
                valid_until: Instant::now() - Duration::from_secs(1),
            },
        );
        assert_eq!(c.get(&k), None);
    }
}
