//! /etc/hosts, /etc/hostname and /etc/resolv.conf, written into the
//! container's directory and bind-mounted over the image's, as docker does
//! (or, for build steps, the two BuildKit gives a RUN).

use crate::error::RunError;
use crate::{EtcNetwork, EtcStyle};
use oci_spec::runtime::{Mount, MountBuilder};
use std::fs;
use std::path::Path;

const HOSTS_NONE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

fn host_hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Writes the files into `dir` and returns the mounts that place them.
pub(crate) fn prepare(
    dir: &Path,
    hostname: Option<&str>,
    host_network: bool,
    readonly: bool,
    style: EtcStyle,
    network: Option<&EtcNetwork>,
) -> Result<Vec<Mount>, RunError> {
    let hostname = hostname.map(str::to_string).unwrap_or_else(host_hostname);
    let resolv = match network {
        Some(n) => n.resolv_conf.clone(),
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    let files = match style {
        EtcStyle::Docker => {
            let hosts = if let Some(n) = network {
                format!("{HOSTS_NONE}{}", n.hosts)
            } else if host_network {
                fs::read_to_string("/etc/hosts").unwrap_or_else(|_| HOSTS_NONE.to_string())
            } else {
                HOSTS_NONE.to_string()
            };
            vec![
                ("hosts", hosts),
                ("hostname", format!("{hostname}\n")),
                ("resolv.conf", resolv),
            ]
        }
        // BuildKit writes the same hosts file whatever the network (plus
        // `--add-host` lines, given as the network's), and mounts nothing
        // over /etc/hostname.
        EtcStyle::BuildKit => vec![
            (
                "hosts",
                format!(
                    "127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n{}",
                    network.map_or("", |n| n.hosts.as_str())
                ),
            ),
            ("resolv.conf", resolv),
        ],
    };
    let mut mounts = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        // Rewriting in place truncates, which ext4 turns into a flush on
        // close (auto_da_alloc): leave files that already say the same.
        if fs::read(&path).ok().as_deref() != Some(content.as_bytes()) {
            fs::write(&path, content)
                .map_err(|e| RunError::io(format!("write {}", path.display()), e))?;
        }
        let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
        if readonly {
            opts.push("ro".into());
        }
        mounts.push(
            MountBuilder::default()
                .destination(format!("/etc/{name}"))
                .typ("bind")
                .source(path)
                .options(opts)
                .build()
                .map_err(|e| RunError::InvalidSpec(e.to_string()))?,
        );
    }
    Ok(mounts)
}
