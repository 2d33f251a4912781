//! The transfer crate's one error type. Causes stay attached as `source`;
//! context is a layer of its own text, so the binary renders `what: cause`.

use image_store::layer::LayerError;
use image_store::StoreError;

use crate::archive::ArchiveError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Registry(#[from] registry_client::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Digest(#[from] image_store::digest::DigestError),
    #[error(transparent)]
    Platform(#[from] oci_model::PlatformNotFound),
    #[error(transparent)]
    Reference(#[from] image_store::reference::ReferenceError),
    /// Bad input or an unsupported request, said in one line.
    #[error("{0}")]
    Invalid(String),
    #[error("{what}")]
    Context {
        what: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    pub fn invalid(msg: impl Into<String>) -> Error {
        Error::Invalid(msg.into())
    }

    /// One line: the error and its causes as `a: b: c` (causes that
    /// repeat their parent's text left out).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut cause: Option<&dyn std::error::Error> = Some(self);
        while let Some(c) = cause {
            let s = c.to_string();
            if !out.contains(&s) {
                if !out.is_empty() {
                    out.push_str(": ");
                }
                out.push_str(&s);
            }
            cause = c.source();
        }
        out
    }

    pub fn context(self, what: impl Into<String>) -> Error {
        Error::Context {
            what: what.into(),
            source: Box::new(self),
        }
    }
}

impl From<image_store::ComposeError> for Error {
    fn from(e: image_store::ComposeError) -> Error {
        match e {
            image_store::ComposeError::Layer(l) => Error::Layer(l),
            image_store::ComposeError::Store(s) => Error::Store(s),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Error {
        Error::Io(std::io::Error::other(e))
    }
}

impl From<tokio::sync::AcquireError> for Error {
    fn from(e: tokio::sync::AcquireError) -> Error {
        Error::Io(std::io::Error::other(e))
    }
}

/// `.context()` / `.with_context()` on any result whose error converts.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T>;
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T, E: Into<Error>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.into().context(what))
    }
    fn with_context<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| e.into().context(what()))
    }
}

/// Returns an [`Error::Invalid`] made with `format!`.
#[macro_export]
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::Error::Invalid(format!($($t)*)))
    };
}

/// An [`Error::Invalid`] made with `format!`.
#[macro_export]
macro_rules! invalid {
    ($($t:tt)*) => {
        $crate::Error::Invalid(format!($($t)*))
    };
}
