//! Registry credentials: docker's `config.json` (`auths`, `credsStore`,
//! `credHelpers`) and the `docker-credential-*` helper protocol.
//!
//! Secrets never appear in `Debug` output, logs or error messages.

use std::collections::HashMap;
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use oci_model::DOCKER_HUB;

/// A username and password (or token). `Debug` redacts the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
    pub fn username(&self) -> &str {
        &self.username
    }
    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Where the client finds credentials for a registry host (`host[:port]`).
pub trait CredentialStore: Send + Sync {
    fn get(&self, registry: &str) -> Result<Option<Credentials>>;
}

/// A fixed map of registry → credentials (e.g. from `--creds user:pass`).
#[derive(Debug, Default, Clone)]
pub struct StaticCredentials(HashMap<String, Credentials>);

impl StaticCredentials {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, registry: impl Into<String>, creds: Credentials) -> Self {
        self.0.insert(registry.into(), creds);
        self
    }
}

impl CredentialStore for StaticCredentials {
    fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        Ok(self.0.get(registry).cloned())
    }
}

/// The key docker uses in `auths` and passes to helpers for a registry.
pub fn config_key(registry: &str) -> String {
    if registry == DOCKER_HUB || registry == "index.docker.io" || registry == "registry-1.docker.io"
    {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

/// docker's `convertToHostname`: `https://host/v1/` → `host`.
fn key_hostname(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

fn same_registry(key: &str, registry: &str) -> bool {
    let host = key_hostname(key);
    let hub = |h: &str| matches!(h, "docker.io" | "index.docker.io" | "registry-1.docker.io");
    host == registry || (hub(host) && hub(registry))
}

/// docker's client config file.
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
    helper_dir: Option<PathBuf>,
}

impl fmt::Debug for DockerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The document holds secrets; show only where it lives.
        f.debug_struct("DockerConfig")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Some(PathBuf::from(dir).join("config.json"));
        }
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(|h| PathBuf::from(h).join(".docker").join("config.json"))
    }

    /// Loads `path` (or the default path). A missing file is an empty config.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => Self::default_path().ok_or_else(|| Error::Config {
                path: "~/.docker/config.json".into(),
                message: "neither DOCKER_CONFIG nor HOME is set".into(),
            })?,
        };
        let cfg_err = |message: String| Error::Config {
            path: path.display().to_string(),
            message,
        };
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) => return Err(cfg_err("not a JSON object".into())),
                Err(e) => return Err(cfg_err(format!("invalid JSON: {e}"))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(cfg_err(e.to_string())),
        };
        Ok(DockerConfig {
            path,
            doc,
            helper_dir: None,
        })
    }

    /// Looks helpers up in `dir` instead of `$PATH`.
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.helper_dir = Some(dir.into());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn helper_for(&self, registry: &str) -> Option<String> {
        let key = config_key(registry);
        if let Some(Value::Object(helpers)) = self.doc.get("credHelpers") {
            for (k, v) in helpers {
                if (k == &key || same_registry(k, registry)) && v.is_string() {
                    return v.as_str().map(str::to_string);
                }
            }
        }
        self.doc
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    fn auths_entry(&self, registry: &str) -> Option<(&String, &Value)> {
        let auths = self.doc.get("auths")?.as_object()?;
        let key = config_key(registry);
        auths
            .get_key_value(&key)
            .or_else(|| auths.iter().find(|(k, _)| same_registry(k, registry)))
    }

    fn decode_auth(&self, key: &str, entry: &Value) -> Result<Option<Credentials>> {
        let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let err = |m: &str| Error::Config {
            path: self.path.display().to_string(),
            message: format!("auths[{key:?}].auth: {m}"),
        };
        let raw = B64
            .decode(auth.trim())
            .map_err(|_| err("not valid base64"))?;
        let text = String::from_utf8(raw).map_err(|_| err("not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| err("missing ':' between user and password"))?;
        Ok(Some(Credentials::new(u, p)))
    }

    fn helper_command(&self, helper: &str) -> Command {
        let exe = format!("docker-credential-{helper}");
        match &self.helper_dir {
            Some(d) => Command::new(d.join(exe)),
            None => Command::new(exe),
        }
    }

    fn run_helper(
        &self,
        helper: &str,
        action: &str,
        input: &[u8],
    ) -> Result<std::result::Result<Vec<u8>, String>> {
        let herr = |message: String| Error::CredentialHelper {
            helper: helper.to_string(),
            message,
        };
        let mut child = self
            .helper_command(helper)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| herr(format!("cannot run: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input)
                .map_err(|e| herr(format!("writing stdin: {e}")))?;
        }
        let out = child.wait_with_output().map_err(|e| herr(e.to_string()))?;
        if out.status.success() {
            Ok(Ok(out.stdout))
        } else {
            // Helpers print their error message on stdout; keep it short and
            // never echo our input.
            let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if msg.is_empty() {
                msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            }
            // Cut on a character boundary (String::truncate panics mid-char).
            if let Some((i, _)) = msg.char_indices().nth(200) {
                msg.truncate(i);
            }
            Ok(Err(msg))
        }
    }

    /// Credentials for `registry`: its credHelper, else `auths`, else the
    /// global credsStore. `Ok(None)` means anonymous.
    pub fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        let helper = self.helper_for(registry);
        let has_specific_helper = self
            .doc
            .get("credHelpers")
            .and_then(Value::as_object)
            .is_some_and(|h| h.keys().any(|k| same_registry(k, registry)));
        if !has_specific_helper {
            if let Some((k, entry)) = self.auths_entry(registry) {
                if let Some(c) = self.decode_auth(k, entry)? {
                    return Ok(Some(c));
                }
            }
        }
        let Some(helper) = helper else {
            return Ok(None);
        };
        match self.run_helper(&helper, "get", config_key(registry).as_bytes())? {
            Ok(stdout) => {
                #[derive(serde::Deserialize)]
                struct Out {
                    #[serde(rename = "Username", default)]
                    username: String,
                    #[serde(rename = "Secret", default)]
                    secret: String,
                }
                let o: Out =
                    serde_json::from_slice(&stdout).map_err(|e| Error::CredentialHelper {
                        helper: helper.clone(),
                        message: format!("invalid JSON output: {e}"),
                    })?;
                Ok(Some(Credentials::new(o.username, o.secret)))
            }
            Err(msg) if msg.contains("credentials not found") => Ok(None),
            Err(msg) => Err(Error::CredentialHelper {
                helper,
                message: format!("get failed: {msg}"),
            }),
        }
    }

    /// Records a login: through the registry's helper if one is configured,
    /// else as base64 `user:pass` under `auths`, written atomically (0600).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<()> {
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(registry) {
            let input = serde_json::json!({
                "ServerURL": key,
                "Username": creds.username,
                "Secret": creds.password,
            });
            return match self.run_helper(&helper, "store", input.to_string().as_bytes())? {
                Ok(_) => Ok(()),
                Err(msg) => Err(Error::CredentialHelper {
                    helper,
                    message: format!("store failed: {msg}"),
                }),
            };
        }
        let auth = B64.encode(format!("{}:{}", creds.username, creds.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(m) = auths.as_object_mut() {
            // Drop other spellings of the same registry so `get` cannot pick a stale one.
            m.retain(|k, _| k == &key || !same_registry(k, registry));
            let entry = m.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Some(e) = entry.as_object_mut() {
                e.insert("auth".into(), Value::String(auth));
            }
        }
        self.save()
    }

    /// Forgets the login for `registry`. Returns whether anything was removed.
    pub fn erase(&mut self, registry: &str) -> Result<bool> {
        if let Some(helper) = self.helper_for(registry) {
            return match self.run_helper(&helper, "erase", config_key(registry).as_bytes())? {
                Ok(_) => Ok(true),
                Err(msg) if msg.contains("credentials not found") => Ok(false),
                Err(msg) => Err(Error::CredentialHelper {
                    helper,
                    message: format!("erase failed: {msg}"),
                }),
            };
        }
        let removed = match self.doc.get_mut("auths").and_then(Value::as_object_mut) {
            Some(m) => {
                let before = m.len();
                m.retain(|k, _| !same_registry(k, registry));
                before != m.len()
            }
            None => false,
        };
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn save(&self) -> Result<()> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let err = |m: String| Error::Config {
            path: self.path.display().to_string(),
            message: m,
        };
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| err(format!("creating {}: {e}", dir.display())))?;
        let data = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| err(e.to_string()))?;
        let tmp = dir.join(format!(
            ".{}.tmp{}",
            self.path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("config.json"),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&data)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(format!("writing: {e}"))
        })
    }
}

impl CredentialStore for DockerConfig {
    fn get(&self, registry: &str) -> Result<Option<Credentials>> {
        DockerConfig::get(self, registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn debug_redacts() {
        let c = Credentials::new("bob", "hunter2");
        let d = format!("{c:?}");
        assert!(d.contains("bob") && !d.contains("hunter2"), "{d}");
    }

    #[test]
    fn store_get_erase_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("config.json");
        let mut cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.get("docker.io").unwrap(), None);
        cfg.store("docker.io", &Credentials::new("u", "p:w"))
            .unwrap();
        cfg.store("127.0.0.1:5000", &Credentials::new("a", "b"))
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let raw: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            raw["auths"]["https://index.docker.io/v1/"]["auth"],
            B64.encode("u:p:w")
        );
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.get("docker.io").unwrap(),
            Some(Credentials::new("u", "p:w"))
        );
        assert_eq!(
            cfg.get("127.0.0.1:5000").unwrap(),
            Some(Credentials::new("a", "b"))
        );
        let mut cfg = cfg;
        assert!(cfg.erase("docker.io").unwrap());
        assert!(!cfg.erase("docker.io").unwrap());
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(cfg.get("docker.io").unwrap(), None);
        assert!(cfg.get("127.0.0.1:5000").unwrap().is_some());
    }

    #[test]
    fn reads_scheme_prefixed_keys_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let doc = serde_json::json!({"auths": {
            "https://reg.example:8443/v2/": {"auth": B64.encode("x:y")},
            "bad.example": {"auth": "!!!"}
        }});
        std::fs::write(&path, doc.to_string()).unwrap();
        let cfg = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(
            cfg.get("reg.example:8443").unwrap(),
            Some(Credentials::new("x", "y"))
        );
        let e = cfg.get("bad.example").unwrap_err().to_string();
        assert!(e.contains("base64"), "{e}");
        std::fs::write(&path, "{not json").unwrap();
        assert!(DockerConfig::load(Some(&path)).is_err());
    }

    #[test]
    fn credential_helper_protocol() {
        let dir = tempfile::tempdir().unwrap();
        // A helper that keeps one secret in a file next to it, speaking the
        // docker-credential protocol (hostname or JSON on stdin).
        let store = dir.path().join("store.json");
        let script = format!(
            r#"#!/bin/sh
input=$(cat)
case "$1" in
  get)
    if [ -f {s} ] && grep -q "\"ServerURL\":\"$input\"" {s}; then
      sed 's/"ServerURL":"[^"]*",//' {s}
    else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) printf '%s' "$input" | sed 's/ //g' > {s} ;;
  erase) rm -f {s} ;;
esac
"#,
            s = store.display()
        );
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(&helper, script).unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers": {"reg.test": "test"}}"#).unwrap();
        let mut cfg = DockerConfig::load(Some(&path))
            .unwrap()
            .with_helper_dir(dir.path());
        assert_eq!(cfg.get("reg.test").unwrap(), None);
        cfg.store("reg.test", &Credentials::new("alice", "s3cret"))
            .unwrap();
        assert_eq!(
            cfg.get("reg.test").unwrap(),
            Some(Credentials::new("alice", "s3cret"))
        );
        // Nothing was written to the config file itself.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("s3cret"));
        assert!(cfg.erase("reg.test").unwrap());
        assert_eq!(cfg.get("reg.test").unwrap(), None);
        // A registry without a helper falls back to the file.
        assert_eq!(cfg.get("other.test").unwrap(), None);
    }
}
