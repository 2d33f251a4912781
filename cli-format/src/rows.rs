//! The rows docker's list commands hand their `--format` templates: one
//! JSON object per row with docker's field names and docker's text in
//! them (`.CreatedSince` "2 hours ago", `.Size` "4.26MB"), each list with
//! its column titles and default `table` template.

use containers::Container;
use image_store::{History, Image};
use serde_json::{json, Value};

use crate::units::{ago, ellipsis, human_size, parse_time};

/// Go's `time.Time.String()` in UTC, as docker's `.CreatedAt` reads.
pub fn go_time(t: Option<&str>) -> String {
    match parse_time(t) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string(),
        None => String::new(),
    }
}

/// An image ID as docker's lists print it: 12 hex digits, or the whole
/// `sha256:…` with `--no-trunc`.
fn image_id(img: &Image, no_trunc: bool) -> String {
    if no_trunc {
        img.id().to_string()
    } else {
        img.id().short().to_string()
    }
}

pub mod images {
    use super::*;

    /// The Go type of docker's rows, named when a template asks for a
    /// field they lack.
    pub const ROW_TYPE: &str = "*formatter.imageContext";

    pub const DEFAULT: &str =
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    pub const DEFAULT_DIGESTS: &str =
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("ID", "IMAGE ID"),
        ("Repository", "REPOSITORY"),
        ("Tag", "TAG"),
        ("Digest", "DIGEST"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("Size", "SIZE"),
        ("Containers", "CONTAINERS"),
        ("SharedSize", "SHARED SIZE"),
        ("UniqueSize", "UNIQUE SIZE"),
        ("VirtualSize", "VIRTUAL SIZE"),
    ];

    /// One `images` row: `repo` and `tag` are `<none>` for an untagged image.
    pub fn row(img: &Image, repo: &str, tag: &str, no_trunc: bool) -> Value {
        let created = img.config.created.as_deref();
        let size = human_size(img.size());
        json!({
            "ID": image_id(img, no_trunc),
            "Repository": repo,
            "Tag": tag,
            "Digest": img.manifest_digest().to_string(),
            "CreatedSince": ago(created),
            "CreatedAt": go_time(created),
            "Size": size,
            "VirtualSize": size,
            "SharedSize": "N/A",
            "UniqueSize": "N/A",
            "Containers": "N/A",
        })
    }
}

pub mod history {
    use super::*;

    pub const ROW_TYPE: &str = "*image.historyContext";

    pub const DEFAULT: &str =
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("ID", "IMAGE"),
        ("CreatedSince", "CREATED"),
        ("CreatedAt", "CREATED AT"),
        ("CreatedBy", "CREATED BY"),
        ("Size", "SIZE"),
        ("Comment", "COMMENT"),
    ];

    /// The rows of `history`, newest first: the top one carries the image's
    /// ID, the others `<missing>` (kiln keeps no intermediate images).
    pub fn rows(img: &Image, no_trunc: bool, human: bool) -> Vec<Value> {
        let layers = &img.manifest.layers;
        // An image without history (e.g. pushed by a tool that omits it)
        // gets one synthetic entry per layer.
        let history: Vec<History> = if img.config.history.is_empty() {
            layers.iter().map(|_| History::default()).collect()
        } else {
            img.config.history.clone()
        };
        let mut layer_sizes = layers.iter().map(|l| l.size);
        let mut rows: Vec<Value> = history
            .iter()
            .map(|h| {
                let size = if h.empty_layer {
                    0
                } else {
                    layer_sizes.next().unwrap_or(0)
                };
                let created_by = h.created_by.clone().unwrap_or_default();
                let created = h.created.as_deref();
                json!({
                    "ID": "<missing>",
                    "CreatedSince": if human { ago(created) } else { created.unwrap_or("").to_string() },
                    "CreatedAt": h.created.clone().unwrap_or_default(),
                    "CreatedBy": if no_trunc { created_by } else { ellipsis(&created_by, 45) },
                    "Size": if human { human_size(size) } else { size.to_string() },
                    "Comment": h.comment.clone().unwrap_or_default(),
                })
            })
            .collect();
        rows.reverse();
        if let Some(top) = rows.first_mut() {
            top["ID"] = image_id(img, no_trunc).into();
        }
        rows
    }
}

pub mod ps {
    use super::*;

    pub const ROW_TYPE: &str = "*formatter.ContainerContext";

    pub const DEFAULT: &str =
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Size", "SIZE"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Mounts", "MOUNTS"),
        ("Networks", "NETWORKS"),
        ("LocalVolumes", "LOCAL VOLUMES"),
    ];

    /// docker's STATUS column, as the Engine API gives it too.
    pub use containers::summary::status_text;

    /// One `ps` row. `ports` and `networks` come from the container's
    /// network attachment.
    pub fn row(
        store: &image_store::Store,
        c: &Container,
        ports: &[String],
        networks: &[String],
        no_trunc: bool,
    ) -> Value {
        let cmd = c.command.join(" ");
        let cmd = if no_trunc { cmd } else { ellipsis(&cmd, 20) };
        let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mounts: Vec<String> = c
            .mounts
            .iter()
            .map(|m| match (&m.name, &m.source) {
                (Some(n), _) => n.clone(),
                (None, Some(s)) => s.display().to_string(),
                (None, None) => m.destination.clone(),
            })
            .map(|m| if no_trunc { m } else { ellipsis(&m, 15) })
            .collect();
        json!({
            "ID": if no_trunc { c.id.clone() } else { c.id[..12.min(c.id.len())].to_string() },
            "Image": c.image,
            "Command": format!("{cmd:?}"),
            "CreatedAt": go_time(Some(&c.created)),
            "RunningFor": ago(Some(&c.created)),
            "Ports": ports.join(", "),
            "State": containers::filters::status(store, c),
            "Status": status_text(store, c),
            "Size": "N/A",
            "Names": c.name,
            "Labels": labels.join(","),
            // `.Label "k"` (crate::template::METHODS).
            "Label": c.labels,
            "Mounts": mounts.join(","),
            "Networks": networks.join(","),
            "LocalVolumes": c.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
        })
    }
}

pub mod networks {
    use super::*;
    use containers::network::NetworkDef;

    pub const ROW_TYPE: &str = "*network.networkContext";

    pub const DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
        ("CreatedAt", "CREATED AT"),
        ("Subnet", "SUBNET"),
    ];

    pub fn row(n: &NetworkDef, no_trunc: bool) -> Value {
        let labels: Vec<String> = n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        json!({
            "ID": if no_trunc { n.id.clone() } else { n.id[..12.min(n.id.len())].to_string() },
            "Name": n.name,
            "Driver": n.driver,
            "Scope": "local",
            "IPv6": "false",
            "Internal": n.internal.to_string(),
            "Labels": labels.join(","),
            "Label": n.labels,
            "CreatedAt": go_time(Some(&n.created)),
            "Subnet": n.subnet.to_string(),
        })
    }
}

pub mod volumes {
    use super::*;
    use containers::volumes::Volume;

    pub const ROW_TYPE: &str = "*formatter.volumeContext";

    pub const DEFAULT: &str = "table {{.Driver}}\t{{.Name}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("Name", "VOLUME NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("Mountpoint", "MOUNTPOINT"),
        ("Labels", "LABELS"),
        ("Links", "LINKS"),
        ("Size", "SIZE"),
    ];

    /// One `volume ls` row; `users` is how many containers use it.
    pub fn row(v: &Volume, mountpoint: &std::path::Path, users: usize) -> Value {
        let labels: Vec<String> = v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        json!({
            "Name": v.name,
            "Driver": "local",
            "Scope": "local",
            "Mountpoint": mountpoint,
            "Labels": labels.join(","),
            "Label": v.labels,
            "Links": users.to_string(),
            "Size": "N/A",
        })
    }
}

pub mod stats {
    use super::*;

    pub const ROW_TYPE: &str = "*container.statsContext";
    use crate::units::human_size;
    use containers::stats::Stats;

    pub const DEFAULT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("ID", "CONTAINER ID"),
        ("Container", "CONTAINER"),
        ("Name", "NAME"),
        ("CPUPerc", "CPU %"),
        ("MemUsage", "MEM USAGE / LIMIT"),
        ("MemPerc", "MEM %"),
        ("NetIO", "NET I/O"),
        ("BlockIO", "BLOCK I/O"),
        ("PIDs", "PIDS"),
    ];

    /// go-units' BytesSize: binary units, `%.4g`, as docker shows memory.
    pub fn bytes_size(bytes: u64) -> String {
        const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
        let mut v = bytes as f64;
        let mut i = 0;
        while v >= 1024.0 && i < UNITS.len() - 1 {
            v /= 1024.0;
            i += 1;
        }
        // %.4g for values below 10000: at most four significant digits.
        let decimals = match v {
            v if v >= 1000.0 => 0,
            v if v >= 100.0 => 1,
            v if v >= 10.0 => 2,
            _ => 3,
        };
        let s = format!("{v:.decimals$}");
        let s = if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        };
        format!("{s}{}", UNITS[i])
    }

    /// One `stats` row; `container` is the name or ID the user gave.
    pub fn row(s: &Stats, container: &str, no_trunc: bool) -> Value {
        let percent = |v: f64| format!("{v:.2}%");
        let mem_perc = match s.mem_limit {
            0 => 0.0,
            l => s.mem_usage as f64 / l as f64 * 100.0,
        };
        json!({
            "ID": if no_trunc { s.id.clone() } else { s.id[..12.min(s.id.len())].to_string() },
            "Container": container,
            "Name": s.name,
            "CPUPerc": percent(s.cpu_percent),
            "MemUsage": format!("{} / {}", bytes_size(s.mem_usage), bytes_size(s.mem_limit)),
            "MemPerc": percent(mem_perc),
            "NetIO": format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
            "BlockIO": format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
            "PIDs": s.pids.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_as_go_units() {
        use super::stats::bytes_size;
        assert_eq!(bytes_size(0), "0B");
        assert_eq!(bytes_size(1536), "1.5KiB");
        assert_eq!(bytes_size(2_097_152), "2MiB");
        assert_eq!(bytes_size(25_164_984_320), "23.44GiB");
    }

    #[test]
    fn go_times() {
        assert_eq!(
            go_time(Some("2024-05-01T12:03:04.5Z")),
            "2024-05-01 12:03:04 +0000 UTC"
        );
    }
}

pub mod df {
    use super::*;
    use containers::usage::DiskUsage;

    pub const ROW_TYPE: &str = "*formatter.diskUsageImagesContext";
    /// `df -v --format`: the template runs once, on the lists.
    pub const VERBOSE_TYPE: &str = "*formatter.diskUsageContext";

    pub const DEFAULT: &str =
        "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("Type", "TYPE"),
        ("TotalCount", "TOTAL"),
        ("Active", "ACTIVE"),
        ("Size", "SIZE"),
        ("Reclaimable", "RECLAIMABLE"),
    ];

    /// docker's "1.2MB (50%)"; no share of nothing.
    fn reclaimable(bytes: u64, of: u64, percent: bool) -> String {
        match (percent, of) {
            (true, 1..) => format!("{} ({}%)", human_size(bytes), bytes * 100 / of),
            _ => human_size(bytes),
        }
    }

    fn row(kind: &str, total: usize, active: usize, size: u64, free: u64, pct: bool) -> Value {
        json!({
            "Type": kind,
            "TotalCount": total.to_string(),
            "Active": active.to_string(),
            "Size": human_size(size),
            "Reclaimable": reclaimable(free, size, pct),
            // Exact numbers for scripts (not docker's).
            "SizeBytes": size,
            "ReclaimableBytes": free,
        })
    }

    /// The four summary rows: images, containers, local volumes, build cache.
    pub fn rows(u: &DiskUsage) -> Vec<Value> {
        let used_images = u.images.iter().filter(|i| i.containers > 0).count();
        let running = u
            .containers
            .iter()
            .filter(|c| c.container.is_running())
            .count();
        let used_volumes = u.volumes.iter().filter(|v| v.users > 0).count();
        vec![
            row(
                "Images",
                u.images.len(),
                used_images,
                u.images_size,
                u.images_reclaimable,
                true,
            ),
            row(
                "Containers",
                u.containers.len(),
                running,
                u.containers_size(),
                u.containers_reclaimable(),
                true,
            ),
            row(
                "Local Volumes",
                u.volumes.len(),
                used_volumes,
                u.volumes_size(),
                u.volumes_reclaimable(),
                true,
            ),
            row(
                "Build Cache",
                u.cache_records,
                0,
                u.cache_size,
                u.cache_size,
                false,
            ),
        ]
    }

    pub const IMAGES_VERBOSE: &str = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}";
    pub const CONTAINERS_VERBOSE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}";
    pub const VOLUMES_VERBOSE: &str = "table {{.Name}}\t{{.Links}}\t{{.Size}}";

    /// `df -v`'s image rows: one per name (or `<none>`); IDs cut to 12
    /// hex digits when `trunc` (docker's tables).
    pub fn image_rows(u: &DiskUsage, trunc: bool) -> Vec<Value> {
        let mut out = Vec::new();
        for i in &u.images {
            let mut names: Vec<(String, String)> = i
                .names
                .iter()
                .map(|n| image_store::images::split_name(n))
                .collect();
            if names.is_empty() {
                names.push(("<none>".into(), "<none>".into()));
            }
            for (repo, tag) in names {
                out.push(json!({
                    "Repository": repo,
                    "Tag": tag,
                    "ID": if trunc { i.id.short().to_string() } else { i.id.to_string() },
                    "Digest": i.digest.to_string(),
                    "CreatedSince": ago(i.created.as_deref()),
                    "CreatedAt": go_time(i.created.as_deref()),
                    "Size": human_size(i.size),
                    "VirtualSize": human_size(i.size),
                    "SharedSize": human_size(i.shared),
                    "UniqueSize": human_size(i.size - i.shared),
                    "Containers": i.containers.to_string(),
                }));
            }
        }
        out
    }

    pub fn container_rows(store: &image_store::Store, u: &DiskUsage, trunc: bool) -> Vec<Value> {
        u.containers
            .iter()
            .map(|c| {
                let mut r = ps::row(store, &c.container, &[], &[], !trunc);
                r["Size"] = human_size(c.size).into();
                r
            })
            .collect()
    }

    pub fn volume_rows(u: &DiskUsage) -> Vec<Value> {
        u.volumes
            .iter()
            .map(|v| {
                let labels: Vec<String> =
                    v.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                json!({
                    "Name": v.name,
                    "Driver": "local",
                    "Scope": "local",
                    "Mountpoint": v.mountpoint,
                    "Labels": labels.join(","),
                    "Label": v.labels,
                    "Links": v.users.to_string(),
                    "Size": human_size(v.size),
                })
            })
            .collect()
    }

    /// The build cache's step records as docker's build cache rows. kiln
    /// keeps no last use, use count, parent or description: `LastUsedAt`
    /// and `LastUsedSince` are empty (docker's for a record never used),
    /// `UsageCount` is `N/A`; every record is a `regular` one, none in use.
    pub fn cache_rows(u: &DiskUsage, trunc: bool) -> Vec<Value> {
        u.cache
            .iter()
            .map(|c| {
                let id = if trunc {
                    c.key.chars().take(12).collect()
                } else {
                    c.key.clone()
                };
                json!({
                    "ID": id,
                    "Parent": "",
                    "CacheType": "regular",
                    "Description": "",
                    "Size": human_size(c.size),
                    "CreatedAt": go_time(Some(&c.created)),
                    "CreatedSince": ago(Some(&c.created)),
                    "LastUsedAt": "",
                    "LastUsedSince": "",
                    "UsageCount": "N/A",
                    "InUse": "false",
                    "Shared": c.shared.to_string(),
                })
            })
            .collect()
    }

    /// What `df -v --format` runs on: docker's lists of image, container,
    /// volume and build cache rows (full IDs: a custom format is no table).
    pub fn verbose(store: &image_store::Store, u: &DiskUsage) -> Value {
        json!({
            "Images": image_rows(u, false),
            "Containers": container_rows(store, u, false),
            "Volumes": volume_rows(u),
            "BuildCache": cache_rows(u, false),
        })
    }
}

pub mod info {
    use super::*;
    use containers::usage::Info;

    pub const ROW_TYPE: &str = "system.dockerInfo";

    pub const DEFAULT: &str = "Client:
 Context:    default
 Debug Mode: false

Server:
 Containers: {{.Containers}}
  Running: {{.ContainersRunning}}
  Paused: {{.ContainersPaused}}
  Stopped: {{.ContainersStopped}}
 Images: {{.Images}}
 Volumes: {{.Volumes}}
 Server Version: {{.ServerVersion}}
 Storage Driver: {{.Driver}}
 Cgroup Version: {{.CgroupVersion}}
 Default Runtime: {{.DefaultRuntime}}
 Rootless: {{.Rootless}}
 Kernel Version: {{.KernelVersion}}
 Operating System: {{.OperatingSystem}}
 OSType: {{.OSType}}
 Architecture: {{.Architecture}}
 CPUs: {{.NCPU}}
 Name: {{.Name}}
 Kiln Root Dir: {{.DockerRootDir}}";

    fn uname() -> (String, String) {
        // SAFETY: uname fills the zeroed struct it is given.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        if unsafe { libc::uname(&mut u) } != 0 {
            return (String::new(), String::new());
        }
        let s = |f: &[libc::c_char]| {
            let b: Vec<u8> = f
                .iter()
                .take_while(|c| **c != 0)
                .map(|c| *c as u8)
                .collect();
            String::from_utf8_lossy(&b).into_owned()
        };
        (s(&u.release), s(&u.nodename))
    }

    fn os_name() -> String {
        std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into())
    }

    /// docker's `info` object, the fields kiln has.
    pub fn value(i: &Info, version: &str) -> Value {
        let (kernel, host) = uname();
        json!({
            "Containers": i.containers,
            "ContainersRunning": i.running,
            "ContainersPaused": i.paused,
            "ContainersStopped": i.stopped,
            "Images": i.images,
            "Volumes": i.volumes,
            "Driver": "overlay",
            "DockerRootDir": i.root,
            "CgroupVersion": i.cgroup_version.to_string(),
            "DefaultRuntime": i.default_runtime,
            "Rootless": i.rootless,
            "SecurityOptions": if i.rootless { vec!["name=rootless"] } else { vec![] },
            "ServerVersion": version,
            "KernelVersion": kernel,
            "OperatingSystem": os_name(),
            "OSType": "linux",
            "Architecture": std::env::consts::ARCH,
            "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "Name": host,
        })
    }
}

pub mod version {
    use super::*;

    pub const ROW_TYPE: &str = "system.versionInfo";

    pub const DEFAULT: &str = "Client:
 Version:    {{.Client.Version}}
 OS/Arch:    {{.Client.Os}}/{{.Client.Arch}}
 Context:    default

Server: kiln (no daemon: the client works on the store itself)
 Engine:
  Version:   {{.Server.Version}}
  OS/Arch:   {{.Server.Os}}/{{.Server.Arch}}
  Store:     {{.Server.Store}}";

    /// docker's `version` object: kiln is both the client and the engine.
    pub fn value(version: &str, store: &std::path::Path) -> Value {
        let os = std::env::consts::OS;
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        json!({
            "Client": {"Version": version, "Os": os, "Arch": arch, "Context": "default"},
            "Server": {
                "Platform": {"Name": "kiln"},
                "Components": [{"Name": "Engine", "Version": version}],
                "Version": version,
                "Os": os,
                "Arch": arch,
                "Store": store,
            },
        })
    }
}

pub mod search {
    use super::*;

    pub const ROW_TYPE: &str = "*registry.searchContext";

    pub const DEFAULT: &str =
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}";
    pub const HEADERS: &[(&str, &str)] = &[
        ("Name", "NAME"),
        ("Description", "DESCRIPTION"),
        ("StarCount", "STARS"),
        ("IsOfficial", "OFFICIAL"),
        ("IsAutomated", "AUTOMATED"),
        ("Tag", "TAG"),
    ];
    pub const TAGS_DEFAULT: &str = "table {{.Name}}\t{{.Tag}}";

    /// One `search` row, docker's `[OK]` marks and a description cut to
    /// 45 characters unless `no_trunc`.
    pub fn row(r: &registry_client::catalog::HubResult, no_trunc: bool) -> Value {
        let ok = |b: bool| if b { "[OK]" } else { "" };
        let d = r.description.replace('\n', " ");
        json!({
            "Name": r.name,
            "Description": if no_trunc { d } else { ellipsis(&d, 45) },
            "StarCount": r.star_count.to_string(),
            "IsOfficial": ok(r.is_official),
            "IsAutomated": ok(r.is_automated),
        })
    }

    pub fn tag_row(name: &str, tag: &str) -> Value {
        json!({"Name": name, "Tag": tag})
    }
}
