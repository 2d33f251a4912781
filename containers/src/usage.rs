//! What the store holds and how much disk it takes, for `system df` and
//! `info`. Sizes are what `du -sb` counts (apparent sizes of files and
//! directories, a hard-linked file once), taken from the store's own
//! files: an image is its blobs (manifest, config, layers) and its unpacked
//! layers (`kiln/layers/<diff-id>`), a container its directory, a volume
//! its directory, the build cache the blobs only its records keep and the
//! records themselves. What several images share is counted once in the
//! totals.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use image_store::{Digest, Store};

use crate::error::Result;
use crate::records::{Container, Containers};
use crate::volumes::Volumes;

/// Bytes under `path` as `du -sb` counts them; `seen` keeps hard-linked
/// inodes from counting twice across calls.
pub fn du(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = fs::symlink_metadata(path) else {
        return 0;
    };
    if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
        return 0;
    }
    let mut total = md.len();
    if md.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                total += du(&e.path(), seen);
            }
        }
    }
    total
}

#[derive(Debug, Clone)]
pub struct ImageUsage {
    pub id: Digest,
    /// The manifest's digest (`images --digests`).
    pub digest: Digest,
    pub names: Vec<String>,
    pub created: Option<String>,
    /// Blobs and unpacked layers of this image (shared ones included).
    pub size: u64,
    /// Of `size`, what other images share.
    pub shared: u64,
    /// Containers using the image.
    pub containers: usize,
}

#[derive(Debug, Clone)]
pub struct ContainerUsage {
    pub container: Container,
    pub size: u64,
}

#[derive(Debug, Clone)]
pub struct VolumeUsage {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// Where its data is (`volume ls`'s `.Mountpoint`).
    pub mountpoint: PathBuf,
    pub size: u64,
    pub users: usize,
}

/// One step record of the build cache.
#[derive(Debug, Clone)]
pub struct CacheUsage {
    /// The step's cache key.
    pub key: String,
    /// When the step first ran (RFC 3339).
    pub created: String,
    /// The record, and its layer blob unless an image or an earlier record
    /// holds it (then `shared`): the records' sizes add up to `cache_size`.
    pub size: u64,
    pub shared: bool,
}

/// `system df`: each kind's items, and totals in which shared bytes count
/// once.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub images: Vec<ImageUsage>,
    pub images_size: u64,
    /// Bytes freed by removing every image no container uses.
    pub images_reclaimable: u64,
    pub containers: Vec<ContainerUsage>,
    pub volumes: Vec<VolumeUsage>,
    /// Step records of the build cache.
    pub cache_records: usize,
    pub cache_size: u64,
    pub cache: Vec<CacheUsage>,
}

impl DiskUsage {
    pub fn containers_size(&self) -> u64 {
        self.containers.iter().map(|c| c.size).sum()
    }

    /// Stopped containers' bytes.
    pub fn containers_reclaimable(&self) -> u64 {
        self.containers
            .iter()
            .filter(|c| !c.container.is_running())
            .map(|c| c.size)
            .sum()
    }

    pub fn volumes_size(&self) -> u64 {
        self.volumes.iter().map(|v| v.size).sum()
    }

    /// Unused volumes' bytes.
    pub fn volumes_reclaimable(&self) -> u64 {
        self.volumes
            .iter()
            .filter(|v| v.users == 0)
            .map(|v| v.size)
            .sum()
    }
}

/// One image's files: its blobs and its unpacked layer directories.
fn image_files(store: &Store, img: &image_store::Image) -> Vec<PathBuf> {
    let mut out = vec![
        store.blob_path(img.manifest_digest()),
        store.blob_path(img.id()),
    ];
    out.extend(
        img.manifest
            .layers
            .iter()
            .map(|l| store.blob_path(&l.digest)),
    );
    // A delta's base too: the image needs it, whoever made it.
    out.extend(
        img.config
            .rootfs
            .diff_ids
            .iter()
            .flat_map(|d| store.unpacked_dirs_in_place(d)),
    );
    out
}

/// Measures the store.
pub fn disk_usage(store: &Store) -> Result<DiskUsage> {
    let images = store.images()?;
    let containers = Containers::new(store).containers()?;
    let mut usage = DiskUsage::default();

    // Per file: its size and the images holding it.
    let mut files: BTreeMap<PathBuf, (u64, BTreeSet<Digest>)> = BTreeMap::new();
    let mut seen = HashSet::new();
    for img in &images {
        for f in image_files(store, img) {
            if let Some(e) = files.get_mut(&f) {
                e.1.insert(img.id().clone());
                continue;
            }
            let size = du(&f, &mut seen);
            files.insert(f, (size, BTreeSet::from([img.id().clone()])));
        }
    }
    let used: HashSet<&Digest> = containers.iter().map(|c| &c.image_id).collect();
    usage.images_size = files.values().map(|(s, _)| s).sum();
    usage.images_reclaimable = files
        .values()
        .filter(|(_, holders)| holders.iter().all(|h| !used.contains(h)))
        .map(|(s, _)| s)
        .sum();
    let mut by_id: BTreeMap<Digest, ImageUsage> = BTreeMap::new();
    for img in &images {
        let e = by_id.entry(img.id().clone()).or_insert_with(|| ImageUsage {
            id: img.id().clone(),
            digest: img.manifest_digest().clone(),
            created: img.config.created.clone(),
            containers: containers
                .iter()
                .filter(|c| c.image_id == *img.id())
                .count(),
            names: Vec::new(),
            size: 0,
            shared: 0,
        });
        e.names.extend(img.names.iter().cloned());
        let mine: BTreeSet<PathBuf> = image_files(store, img).into_iter().collect();
        e.size = mine.iter().map(|f| files[f].0).sum();
        e.shared = mine
            .iter()
            .filter(|f| files[*f].1.len() > 1)
            .map(|f| files[f].0)
            .sum();
    }
    usage.images = by_id.into_values().collect();

    let dirs = Containers::new(store);
    usage.containers = containers
        .into_iter()
        .map(|c| ContainerUsage {
            size: du(&dirs.container_dir(&c.id), &mut seen),
            container: c,
        })
        .collect();

    let vols = Volumes::new(store);
    usage.volumes = vols
        .list()?
        .into_iter()
        .map(|v| VolumeUsage {
            size: du(&vols.dir().join(&v.name), &mut seen),
            users: vols.users(&v.name).map(|u| u.len()).unwrap_or(0),
            mountpoint: vols.data_dir(&v.name),
            labels: v.labels,
            name: v.name,
        })
        .collect();

    // The build cache: its records, and the blobs they pin that no image
    // holds.
    let roots = store.build_roots();
    for rec in roots.records() {
        usage.cache_records += 1;
        let mut size = du(&rec.path, &mut seen);
        let mut shared = false;
        if let Some(l) = &rec.record.layer {
            let p = store.blob_path(&l.digest);
            match files.entry(p) {
                std::collections::btree_map::Entry::Vacant(e) => {
                    size += du(e.key(), &mut seen);
                    e.insert((0, BTreeSet::new()));
                }
                std::collections::btree_map::Entry::Occupied(_) => shared = true,
            }
        }
        usage.cache_size += size;
        usage.cache.push(CacheUsage {
            key: rec.key,
            created: rec.record.created,
            size,
            shared,
        });
    }
    Ok(usage)
}

/// `kiln info`'s facts about the store and the host.
#[derive(Debug, Clone)]
pub struct Info {
    pub root: PathBuf,
    pub images: usize,
    pub containers: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
    pub volumes: usize,
    /// 1 or 2.
    pub cgroup_version: u8,
    pub rootless: bool,
    /// kiln's own runner unless `run --runtime` names another.
    pub default_runtime: String,
}

pub fn info(store: &Store) -> Result<Info> {
    let images: HashSet<Digest> = store.images()?.iter().map(|i| i.id().clone()).collect();
    let containers = Containers::new(store).containers()?;
    let paused = containers
        .iter()
        .filter(|c| c.is_running() && crate::control::is_paused(store, c))
        .count();
    let running = containers.iter().filter(|c| c.is_running()).count() - paused;
    // SAFETY: geteuid cannot fail.
    let rootless = unsafe { libc::geteuid() } != 0;
    Ok(Info {
        root: store.root().to_path_buf(),
        images: images.len(),
        running,
        paused,
        stopped: containers.len() - running - paused,
        containers: containers.len(),
        volumes: Volumes::new(store).list()?.len(),
        cgroup_version: if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            2
        } else {
            1
        },
        rootless,
        default_runtime: "kiln".to_string(),
    })
}
