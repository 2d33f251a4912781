//! The image model (from `oci-model`) as the store's callers name it, plus
//! the timestamps the store writes into configs and history.

pub use oci_model::config::*;
pub use oci_model::manifest::*;
pub use oci_model::media;
pub use oci_model::platform::{host_arch, Platform};

/// RFC 3339 with nanoseconds in UTC, the form docker writes.
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

pub fn now() -> String {
    format_time(chrono::Utc::now())
}
