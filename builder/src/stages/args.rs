//! Build args the build itself defines (BuildKit's platform args) or
//! accepts without an ARG line (the proxy args), and the warning for
//! `--build-arg`s no stage consumed.

use image_store::model;

use super::options::EventKind;
use super::Builder;

impl Builder<'_> {
    pub(crate) fn warn_unused_args(&self) {
        let used = self.used_args.lock().unwrap_or_else(|p| p.into_inner());
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !used.contains(*k) && !self.plan.global_args.iter().any(|(g, _)| g == *k))
            .filter(|k| !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let list = unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            self.emit(
                0,
                EventKind::Warning(format!(
                    "one or more build args were not consumed: [{list}]"
                )),
            );
        }
    }
}

/// Predefined args usable without an ARG line (and not warned about).
const PROXY_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// BuildKit's automatic platform args (this host builds for itself).
pub(crate) fn platform_args() -> Vec<(String, String)> {
    let arch = model::host_arch();
    let platform = format!("linux/{arch}");
    vec![
        ("TARGETPLATFORM".into(), platform.clone()),
        ("TARGETOS".into(), "linux".into()),
        ("TARGETARCH".into(), arch.into()),
        ("TARGETVARIANT".into(), String::new()),
        ("BUILDPLATFORM".into(), platform),
        ("BUILDOS".into(), "linux".into()),
        ("BUILDARCH".into(), arch.into()),
        ("BUILDVARIANT".into(), String::new()),
    ]
}
