//! Structured errors. Credentials never reach these values: URLs are logged
//! without query strings and auth headers are never copied in.

use std::fmt;

/// One entry of the registry's JSON error body (`{"errors":[...]}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct RegistryErrorItem {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<RegistryErrorItem>,
}

/// Parses a distribution error body; anything else yields no items.
pub(crate) fn parse_error_body(body: &[u8]) -> Vec<RegistryErrorItem> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

pub(crate) struct Codes<'a>(pub &'a [RegistryErrorItem]);

impl fmt::Display for Codes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        for (i, e) in self.0.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { "; " })?;
            write!(f, "{}: {}", e.code.to_ascii_lowercase(), e.message)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry answered with an unexpected HTTP status.
    #[error("{registry}: {method} {path}: HTTP {status}{}", Codes(errors))]
    Registry {
        registry: String,
        method: String,
        path: String,
        status: u16,
        errors: Vec<RegistryErrorItem>,
    },

    /// Authentication failed or was refused (401/403 after authenticating).
    #[error("unauthorized: {message} for {registry}")]
    Unauthorized { registry: String, message: String },

    /// The registry (or its token server) could not be reached or the
    /// connection broke.
    #[error("{registry}: {context}: {source}")]
    Transport {
        registry: String,
        context: String,
        #[source]
        source: reqwest::Error,
    },

    /// Content did not hash to the digest it was asked for. The caller must
    /// discard whatever was written to its writer.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },

    #[error("invalid reference {input:?}: {reason}")]
    InvalidReference { input: String, reason: String },

    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest { input: String, reason: String },

    #[error("invalid manifest: {0}")]
    Manifest(String),

    #[error("no manifest for platform {platform} in the index (available: {available})")]
    PlatformNotFound { platform: String, available: String },

    /// The registry broke the protocol (missing Location, bad Content-Range...).
    #[error("{registry}: protocol error: {message}")]
    Protocol { registry: String, message: String },

    #[error("TLS setup for {registry}: {message}")]
    Tls { registry: String, message: String },

    #[error("credentials config {path}: {message}")]
    Config { path: String, message: String },

    #[error("credential helper docker-credential-{helper}: {message}")]
    CredentialHelper { helper: String, message: String },

    /// Reading the upload source or writing to the caller's writer failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl From<oci_model::DigestError> for Error {
    fn from(e: oci_model::DigestError) -> Self {
        Error::InvalidDigest {
            input: e.value,
            reason: e.reason.to_string(),
        }
    }
}

impl From<oci_model::ReferenceError> for Error {
    fn from(e: oci_model::ReferenceError) -> Self {
        Error::InvalidReference {
            input: e.value,
            reason: e.reason,
        }
    }
}

impl From<oci_model::PlatformNotFound> for Error {
    fn from(e: oci_model::PlatformNotFound) -> Self {
        Error::PlatformNotFound {
            platform: e.platform,
            available: e.available,
        }
    }
}

impl Error {
    /// `DigestMismatch` unless `actual` is `expected`.
    pub(crate) fn check_digest(
        what: &str,
        expected: &oci_model::Digest,
        actual: &oci_model::Digest,
    ) -> Result<()> {
        if actual != expected {
            return Err(Error::DigestMismatch {
                what: what.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    }

    /// Whether repeating the same request may succeed (5xx, 429, broken
    /// connections). Digest errors and 4xx are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Registry { status, .. } => is_retryable_status(*status),
            Error::Transport { source, .. } => is_retryable_transport(source),
            _ => false,
        }
    }

    /// The HTTP status this error came from, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's error codes (e.g. `BLOB_UNKNOWN`, `DENIED`).
    pub fn registry_codes(&self) -> Vec<&str> {
        match self {
            Error::Registry { errors, .. } => errors.iter().map(|e| e.code.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || matches!(status, 500 | 502 | 503 | 504)
}

pub(crate) fn is_retryable_transport(e: &reqwest::Error) -> bool {
    // Builder/redirect errors are our own fault; everything on the wire
    // (connect, reset, truncated body, timeout) may heal on a new try.
    // reqwest reports a body cut mid-stream as a "decode" error, so that kind
    // stays retryable (we never use reqwest's own JSON decoding).
    !(e.is_builder() || e.is_redirect() || e.is_status())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
