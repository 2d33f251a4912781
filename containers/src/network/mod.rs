//! Container networking, rootful, through netavark (podman's backend):
//! network definitions ([`config`]), published ports ([`ports`]), and a
//! container's place on a network ([`attach`]): a network namespace file
//! ([`netns`]) that netavark sets up before the container joins it and
//! tears down after it ends.

pub mod attach;
pub mod config;
mod lease;
mod netavark;
mod netns;
pub mod ports;
pub mod subnet;

pub use attach::{attach, attachment, detach, Attachment, NetworkRequest};
pub use config::{CreateRequest, NetworkDef, Networks, DEFAULT_NETWORK};
pub use ports::{PortMapping, PortSpec, Proto};

/// Where the network namespace of container `id` is mounted.
pub fn netns_path(store: &image_store::Store, id: &str) -> std::path::PathBuf {
    Networks::new(store).run_dir().join("netns").join(id)
}

/// The published ports of container `name` (none when it has no network
/// or it has ended), for `kiln port` and `kiln ps`.
pub fn published(store: &image_store::Store, c: &crate::Container) -> Vec<PortMapping> {
    attachment(&crate::Containers::new(store).container_dir(&c.id))
        .map(|a| a.ports)
        .unwrap_or_default()
}

/// `kiln run`'s network when none is asked for: the default bridge, as
/// docker's, when kiln can set one up (root in the host's user namespace:
/// netavark needs the host's network namespace); otherwise `none`, since
/// unprivileged networks (slirp4netns, pasta) are not built yet.
pub fn default_mode() -> &'static str {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let initial_userns = std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"])
    });
    match root && initial_userns {
        true => DEFAULT_NETWORK,
        false => "none",
    }
}
